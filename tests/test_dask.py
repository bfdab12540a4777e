"""Evolution on a real Dask cluster on loopback: same log as the local pool, worker loss survived.

The fixture starts `dask scheduler` and two `dask worker` processes on 127.0.0.1 and
tears them down at the end; every wait is bounded.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

distributed = pytest.importorskip("distributed")

from nchl.evolution import EvolveConfig, Run  # noqa: E402

SMALL = dict(task="vsr-low", layers=(12, 4, 10), popsize=6, workers=1, seed=3)
KEYS = ("generation", "best", "mean", "std", "best_ever", "sigma", "evaluations", "env_steps", "failures")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path):
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--dashboard-address", ":0"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    workers = []
    try:
        for _ in range(2):
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1", "--no-nanny",
                 "--host", "127.0.0.1", "--dashboard-address", ":0"], cwd=tmp_path, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs += workers
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


def run_log(run_dir):
    return [{k: json.loads(line)[k] for k in KEYS} for line in (run_dir / "log.jsonl").read_text().splitlines()]


def evolve(run_dir, generations, **extra):
    cfg = EvolveConfig.from_mapping({**SMALL, "generations": generations, **extra})
    Run(run_dir, cfg, log=lambda m: None).run()
    return run_log(run_dir)


def test_dask_run_matches_local_run(tmp_path, dask_cluster):
    address, _ = dask_cluster
    local = evolve(tmp_path / "local", 3)
    on_cluster = evolve(tmp_path / "dask", 3, scheduler=address)
    assert on_cluster == local


def test_dask_worker_killed_mid_run_changes_nothing(tmp_path, dask_cluster):
    address, workers = dask_cluster
    local = evolve(tmp_path / "local", 6)
    result = {}

    def target():
        try:
            result["log"] = evolve(tmp_path / "dask", 6, scheduler=address)
        except BaseException as e:  # reported below
            result["error"] = e

    thread = threading.Thread(target=target)
    thread.start()
    log = tmp_path / "dask" / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) >= 2):
        time.sleep(0.05)
    workers[0].kill()
    workers[0].wait(timeout=10)
    done_at_kill = len(log.read_text().splitlines())
    assert 2 <= done_at_kill < 6, "the worker must die mid-run"
    thread.join(timeout=300)
    assert not thread.is_alive(), "the run did not finish after losing a worker"
    assert "error" not in result, result.get("error")
    assert result["log"] == local
