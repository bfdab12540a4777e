"""How long random NcHL controllers live on each Ant task (why the task semantics matter).

Generation 0 of an evolution run: candidates drawn around a random mean (uniform
in [-1, 1], CMA-ES step 0.1), each run for one episode with the paper's early
stop. An ES only learns from candidates whose episodes last; under Gymnasium's
default health check a plastic controller bounces above 1 m and is cut short.

    python benchmarks/ant_episode_lengths.py [--means 3] [--candidates 6] [--json out.json]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import emit_json

from nchl import Spec
from nchl_codegen.build import CController
from nchl_sim import get_task, rollout

TASKS = ("ant", "ant-v5-strict")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--means", type=int, default=3, help="random ES means (seeds 0..)")
    ap.add_argument("--candidates", type=int, default=6, help="candidates per mean")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    rows = {}
    for name in TASKS:
        task = get_task(name)
        spec = Spec("nchl", task.topology())
        env = task.make_env(early_stop=True)
        steps, reasons = [], []
        for s in range(args.means):
            mean = np.random.default_rng(s).uniform(-1, 1, spec.genome_length)
            for k in range(args.candidates):
                genome = mean + 0.1 * np.random.default_rng([s, k, 7]).standard_normal(spec.genome_length)
                r = rollout(env, CController(spec, genome, runtime_params=True), seed=100 * s + k)
                steps.append(r.steps)
                reasons.append(r.reason)
        rows[name] = {"episodes": len(steps), "mean_steps": float(np.mean(steps)),
                      "median_steps": float(np.median(steps)), "min_steps": int(min(steps)),
                      "terminated_share": reasons.count("terminated") / len(reasons), "steps": steps}
    print(f"random NcHL candidates ({args.means} means x {args.candidates}), early stop on, 1000-step limit")
    print(f"{'task':<16}{'mean steps':>11}{'median':>8}{'min':>6}{'terminated':>12}")
    for name, r in rows.items():
        print(f"{name:<16}{r['mean_steps']:>11.1f}{r['median_steps']:>8.1f}{r['min_steps']:>6}"
              f"{100 * r['terminated_share']:>11.0f}%")
    emit_json({"benchmark": "ant_episode_lengths", "tasks": rows}, args.json)


if __name__ == "__main__":
    main()
