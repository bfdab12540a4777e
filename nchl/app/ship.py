"""``nchl zoo --add``: put a run's champion into the zoo with its provenance.

The champion is re-scored on held-out episodes (the paper's protocol: 100 by
default), and the record keeps everything needed to reproduce it: the run's
settings and command, package versions, generations, and its validation rows.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from pathlib import Path
from typing import Callable

from nchl_sim import task_for_genome

from ..core.errors import NchlError
from .evolution import evaluate_genome, read_log
from ..core.genome import Genome
from ..core.zoo import HERE

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_LOG_KEYS = ("generation", "best", "mean", "best_ever", "validation_mean", "validation_std", "validation_of")


def add_champion(run_dir: str | Path, name: str, episodes: int = 100, into: str | Path = HERE,
                 workers: int = 2, stress_episodes: int = 0, log: Callable[[str], None] = print) -> dict:
    """Copy a run's champion into the zoo folder ``into`` with its provenance; with ``stress_episodes``,
    also its ``nchl stress`` table (every catalogue condition at its default strength)."""
    if not _NAME.match(name):
        raise NchlError(f"zoo names are lower-case words joined by '-', got {name!r}")
    run_dir, into = Path(run_dir), Path(into)
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise NchlError(f"{run_dir}: not a readable run directory: {e}") from None
    rows = read_log(run_dir)
    genome = Genome.load(run_dir / "best.npz")
    task = task_for_genome(genome, source=run_dir)
    log(f"scoring {run_dir / 'best.npz'} on {episodes} held-out episodes")
    stats = evaluate_genome(genome.spec, genome.values, genome.task, episodes, seed=0, workers=workers, log=log)
    validated = [{k: r.get(k) for k in _LOG_KEYS} for r in rows if r.get("validation_mean") is not None]
    champion_row = max(validated, key=lambda r: r["validation_mean"]) if validated else None
    record = {
        "name": name, "task": genome.task, "env": task.env_id, "rule": genome.spec.rule,
        "window": genome.spec.window,
        "layers": list(genome.spec.topology.layers), "genome_length": genome.spec.genome_length,
        "genome_sha256": genome.sha256(), "added": date.today().isoformat(),
        "run": {"settings": config["settings"], "optimizer": config.get("optimizer"),
                "popsize": config.get("popsize"), "command": config.get("command"),
                "versions": config.get("versions"), "generations": len(rows),
                "best_training_episode": max(r["best"] for r in rows),
                "env_steps": rows[-1]["env_steps"], "wall_time_s": rows[-1]["wall_time"]},
        "selected_at": champion_row, "log_excerpt": (validated or rows)[-5:],
        "evaluation": {k: stats[k] for k in ("episodes", "seeds", "mean", "std", "median", "min", "max",
                                              "forward_fraction", "early_stop")}
                      | {"fitness": [e["fitness"] for e in stats["per_episode"]],
                         "command": f"nchl evaluate zoo:{name} --episodes {episodes} --json"},
    }
    if stress_episodes:
        from .stress import parse_conditions, run_stress

        table = run_stress(genome.spec, genome.values, genome.task, parse_conditions(["all"], genome.task),
                           stress_episodes, seed=0, workers=workers, log=log)
        keep = ("mean", "median", "forward_fraction", "retained", "saturated_share", "dominant_frequency_hz")
        record["stress"] = {
            "episodes": stress_episodes, "seeds": table["seeds"],
            "intact": {k: table["intact"][k] for k in keep if k in table["intact"]},
            "conditions": [{"name": c["name"], "strength": c["strength"], "unit": c["unit"]}
                           | {k: c[k] for k in keep} for c in table["conditions"]],
            "command": f"nchl stress zoo:{name} --episodes {stress_episodes} --json"}
    into.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "best.npz", into / f"{name}.npz")
    (into / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record
