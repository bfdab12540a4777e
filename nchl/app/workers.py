"""Persistent worker processes for candidate evaluations, with fault handling.

Each worker is a spawned process that imports the evaluation function once and
keeps whatever it caches (environments) for the whole run. :meth:`WorkerPool.map`
sends jobs to idle workers and collects results in job order. A job that
raises, or whose worker dies, is retried (``retries`` times, on a fresh worker
if the old one died); after that it is reported as failed and the caller
decides how to score it. BLAS is pinned to one thread in every worker, so
``n`` workers use ``n`` cores.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import signal
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Sequence

BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


@dataclass
class Outcome:
    ok: bool
    value: Any = None        # the function's result when ok
    errors: tuple[str, ...] = ()  # one message per failed attempt


def _load(fn_path: str) -> Callable[[Any, int], Any]:
    module, _, name = fn_path.partition(":")
    return getattr(importlib.import_module(module), name)


def _worker_main(conn: Connection, fn_path: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and shuts us down
    fn = _load(fn_path)
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        job, payload, attempt = msg
        try:
            conn.send((job, True, fn(payload, attempt)))
        except Exception:
            conn.send((job, False, traceback.format_exc(limit=5)))


class _Worker:
    def __init__(self, ctx: Any, fn_path: str) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, fn_path), daemon=True)
        self.process.start()
        child.close()
        self.job: int | None = None

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class WorkerPool:
    """``workers`` processes running ``fn(payload, attempt)``, named as ``"module:function"``."""

    def __init__(self, fn_path: str, workers: int, log: Callable[[str], None] = print) -> None:
        if workers < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.fn_path, self.log = fn_path, log
        self._ctx = mp.get_context("spawn")
        self.workers = [self._spawn() for _ in range(workers)]

    def _spawn(self) -> _Worker:
        """A new worker whose BLAS is single-threaded (the variables must be set before it imports numpy)."""
        saved = {k: os.environ.get(k) for k in BLAS_THREAD_VARS}
        os.environ.update({k: "1" for k in BLAS_THREAD_VARS})
        try:
            return _Worker(self._ctx, self.fn_path)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def map(self, payloads: Sequence[Any], retries: int = 1) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(payloads)
        errors: list[list[str]] = [[] for _ in payloads]
        pending = deque(range(len(payloads)))

        def failed(job: int, why: str) -> None:
            errors[job].append(why)
            self.log(f"evaluation {job} failed (attempt {len(errors[job])}): {why.strip().splitlines()[-1]}")
            if len(errors[job]) <= retries:
                pending.appendleft(job)
            else:
                outcomes[job] = Outcome(False, None, tuple(errors[job]))

        while pending or any(w.job is not None for w in self.workers):
            for w in self.workers:
                if w.job is None and pending:
                    w.job = pending.popleft()
                    w.conn.send((w.job, payloads[w.job], len(errors[w.job])))
            busy = [w for w in self.workers if w.job is not None]
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for i, w in enumerate(self.workers):
                if w.job is None or not (w.conn in ready or w.process.sentinel in ready):
                    continue
                try:
                    job, ok, value = w.conn.recv()
                except (EOFError, OSError):
                    w.process.join(timeout=5)
                    job = w.job
                    w.job = None
                    failed(job, f"worker process died (exit code {w.process.exitcode})")
                    self.workers[i] = self._spawn()
                    continue
                w.job = None
                if ok:
                    outcomes[job] = Outcome(True, value, tuple(errors[job]))
                else:
                    failed(job, value)
        return outcomes  # type: ignore[return-value]

    def close(self) -> None:
        for w in self.workers:
            w.stop()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
