"""Argument types and argument groups that several commands share."""

from __future__ import annotations

import argparse

from ...core.errors import NchlError, TopologyError
from ...core.topology import Topology


def topology_arg(text: str) -> Topology:
    try:
        return Topology.of(text)
    except TopologyError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def windows_arg(text: str) -> list[int]:
    try:
        windows = [int(w) for w in text.split(",")]
    except ValueError:
        windows = []
    if not windows or min(windows) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated windows >= 1, got {text!r}")
    return windows


def ranges_arg(text: str) -> dict[str, list[float]]:
    out = {}
    for item in text.split(","):
        name, _, bounds = item.partition("=")
        low, _, high = bounds.partition(":")
        try:
            out[name] = [float(low), float(high if high else low)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME=LOW:HIGH,..., got {item!r}") from None
    return out


def strengths_arg(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_deployment_args(q: argparse.ArgumentParser) -> None:
    """How a genome is deployed: its own rule, NcHL <-> WNcHL, plastic or frozen (see genome_spec)."""
    q.add_argument("--rule", choices=["nchl", "wnchl"], help="deploy an NcHL genome as WNcHL or back")
    q.add_argument("--window", type=int, help="WNcHL window m")
    q.add_argument("--freeze-after", dest="freeze_after", type=int, metavar="K",
                   help="switch plasticity off after K steps, keeping the weights (a frozen deployment)")


def add_numeric_arg(q: argparse.ArgumentParser) -> None:
    q.add_argument("--numeric", choices=["float", "fixed"], default="float",
                   help="float32 (default) or fixed: integer-only C for cores without an FPU (weightless NcHL)")


def genome_task(args: argparse.Namespace):
    """Genome file, the spec it is deployed as, and the task it runs on (validated together)."""
    from nchl_sim import task_for_genome

    genome, spec = genome_spec(args)
    task_name = getattr(args, "task", None) or genome.task
    task = task_for_genome(genome, task_name, args.genome)
    if task.sizes != (spec.topology.n_in, spec.topology.n_out):
        raise NchlError(f"genome layers [{spec.topology}] do not fit task {task_name!r} "
                        f"({task.sizes[0]} observations, {task.sizes[1]} actions)")
    return genome, spec, task


def genome_spec(args: argparse.Namespace):
    """The genome file and the spec it runs as: its own, or NcHL <-> WNcHL redeployment
    (``--rule``/``--window``) of the same genome, plastic or frozen after ``--freeze-after`` steps."""
    from ...core.genome import Genome

    genome = Genome.load(args.genome)
    spec = genome.spec if args.rule is None and args.window is None else genome.spec.redeployed(args.rule, args.window)
    freeze = getattr(args, "freeze_after", None)
    return genome, spec if freeze is None else spec.frozen_after(freeze)
