"""``nchl campaign``: a grid of evolution runs (tasks x rules x windows x seeds), resumable.

A campaign file has three tables::

    [campaign]
    tasks = ["vsr-low", "ant"]
    rules = ["hl", "nchl", "wnchl"]
    windows = [10]          # WNcHL windows: a list is a sweep
    seeds = [0, 1, 2]
    [evolve]                # any key of `nchl evolve` but task, rule, window, seed, out
    generations = 500
    [evaluate]
    episodes = 100          # each champion re-scored on held-out episodes
    stress = ["all"]        # optional: nchl stress conditions for every champion (stress.json)
    stress_episodes = 20

Every cell is one run directory named ``TASK-RULE[-mM]-sSEED`` under the
campaign directory, next to ``campaign.json`` (the manifest: the settings and
the cells). A cell is finished when its ``evaluation.json`` exists; rerunning
the same command skips finished cells and resumes interrupted runs from their
checkpoints, so the result equals an uninterrupted campaign (every run is a
function of its settings). ``parallel`` cells run at once, each in its own
process with ``workers`` evaluation processes.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..core.errors import NchlError
from .evolution import ConfigError, EvolveConfig, Run, evaluate_genome, load_toml, provenance
from .stress import STRESS, parse_conditions, run_stress
from ..core.fileio import WriterLock, atomic_write
from ..core.genome import Genome
from ..core.spec import RULES

MANIFEST = "campaign.json"
EVALUATION = "evaluation.json"
_CAMPAIGN_KEYS = {"tasks", "rules", "windows", "seeds"}
_EVALUATE_KEYS = {"episodes", "stress", "stress_episodes"}
_PER_CELL = {"task", "rule", "window", "seed", "out"}


@dataclass(frozen=True)
class Cell:
    task: str
    rule: str
    window: int | None
    seed: int

    @property
    def name(self) -> str:
        return f"{self.task}-{self.rule}{'' if self.window is None else f'-m{self.window}'}-s{self.seed}"

    @property
    def variant(self) -> str:
        """The rule as compared in reports: ``hl``, ``nchl``, ``wnchl-m10``."""
        return self.rule if self.window is None else f"{self.rule}-m{self.window}"


TRAINING_KEYS = ("randomize", "randomize_p", "action_rate_cost")  # [evolve] keys that set what runs train on


@dataclass(frozen=True)
class Campaign:
    tasks: tuple[str, ...]
    rules: tuple[str, ...]
    windows: tuple[int, ...]
    seeds: tuple[int, ...]
    evolve: dict
    episodes: int
    stress: tuple[str, ...] = ()    # nchl stress conditions run on every champion (none: no stress tables)
    stress_episodes: int = 20

    @classmethod
    def from_mapping(cls, values: dict, source: str = "campaign") -> "Campaign":
        unknown = sorted(set(values) - {"campaign", "evolve", "evaluate"})
        if unknown:
            raise ConfigError(f"{source}: unknown tables {unknown}; allowed: [campaign], [evolve], [evaluate]")
        grid, evolve, evaluate = (values.get(k, {}) for k in ("campaign", "evolve", "evaluate"))
        for name, table, allowed in (("campaign", grid, _CAMPAIGN_KEYS), ("evaluate", evaluate, _EVALUATE_KEYS)):
            if not isinstance(table, dict):
                raise ConfigError(f"{source}: [{name}] must be a table")
            bad = sorted(set(table) - allowed)
            if bad:
                raise ConfigError(f"{source}: [{name}] has unknown keys {bad}; allowed: {', '.join(sorted(allowed))}")
        fixed = sorted(set(evolve) & _PER_CELL)
        if fixed:
            raise ConfigError(f"{source}: [evolve] cannot set {fixed}: the grid sets them per run")

        def listing(key: str, kind: type, default: list | None = None) -> tuple:
            v = grid.get(key, default)
            if v is None:
                raise ConfigError(f"{source}: [campaign] needs {key} = [...]")
            if not isinstance(v, list) or not v or not all(isinstance(x, kind) and not isinstance(x, bool) for x in v):
                raise ConfigError(f"{source}: [campaign] {key} must be a non-empty list of {kind.__name__}s, got {v!r}")
            if len(set(v)) != len(v):
                raise ConfigError(f"{source}: [campaign] {key} repeats a value: {v!r}")
            return tuple(v)

        tasks, rules, seeds = listing("tasks", str), listing("rules", str), listing("seeds", int)
        bad_rules = [r for r in rules if r not in RULES]
        if bad_rules:
            raise ConfigError(f"{source}: unknown rules {bad_rules}; choose from {', '.join(RULES)}")
        windows = listing("windows", int, [10]) if "wnchl" in rules else ()
        episodes = evaluate.get("episodes", 100)
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
            raise ConfigError(f"{source}: [evaluate] episodes must be an integer >= 1, got {episodes!r}")
        stress = evaluate.get("stress", [])
        if not isinstance(stress, list) or not all(isinstance(c, str) for c in stress):
            raise ConfigError(f"{source}: [evaluate] stress must be a list of conditions such as \"latency\" or "
                              f"\"dead-motor=0.5/1\", got {stress!r}")
        stress_episodes = evaluate.get("stress_episodes", 20)
        if isinstance(stress_episodes, bool) or not isinstance(stress_episodes, int) or stress_episodes < 1:
            raise ConfigError(f"{source}: [evaluate] stress_episodes must be an integer >= 1, got {stress_episodes!r}")
        if stress:
            for task in tasks:
                try:
                    parse_conditions(stress, task)
                except NchlError as e:
                    raise ConfigError(f"{source}: [evaluate] stress on {task}: {e}") from None
        campaign = cls(tasks, rules, windows, seeds, dict(evolve), episodes, tuple(stress), stress_episodes)
        for cell in campaign.cells():  # every run's settings are valid before anything starts
            campaign.config(cell, source)
        return campaign

    def cells(self) -> list[Cell]:
        out = []
        for task in self.tasks:
            for rule in self.rules:
                for window in (self.windows if rule == "wnchl" else (None,)):
                    out += [Cell(task, rule, window, seed) for seed in self.seeds]
        return out

    def config(self, cell: Cell, source: str = "campaign", where: dict | None = None) -> EvolveConfig:
        values = {**self.evolve, **(where or {}), "task": cell.task, "rule": cell.rule, "seed": cell.seed}
        if cell.window is not None:
            values["window"] = cell.window
        try:
            cfg = EvolveConfig.from_mapping(values, f"{source} [{cell.name}]")
            cfg.spec()
        except NchlError as e:
            raise ConfigError(str(e)) from None
        return cfg

    def same_budget(self, other: "Campaign") -> bool:
        """Whether both run their cells with the same ``[evolve]`` and ``[evaluate]`` settings, so
        their runs can stand side by side (and a run of one is a run of the other)."""
        return self.evolve == other.evolve and self.episodes == other.episodes

    def same_budget_but_training(self, other: "Campaign") -> bool:
        """Whether both spend the same budget and differ at most in what their runs train on (domain
        randomization, the action-rate cost): then their champions can be compared, e.g. intact vs robust."""
        def budget(c: Campaign) -> dict:
            return {k: v for k, v in c.evolve.items() if k not in TRAINING_KEYS}
        return budget(self) == budget(other) and self.episodes == other.episodes

    def extends(self, other: "Campaign") -> bool:
        """Whether this grid holds every run of ``other`` with the same settings, so ``other``'s finished
        runs are this campaign's too (a run depends only on its cell and the shared settings)."""
        return (self.same_budget(other)
                and all(set(getattr(self, k)) >= set(getattr(other, k))
                        for k in ("tasks", "rules", "windows", "seeds")))

    def settings(self) -> dict:
        return {"tasks": list(self.tasks), "rules": list(self.rules), "windows": list(self.windows),
                "seeds": list(self.seeds), "evolve": self.evolve, "episodes": self.episodes,
                "stress": list(self.stress), "stress_episodes": self.stress_episodes}


