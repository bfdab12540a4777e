"""nchl campaign, nchl report and nchl archive.

Each command's arguments are defined beside the function that runs it; :mod:`nchl.app.cli`
assembles them."""

from __future__ import annotations

import argparse
import json
import sys



def cmd_campaign(args: argparse.Namespace) -> int:
    from ..campaign import change_words, rescore_campaign, run_campaign

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
    from ..report import make_report

    path = make_report(args.campaign_dirs, args.output, behaviour_episodes=args.behaviour_episodes,
                       log=lambda m: print(m, file=sys.stderr))
    print(f"wrote {path}")
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    from ..archive import archive_campaign, describe

    r = archive_campaign(args.campaign_dir, args.out, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(r, indent=2) if args.json else describe(r))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
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
