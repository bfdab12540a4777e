"""nchl render: episodes offscreen to GIF/MP4.

Each command's arguments are defined beside the function that runs it; :mod:`nchl.app.cli`
assembles them."""

from __future__ import annotations

import argparse
import json
import sys

from ...core.errors import NchlError


def cmd_render(args: argparse.Namespace) -> int:
    from ..render import render

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


def register(sub: argparse._SubParsersAction) -> None:
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