def load_campaign(path: str | os.PathLike) -> Campaign:
    return Campaign.from_mapping(load_toml(path), str(path))


def read_manifest(out: Path) -> tuple[Campaign, dict]:
    try:
        manifest = json.loads((out / MANIFEST).read_text())
        s = manifest["settings"]
        campaign = Campaign.from_mapping({"campaign": {k: s[k] for k in ("tasks", "rules", "seeds")}
                                          | ({"windows": s["windows"]} if s["windows"] else {}),
                                          "evolve": s["evolve"],
                                          "evaluate": {"episodes": s["episodes"], "stress": s.get("stress", []),
                                                       "stress_episodes": s.get("stress_episodes", 20)}},
                                         str(out / MANIFEST))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise NchlError(f"{out}: not a campaign directory ({MANIFEST} unreadable: {e})") from None
    return campaign, manifest


def cell_state(out: Path, cell: Cell, campaign: Campaign | None = None) -> str:
    """``done`` (evaluated, and stressed if ``campaign`` asks for stress tables), ``started`` or ``new``."""
    d = out / cell.name
    if (d / EVALUATION).is_file() and not (campaign and campaign.stress and not (d / STRESS).is_file()):
        return "done"
    return "started" if (d / "config.json").is_file() else "new"


def run_cell(out: Path, campaign: Campaign, cell: Cell, workers: int, scheduler: str | None,
             log: Callable[[str], None], command: list[str] | None = None) -> dict:
    """Evolve (or resume) one cell, then score its champion on held-out episodes; a new cell records
    ``command`` (default: this process's command line) as the command that made it."""
    run_dir = out / cell.name
    where = {"workers": workers, **({"scheduler": scheduler} if scheduler else {})}
    with WriterLock(run_dir, "run") as lock:
        if (run_dir / "config.json").is_file():
            Run(run_dir, resume=True, where=where, log=log, lock=lock).run()
        else:
            Run(run_dir, campaign.config(cell, where=where), log=log, lock=lock, command=command).run()
        return score_cell(run_dir, campaign, cell, workers, log)


