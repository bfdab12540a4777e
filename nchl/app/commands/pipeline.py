"""nchl pipeline: the main job.

Each command's arguments are defined beside the function that runs it; :mod:`nchl.app.cli`
assembles them."""

from __future__ import annotations

import argparse
import sys



def cmd_pipeline(args: argparse.Namespace) -> int:
    from ..pipeline import run_pipeline

    run_pipeline(args.out, task=args.task, generations=args.generations, popsize=args.popsize,
                 window=args.window, seed=args.seed, workers=args.workers,
                 champion=None if args.champion == "none" else args.champion,
                 log=lambda m: print(m, file=sys.stderr))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
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
