"""Candidate evaluations on a Dask distributed cluster, with the local pool's interface.

:class:`DaskPool` connects to a running scheduler (``tcp://HOST:PORT``) and
submits the same ``fn(payload, attempt)`` calls as :class:`~nchl.app.workers.WorkerPool`.
Each Dask worker process imports the evaluation function once; its per-thread
environment cache (``nchl.app.evolution``) keeps environments between tasks.

Faults: when a worker dies, the scheduler reruns its tasks on the workers that
remain (Dask's own recovery, up to ``allowed-failures`` per task), so nothing is
lost and results do not change: an evaluation depends only on its payload.
An evaluation that raises is retried by us, like the local pool, then reported
as failed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any, Callable, Sequence

from ..core.errors import NchlError
from .workers import Outcome, _load


def _call(fn_path: str, payload: Any, attempt: int) -> Any:
    return _load(fn_path)(payload, attempt)


class DaskPool:
    def __init__(self, fn_path: str, scheduler: str, log: Callable[[str], None] = print,
                 timeout: float = 30.0) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise NchlError("--scheduler needs Dask distributed: pip install 'nchl[cluster]'") from None
        self.fn_path, self.log = fn_path, log
        try:
            self.client = Client(scheduler, timeout=timeout)
        except OSError as e:
            raise NchlError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        n = len(self.client.scheduler_info().get("workers", {}))
        log(f"connected to Dask scheduler {scheduler} ({n} workers)")

    def map(self, payloads: Sequence[Any], retries: int = 1) -> list[Outcome]:
        errors: list[list[str]] = [[] for _ in payloads]
        outcomes: list[Outcome | None] = [None] * len(payloads)
        pending = list(range(len(payloads)))
        while pending:
            futures = {self.client.submit(_call, self.fn_path, payloads[i], len(errors[i]), pure=False): i
                       for i in pending}
            pending = []
            for future, i in futures.items():
                try:
                    outcomes[i] = Outcome(True, future.result(), tuple(errors[i]))
                except Exception as e:  # the evaluation raised, or Dask gave up on the task
                    errors[i].append(f"{type(e).__name__}: {e}")
                    self.log(f"evaluation {i} failed (attempt {len(errors[i])}): {errors[i][-1]}")
                    if len(errors[i]) <= retries:
                        pending.append(i)
                    else:
                        outcomes[i] = Outcome(False, None, tuple(errors[i]))
                finally:
                    future.release()
        return outcomes  # type: ignore[return-value]

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "DaskPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LoopbackCluster:
    """A real Dask scheduler and ``workers`` single-threaded worker processes on 127.0.0.1,
    started with the ``dask`` command line (for tests and benchmarks; all waits bounded)."""

    def __init__(self, workers: int = 2, cwd: str | None = None, timeout: float = 60.0) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{port}"
        self.n_workers, self.cwd, self.timeout = workers, cwd, timeout
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    def _start(self, *args: str) -> "subprocess.Popen":
        return subprocess.Popen([sys.executable, "-m", "dask", *args, "--dashboard-address", ":0"], cwd=self.cwd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self) -> "LoopbackCluster":
        from distributed import Client

        port = self.address.rsplit(":", 1)[1]
        self.scheduler = self._start("scheduler", "--host", "127.0.0.1", "--port", port)
        try:
            self.workers = [self._start("worker", self.address, "--nthreads", "1", "--no-nanny", "--host",
                                        "127.0.0.1") for _ in range(self.n_workers)]
            with Client(self.address, timeout=self.timeout) as client:
                client.wait_for_workers(self.n_workers, timeout=self.timeout)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        # workers first, then the scheduler: signalled all at once, workers were seen to outlive
        # their scheduler until the kill after the timeout (30 s of a test's teardown)
        for group in (self.workers, [self.scheduler]):
            for p in group:
                if p is not None and p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in group:
                if p is None:
                    continue
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