def score_cell(run_dir: Path, campaign: Campaign, cell: Cell, workers: int, log: Callable[[str], None]) -> dict:
    """Score a finished run's champion on the campaign's held-out episodes (and its stress table, if the
    campaign asks for one), then write ``evaluation.json``, which marks the cell done."""
    genome = Genome.load(run_dir / "best.npz")
    stats = evaluate_genome(genome.spec, genome.values, cell.task, campaign.episodes, seed=0, workers=workers,
                            log=log)
    # where the held-out scores were computed: they need not reproduce bit for bit elsewhere
    record = {"cell": cell.name, "task": cell.task, "rule": cell.rule, "window": cell.window,
              "seed": cell.seed, **stats, "versions": provenance()}
    if campaign.stress:  # before evaluation.json, which marks the cell done
        table = run_stress(genome.spec, genome.values, cell.task, parse_conditions(campaign.stress, cell.task),
                           campaign.stress_episodes, seed=0, workers=workers, log=log)
        atomic_write(run_dir / STRESS, (json.dumps(table) + "\n").encode())
    atomic_write(run_dir / EVALUATION, (json.dumps(record, indent=1) + "\n").encode())
    return record


def change_words(before: float, after: float) -> str:
    """How a rescored mean moved, in words that show a last-bit change too."""
    if after == before:
        return ""
    words = f"changed by {after - before:+.3g} m"
    if before:
        words += f", {100 * (after - before) / abs(before):+.2g} %"
    return f"  ({words})"


