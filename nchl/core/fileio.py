"""Crash-safe files: a reader sees the old file or the new one, never half of one; one writer per directory."""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import NchlError

LOCK_FILE = ".lock"


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


class DirectoryBusy(NchlError):
    """Another process is writing the directory."""


class WriterLock:
    """The one writer of a run or campaign directory, as an OS lock (``flock``) on ``DIR/.lock``.

    A second writer fails at once, naming the holder, and changes nothing. The kernel drops the
    lock when its holder exits, however it exits (``kill -9`` included), so a crash never leaves a
    stale lock. The lock file is not inherited by worker processes (they are spawned by ``exec``),
    and it stays behind after release: its presence means nothing, only the held lock does."""

    def __init__(self, directory: str | os.PathLike, what: str) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        f = open(directory / LOCK_FILE, "a+")  # "a+" never truncates the holder's note before we hold the lock
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise DirectoryBusy(f"{directory} is being written by {holder}: a {what} directory has one writer at "
                                "a time; wait for it to finish or stop it (a stopped or killed process releases "
                                "the directory by itself)") from None
        except OSError as e:  # e.g. a network file system mounted without lock support
            f.close()
            raise NchlError(f"cannot lock {directory} for writing ({e.strerror}): its file system has no working "
                            "flock; use a local directory or one mounted with lock support") from None
        f.seek(0)
        f.truncate()
        command = " ".join(["nchl" if a.endswith(("cli.py", "/nchl")) else a for a in sys.argv[:4]])
        f.write(f"pid {os.getpid()} on {socket.gethostname()} ({command} ..., "
                f"since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        f.flush()
        self._file: Any = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the only descriptor releases the lock
            self._file = None

    def __enter__(self) -> "WriterLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
