"""The ``nchl`` command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Sequence

from .. import __version__
from ..core.errors import NchlError, TopologyError
from ..core.memory import compare, fig1
from ..core.topology import Topology

def _layers(text: str) -> Topology:
    try:
        return Topology.of(text)
    except TopologyError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _windows(text: str) -> list[int]:
    try:
        windows = [int(w) for w in text.split(",")]
    except ValueError:
        windows = []
    if not windows or min(windows) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated windows >= 1, got {text!r}")
    return windows


def cmd_params(args: argparse.Namespace) -> int:
    rows = compare(args.layers, args.window)
    t = args.layers
    if args.json:
        print(json.dumps({"layers": list(t.layers), "neurons": t.neurons, "synapses": t.synapses,
                          "rules": [r.as_dict() for r in rows]}, indent=2))
    else:
        print(f"layers [{t}]: N = {t.neurons} neurons, W = {t.synapses} synapses; bytes for float32")
        print(f"{'rule':<12}{'genome':>9}{'params B':>11}{'state B':>11}{'work B':>9}  state formula")
        for r in rows:
            name = r.rule if r.window is None else f"{r.rule}(m={r.window})"
            print(f"{name:<12}{r.genome_length:>9}{r.params_bytes:>11}{r.state_bytes:>11}{r.work_bytes:>9}  {r.state_formula}")
        hl, nc = rows[0], rows[1]
        print(f"NcHL has {hl.genome_length / nc.genome_length:.1f}x fewer parameters than HL")
    if args.plot:
        fig1(args.plot, t.n_in, t.n_out)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from nchl_sim import TASKS, get_task

    rows = []
    for t in [get_task(p) for p in args.files] or TASKS.values():
        n_in, n_out = t.sizes
        names = t.observation_names
        rows.append({"name": t.name, "env_id": t.env_id, "obs": n_in, "act": n_out,
                     "layers": list(t.topology().layers), "episode_steps": t.episode_steps,
                     "control_period_s": t.control_period_s, "body_length": t.body_length,
                     "privileged": t.privileged, "privileged_names": [names[i] for i in t.privileged],
                     "model_sha256": t.model_sha256, "description": t.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'task':<24}{'obs':>5}{'act':>5}  {'default layers':<17}{'steps':>6}{'period':>8}  description")
    for r in rows:
        layers = ",".join(map(str, r["layers"]))
        print(f"{r['name']:<24}{r['obs']:>5}{r['act']:>5}  {layers:<17}{r['episode_steps']:>6}"
              f"{r['control_period_s'] * 1e3:>6.0f}ms  {r['description']}")
    print("\ninputs a real robot could not measure (privileged):")
    for r in rows:
        p = r["privileged_names"]
        print(f"  {r['name']:<24}{'none (onboard sensors only)' if not p else _runs(r['privileged'], p)}")
    return 0


def _runs(index: list[int], names: list[str]) -> str:
    """Privileged entries, long lists summarised: ``0 torso z, 13-15 torso velocity (world), ...``."""
    if len(index) <= 6:
        return ", ".join(f"{i} {n}" for i, n in zip(index, names))
    return f"{len(index)} of them: {', '.join(f'{i} {n}' for i, n in zip(index[:4], names[:4]))}, ..."


def cmd_task_init(args: argparse.Namespace) -> int:
    from nchl_sim.robot import task_file_text

    from ..core.fileio import atomic_write

    out = Path(args.output)
    if out.exists() and not args.force:
        raise NchlError(f"{out} exists; pass --force to overwrite it")
    atomic_write(out, task_file_text(args.model, out).encode())
    print(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from .pipeline import run_pipeline

    run_pipeline(args.out, task=args.task, generations=args.generations, popsize=args.popsize,
                 window=args.window, seed=args.seed, workers=args.workers,
                 champion=None if args.champion == "none" else args.champion,
                 log=lambda m: print(m, file=sys.stderr))
    return 0


_EVOLVE_FLAGS = ("task", "rule", "window", "layers", "generations", "popsize", "sigma", "init_range", "clip",
                 "episodes", "seed", "workers", "optimizer", "backend", "scheduler", "validation_every",
                 "validation_top", "validation_episodes", "randomize", "randomize_p", "action_rate_cost",
                 "start_from")
_RESUMABLE = ("generations", "workers", "scheduler")  # a resumed run may change these: results do not depend on them


def cmd_evolve(args: argparse.Namespace) -> int:
    from .evolution import EvolveConfig, Run, load_toml

    if args.resume:
        given = [f for f in _EVOLVE_FLAGS if f not in _RESUMABLE and getattr(args, f) is not None]
        if given or args.config or args.out:
            raise NchlError("--resume continues a run with its saved settings; only --generations, --workers "
                            f"and --scheduler may change (got {', '.join(given) or '--config/--out'})")
        where = {f: getattr(args, f) for f in ("workers", "scheduler") if getattr(args, f) is not None}
        run = Run(args.resume, resume=True, generations=args.generations, where=where)
    else:
        values = load_toml(args.config) if args.config else {}
        out = args.out or values.pop("out", None)
        values.pop("out", None)
        values.update({f: getattr(args, f) for f in _EVOLVE_FLAGS if getattr(args, f) is not None})
        if args.no_early_stop:
            values["early_stop"] = False
        if out is None:
            raise NchlError("say where the run goes: --out DIR (or 'out' in the config file)")
        config = EvolveConfig.from_mapping(values, args.config or "command line")
        run = Run(out, config)
    try:
        run.run()
    except KeyboardInterrupt:
        print(f"interrupted: generation {run.state['generation']} is the last checkpoint; "
              f"continue with: nchl evolve --resume {run.out}", file=sys.stderr)
        return 130
    return 0


def _genome_spec(args: argparse.Namespace):
    """The genome file and the spec it runs as: its own, or NcHL <-> WNcHL redeployment
    (``--rule``/``--window``) of the same genome, plastic or frozen after ``--freeze-after`` steps."""
    from ..core.genome import Genome

    genome = Genome.load(args.genome)
    spec = genome.spec if args.rule is None and args.window is None else genome.spec.redeployed(args.rule, args.window)
    freeze = getattr(args, "freeze_after", None)
    return genome, spec if freeze is None else spec.frozen_after(freeze)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from nchl_sim import rollout, save_trace

    from .evolution import evaluate_genome

    genome, spec, task = _genome_task(args)
    task_name = task.name
    stats = evaluate_genome(spec, genome.values, task_name, args.episodes, args.seed, args.workers,
                            early_stop=args.early_stop, backend=args.backend,
                            log=lambda m: print(m, file=sys.stderr), numeric=args.numeric)
    stats.update({"task": task_name, "rule": spec.rule, "window": spec.window, "freeze_after": spec.freeze_after,
                  "genome": str(args.genome), "numeric": args.numeric})
    if args.trace:
        if args.numeric == "fixed":
            raise NchlError("--trace records the float32 controller; nchl emulate --numeric fixed quantizes it")
        r = rollout(task.make_env(early_stop=args.early_stop), genome.controller(spec=spec), args.seed, record=True)
        save_trace(args.trace, r, {"task": task_name, "seed": args.seed, "rule": spec.rule, "window": spec.window,
                                   "layers": list(spec.topology.layers), "genome_sha256": genome.sha256(),
                                   "fitness": r.fitness, "dtype": "float32"})
        stats["trace"] = args.trace
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(f"{task_name}, {spec.rule}{'' if spec.window is None else f' (m={spec.window})'}"
              f"{', fixed point' if args.numeric == 'fixed' else ''}, "
              f"{args.episodes} episodes (seeds {stats['seeds'][0]}..{stats['seeds'][1]}): "
              f"mean {stats['mean']:.3f}  std {stats['std']:.3f}  median {stats['median']:.3f}  "
              f"min {stats['min']:.3f}  max {stats['max']:.3f}  forward {100 * stats['forward_fraction']:.0f}%")
    if not stats["held_out"]:
        print(f"nchl evaluate: note: seeds {stats['seeds'][0]}..{stats['seeds'][1]} leave the held-out range "
              "[0, 2**20): they may coincide with training or validation episodes", file=sys.stderr)
    return 0


def cmd_stress(args: argparse.Namespace) -> int:
    from .stress import parse_conditions, plot, read_table, run_stress, table

    if Path(args.genome).is_dir():  # a campaign cell (or its archive): the table it already holds
        report = read_table(args.genome)
        task_name, episodes = report["task"], report["episodes"]
    else:
        genome, spec, task = _genome_task(args)
        task_name, episodes = task.name, args.episodes
        conditions = parse_conditions(args.conditions, task.name, args.strengths, args.onset)
        report = run_stress(spec, genome.values, task.name, conditions, args.episodes, args.seed, args.workers,
                            args.backend, log=lambda m: print(m, file=sys.stderr))
        report["genome"] = str(args.genome)
    if args.plot:
        plot(report, args.plot, f"{args.genome} on {task_name}: {episodes} held-out episodes "
                                f"(seeds {report['seeds'][0]}..{report['seeds'][1]})")
        print(f"wrote {args.plot}", file=sys.stderr)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.genome} on {task_name}, {episodes} held-out episodes "
              f"(seeds {report['seeds'][0]}..{report['seeds'][1]}); retained = mean / intact mean")
        print(table(report))
    return 0


def _ranges(text: str) -> dict[str, list[float]]:
    out = {}
    for item in text.split(","):
        name, _, bounds = item.partition("=")
        low, _, high = bounds.partition(":")
        try:
            out[name] = [float(low), float(high if high else low)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME=LOW:HIGH,..., got {item!r}") from None
    return out


def _deployment_args(q: argparse.ArgumentParser) -> None:
    """How a genome is deployed: its own rule, NcHL <-> WNcHL, plastic or frozen (see _genome_spec)."""
    q.add_argument("--rule", choices=["nchl", "wnchl"], help="deploy an NcHL genome as WNcHL or back")
    q.add_argument("--window", type=int, help="WNcHL window m")
    q.add_argument("--freeze-after", dest="freeze_after", type=int, metavar="K",
                   help="switch plasticity off after K steps, keeping the weights (a frozen deployment)")


def _numeric_arg(q: argparse.ArgumentParser) -> None:
    q.add_argument("--numeric", choices=["float", "fixed"], default="float",
                   help="float32 (default) or fixed: integer-only C for cores without an FPU (weightless NcHL)")


def _strengths(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _genome_task(args: argparse.Namespace):
    """Genome file, the spec it is deployed as, and the task it runs on (validated together)."""
    from nchl_sim import task_for_genome

    genome, spec = _genome_spec(args)
    task_name = getattr(args, "task", None) or genome.task
    task = task_for_genome(genome, task_name, args.genome)
    if task.sizes != (spec.topology.n_in, spec.topology.n_out):
        raise NchlError(f"genome layers [{spec.topology}] do not fit task {task_name!r} "
                        f"({task.sizes[0]} observations, {task.sizes[1]} actions)")
    return genome, spec, task


def cmd_codegen(args: argparse.Namespace) -> int:
    from nchl_codegen import generate, write
    from nchl_codegen.inspect import size_report

    from ..core.spec import Spec

    from .evolution import fixed_obs_range

    genome, spec = _genome_spec(args)
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

    genome, spec = _genome_spec(args)
    model = export(spec, genome.values, genome.sha256())
    save(model, args.output)
    print(f"wrote {args.output}: {spec.rule}, layers [{spec.topology}], {len(model.graph.node)} nodes, "
          f"inputs {[i.name for i in model.graph.input]}, outputs {[o.name for o in model.graph.output]}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from nchl_codegen.verify import verify

    from .evolution import evaluation_controller

    genome, spec, task = _genome_task(args)
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

    from ..core.genome import Genome

    from .evolution import fixed_obs_range

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

    genome, spec, task = _genome_task(args)
    if args.trace:
        obs = load_trace(args.trace, spec.topology.n_in)
    else:
        obs = rollout(task.make_env(full_length=True), genome.controller(spec=spec), args.seed, record=True).obs
    from .evolution import fixed_obs_range

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


def cmd_campaign(args: argparse.Namespace) -> int:
    from .campaign import change_words, rescore_campaign, run_campaign

    if args.rescore:
        rows = rescore_campaign(args.campaign, args.out, workers=args.workers,
                                log=lambda m: print(m, file=sys.stderr))
        changed = [r for r in rows if r["after"] != r["before"]]
        print(f"campaign {args.out}: {len(rows)} champions rescored, {len(changed)} changed")
        for r in changed:
            print(f"  {r['cell']}: {r['before']:.4f} -> {r['after']:.4f}{change_words(r['before'], r['after'])}")
        return 0
    r = run_campaign(args.campaign, args.out, workers=args.workers, parallel=args.parallel,
                     scheduler=args.scheduler, log=lambda m: print(m, file=sys.stderr))
    print(f"campaign {r['out']}: {r['runs']} runs finished ({r['ran']} run now); "
          f"report with: nchl report {r['out']} -o {r['out']}/report")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import make_report

    path = make_report(args.campaign_dirs, args.output, behaviour_episodes=args.behaviour_episodes,
                       log=lambda m: print(m, file=sys.stderr))
    print(f"wrote {path}")
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    from .archive import archive_campaign, describe

    r = archive_campaign(args.campaign_dir, args.out, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(r, indent=2) if args.json else describe(r))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from .render import render

    if len(args.genomes) > 1 and not args.side_by_side:
        raise NchlError(f"{len(args.genomes)} genomes given: add --side-by-side to put them in one video")
    if args.side_by_side and len(args.genomes) < 2:
        raise NchlError("--side-by-side needs two or more genomes (GENOME@wnchl:10 redeploys one)")
    r = render(args.genomes, args.output, task=args.task, seed=args.seed, steps=args.steps, width=args.width,
               height=args.height, fps=args.fps, camera=args.camera, rule=args.rule, window=args.window,
               backend=args.backend, log=lambda m: print(m, file=sys.stderr))
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"wrote {r['output']}: {r['frames']} frames of {r['size'][0]}x{r['size'][1]} at {r['fps']:.1f} fps, "
              f"{r['bytes'] / 1024:.0f} KiB")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from ..core import zoo

    if args.add:
        from .ship import add_champion

        if not args.name:
            raise NchlError("--add needs --name NAME for the champion")
        r = add_champion(args.add, args.name, args.episodes, args.into or zoo.HERE, args.workers,
                         args.stress_episodes, log=lambda m: print(m, file=sys.stderr))
        e = r["evaluation"]
        print(f"zoo:{args.name}: {e['episodes']} held-out episodes, mean {e['mean']:.2f} m, median "
              f"{e['median']:.2f} m, forward {100 * e['forward_fraction']:.0f}%")
        return 0
    records = [zoo.provenance(n) for n in zoo.names()]
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    print(f"{'name':<18}{'task':<14}{'rule':<10}{'params':>7}{'gens':>6}{'episodes':>9}{'mean m':>8}"
          f"{'median m':>9}{'forward':>8}")
    for r in records:
        e, rule = r["evaluation"], r["rule"] + (f"(m={r['window']})" if r["window"] else "")
        print(f"{r['name']:<18}{r['task']:<14}{rule:<10}{r['genome_length']:>7}{r['run']['generations']:>6}"
              f"{e['episodes']:>9}{e['mean']:>8.2f}{e['median']:>9.2f}{100 * e['forward_fraction']:>7.0f}%")
    print("held-out episodes (seeds from 0, full length); use a champion as zoo:NAME wherever a genome file goes")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .plots import plot_runs

    summary = plot_runs(args.runs, args.output)
    for label, s in summary.items():
        print(f"{label:<28} {s['runs']:>3} runs  {s['generations']:>5} gens  final best {s['final_mean']:.3f} "
              f"+- {s['final_std']:.3f}")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nchl", description="Neuron-centric Hebbian controllers: evolve, generate C, verify.")
    p.add_argument("--version", action="version", version=f"nchl {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("params", help="genome length and memory of HL, NcHL and WNcHL for a topology")
    q.add_argument("--layers", type=_layers, required=True, help="layer sizes, e.g. 28,128,64,8")
    q.add_argument("--window", type=int, default=10, help="WNcHL window m (default 10)")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.add_argument("--plot", metavar="PNG", help="also draw the paper's Fig. 1 (parameters vs depth and width)")
    q.set_defaults(func=cmd_params)

    q = sub.add_parser("tasks", help="list the locomotion tasks: sizes, default layers, control period, "
                                     "which inputs a real robot could not measure")
    q.add_argument("files", nargs="*", metavar="TASK_FILE", help="describe these MJCF / task files instead")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(func=cmd_tasks)

    q = sub.add_parser("task", help="robot tasks from your own MJCF model")
    tsub = q.add_subparsers(dest="task_command", required=True)
    t = tsub.add_parser("init", help="write a task file for an MJCF model, every inferred default written out")
    t.add_argument("model", metavar="MODEL.xml")
    t.add_argument("-o", "--output", required=True, metavar="TASK.toml")
    t.add_argument("--force", action="store_true", help="overwrite an existing file")
    t.set_defaults(func=cmd_task_init)

    q = sub.add_parser("evolve", help="evolve rule parameters on a task (CMA-ES / sep-CMA / OpenAI-ES)")
    q.add_argument("--config", metavar="TOML", help="settings file; flags given here override it")
    q.add_argument("--task")
    q.add_argument("--rule", choices=["hl", "nchl", "wnchl", "static"],
                   help="plasticity rule; static: the weights themselves evolved, no plasticity (the baseline)")
    q.add_argument("--window", type=int, help="WNcHL window m")
    q.add_argument("--layers", type=_layers, help="full layer sizes (default: the task's)")
    q.add_argument("--generations", type=int)
    q.add_argument("--popsize", type=int)
    q.add_argument("--sigma", type=float, help="initial step size (default 0.1)")
    q.add_argument("--init-range", dest="init_range", type=float, help="initial weights uniform in [-r, r) (default 0: zeros)")
    q.add_argument("--clip", type=float, help="symmetric weight clip (default none)")
    q.add_argument("--episodes", type=int, help="rollouts averaged per candidate (default 1)")
    q.add_argument("--seed", type=int)
    q.add_argument("--workers", type=int, help="local worker processes (default 2)")
    q.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="evaluate on a Dask cluster instead")
    q.add_argument("--optimizer", choices=["auto", "cma", "sep-cma", "openai-es"])
    q.add_argument("--backend", choices=["c", "python"],
                   help="controller used in rollouts: generated C (default, bit-identical, faster) or Python")
    q.add_argument("--no-early-stop", action="store_true", help="run every episode to its full length")
    q.add_argument("--validation-every", dest="validation_every", type=int,
                   help="choose the champion on validation episodes every k generations (default 5)")
    q.add_argument("--validation-top", dest="validation_top", type=int,
                   help="candidates validated per validation generation, besides the ES mean (default 3)")
    q.add_argument("--validation-episodes", dest="validation_episodes", type=int,
                   help="validation episodes per genome (default 10; 0 = champion = best training episode)")
    q.add_argument("--randomize", type=_ranges, metavar="NAME=LOW:HIGH,...",
                   help="robust evolution: every training and validation episode draws these conditions of the "
                        "perturbation catalogue (nchl stress), strengths uniform in [LOW, HIGH]")
    q.add_argument("--randomize-p", dest="randomize_p", type=float,
                   help="probability that each randomized condition is on in an episode (default 1)")
    q.add_argument("--action-rate-cost", dest="action_rate_cost", type=float, metavar="C",
                   help="prefer actuation a motor can follow: fitness = distance - C * action travel (the sum over "
                        "steps of the mean |a_t - a_t-1|; a bang-bang gait collects about 1 per step; default 0)")
    q.add_argument("--start-from", dest="start_from", metavar="GENOME",
                   help="fine-tune: the ES starts from this genome file or zoo:NAME (same layers; an NcHL genome "
                        "may start a WNcHL run) instead of a random mean, e.g. to harden a champion under "
                        "--randomize")
    q.add_argument("--out", metavar="DIR", help="run directory (new)")
    q.add_argument("--resume", metavar="DIR", help="continue the run in DIR (optionally with more --generations)")
    q.set_defaults(func=cmd_evolve)

    q = sub.add_parser("evaluate", help="fitness statistics of a genome over seeded rollouts")
    q.add_argument("genome", help="genome file (.npz) or zoo:NAME")
    q.add_argument("--episodes", type=int, default=10)
    q.add_argument("--seed", type=int, default=0,
                   help="first episode seed (default 0; seeds below 2**20 are never used in training or validation)")
    q.add_argument("--task", help="default: the genome's task")
    _deployment_args(q)
    q.add_argument("--workers", type=int, default=2)
    q.add_argument("--early-stop", action="store_true", help="apply the evolution early stop (default off)")
    q.add_argument("--backend", choices=["c", "python"], default="c", help="controller implementation (default c)")
    q.add_argument("--trace", metavar="NPZ", help="record observations/actions of the first episode")
    _numeric_arg(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_evaluate)

    q = sub.add_parser("stress", help="a controller on held-out episodes, intact and perturbed (the reality gap)")
    q.add_argument("genome", help="genome file (.npz) or zoo:NAME")
    q.add_argument("--conditions", nargs="+", default=["all"], metavar="COND",
                   help="NAME or NAME=S1/S2/... from the catalogue (obs-noise, quantize, latency, motor-gain, "
                        "dead-motor, action-noise, action-delay, leg-damage, mass, friction, push); default: all "
                        "that apply to the task, at their default strengths")
    q.add_argument("--strengths", type=_strengths, metavar="S1,S2,...",
                   help="strengths for every condition named without its own (a sweep; in each one's unit)")
    q.add_argument("--onset", type=int, default=0, metavar="STEP",
                   help="switch the conditions on at this control step (an event, to measure recovery; default 0)")
    q.add_argument("--episodes", type=int, default=20)
    q.add_argument("--seed", type=int, default=0, help="first held-out episode seed (default 0)")
    q.add_argument("--task", help="default: the genome's task")
    _deployment_args(q)
    q.add_argument("--workers", type=int, default=2)
    q.add_argument("--backend", choices=["c", "python"], default="c", help="controller implementation (default c)")
    q.add_argument("--plot", metavar="PNG", help="retained distance vs strength; velocity around events")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_stress)

    q = sub.add_parser("codegen", help="generate fixed-memory C99 for a genome")
    q.add_argument("genome", help="genome file (.npz) or zoo:NAME")
    q.add_argument("--prefix", default="nchl_ctrl", help="C symbol prefix (default nchl_ctrl)")
    q.add_argument("--out", default=".", metavar="DIR")
    _deployment_args(q)
    q.add_argument("--report", action="store_true", help="compile and report flash/RAM/stack of HL, NcHL, WNcHL")
    _numeric_arg(q)
    q.add_argument("--json", action="store_true", help="report as JSON")
    q.set_defaults(func=cmd_codegen)

    q = sub.add_parser("verify", help="run generated C and Python in the same rollouts and compare")
    q.add_argument("genome", help="genome file (.npz) or zoo:NAME")
    q.add_argument("--task", help="default: the genome's task")
    q.add_argument("--episodes", type=int, default=3)
    q.add_argument("--seed", type=int, default=0, help="first episode seed")
    _deployment_args(q)
    q.add_argument("--state", action="store_true", help="also compare the whole state every step")
    q.add_argument("--allow-termination", action="store_true",
                   help="let the task end episodes early (default: full-length episodes)")
    q.add_argument("--tolerance", type=float,
                   help="max abs action error allowed (default 1e-5; 0 with --numeric fixed)")
    _numeric_arg(q)
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
    q.add_argument("--windows", default=[1, 10, 50], type=_windows,
                   help="WNcHL windows for a genome, comma-separated (default 1,10,50)")
    _numeric_arg(q)
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
    _deployment_args(q)
    q.add_argument("--tolerance", type=float, help="max abs action error allowed (default 1e-5; 0 with --numeric fixed)")
    q.add_argument("--target", help="build for this core instead of the board's own (cortex-m0 runs on mps2-an385)")
    _numeric_arg(q)
    q.add_argument("--timeout", type=float, default=600.0, help="seconds allowed for the emulator")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_emulate)

    q = sub.add_parser("plot", help="fitness curves and final-best box plots of runs, grouped by rule")
    q.add_argument("runs", nargs="+", metavar="RUN_DIR")
    q.add_argument("-o", "--output", default="fitness.png")
    q.set_defaults(func=cmd_plot)

    q = sub.add_parser("campaign", help="run a grid of evolution runs (tasks x rules x windows x seeds), resumable")
    q.add_argument("campaign", metavar="CAMPAIGN.toml")
    q.add_argument("--out", required=True, metavar="DIR", help="campaign directory (rerun to resume)")
    q.add_argument("--workers", type=int, default=2, help="evaluation processes per run (default 2)")
    q.add_argument("--parallel", type=int, default=1, help="runs at once, each in its own process (default 1)")
    q.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="evaluate on a Dask cluster instead")
    q.add_argument("--rescore", action="store_true",
                   help="evolve nothing: score the finished runs' champions again on their held-out episodes "
                        "(after a change to a task's model) and print which means changed")
    q.set_defaults(func=cmd_campaign)

    q = sub.add_parser("report", help="figures, tables and tests of a campaign: OUT/report.md")
    q.add_argument("campaign_dirs", nargs="+", metavar="DIR",
                   help="a campaign directory, or several that share one budget (reported together)")
    q.add_argument("-o", "--output", required=True, metavar="OUT")
    q.add_argument("--behaviour-episodes", dest="behaviour_episodes", type=int, default=3,
                   help="held-out episodes per champion for the behaviour map (default 3)")
    q.set_defaults(func=cmd_report)

    q = sub.add_parser("archive", help="copy a campaign's finished cells without checkpoints (for git; "
                       "nchl report reads it, nchl campaign continues it)")
    q.add_argument("campaign_dir", metavar="DIR")
    q.add_argument("--out", required=True, metavar="ARCHIVE", help="new directory, or an earlier archive to update")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_archive)

    q = sub.add_parser("render", help="render an episode offscreen to GIF/MP4 (several genomes: side by side)")
    q.add_argument("genomes", nargs="+", metavar="GENOME",
                   help="genome file or zoo:NAME; GENOME@wnchl:10 redeploys an NcHL genome weightless")
    q.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.gif or FILE.mp4")
    q.add_argument("--task", help="default: the genome's task")
    q.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    q.add_argument("--steps", type=int, default=400, help="at most this many control steps (default 400)")
    q.add_argument("--rule", choices=["nchl", "wnchl"], help="redeploy every NcHL genome as WNcHL or back")
    q.add_argument("--window", type=int, help="WNcHL window m")
    q.add_argument("--width", type=int, default=480)
    q.add_argument("--height", type=int, default=360)
    q.add_argument("--fps", type=float, default=20.0, help="frames per second; frames are taken every "
                   "round(control rate / fps) steps so the video plays in real time (default 20)")
    q.add_argument("--camera", choices=["track", "fixed"], default="track")
    q.add_argument("--side-by-side", action="store_true", help="two or more genomes in one video")
    q.add_argument("--backend", choices=["c", "python"], default="c", help="controller implementation (default c)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_render)

    q = sub.add_parser("zoo", help="list the shipped champions (zoo:NAME), or add a run's champion")
    q.add_argument("--json", action="store_true", help="print the provenance records as JSON")
    q.add_argument("--add", metavar="RUN_DIR", help="score the run's best.npz on held-out episodes and add it")
    q.add_argument("--name", help="name of the added champion, e.g. ant-nchl")
    q.add_argument("--episodes", type=int, default=100, help="held-out episodes for --add (default 100)")
    q.add_argument("--into", metavar="DIR", help="zoo folder to write (default: the package's own)")
    q.add_argument("--stress-episodes", dest="stress_episodes", type=int, default=0, metavar="N",
                   help="with --add: also record its nchl stress table over N held-out episodes (default: none)")
    q.add_argument("--workers", type=int, default=2)
    q.set_defaults(func=cmd_zoo)

    q = sub.add_parser("pipeline", help="the main job: evolve NcHL -> C -> verify -> sizes; then a robust champion's "
                                        "stress summary, float C on a Cortex-M4F and fixed-point C on a Cortex-M0")
    q.add_argument("--task", default="ant")
    q.add_argument("--out", default="runs/pipeline", metavar="DIR", help="default runs/pipeline (resumed if present)")
    q.add_argument("--generations", type=int, default=60)
    q.add_argument("--popsize", type=int, default=32)
    q.add_argument("--window", type=int, default=10, help="WNcHL window of the weightless deployment")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--workers", type=int, default=2)
    q.add_argument("--champion", default="quadruped-robust", metavar="NAME",
                   help="zoo champion deployed after the demonstration run (default quadruped-robust; 'none' to skip)")
    q.set_defaults(func=cmd_pipeline)

    # issue 39: firmware projects and processor-in-the-loop runs (flags in their own modules)
    from . import firmware_cmd, pil

    q = sub.add_parser("firmware", help="a complete firmware project for a board (timer loop, HAL, scaling, "
                                        "safety): `make -C DIR` builds it")
    firmware_cmd.add_firmware_arguments(q)
    q.set_defaults(func=firmware_cmd.run)
    q = sub.add_parser("pil", help="processor in the loop: physics on the host, the firmware on the emulated "
                                   "board (or host), compared with the Python reference at every step")
    pil.add_arguments(q)
    q.set_defaults(func=pil.run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # a reader closed early (nchl zoo --json | head -1): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 128 + signal.SIGPIPE
    except (NchlError, OSError) as e:
        print(f"nchl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nchl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
