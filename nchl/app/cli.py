"""The ``nchl`` command line. It only assembles the commands: each one's arguments live beside the
code that runs it (:mod:`nchl.app.commands`; ``nchl firmware`` and ``nchl pil`` in their own modules)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Sequence

from .. import __version__
from ..core.errors import NchlError
from . import firmware_cmd, pil
from .commands import campaigns, deploy, evolve, info, pipeline, render, stress, zoo


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nchl", description="Neuron-centric Hebbian controllers: evolve, generate C, verify.")
    p.add_argument("--version", action="version", version=f"nchl {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for commands in (info, evolve, stress, deploy, campaigns, render, zoo, pipeline):
        commands.register(sub)
    q = sub.add_parser("firmware", help="a complete firmware project for a board (timer loop, HAL, scaling, "
                                        "safety): `make -C DIR` builds it")
    firmware_cmd.add_firmware_arguments(q)
    q.set_defaults(func=firmware_cmd.run)
    q = sub.add_parser("pil", help="processor in the loop: physics on the host, the firmware on the emulated "
                                   "board (or host), compared with the Python reference at every step")
    pil.add_arguments(q)
    q.set_defaults(func=pil.run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # a reader closed early (nchl zoo --json | head -1): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 128 + signal.SIGPIPE
    except (NchlError, OSError) as e:
        print(f"nchl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nchl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
