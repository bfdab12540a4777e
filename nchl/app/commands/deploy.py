"""C generation and its checks: nchl codegen, export-onnx, verify, size, emulate.

Each command's arguments are defined beside the function that runs it; :mod:`nchl.app.cli`
assembles them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ...core.errors import NchlError
from .args import add_deployment_args, add_numeric_arg, genome_spec, genome_task, windows_arg


def cmd_codegen(args: argparse.Namespace) -> int:
    from nchl_codegen import generate, write
    from nchl_codegen.inspect import size_report

    from ...core.spec import Spec

    from ..evolution import fixed_obs_range

    genome, spec = genome_spec(args)
    if args.numeric == "fixed" and args.report:
        raise NchlError("--report compares float32 rules on the host; for fixed point use nchl size --numeric fixed")
    paths = write(generate(spec, genome.values, args.prefix, numeric=args.numeric,
                           obs_range=fixed_obs_range(genome.task)), args.out)
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)
    if not args.report:
        return 0
    window = spec.window or args.window or 10
    others = [Spec(r, spec.topology, window=window if r == "wnchl" else None) for r in ("hl", "nchl", "wnchl")]
    variants = [spec] + [v for v in others if (v.rule, v.window) != (spec.rule, spec.window)]
    rows = [size_report(v, args.prefix) for v in variants]
    if args.json:
        print(json.dumps({"chosen": rows[0], "variants": rows[1:]}, indent=2))
        return 0
    print(f"layers [{spec.topology}], float32; measured = host gcc -O2 object and sizeof(state_t)")
    print(f"{'variant':<16}{'flash params B':>15}{'analytical':>12}{'RAM state B':>13}{'analytical':>12}"
          f"{'step stack B':>14}  state formula")
    for i, r in enumerate(rows):
        name = r["rule"] + (f"(m={r['window']})" if r["window"] else "") + (" *" if i == 0 else "")
        print(f"{name:<16}{r['params_bytes']:>15}{r['params_bytes_analytical']:>12}{r['state_bytes']:>13}"
              f"{r['state_bytes_analytical']:>12}{r['step_stack_bytes']:>14}  {r['state_formula']}")
    print("* the generated variant")
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from nchl_codegen.onnx_export import export, save

    genome, spec = genome_spec(args)
    model = export(spec, genome.values, genome.sha256())
    save(model, args.output)
    print(f"wrote {args.output}: {spec.rule}, layers [{spec.topology}], {len(model.graph.node)} nodes, "
          f"inputs {[i.name for i in model.graph.input]}, outputs {[o.name for o in model.graph.output]}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from nchl_codegen.verify import verify

    from ..evolution import evaluation_controller

    genome, spec, task = genome_task(args)
    fixed = args.numeric == "fixed"
    tolerance = args.tolerance if args.tolerance is not None else 0.0 if fixed else 1e-5
    if fixed and args.backend != "c":
        raise NchlError("--numeric fixed verifies the generated C (--backend c)")
    if args.backend == "onnx":
        from nchl_codegen.onnx_export import OnnxController

        other = OnnxController(spec, genome.values)
    elif fixed:
        other = evaluation_controller(spec, genome.values, "c", "fixed", task.name)
    else:
        from nchl_codegen.build import CController

        other = CController(spec, genome.values)
    reference = evaluation_controller(spec, genome.values, "python", args.numeric, task.name)
    report = verify(task.make_env(full_length=not args.allow_termination), reference,
                    other, [args.seed + k for k in range(args.episodes)],
                    compare_state=args.state or fixed, tolerance=tolerance,
                    float_reference=genome.controller(spec=spec) if fixed else None)
    report.update({"task": task.name, "rule": spec.rule, "window": spec.window, "genome": str(args.genome),
                   "backend": args.backend, "numeric": args.numeric})
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        label = spec.rule + (f" (m={spec.window})" if spec.window else "")
        what = "generated C" if args.backend == "c" else "exported ONNX (onnxruntime)"
        what = "generated integer C vs the Python integer reference" if fixed else what + " vs Python reference"
        print(f"{task.name}, {label}, layers [{spec.topology}]: {what}")
        print(f"{'seed':>6}{'steps':>7}{'max abs err':>13}{'max ULP':>9}"
              + (f"{'state abs':>11}{'state ULP':>11}" if args.state else "")
              + f"{'fitness py':>12}{'fitness ' + args.backend:>13}")
        for e in report["episodes"]:
            print(f"{e['seed']:>6}{e['steps']:>7}{e['max_abs_error']:>13.3g}{e['max_ulp_error']:>9}"
                  + (f"{e['state_max_abs_error']:>11.3g}{e['state_max_ulp_error']:>11}" if args.state else "")
                  + f"{e['fitness_python']:>12.4f}{e['fitness_c']:>13.4f}")
        verdict = "PASS" if report["passed"] else "FAIL"
        print(f"{verdict}: max abs action error {report['max_abs_error']:.3g} (tolerance {tolerance:g})")
        if fixed:
            for e in report["episodes"]:
                print(f"seed {e['seed']}: fixed vs float32 on the same observations: max action error "
                      f"{e['float_max_abs_error']:.3g}, mean {e['float_mean_abs_error']:.3g} (actions in [-1, 1])")
    return 0 if report["passed"] else 1


def cmd_size(args: argparse.Namespace) -> int:
    """Cortex-M flash/RAM/stack of generated controllers (a folder) or of a genome's variants."""
    from nchl_codegen.firmware import size_folder, size_variants

    from ...core.genome import Genome

    from ..evolution import fixed_obs_range

    targets = args.target.split(",")
    if Path(args.path).is_dir():
        rows = size_folder(Path(args.path), targets)
    else:
        genome = Genome.load(args.path)
        rows = size_variants(genome.spec, genome.values, targets, args.windows, args.numeric,
                             fixed_obs_range(genome.task))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'target':<12}{'variant':<14}{'flash B':>9}{'RAM B':>8}{'stack B':>9}{'code B':>8}"
          f"{'params B':>10}{'state B':>9}")
    for r in rows:
        name = r["rule"] + (f"(m={r['window']})" if r["window"] else "") + (" q" if r["numeric"] == "fixed" else "")
        print(f"{r['target']:<12}{name:<14}{r['flash_bytes']:>9}{r['ram_bytes']:>8}{r['stack_bytes']:>9}"
              f"{r['controller_code_bytes']:>8}{r['params_bytes_analytical']:>10}{r['state_bytes_analytical']:>9}")
    print("flash = .isr_vector+.text+.rodata+.ARM.exidx+.data and RAM = .data+.bss of a minimal firmware that "
          "owns the state; stack = worst step frame (-fstack-usage); params/state = analytical"
          + ("; q = fixed point (int16)" if any(r["numeric"] == "fixed" for r in rows) else ""))
    return 0


