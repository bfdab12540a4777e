"""nchl stress: a controller intact and under the perturbation catalogue.

Each command's arguments are defined beside the function that runs it; :mod:`nchl.app.cli`
assembles them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .args import add_deployment_args, add_numeric_arg, genome_task, strengths_arg


def cmd_stress(args: argparse.Namespace) -> int:
    from ..stress import parse_conditions, plot, read_table, run_stress, table

    if Path(args.genome).is_dir():  # a campaign cell (or its archive): the table it already holds
        report = read_table(args.genome)
        task_name, episodes = report["task"], report["episodes"]
    else:
        genome, spec, task = genome_task(args)
        task_name, episodes = task.name, args.episodes
        conditions = parse_conditions(args.conditions, task.name, args.strengths, args.onset)
        base, latency = (), None
        if args.board:   # issue 39: the board's measured compute time as latency in every setting
            from nchl_sim.perturb import condition

            from ..pil import board_latency

            n, latency = board_latency(args, task)
            base = (condition("latency", n),) if n else ()
        report = run_stress(spec, genome.values, task.name, conditions, args.episodes, args.seed, args.workers,
                            args.backend, log=lambda m: print(m, file=sys.stderr), base=base)
        report["genome"] = str(args.genome)
        if latency:
            report["board_latency"] = latency
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


def register(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("stress", help="a controller on held-out episodes, intact and perturbed (the reality gap)")
    q.add_argument("genome", help="genome file (.npz) or zoo:NAME")
    q.add_argument("--conditions", nargs="+", default=["all"], metavar="COND",
                   help="NAME or NAME=S1/S2/... from the catalogue (obs-noise, quantize, latency, motor-gain, "
                        "dead-motor, action-noise, action-delay, leg-damage, mass, friction, push); default: all "
                        "that apply to the task, at their default strengths")
    q.add_argument("--strengths", type=strengths_arg, metavar="S1,S2,...",
                   help="strengths for every condition named without its own (a sweep; in each one's unit)")
    q.add_argument("--onset", type=int, default=0, metavar="STEP",
                   help="switch the conditions on at this control step (an event, to measure recovery; default 0)")
    q.add_argument("--episodes", type=int, default=20)
    q.add_argument("--seed", type=int, default=0, help="first held-out episode seed (default 0)")
    q.add_argument("--task", help="default: the genome's task")
    add_deployment_args(q)
    q.add_argument("--workers", type=int, default=2)
    q.add_argument("--backend", choices=["c", "python"], default="c", help="controller implementation (default c)")
    q.add_argument("--plot", metavar="PNG", help="retained distance vs strength; velocity around events")
    q.add_argument("--board", help="add this board's measured compute time of a step (nchl pil, plus a 0.5 ms "
                                   "sensor read) as latency in physics sub-steps to every setting")
    q.add_argument("--clock-mhz", dest="clock_mhz", type=float, help="the board's clock (default: its own)")
    add_numeric_arg(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_stress)
