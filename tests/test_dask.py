"""Evolution on a real Dask cluster on loopback: same log as the local pool, worker loss survived.

The fixture starts `dask scheduler` and two `dask worker` processes on 127.0.0.1 and
tears them down at the end; every wait is bounded.
"""

import json
import threading
import time

import pytest

distributed = pytest.importorskip("distributed")

from nchl.app.cluster import LoopbackCluster  # noqa: E402
from nchl.app.evolution import EvolveConfig, Run  # noqa: E402

SMALL = dict(task="vsr-low", layers=(12, 4, 10), popsize=4, workers=1, seed=3, validation_every=2,
             validation_episodes=1)  # validation runs on the cluster too, at a test's cost
GENERATIONS = 4  # validated at generations 2 and 4
KEYS = ("generation", "best", "mean", "std", "best_ever", "sigma", "evaluations", "env_steps", "failures")


@pytest.fixture
def dask_cluster(tmp_path):
    with LoopbackCluster(workers=2, cwd=str(tmp_path)) as cluster:
        yield cluster.address, cluster.workers


def run_log(run_dir):
    return [{k: json.loads(line)[k] for k in KEYS} for line in (run_dir / "log.jsonl").read_text().splitlines()]


def evolve(run_dir, generations, **extra):
    cfg = EvolveConfig.from_mapping({**SMALL, "generations": generations, **extra})
    Run(run_dir, cfg, log=lambda m: None).run()
    return run_log(run_dir)


@pytest.fixture(scope="module")
def local_log(tmp_path_factory):
    """The run on the local pool that both cluster runs must repeat."""
    return evolve(tmp_path_factory.mktemp("local") / "run", GENERATIONS)


def test_dask_run_matches_local_run(tmp_path, dask_cluster, local_log):
    address, _ = dask_cluster
    assert evolve(tmp_path / "dask", GENERATIONS, scheduler=address) == local_log


def test_dask_worker_killed_mid_run_changes_nothing(tmp_path, dask_cluster, local_log):
    address, workers = dask_cluster
    result = {}

    def target():
        try:
            result["log"] = evolve(tmp_path / "dask", GENERATIONS, scheduler=address)
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
    assert 2 <= done_at_kill < GENERATIONS, "the worker must die mid-run"
    thread.join(timeout=300)
    assert not thread.is_alive(), "the run did not finish after losing a worker"
    assert "error" not in result, result.get("error")
    assert result["log"] == local_log
