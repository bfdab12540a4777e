"""``nchl pipeline``: the main job, end to end, with one summary table.

evolve NcHL on a task (small budget) -> generate C for NcHL and WNcHL (same
genome, weightless deployment) -> verify each through cffi in lockstep with
Python over a full-length episode and in closed loop -> Cortex-M4F flash, RAM
and stack -> replay the episode's observations on an emulated Cortex-M4
(qemu mps2-an386) and compare every action, with instructions per step.
Every artefact stays in the output directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typing import Callable

from .errors import NchlError
from .evolution import EvolveConfig, Run
from .genome import Genome
from .spec import Spec


def _deploy(genome: Genome, task: str, window: int, seed: int, out: Path, log: Callable[[str], None]) -> list[dict]:
    """Generate C for the genome as NcHL and as WNcHL, verify it against Python on the host and on an
    emulated Cortex-M4 over one full-length episode, and measure its Cortex-M4F size."""
    from nchl_codegen import generate, write
    from nchl_codegen.build import CController
    from nchl_codegen.firmware import emulate, size_sources
    from nchl_codegen.verify import verify
    from nchl_sim import get_task, rollout

    env = get_task(task).make_env(full_length=True)
    rows = []
    for spec in (genome.spec, Spec("wnchl", genome.spec.topology, window=window)):
        name = spec.rule if spec.window is None else f"{spec.rule}(m={spec.window})"
        prefix = f"{task.replace('-', '_')}_{spec.rule}"
        folder = out / "c" / name
        write(generate(spec, genome.values, prefix), folder)
        report = verify(env, genome.controller(spec=spec), CController(spec, genome.values, prefix), [seed])
        sizes = size_sources(folder, prefix, "cortex-m4f")
        trace = rollout(env, genome.controller(spec=spec), seed, record=True)
        emu = emulate(spec, genome.values, trace.obs, seed, prefix=prefix)
        ep = report["episodes"][0]
        rows.append({"variant": name, "fitness_python": ep["fitness_python"], "fitness_c": ep["fitness_c"],
                     "steps": ep["steps"], "max_abs_error": report["max_abs_error"],
                     "max_ulp_error": report["max_ulp_error"],
                     "passed": report["passed"] and emu["max_abs_error"] <= report["tolerance"],
                     "m4f_flash_bytes": sizes["flash_bytes"], "m4f_ram_bytes": sizes["ram_bytes"],
                     "m4f_stack_bytes": sizes["stack_bytes"], "emulated_steps": emu["steps"],
                     "emulated_max_abs_error": emu["max_abs_error"],
                     "instructions_per_step": emu["instructions_per_step_median"],
                     "floor_macs_per_step": emu["floor_macs_per_step"]})
        log(f"{name}: C in {folder}, verified over {ep['steps']} steps on the host and on the emulated Cortex-M4")
    return rows


def _table(title: str, rows: list[dict]) -> None:
    print(title)
    print(f"{'variant':<13}{'fitness py':>11}{'fitness C':>10}{'|C-py| host':>12}{'|C-py| M4':>10}"
          f"{'flash B':>9}{'RAM B':>8}{'stack B':>8}{'instr/step':>11}{'floor MAC':>10}")
    for r in rows:
        print(f"{r['variant']:<13}{r['fitness_python']:>11.3f}{r['fitness_c']:>10.3f}{r['max_abs_error']:>12.3g}"
              f"{r['emulated_max_abs_error']:>10.3g}{r['m4f_flash_bytes']:>9}{r['m4f_ram_bytes']:>8}"
              f"{r['m4f_stack_bytes']:>8}{r['instructions_per_step']:>11.0f}{r['floor_macs_per_step']:>10}")


def run_pipeline(out: str | Path, task: str = "ant", generations: int = 60, popsize: int = 32, window: int = 10,
                 seed: int = 0, workers: int = 2, champion: str | None = "ant-nchl",
                 log: Callable[[str], None] = print) -> dict:
    """The demonstration run on ``task``, then the deployment of its best genome and of the zoo
    ``champion`` (a controller that walks; ``None`` to skip)."""
    from . import zoo

    out = Path(out)
    run_dir = out / "evolution"
    if (run_dir / "config.json").exists():
        run = Run(run_dir, resume=True, generations=generations, log=log)
    else:
        cfg = EvolveConfig.from_mapping({"task": task, "rule": "nchl", "generations": generations,
                                         "popsize": popsize, "seed": seed, "workers": workers})
        run = Run(run_dir, cfg, log=log)
    run.run()
    best = Genome.load(run_dir / "best.npz")
    rows = _deploy(best, task, window, seed, out / "demo", log)
    summary: dict = {"task": task, "evolution": {"generations": generations, "validation_mean": best.fitness,
                                                 "run_dir": str(run_dir)}, "variants": rows}
    if champion is not None:
        record = zoo.provenance(champion)
        shipped = Genome.load(f"{zoo.PREFIX}{champion}")
        e = record["evaluation"]
        # verified on a representative episode: the held-out one whose distance is the median
        typical = e["seeds"][0] + int(np.argsort(e["fitness"])[len(e["fitness"]) // 2])
        summary["champion"] = {"name": champion, "task": shipped.task, "evaluation": e, "seed": typical,
                               "variants": _deploy(shipped, shipped.task, window, typical, out / "champion", log)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _table(f"\nmain job on {task}: NcHL evolved for {generations} generations (popsize {popsize}), champion's "
           f"validation mean {best.fitness:.3f} m", rows)
    if champion is not None:
        e = summary["champion"]["evaluation"]
        _table(f"\nzoo:{champion} ({record['run']['generations']} generations): {e['episodes']} held-out "
               f"episodes, mean {e['mean']:.2f} m, median {e['median']:.2f} m, forward "
               f"{100 * e['forward_fraction']:.0f}%; below, its median episode (seed {summary['champion']['seed']}) "
               f"as NcHL and redeployed weightless", summary["champion"]["variants"])
    print(f"(one full-length episode each, task termination off; demonstration seed {seed}; |C-py| = max abs "
          f"action error of the C through cffi (host) and on the emulated Cortex-M4 (qemu mps2-an386); "
          f"flash/RAM/stack of a minimal Cortex-M4F firmware; all artefacts in {out})")
    every = rows + (summary["champion"]["variants"] if champion is not None else [])
    if not all(r["passed"] for r in every):
        raise NchlError("generated C does not match the Python reference within tolerance")
    return summary
