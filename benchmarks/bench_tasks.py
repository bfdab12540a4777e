"""Environment steps per second: bare environment vs environment + NcHL controller.

For each task, the bare loop steps the environment with pre-drawn random
actions; the controller loops add an NcHL controller (float32, the task's
default layers, a random genome): the numpy reference, and the generated C
through cffi (the evolution backend; same bits). All loops run interleaved
round by round in one process; reported are medians over rounds and the ratios
(controller loop / bare loop). Episodes that end are reset in every loop.

    python benchmarks/bench_tasks.py [--tasks ant,vsr-high,...] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from common import emit_json

from nchl import Spec, make_controller
from nchl_codegen.build import CController
from nchl_sim import TASKS, get_task


def run(env, steps: int, controller=None, actions=None) -> float:
    obs, _ = env.reset(seed=0)
    if controller is not None:
        controller.reset(0)
    t0 = time.perf_counter()
    for i in range(steps):
        a = controller.step(obs) if controller is not None else actions[i % len(actions)]
        obs, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            obs, _ = env.reset(seed=i)
            if controller is not None:
                controller.reset(0)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(t for t in TASKS if t != "ant-contacts"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1000, help="steps per loop per round")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()

    results = []
    for name in args.tasks.split(","):
        task = get_task(name)
        env = task.make_env()
        spec = Spec("nchl", task.topology())
        genome = np.random.default_rng(0).uniform(-1, 1, spec.genome_length)
        controller, c_controller = make_controller(spec, genome), CController(spec, genome)
        actions = np.random.default_rng(0).uniform(-1, 1, (256, task.sizes[1])).astype(np.float32)
        run(env, 50, actions=actions)  # warm up
        bare, ctrl, cc = [], [], []
        for _ in range(args.rounds):
            bare.append(run(env, args.steps, actions=actions))
            ctrl.append(run(env, args.steps, controller=controller))
            cc.append(run(env, args.steps, controller=c_controller))
        results.append({
            "task": name, "layers": list(spec.topology.layers),
            "bare_steps_per_s": statistics.median(bare), "nchl_numpy_steps_per_s": statistics.median(ctrl),
            "nchl_c_steps_per_s": statistics.median(cc),
            "ratio_numpy": statistics.median(c / b for c, b in zip(ctrl, bare)),
            "ratio_c": statistics.median(c / b for c, b in zip(cc, bare)),
        })
    out = {"benchmark": "task_steps", "rounds": args.rounds, "steps_per_round": args.steps, "results": results}
    print(f"{'task':<17}{'bare steps/s':>13}{'+numpy NcHL':>13}{'ratio':>7}{'+C NcHL':>10}{'ratio':>7}")
    for r in results:
        print(f"{r['task']:<17}{r['bare_steps_per_s']:>13.0f}{r['nchl_numpy_steps_per_s']:>13.0f}"
              f"{r['ratio_numpy']:>7.2f}{r['nchl_c_steps_per_s']:>10.0f}{r['ratio_c']:>7.2f}")
    emit_json(out, args.json)


if __name__ == "__main__":
    main()
