"""nchl zoo: the shipped champions, and adding one.

Each command's arguments are defined beside the function that runs it; :mod:`nchl.app.cli`
assembles them."""

from __future__ import annotations

import argparse
import json
import sys

from ...core.errors import NchlError


def cmd_zoo(args: argparse.Namespace) -> int:
    from ...core import zoo

    if args.add:
        from ..ship import add_champion

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
    print(f"{'name':<18}{'task':<23}{'rule':<12}{'params':>7}{'gens':>6}{'episodes':>9}{'mean m':>8}"
          f"{'median m':>9}{'forward':>8}")
    for r in records:
        e, rule = r["evaluation"], r["rule"] + (f"(m={r['window']})" if r["window"] else "")
        print(f"{r['name']:<18}{r['task']:<23}{rule:<12}{r['genome_length']:>7}{r['run']['generations']:>6}"
              f"{e['episodes']:>9}{e['mean']:>8.2f}{e['median']:>9.2f}{100 * e['forward_fraction']:>7.0f}%")
    print("held-out episodes (seeds from 0, full length); use a champion as zoo:NAME wherever a genome file goes")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
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
