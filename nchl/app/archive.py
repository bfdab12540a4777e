"""``nchl archive``: a campaign's results without its checkpoints, small enough for git.

A finished cell keeps everything a report or a stress table reads (``config.json``, ``log.jsonl``,
``best.npz``, ``evaluation.json``, ``stress.json``); its checkpoints (the optimizer state, tens of
MB for HL) and its writer lock are left out. Unfinished cells are left out whole: they can only be
continued from a checkpoint. The archive is itself a campaign directory, so ``nchl report`` reads it
and ``nchl campaign CONFIG --out ARCHIVE`` continues it (finished cells are skipped, the others run
from the start). Archiving again into the same place adds the cells finished since.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from .campaign import MANIFEST, cell_state, read_manifest
from ..core.errors import NchlError

LEFT_OUT = (".lock",)       # names left out of every directory
LEFT_OUT_PREFIX = "checkpoint"  # checkpoint.bin and its temporary files


def _kept(path: Path) -> bool:
    return path.is_file() and path.name not in LEFT_OUT and not path.name.startswith(LEFT_OUT_PREFIX)


def archive_campaign(src: str | Path, dest: str | Path, log: Callable[[str], None] = print) -> dict:
    """Copy the finished cells of campaign ``src`` to ``dest`` (created, or an earlier archive of the
    same campaign); returns what was copied and what was left out."""
    src, dest = Path(src), Path(dest)
    campaign, manifest = read_manifest(src)
    if src.resolve() == dest.resolve():
        raise NchlError(f"{dest}: the archive must be another directory than the campaign")
    if (dest / MANIFEST).is_file():
        _, earlier = read_manifest(dest)
        if earlier.get("settings") != manifest.get("settings"):
            raise NchlError(f"{dest} archives another campaign (its {MANIFEST} settings differ); "
                            "choose another directory")
    elif dest.exists() and any(dest.iterdir()):
        raise NchlError(f"{dest} exists and is not a campaign archive; choose an empty or new directory")
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if _kept(f):
            shutil.copy2(f, dest / f.name)
    copied, already, unfinished = [], [], []
    for cell in campaign.cells():
        if cell_state(src, cell, campaign) != "done":
            unfinished.append(cell.name)
            continue
        target = dest / cell.name
        if cell_state(dest, cell, campaign) == "done":
            already.append(cell.name)
        else:
            part = dest / (cell.name + ".partial")
            shutil.rmtree(part, ignore_errors=True)
            part.mkdir()
            for f in (src / cell.name).iterdir():
                if _kept(f):
                    shutil.copy2(f, part / f.name)
            shutil.rmtree(target, ignore_errors=True)
            part.rename(target)  # a cell appears whole or not at all
            copied.append(cell.name)
            log(f"archived {cell.name}")
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    return {"campaign": str(src), "archive": str(dest), "copied": copied, "already": already,
            "unfinished": unfinished, "bytes": size}


def describe(result: dict) -> str:
    done = len(result["copied"]) + len(result["already"])
    return (f"{result['archive']}: {done} finished cells ({len(result['copied'])} new), "
            f"{len(result['unfinished'])} unfinished left out, {result['bytes'] / 2**20:.1f} MiB without checkpoints")
