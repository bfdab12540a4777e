"""Host step time of the generated C vs the numpy reference, per variant, in one run.

Variants on one topology (default [27,128,64,8]): HL, NcHL and WNcHL with
several windows. Each round times every variant's C step (through cffi, genome
compiled in as deployed) and its numpy step on the same observations,
interleaved; reported are medians over rounds and the ratio numpy/C. The cffi
call overhead (~0.3 us) is included in the C figure.

    python benchmarks/bench_codegen.py [--layers 27,128,64,8] [--windows 1,10,50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from common import emit_json

from nchl import Spec, Topology, make_controller
from nchl_codegen.build import CController


def per_step_us(controller, obs: np.ndarray, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while True:
        for o in obs:
            controller.step(o)
        n += len(obs)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return elapsed / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", default="27,128,64,8")
    ap.add_argument("--windows", default="1,10,50")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.2)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    layers = Topology.of(args.layers)
    specs = [Spec("hl", layers), Spec("nchl", layers)] + [
        Spec("wnchl", layers, window=int(m)) for m in args.windows.split(",")]
    obs = np.random.default_rng(1).uniform(-1, 1, (64, layers.n_in)).astype(np.float32)
    pairs = []
    for spec in specs:
        genome = np.random.default_rng(0).uniform(-1, 1, spec.genome_length) * 0.1
        c, py = CController(spec, genome), make_controller(spec, genome)
        for ctrl in (c, py):  # fill windows before timing
            for o in np.resize(obs, (max(64, (spec.window or 0) + 1), layers.n_in)):
                ctrl.step(o)
        pairs.append((spec, c, py))
    times = {i: ([], []) for i in range(len(pairs))}
    for _ in range(args.rounds):
        for i, (_, c, py) in enumerate(pairs):
            times[i][0].append(per_step_us(c, obs, args.seconds))
            times[i][1].append(per_step_us(py, obs, args.seconds))
    rows = []
    for i, (spec, _, _) in enumerate(pairs):
        c_us, py_us = times[i]
        rows.append({"rule": spec.rule, "window": spec.window, "c_us_per_step": statistics.median(c_us),
                     "numpy_us_per_step": statistics.median(py_us),
                     "speedup": statistics.median(p / c for p, c in zip(py_us, c_us))})
    print(f"layers [{layers}], float32, median of {args.rounds} interleaved rounds")
    print(f"{'variant':<14}{'C us/step':>11}{'numpy us/step':>15}{'numpy/C':>9}")
    for r in rows:
        name = r["rule"] + (f" m={r['window']}" if r["window"] else "")
        print(f"{name:<14}{r['c_us_per_step']:>11.2f}{r['numpy_us_per_step']:>15.1f}{r['speedup']:>9.1f}")
    emit_json({"benchmark": "c_vs_numpy_step", "layers": list(layers.layers), "rounds": args.rounds,
               "results": rows}, args.json)


if __name__ == "__main__":
    main()
