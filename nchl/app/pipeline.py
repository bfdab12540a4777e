"""``nchl pipeline``: the main job, end to end, with one summary table per controller.

1. A short demonstration run: evolve NcHL on a task (small budget), generate C for its champion as
   NcHL and as weightless NcHL (same genome), verify each through cffi in lockstep with Python over a
   full-length episode, replay that episode on an emulated Cortex-M4 and measure the Cortex-M4F build.
2. The deployable path, on a shipped robust zoo champion: its held-out and stress summary (from its
   provenance), float C on the Cortex-M4F and integer (fixed-point) C on the FPU-less Cortex-M0 of a
   micro:bit, each verified on the host and on the emulated chip, with flash, RAM, stack, instructions
   per step and the share of the control period one step takes at the board's clock.

Every artefact stays in the output directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.errors import NchlError
from .evolution import EvolveConfig, Run, evaluation_controller, fixed_obs_range
from ..core.genome import Genome
from ..core.spec import Spec

FLOAT_BOARD = "mps2-an386"   # Cortex-M4 with FPU (QEMU), built for the Cortex-M4F
FIXED_BOARD = "microbit"     # Cortex-M0, no FPU: integer C


def _variant(genome: Genome, spec: Spec, numeric: str, board_name: str, seed: int, out: Path,
             log: Callable[[str], None]) -> dict:
    """Generate C for ``spec`` in ``numeric`` arithmetic, verify it against the Python reference in
    lockstep over one full-length episode on the host, replay that episode on the emulated
    ``board_name`` and size its firmware."""
    from nchl_codegen import generate, write
    from nchl_codegen.build import CController, FixedCController
    from nchl_codegen.firmware import BOARDS, emulate, size_sources
    from nchl_codegen.verify import verify
    from nchl_sim import get_task, rollout

    task = get_task(genome.task)
    env = task.make_env(full_length=True)
    board = BOARDS[board_name]
    name = spec.rule if spec.window is None else f"{spec.rule}(m={spec.window})"
    prefix = f"{genome.task.replace('-', '_')}_{spec.rule}"
    folder = out / "c" / f"{name}-{numeric}"
    obs_range = fixed_obs_range(genome.task)
    write(generate(spec, genome.values, prefix, numeric=numeric, obs_range=obs_range), folder)
    fixed = numeric == "fixed"
    reference = evaluation_controller(spec, genome.values, "python", numeric, genome.task)
    # the deployed C (genome compiled in, the written prefix), not evolution's runtime-parameter build
    c = FixedCController(spec, genome.values, obs_range, prefix) if fixed else CController(spec, genome.values, prefix)
    report = verify(env, reference, c, [seed], compare_state=fixed, tolerance=0.0 if fixed else 1e-5,
                    float_reference=genome.controller(spec=spec) if fixed else None)
    trace = rollout(env, reference, seed, record=True)
    clock_mhz = board.cpu_hz / 1e6
    emu = emulate(spec, genome.values, trace.obs, seed, board_name, prefix=prefix, numeric=numeric,
                  obs_range=obs_range, clock_mhz=clock_mhz)
    sizes = size_sources(folder, prefix, board.target)
    ep = report["episodes"][0]
    us = emu["estimated_us_per_step"]
    row = {"variant": name, "numeric": numeric, "board": board_name, "target": board.target,
           "fitness_python": ep["fitness_python"], "fitness_c": ep["fitness_c"], "steps": ep["steps"],
           "max_abs_error": report["max_abs_error"], "max_ulp_error": report["max_ulp_error"],
           "passed": report["passed"] and emu["max_abs_error"] <= report["tolerance"],
           "flash_bytes": sizes["flash_bytes"], "ram_bytes": sizes["ram_bytes"], "stack_bytes": sizes["stack_bytes"],
           "emulated_steps": emu["steps"], "emulated_max_abs_error": emu["max_abs_error"],
           "instructions_per_step": emu["instructions_per_step_median"],
           "floor_macs_per_step": emu["floor_macs_per_step"], "clock_mhz": clock_mhz, "us_per_step": us,
           "period_share": us * 1e-6 / task.control_period_s}
    if fixed:
        row["float_max_abs_error"] = ep["float_max_abs_error"]
    log(f"{name} {numeric}: C in {folder}, verified over {ep['steps']} steps on the host and on the emulated "
        f"{board.target} ({board_name})")
    return row


def _table(title: str, rows: list[dict]) -> None:
    print(title)
    print(f"{'variant':<13}{'C':<6}{'chip':<11}{'dist py':>8}{'dist C':>8}{'|C-py| host':>12}{'|C-py| chip':>12}"
          f"{'flash B':>8}{'RAM B':>7}{'stack B':>8}{'instr/step':>11}{'us/step':>9}{'period':>7}")
    for r in rows:
        print(f"{r['variant']:<13}{r['numeric']:<6}{r['target']:<11}{r['fitness_python']:>8.2f}{r['fitness_c']:>8.2f}"
              f"{r['max_abs_error']:>12.3g}{r['emulated_max_abs_error']:>12.3g}{r['flash_bytes']:>8}"
              f"{r['ram_bytes']:>7}{r['stack_bytes']:>8}{r['instructions_per_step']:>11.0f}"
              f"{r['us_per_step']:>9.0f}{100 * r['period_share']:>6.1f}%")


def _stress_line(record: dict) -> str:
    s = record.get("stress")
    if not s:
        return "no stress table in its provenance"
    kept = sorted(((c["retained"], c["name"]) for c in s["conditions"]), reverse=True)
    worst = ", ".join(f"{n} {100 * r:.0f}%" for r, n in kept[-3:][::-1])
    return (f"stress over {s['episodes']} held-out episodes, {len(kept)} conditions at default strength: "
            f"distance kept at least {100 * kept[-1][0]:.0f}% (weakest: {worst}); "
            f"{sum(r >= 0.7 for r, _ in kept)} of {len(kept)} keep >= 70%")


def run_pipeline(out: str | Path, task: str = "ant", generations: int = 60, popsize: int = 32, window: int = 10,
                 seed: int = 0, workers: int = 2, champion: str | None = "quadruped-robust",
                 log: Callable[[str], None] = print) -> dict:
    """The demonstration run on ``task`` and the deployment of its best genome, then the deployable
    path of the zoo ``champion`` (``None`` to skip)."""
    from ..core import zoo

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
    rows = [_variant(best, spec, "float", FLOAT_BOARD, seed, out / "demo", log)
            for spec in (best.spec, Spec("wnchl", best.spec.topology, window=window))]
    summary: dict = {"task": task, "evolution": {"generations": generations, "validation_mean": best.fitness,
                                                 "run_dir": str(run_dir)}, "variants": rows}
    if champion is not None:
        record = zoo.provenance(champion)
        shipped = Genome.load(f"{zoo.PREFIX}{champion}")
        e = record["evaluation"]
        # verified on a representative episode: the held-out one whose distance is the median
        typical = e["seeds"][0] + int(np.argsort(e["fitness"])[len(e["fitness"]) // 2])
        variants = [_variant(shipped, shipped.spec, numeric, board, typical, out / "champion", log)
                    for numeric, board in (("float", FLOAT_BOARD), ("fixed", FIXED_BOARD))]
        summary["champion"] = {"name": champion, "task": shipped.task, "evaluation": e, "seed": typical,
                               "stress": record.get("stress"), "variants": variants}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _table(f"\nmain job on {task}: NcHL evolved for {generations} generations (popsize {popsize}), champion's "
           f"validation mean {best.fitness:.3f} m; its C as NcHL and redeployed weightless", rows)
    if champion is not None:
        c = summary["champion"]
        fixed = c["variants"][1]
        print(f"\nzoo:{champion} on {shipped.task} ({record['run']['generations']} generations): {e['episodes']} "
              f"held-out episodes, mean {e['mean']:.2f} m, median {e['median']:.2f} m, forward "
              f"{100 * e['forward_fraction']:.0f}%\n{_stress_line(record)}")
        _table(f"its median episode (seed {typical}) as float C on the Cortex-M4F and integer C on the micro:bit's "
               f"Cortex-M0 (fixed point keeps {100 * fixed['fitness_c'] / c['variants'][0]['fitness_python']:.0f}% "
               f"of the float distance; its actions differ from the float ones by at most "
               f"{fixed['float_max_abs_error']:.3g})", c["variants"])
    print(f"(one full-length episode each, task termination off; demonstration seed {seed}; |C-py| = max abs "
          f"action error of the C through cffi (host) and on the emulated chip (QEMU {FLOAT_BOARD} for the "
          f"Cortex-M4F, {FIXED_BOARD} for the Cortex-M0): 0 = bit-exact; flash/RAM/stack of a minimal firmware; "
          f"us/step = instructions at the board's clock, period = its share of the control period; all "
          f"artefacts in {out})")
    every = rows + (summary["champion"]["variants"] if champion is not None else [])
    if not all(r["passed"] for r in every):
        raise NchlError("generated C does not match the Python reference within tolerance")
    return summary
