"""Evolution throughput next to bare environment throughput, in the same run.

Per worker process: env steps/s while evolving (controller + rollout + IPC +
optimizer, from the run's log, generation 1 excluded as it builds the
environment) vs env steps/s of the bare environment stepped with random actions
in the same kind of worker process, measured just before and just after the
run. Reported: medians and their ratio (target for NcHL on Ant: >= 0.8).

    python benchmarks/bench_evolution.py [--task ant] [--rule nchl] [--rounds 5] [--popsize 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np
from common import emit_json

from nchl.app.evolution import EvolveConfig, Run
from nchl.app.workers import WorkerPool

_ENV = {}


def bare_steps(payload, attempt):
    """Env steps/s of the bare task environment with random actions (runs in a worker)."""
    from nchl_sim import get_task

    task, steps = payload
    if task not in _ENV:
        _ENV[task] = get_task(task).make_env(early_stop=True)
    env = _ENV[task]
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    t0 = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        if terminated or truncated:
            env.reset(seed=i)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="ant")
    ap.add_argument("--rule", default="nchl")
    ap.add_argument("--window", type=int)
    ap.add_argument("--rounds", type=int, default=5, help="bare measurements before and after the run")
    ap.add_argument("--generations", type=int, default=6)
    ap.add_argument("--popsize", type=int, default=8)
    ap.add_argument("--bare-steps", type=int, default=4000)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp, WorkerPool("bench_evolution:bare_steps", 1) as pool:
        cfg = EvolveConfig.from_mapping({"task": args.task, "rule": args.rule, "window": args.window,
                                         "generations": args.generations, "popsize": args.popsize, "workers": 1})
        pool.map([(args.task, 200)])  # warm up the bare worker
        bare = [o.value for o in pool.map([(args.task, args.bare_steps)] * args.rounds)]
        Run(f"{tmp}/run", cfg, log=lambda m: None).run()
        bare += [o.value for o in pool.map([(args.task, args.bare_steps)] * args.rounds)]
        with open(f"{tmp}/run/log.jsonl") as f:
            log = [json.loads(line) for line in f.read().splitlines()]
    evo = [e["env_steps_per_s"] for e in log[1:]]  # generation 1 includes creating the environment
    steps_per_episode = log[-1]["env_steps"] / log[-1]["evaluations"]
    result = {"benchmark": "evolution_throughput", "task": args.task, "rule": args.rule, "window": args.window,
              "popsize": args.popsize, "generations": args.generations, "workers": 1,
              "mean_steps_per_episode": steps_per_episode,
              "bare_env_steps_per_s": statistics.median(bare), "evolution_env_steps_per_s": statistics.median(evo),
              "ratio": statistics.median(evo) / statistics.median(bare)}
    print(f"{'task':<10}{'rule':<8}{'bare steps/s':>14}{'evolving steps/s':>18}{'ratio':>8}")
    print(f"{args.task:<10}{args.rule:<8}{result['bare_env_steps_per_s']:>14.0f}"
          f"{result['evolution_env_steps_per_s']:>18.0f}{result['ratio']:>8.2f}")
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