def rescore_campaign(path: str | os.PathLike, out: str | os.PathLike, workers: int = 2,
                     log: Callable[[str], None] = print) -> list[dict]:
    """Score every finished cell's champion again, evolving nothing: for when the task's model changed
    under finished runs (e.g. a fix that makes it compute the same bits on every machine). Returns
    per cell the held-out mean before and after; cells not finished are left to ``nchl campaign``."""
    campaign, out = load_campaign(path), Path(out)
    _check_counts(workers=workers)
    if not (out / MANIFEST).is_file():
        raise NchlError(f"{out}: not a campaign directory (no {MANIFEST}); nothing to rescore")
    saved, _ = read_manifest(out)
    if not campaign.extends(saved):  # the same campaign, or one that only adds cells
        raise NchlError(f"{out} holds a different campaign ({out / MANIFEST}); rescore it with the campaign "
                        "file it was run with")
    rows = []
    with WriterLock(out, "campaign"):
        done = [c for c in campaign.cells() if cell_state(out, c, campaign) == "done"]
        log(f"campaign {out}: rescoring {len(done)} finished runs ({campaign.episodes} held-out episodes each)")
        for k, cell in enumerate(done, 1):
            run_dir = out / cell.name
            before = json.loads((run_dir / EVALUATION).read_text())["mean"]
            with WriterLock(run_dir, "run"):
                after = score_cell(run_dir, campaign, cell, workers, log)["mean"]
            rows.append({"cell": cell.name, "before": before, "after": after})
            log(f"[rescore] {k}/{len(done)} {cell.name}: {before:.4f} -> {after:.4f}{change_words(before, after)}")
    return rows


