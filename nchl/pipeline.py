"""``nchl pipeline``: the main job, end to end, with one summary table.

evolve NcHL on a task (small budget) -> generate C for NcHL and WNcHL (same
genome, weightless deployment) -> verify each in lockstep with Python over a
full-length episode and in closed loop -> compiled flash/RAM next to the
analytical model. Every artefact stays in the output directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from .errors import NchlError
from .evolution import EvolveConfig, Run
from .genome import Genome
from .spec import Spec


def run_pipeline(out: str | Path, task: str = "ant", generations: int = 60, popsize: int = 32, window: int = 10,
                 seed: int = 0, workers: int = 2, log: Callable[[str], None] = print) -> dict:
    from nchl_codegen import generate, write
    from nchl_codegen.build import CController
    from nchl_codegen.inspect import size_report
    from nchl_codegen.verify import verify
    from nchl_sim import get_task

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
    env = get_task(task).make_env(full_length=True)
    rows = []
    for spec in (best.spec, Spec("wnchl", best.spec.topology, window=window)):
        name = spec.rule if spec.window is None else f"{spec.rule}(m={spec.window})"
        prefix = f"{task.replace('-', '_')}_{spec.rule}"
        write(generate(spec, best.values, prefix), out / "c" / name)
        report = verify(env, best.controller(spec=spec), CController(spec, best.values, prefix), [seed])
        sizes = size_report(spec, prefix)
        ep = report["episodes"][0]
        rows.append({"variant": name, "fitness_python": ep["fitness_python"], "fitness_c": ep["fitness_c"],
                     "steps": ep["steps"], "max_abs_error": report["max_abs_error"],
                     "max_ulp_error": report["max_ulp_error"], "passed": report["passed"],
                     "flash_params_bytes": sizes["params_bytes"], "ram_state_bytes": sizes["state_bytes"],
                     "step_stack_bytes": sizes["step_stack_bytes"]})
        log(f"{name}: C generated in {out / 'c' / name}, verified over {ep['steps']} steps")
    summary = {"task": task, "evolution": {"generations": generations, "best_fitness": best.fitness,
                                           "run_dir": str(run_dir)}, "variants": rows}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nmain job on {task}: NcHL evolved for {generations} generations, best training fitness "
          f"{best.fitness:.3f} m")
    print(f"{'variant':<13}{'fitness py':>11}{'fitness C':>11}{'max |C-py|':>12}{'ULP':>5}"
          f"{'flash B':>9}{'RAM B':>8}{'stack B':>9}")
    for r in rows:
        print(f"{r['variant']:<13}{r['fitness_python']:>11.3f}{r['fitness_c']:>11.3f}{r['max_abs_error']:>12.3g}"
              f"{r['max_ulp_error']:>5}{r['flash_params_bytes']:>9}{r['ram_state_bytes']:>8}{r['step_stack_bytes']:>9}")
    print(f"(fitness: one full-length episode, seed {seed}; flash = genome constants, RAM = state struct; "
          f"all in {out})")
    if not all(r["passed"] for r in rows):
        raise NchlError("generated C does not match the Python reference within tolerance")
    return summary
