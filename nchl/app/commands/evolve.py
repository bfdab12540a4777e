"""nchl evolve, nchl evaluate and nchl plot.

Each command's arguments are defined beside the function that runs it; :mod:`nchl.app.cli`
assembles them."""

from __future__ import annotations

import argparse
import json
import sys

from ...core.errors import NchlError
from .args import add_deployment_args, add_numeric_arg, genome_task, ranges_arg, topology_arg


_EVOLVE_FLAGS = ("task", "rule", "window", "layers", "generations", "popsize", "sigma", "init_range", "clip",
                 "episodes", "seed", "workers", "optimizer", "backend", "scheduler", "validation_every",
                 "validation_top", "validation_episodes", "randomize", "randomize_p", "action_rate_cost",
                 "start_from")


_RESUMABLE = ("generations", "workers", "scheduler")  # a resumed run may change these: results do not depend on them


def cmd_evolve(args: argparse.Namespace) -> int:
    from ..evolution import EvolveConfig, Run, load_toml

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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from nchl_sim import rollout, save_trace

    from ..evolution import evaluate_genome

    genome, spec, task = genome_task(args)
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


def cmd_plot(args: argparse.Namespace) -> int:
    from ..plots import plot_runs

    summary = plot_runs(args.runs, args.output)
    for label, s in summary.items():
        print(f"{label:<28} {s['runs']:>3} runs  {s['generations']:>5} gens  final best {s['final_mean']:.3f} "
              f"+- {s['final_std']:.3f}")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("evolve", help="evolve rule parameters on a task (CMA-ES / sep-CMA / OpenAI-ES)")
    q.add_argument("--config", metavar="TOML", help="settings file; flags given here override it")
    q.add_argument("--task")
    q.add_argument("--rule", choices=["hl", "nchl", "wnchl", "static"],
                   help="plasticity rule; static: the weights themselves evolved, no plasticity (the baseline)")
    q.add_argument("--window", type=int, help="WNcHL window m")
    q.add_argument("--layers", type=topology_arg, help="full layer sizes (default: the task's)")
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
    q.add_argument("--randomize", type=ranges_arg, metavar="NAME=LOW:HIGH,...",
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
    add_deployment_args(q)
    q.add_argument("--workers", type=int, default=2)
    q.add_argument("--early-stop", action="store_true", help="apply the evolution early stop (default off)")
    q.add_argument("--backend", choices=["c", "python"], default="c", help="controller implementation (default c)")
    q.add_argument("--trace", metavar="NPZ", help="record observations/actions of the first episode")
    add_numeric_arg(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_evaluate)

    q = sub.add_parser("plot", help="fitness curves and final-best box plots of runs, grouped by rule")
    q.add_argument("runs", nargs="+", metavar="RUN_DIR")
    q.add_argument("-o", "--output", default="fitness.png")
    q.set_defaults(func=cmd_plot)