def _fmt(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def time_left(durations: dict[str, list[float]], left: list[Cell], parallel: int) -> tuple[float, list[str]]:
    """Seconds the ``left`` runs should take, from the median run time of each task (runs of one task cost
    alike, tasks do not: an Ant run takes several VSR runs' time), and the tasks with no finished run yet,
    estimated from the median of all runs."""
    finished = {t: ds for t, ds in durations.items() if ds}
    overall = statistics.median(d for ds in finished.values() for d in ds)
    seconds = sum(statistics.median(finished[c.task]) if c.task in finished else overall for c in left) / parallel
    return seconds, sorted({c.task for c in left} - set(finished))


def _check_counts(**counts: int) -> None:
    for name, v in counts.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise NchlError(f"{name} must be an integer >= 1, got {v!r}")


def run_campaign(path: str | os.PathLike, out: str | os.PathLike, workers: int = 2, parallel: int = 1,
                 scheduler: str | None = None, log: Callable[[str], None] = print) -> dict:
    """Run (or resume, or extend) the campaign of file ``path`` in directory ``out``, which it holds
    as its one writer while it runs; each cell holds its own run directory."""
    campaign, out = load_campaign(path), Path(out)
    _check_counts(workers=workers, parallel=parallel)
    with WriterLock(out, "campaign"):
        return _run_campaign(path, campaign, out, workers, parallel, scheduler, log)


def _run_campaign(path: str | os.PathLike, campaign: Campaign, out: Path, workers: int, parallel: int,
                  scheduler: str | None, log: Callable[[str], None]) -> dict:
    manifest = {"settings": campaign.settings(), "source": str(path), "cells": [c.name for c in campaign.cells()]}
    if (out / MANIFEST).is_file():
        saved, _ = read_manifest(out)
        if saved.settings() != campaign.settings():
            if not campaign.extends(saved):
                raise NchlError(f"{out} holds a different campaign ({out / MANIFEST}); use another --out, the "
                                "campaign file it was started with, or one that only adds tasks, rules, windows "
                                "or seeds")
            old = set(saved.cells())
            added = [c.name for c in campaign.cells() if c not in old]
            log(f"campaign {out}: extended by {len(added)} runs ({', '.join(added[:4])}"
                f"{', ...' if len(added) > 4 else ''}); its finished runs are kept")
            atomic_write(out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    cells = campaign.cells()
    todo = [c for c in cells if cell_state(out, c, campaign) != "done"]
    log(f"campaign {out}: {len(cells)} runs, {len(cells) - len(todo)} done, {len(todo)} to run "
        f"({sum(cell_state(out, c, campaign) == 'started' for c in todo)} resumed), {parallel} at a time")
    durations: dict[str, list[float]] = defaultdict(list)  # task -> seconds per run finished here
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    pending = list(todo)

    def progress() -> None:
        done = len(cells) - len(pending) - len(running)
        line = f"[campaign] {done}/{len(cells)} done, {len(running)} running, {len(pending)} left"
        if durations:
            eta, unseen = time_left(durations, pending + [c for c in cells if c.name in running], parallel)
            line += f", ETA {_fmt(eta)}" + (f" (rough: no {', '.join(unseen)} run finished yet)" if unseen else "")
        log(line)

    if parallel == 1:
        while pending:
            cell = pending[0]
            log(f"[campaign] {cell.name}: {cell_state(out, cell, campaign)}")
            t0 = time.perf_counter()
            run_cell(out, campaign, cell, workers, scheduler, log)
            pending.pop(0)
            durations[cell.task].append(time.perf_counter() - t0)
            progress()
    else:
        failed = []
        while pending or running:
            while pending and len(running) < parallel:
                cell = pending.pop(0)
                (out / cell.name).mkdir(parents=True, exist_ok=True)
                with open(out / cell.name / "campaign.log", "a") as f:
                    # -P: the cell imports the nchl this campaign runs, never a source tree in the working directory
                    proc = subprocess.Popen([sys.executable, "-P", "-m", "nchl.app.campaign", str(path), str(out),
                                             cell.name, str(workers), scheduler or ""],
                                            stdout=f, stderr=subprocess.STDOUT)
                running[cell.name] = (proc, time.perf_counter())
                log(f"[campaign] {cell.name}: started (log in {out / cell.name / 'campaign.log'})")
            time.sleep(0.2)
            for name, (proc, t0) in list(running.items()):
                if proc.poll() is not None:
                    del running[name]
                    if proc.returncode != 0:
                        failed.append(name)
                        log(f"[campaign] {name}: FAILED (exit {proc.returncode}); see {out / name / 'campaign.log'}")
                    else:
                        durations[next(c.task for c in cells if c.name == name)].append(
                            time.perf_counter() - t0)
                    progress()
        if failed:
            raise NchlError(f"{len(failed)} runs failed: {', '.join(failed)}; rerun the same command to retry them")
    return {"out": str(out), "runs": len(cells), "ran": len(todo)}


def summary(out: Path) -> list[dict[str, Any]]:
    """Every cell of a campaign directory with its state and, when done, its evaluation."""
    campaign, _ = read_manifest(out)
    rows = []
    for cell in campaign.cells():
        state = cell_state(out, cell, campaign)
        d = out / cell.name
        rows.append({"cell": cell, "state": state,
                     "evaluation": json.loads((d / EVALUATION).read_text()) if state == "done" else None,
                     "stress": json.loads((d / STRESS).read_text()) if state == "done" and campaign.stress else None})
    return rows


def _cell_main(argv: list[str]) -> int:
    """One cell in its own process (``parallel > 1``): ``python -m nchl.app.campaign FILE OUT CELL WORKERS SCHED``."""
    path, out, name, workers, scheduler = argv
    campaign = load_campaign(path)
    cell = next(c for c in campaign.cells() if c.name == name)
    run_cell(Path(out), campaign, cell, int(workers), scheduler or None, log=lambda m: print(m, flush=True),
             command=["nchl", "campaign", path, "--out", out])  # the campaign's command, not this worker's argv
    return 0


if __name__ == "__main__":
    sys.exit(_cell_main(sys.argv[1:]))