def cmd_emulate(args: argparse.Namespace) -> int:
    from nchl_codegen.firmware import emulate
    from nchl_sim import load_trace, rollout

    genome, spec, task = genome_task(args)
    if args.trace:
        obs = load_trace(args.trace, spec.topology.n_in)
    else:
        obs = rollout(task.make_env(full_length=True), genome.controller(spec=spec), args.seed, record=True).obs
    from ..evolution import fixed_obs_range

    obs = obs[:args.steps]
    r = emulate(spec, genome.values, obs, args.seed, args.board, timeout=args.timeout, clock_mhz=args.clock_mhz,
                target=args.target, numeric=args.numeric, obs_range=fixed_obs_range(task.name))
    r.update({"task": task.name, "genome": str(args.genome)})
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        label = spec.rule + (f" (m={spec.window})" if spec.window else "")
        print(f"{args.board}, built for {r['target']}{', fixed point' if args.numeric == 'fixed' else ''}, {label}, "
              f"layers [{spec.topology}], {r['steps']} steps replayed")
        print(f"max abs action error {r['max_abs_error']:.3g}, max ULP {r['max_ulp_error']}")
        print(f"instructions per step: median {r['instructions_per_step_median']:.0f}, max "
              f"{r['instructions_per_step_max']:.0f}; floor {r['floor_macs_per_step']} multiply-adds "
              f"({r['instructions_per_mac']:.2f} instructions per multiply-add)")
        print(f"estimated {r['estimated_us_per_step']:.0f} us per step at {r['clock_mhz']:g} MHz "
              f"(instructions / clock; QEMU does not model cycles)")
    tolerance = args.tolerance if args.tolerance is not None else 0.0 if args.numeric == "fixed" else 1e-5
    return 0 if r["max_abs_error"] <= tolerance and r["nonzero_status"] == 0 else 1


