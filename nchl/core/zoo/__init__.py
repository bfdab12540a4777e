"""The zoo: champions evolved by the project's own ``nchl evolve``, shipped as package data.

Each champion is ``<name>.npz`` (a genome file) beside ``<name>.json``, its
provenance: the run's settings and command, generations, the validation rows of
its log, and its statistics over held-out episodes (``nchl evaluate``). Every
command that takes a genome file also takes ``zoo:NAME``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import NchlError

PREFIX = "zoo:"
HERE = Path(__file__).parent


class UnknownChampion(NchlError):
    pass


def names(folder: Path = HERE) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.json") if (folder / f"{p.stem}.npz").is_file())


def provenance(name: str, folder: Path = HERE) -> dict:
    """The champion's provenance record (raises :class:`UnknownChampion` with the choices)."""
    if name not in names(folder):
        raise UnknownChampion(f"no champion {name!r} in the zoo; choose one of {', '.join(names(folder)) or '(none)'}")
    try:
        return json.loads((folder / f"{name}.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise NchlError(f"zoo champion {name!r}: unreadable provenance: {e}") from None


def resolve(ref: str | os.PathLike) -> Path:
    """``zoo:NAME`` -> the champion's genome file; any other reference is a path as given."""
    text = os.fspath(ref)
    if not text.startswith(PREFIX):
        return Path(text)
    name = text[len(PREFIX):]
    provenance(name)  # a clear error for unknown names
    return HERE / f"{name}.npz"
