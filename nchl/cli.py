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


def cmd_tasks(args: argparse.Namespace) -> int:
    from nchl_sim import TASKS

    rows = []
    for t in TASKS.values():
        n_in, n_out = t.sizes
        rows.append({"name": t.name, "env_id": t.env_id, "obs": n_in, "act": n_out,
                     "layers": list(t.topology().layers), "episode_steps": t.episode_steps,
                     "description": t.description})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'task':<17}{'obs':>5}{'act':>5}  {'default layers':<17}{'steps':>6}  description")
        for r in rows:
            layers = ",".join(map(str, r["layers"]))
            print(f"{r['name']:<17}{r['obs']:>5}{r['act']:>5}  {layers:<17}{r['episode_steps']:>6}  {r['description']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Parameter table of the Ant network, then one random NcHL episode per task."""
    import numpy as np

    from nchl_sim import TASKS, rollout

    from .controllers import make_controller
    from .spec import Spec

    cmd_params(argparse.Namespace(layers=TASKS["ant"].topology(), window=10, json=False, plot=None))
    print(f"\none episode per task, NcHL with a random genome (seed {args.seed}):")
    print(f"{'task':<17}{'fitness m':>10}{'return':>10}{'steps':>7}  reason")
    for task in TASKS.values():
        spec = Spec("nchl", task.topology())
        genome = np.random.default_rng(args.seed).uniform(-1, 1, spec.genome_length)
        r = rollout(task.make_env(early_stop=True), make_controller(spec, genome), seed=args.seed)
        print(f"{task.name:<17}{r.fitness:>10.3f}{r.env_return:>10.2f}{r.steps:>7}  {r.reason}")
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

    q = sub.add_parser("tasks", help="list the locomotion tasks with their sizes and default layers")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(func=cmd_tasks)

    q = sub.add_parser("demo", help="the main job for now: memory table and one NcHL episode per task")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_demo)
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