def register(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("codegen", help="generate fixed-memory C99 for a genome")
    q.add_argument("genome", help="genome file (.npz) or zoo:NAME")
    q.add_argument("--prefix", default="nchl_ctrl", help="C symbol prefix (default nchl_ctrl)")
    q.add_argument("--out", default=".", metavar="DIR")
    add_deployment_args(q)
    q.add_argument("--report", action="store_true", help="compile and report flash/RAM/stack of HL, NcHL, WNcHL")
    add_numeric_arg(q)
    q.add_argument("--json", action="store_true", help="report as JSON")
    q.set_defaults(func=cmd_codegen)

    q = sub.add_parser("verify", help="run generated C and Python in the same rollouts and compare")
    q.add_argument("genome", help="genome file (.npz) or zoo:NAME")
    q.add_argument("--task", help="default: the genome's task")
    q.add_argument("--episodes", type=int, default=3)
    q.add_argument("--seed", type=int, default=0, help="first episode seed")
    add_deployment_args(q)
    q.add_argument("--state", action="store_true", help="also compare the whole state every step")
    q.add_argument("--allow-termination", action="store_true",
                   help="let the task end episodes early (default: full-length episodes)")
    q.add_argument("--tolerance", type=float,
                   help="max abs action error allowed (default 1e-5; 0 with --numeric fixed)")
    add_numeric_arg(q)
    q.add_argument("--backend", choices=["c", "onnx"], default="c", help="what to check against Python (default c)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_verify)

    q = sub.add_parser("export-onnx", help="one control step as an ONNX model (obs, state) -> (action, state)")
    q.add_argument("genome", help="genome file (.npz) or zoo:NAME")
    q.add_argument("-o", "--output", default="controller.onnx")
    q.add_argument("--rule", choices=["nchl", "wnchl"], help="deploy an NcHL genome as WNcHL or back")
    q.add_argument("--window", type=int, help="WNcHL window m")
    q.set_defaults(func=cmd_export_onnx)

    q = sub.add_parser("size", help="Cortex-M flash/RAM/stack of generated C, or of a genome's HL/NcHL/WNcHL")
    q.add_argument("path", help="folder of generated <prefix>.c/.h, a genome file (.npz) or zoo:NAME")
    q.add_argument("--target", default="cortex-m4f",
                   help="cortex-m4f, cortex-m0, cortex-m3, cortex-m33, rv32imc (--numeric fixed) (comma-separated)")
    q.add_argument("--windows", default=[1, 10, 50], type=windows_arg,
                   help="WNcHL windows for a genome, comma-separated (default 1,10,50)")
    add_numeric_arg(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_size)

    q = sub.add_parser("emulate", help="replay a trace through the C on an emulated Cortex-M board (qemu)")
    q.add_argument("genome", help="genome file (.npz) or zoo:NAME")
    q.add_argument("--task", help="default: the genome's task")
    q.add_argument("--board", default="mps2-an386",
                   help="mps2-an386 (Cortex-M4F, default), mps2-an385 (Cortex-M3, soft float), mps2-an505 "
                        "(Cortex-M33), microbit (Cortex-M0, 16 KB RAM), riscv32-virt (rv32imc, --numeric fixed)")
    q.add_argument("--clock-mhz", dest="clock_mhz", type=float, default=100.0,
                   help="clock for the time-per-step estimate (default 100 MHz)")
    q.add_argument("--trace", metavar="NPZ", help="observations from nchl evaluate --trace (default: record one)")
    q.add_argument("--steps", type=int, default=1000, help="replay at most this many steps (default 1000)")
    q.add_argument("--seed", type=int, default=0, help="episode seed (recording and controller init)")
    add_deployment_args(q)
    q.add_argument("--tolerance", type=float, help="max abs action error allowed (default 1e-5; 0 with --numeric fixed)")
    q.add_argument("--target", help="build for this core instead of the board's own (cortex-m0 runs on mps2-an385)")
    add_numeric_arg(q)
    q.add_argument("--timeout", type=float, default=600.0, help="seconds allowed for the emulator")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_emulate)
