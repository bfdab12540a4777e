"""Instructions per control step of the generated C on emulated Cortex-M boards.

The Ant network [27,128,64,8], a random genome, the observations of one recorded
episode (the first ``--steps``); every variant (hl, nchl, wnchl m=1/10/50) on
every board: QEMU counts instructions (``-icount``), SysTick reads them out per
step (median over steps). Each run also checks the actions against Python
(max abs error; 0 = bit-exact). Time per step is an estimate at ``--clock-mhz``
(one instruction per cycle): QEMU does not model cycles.

    python benchmarks/bench_firmware.py [--boards mps2-an386,...] [--steps 20] [--json out.json]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import emit_json

from nchl import Spec, make_controller
from nchl_codegen.firmware import BOARDS, emulate
from nchl_sim import get_task, rollout

VARIANTS = (("hl", None), ("nchl", None), ("wnchl", 1), ("wnchl", 10), ("wnchl", 50))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", default=",".join(BOARDS))
    ap.add_argument("--steps", type=int, default=100, help="steps replayed (>= 2x the largest window: the median is at a full window)")
    ap.add_argument("--clock-mhz", type=float, default=100.0)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    task = get_task("ant")
    topology = task.topology()
    rng = np.random.default_rng(0)
    nchl_genome = rng.uniform(-1, 1, Spec("nchl", topology).genome_length)
    hl_genome = rng.uniform(-1, 1, Spec("hl", topology).genome_length)
    obs = rollout(task.make_env(full_length=True), make_controller(Spec("nchl", topology), nchl_genome), 0,
                  record=True).obs[:args.steps]
    rows = []
    for board in args.boards.split(","):
        for rule, window in VARIANTS:
            spec = Spec(rule, topology, window=window)
            r = emulate(spec, hl_genome if rule == "hl" else nchl_genome, obs, 0, board, clock_mhz=args.clock_mhz)
            rows.append({k: r[k] for k in ("board", "target", "rule", "window", "steps", "max_abs_error",
                                           "instructions_per_step_median", "floor_macs_per_step",
                                           "instructions_per_mac", "estimated_us_per_step")})
    print(f"Ant network [{topology}], {args.steps} steps; estimate at {args.clock_mhz:g} MHz, 1 instruction/cycle")
    print(f"{'board':<12}{'target':<12}{'variant':<10}{'instr/step':>12}{'floor MAC':>10}{'instr/MAC':>10}"
          f"{'est. us':>10}{'|C-py|':>8}")
    for r in rows:
        name = r["rule"] + (f" m={r['window']}" if r["window"] else "")
        print(f"{r['board']:<12}{r['target']:<12}{name:<10}{r['instructions_per_step_median']:>12.0f}"
              f"{r['floor_macs_per_step']:>10}{r['instructions_per_mac']:>10.2f}{r['estimated_us_per_step']:>10.0f}"
              f"{r['max_abs_error']:>8.2g}")
    emit_json({"benchmark": "firmware", "layers": list(topology.layers), "clock_mhz": args.clock_mhz, "rows": rows},
              args.json)


if __name__ == "__main__":
    main()
