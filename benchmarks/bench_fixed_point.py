"""Fixed point vs float32: the zoo champions in closed loop, and the Ant network on emulated chips.

Closed loop: each champion runs float32 and fixed point (integer-only C) on the same held-out
episodes (seeds ``--seed ..``); ``kept`` = fixed mean / float mean. Action error:
the fixed controller's actions minus float32's on the observations of the fixed controller's own
episodes (``nchl verify --numeric fixed``), actions in [-1, 1].

Chips: instructions per multiply-add of the zoo's Ant champions (NcHL, weightless m = 2 and 10) on
QEMU's MPS2 boards, built for Cortex-M0 (measured on the M3 board, which executes ARMv6-M code),
M3 and M4F; flash, RAM and stack from the cross-built objects; time per step at each core's usual
clock (one instruction per cycle: QEMU counts instructions, not cycles).

    python benchmarks/bench_fixed_point.py [--episodes 100] [--workers 2] [--skip-closed-loop] [--json out.json]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import emit_json

from nchl import Genome, make_controller
from nchl.app.evolution import evaluate_genome, fixed_obs_range
from nchl.core.fixed import make_fixed
from nchl_codegen.build import FixedCController
from nchl_codegen.firmware import emulate, size_firmware
from nchl_codegen.verify import verify
from nchl_sim import get_task, rollout

# zoo name, window it runs at (None: its own rule; a window redeploys an NcHL genome weightless)
CHAMPIONS = (("ant-wnchl-m2", None), ("ant-wnchl", None), ("ant-nchl", None), ("vsr-high-nchl", None))
# board, target, the core's usual clock in MHz (STM32F0/F1/F4 class parts)
CHIPS = (("mps2-an385", "cortex-m0", 48.0), ("mps2-an385", "cortex-m3", 72.0), ("mps2-an386", "cortex-m4f", 168.0))


def closed_loop(name: str, window: int | None, episodes: int, seed: int, workers: int, error_episodes: int) -> dict:
    genome = Genome.load(f"zoo:{name}")
    native = genome.spec
    spec = native if window is None else native.redeployed("wnchl", window)
    quiet = lambda m: None  # noqa: E731
    run = {numeric: evaluate_genome(spec, genome.values, genome.task, episodes, seed, workers, log=quiet,
                                    numeric=numeric) for numeric in ("float", "fixed")}
    row = {"champion": name, "task": genome.task, "native_rule": native.rule, "rule": spec.rule,
           "window": spec.window, "episodes": episodes, "seed": seed,
           "float_mean": run["float"]["mean"], "fixed_mean": run["fixed"]["mean"],
           "float_forward": run["float"]["forward_fraction"], "fixed_forward": run["fixed"]["forward_fraction"],
           "kept": run["fixed"]["mean"] / run["float"]["mean"]}
    if spec != native:
        row["native_float_mean"] = evaluate_genome(native, genome.values, genome.task, episodes, seed, workers,
                                                   log=quiet)["mean"]
    task = get_task(genome.task)
    env = task.make_env(full_length=True)
    obs_range = fixed_obs_range(genome.task)
    report = verify(env, make_fixed(spec, genome.values, obs_range), FixedCController(spec, genome.values, obs_range),
                    list(range(seed, seed + error_episodes)), compare_state=True, tolerance=0.0,
                    float_reference=make_controller(spec, genome.values))
    row.update(c_vs_reference_max_error=report["max_abs_error"],
               action_error_max=max(e["float_max_abs_error"] for e in report["episodes"]),
               action_error_mean=float(np.mean([e["float_mean_abs_error"] for e in report["episodes"]])),
               error_episodes=error_episodes)
    return row


def chips(steps: int) -> list[dict]:
    rows = []
    for name in ("ant-nchl", "ant-wnchl-m2", "ant-wnchl"):
        genome = Genome.load(f"zoo:{name}")
        spec = genome.spec
        obs = rollout(get_task(genome.task).make_env(full_length=True), make_controller(spec, genome.values), 0,
                      record=True).obs[:steps]
        obs_range = fixed_obs_range(genome.task)
        for board, target, mhz in CHIPS:
            for numeric in ("float", "fixed"):
                r = emulate(spec, genome.values, obs, 0, board, clock_mhz=mhz, target=target, numeric=numeric,
                            obs_range=obs_range)
                s = size_firmware(spec, genome.values, "ctl", target, numeric=numeric, obs_range=obs_range)
                rows.append({"champion": name, "window": spec.window, "board": board, "target": target,
                             "numeric": numeric, "clock_mhz": mhz, "max_abs_error": r["max_abs_error"],
                             "instructions_per_mac": r["instructions_per_mac"],
                             "instructions_per_step": r["instructions_per_step_median"],
                             "us_per_step": r["estimated_us_per_step"],
                             "code_bytes": s["controller_code_bytes"], "const_bytes": s["controller_const_bytes"],
                             "state_bytes": s["state_bytes_analytical"], "stack_bytes": s["stack_bytes"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--error-episodes", type=int, default=3)
    ap.add_argument("--steps", type=int, default=100, help="steps replayed on the boards (>= 2x the window)")
    ap.add_argument("--skip-closed-loop", action="store_true")
    ap.add_argument("--skip-chips", action="store_true")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    loop = [] if args.skip_closed_loop else [
        closed_loop(n, w, args.episodes, args.seed, args.workers, args.error_episodes) for n, w in CHAMPIONS]
    boards = [] if args.skip_chips else chips(args.steps)
    if loop:
        print(f"closed loop, {args.episodes} held-out episodes from seed {args.seed}; action error over "
              f"{args.error_episodes} episodes (actions in [-1, 1])")
        print(f"{'champion':<16}{'runs as':<10}{'float32':>9}{'fixed':>9}{'kept':>7}{'fwd fixed':>10}"
              f"{'err max':>9}{'err mean':>9}{'|C-ref|':>8}")
        for r in loop:
            runs_as = r["rule"] + (f" m={r['window']}" if r["window"] else "")
            print(f"{r['champion']:<16}{runs_as:<10}{r['float_mean']:>9.2f}"
                  f"{r['fixed_mean']:>9.2f}{100 * r['kept']:>6.0f}%{100 * r['fixed_forward']:>9.0f}%"
                  f"{r['action_error_max']:>9.3f}{r['action_error_mean']:>9.4f}{r['c_vs_reference_max_error']:>8g}"
                  + (f"   (native {r['native_rule']}: {r['native_float_mean']:.2f})" if "native_float_mean" in r
                     else ""))
    if boards:
        print(f"\nchips, {args.steps} steps replayed; time at the core's usual clock, 1 instruction/cycle")
        print(f"{'champion':<14}{'target':<12}{'numeric':<8}{'instr/MAC':>10}{'us/step':>9}{'MHz':>5}{'code':>7}"
              f"{'const':>7}{'state':>7}{'stack':>6}{'|C-ref|':>8}")
        for r in boards:
            print(f"{r['champion']:<14}{r['target']:<12}{r['numeric']:<8}{r['instructions_per_mac']:>10.2f}"
                  f"{r['us_per_step']:>9.0f}{r['clock_mhz']:>5.0f}{r['code_bytes']:>7}{r['const_bytes']:>7}"
                  f"{r['state_bytes']:>7}{r['stack_bytes']:>6}{r['max_abs_error']:>8g}")
    emit_json({"benchmark": "fixed_point", "closed_loop": loop, "chips": boards}, args.json)


if __name__ == "__main__":
    main()
