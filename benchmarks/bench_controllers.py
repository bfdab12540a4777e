"""Control steps per second of the Python reference controllers.

Measures, on one topology (default [27,128,64,8], float32): steps/s of HL,
NcHL and WNcHL, and WNcHL low-rank vs the naive oracle for several windows.
All configurations run interleaved round by round, so machine noise hits them
alike; the figure reported is the median over rounds. Prints a table and the
JSON (also written to --json PATH).

    python benchmarks/bench_controllers.py [--layers 27,128,64,8] [--rounds 7]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
from common import emit_json

import nchl
from nchl import Spec, make_controller
from nchl.core.oracle import NaiveWNcHL


def build(rule: str, layers, window: int | None, naive: bool = False):
    spec = Spec(rule, layers, window=window)
    genome = np.random.default_rng(0).uniform(-1, 1, spec.genome_length) * 0.1
    return NaiveWNcHL(spec, genome, np.float32) if naive else make_controller(spec, genome, np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", default="27,128,64,8")
    ap.add_argument("--windows", default="1,5,10,50")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.25, help="target time per configuration per round")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    layers = nchl.Topology.of(args.layers)
    windows = [int(w) for w in args.windows.split(",")]

    configs = {"hl": build("hl", layers, None), "nchl": build("nchl", layers, None)}
    for m in windows:
        configs[f"wnchl m={m}"] = build("wnchl", layers, m)
        configs[f"wnchl-naive m={m}"] = build("wnchl", layers, m, naive=True)
    obs = np.random.default_rng(1).uniform(-1, 1, (256, layers.n_in)).astype(np.float32)

    # warm up: fill every window, and calibrate steps per round
    steps = {}
    for name, c in configs.items():
        t0 = time.perf_counter()
        n = 0
        while n < max(windows) + 1 or time.perf_counter() - t0 < 0.05:
            c.step(obs[n % len(obs)])
            n += 1
        per_step = (time.perf_counter() - t0) / n
        steps[name] = max(3, int(args.seconds / per_step))

    rates = {name: [] for name in configs}
    for _ in range(args.rounds):
        for name, c in configs.items():
            n = steps[name]
            t0 = time.perf_counter()
            for i in range(n):
                c.step(obs[i % len(obs)])
            rates[name].append(n / (time.perf_counter() - t0))

    result = {
        "benchmark": "controller_steps", "layers": list(layers.layers), "dtype": "float32",
        "rounds": args.rounds, "python": platform.python_version(), "numpy": np.__version__,
        "steps_per_s": {k: statistics.median(v) for k, v in rates.items()},
        "lowrank_speedup": {str(m): statistics.median(
            f / s for f, s in zip(rates[f"wnchl m={m}"], rates[f"wnchl-naive m={m}"])) for m in windows},
    }
    print(f"layers [{layers}], float32, median of {args.rounds} interleaved rounds")
    print(f"{'controller':<22}{'steps/s':>12}{'us/step':>10}")
    for k, v in result["steps_per_s"].items():
        print(f"{k:<22}{v:>12.0f}{1e6 / v:>10.1f}")
    print("WNcHL low-rank speed-up over naive: " + ", ".join(
        f"m={m}: {s:.1f}x" for m, s in result["lowrank_speedup"].items()))
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
