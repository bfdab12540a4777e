"""The commands that describe: nchl params, nchl tasks, nchl task init.

Each command's arguments are defined beside the function that runs it; :mod:`nchl.app.cli`
assembles them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ...core.errors import NchlError
from ...core.memory import compare, fig1
from .args import topology_arg


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


def _runs(index: list[int], names: list[str]) -> str:
    """Privileged entries, long lists summarised: ``0 torso z, 13-15 torso velocity (world), ...``."""
    if len(index) <= 6:
        return ", ".join(f"{i} {n}" for i, n in zip(index, names))
    return f"{len(index)} of them: {', '.join(f'{i} {n}' for i, n in zip(index[:4], names[:4]))}, ..."


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


def cmd_task_init(args: argparse.Namespace) -> int:
    from nchl_sim.robot import task_file_text

    from ...core.fileio import atomic_write

    out = Path(args.output)
    if out.exists() and not args.force:
        raise NchlError(f"{out} exists; pass --force to overwrite it")
    atomic_write(out, task_file_text(args.model, out).encode())
    print(f"wrote {out}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("params", help="genome length and memory of HL, NcHL and WNcHL for a topology")
    q.add_argument("--layers", type=topology_arg, required=True, help="layer sizes, e.g. 28,128,64,8")
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
