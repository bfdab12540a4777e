"""The ``nchl`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from . import __version__
from .errors import NchlError, TopologyError
from .memory import compare, fig1
from .topology import Topology

Command = Callable[[argparse.Namespace], int]


def _layers(text: str) -> Topology:
    try:
        return Topology.of(text)
    except TopologyError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (NchlError, OSError) as e:
        print(f"nchl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nchl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
