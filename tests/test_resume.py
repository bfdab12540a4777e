"""An interrupted and resumed run equals the uninterrupted one, at the genome sizes the tasks use.

pycma switches its step-size rule to TPA from 300 dimensions on, and TPA draws from numpy's
global generator every iteration: the interruption tests therefore use real genomes (vsr-low
NcHL, 408 parameters; vsr-low HL, 8,640 parameters under sep-CMA), not toy networks.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nchl.app.evolution import CHECKPOINT, read_checkpoint, write_checkpoint
from nchl.app.optimizers import make_optimizer

VOLATILE = {"env_steps_per_s", "wall_time"}  # measured time, not results
REAL = ["--task", "vsr-low", "--popsize", "6", "--workers", "2", "--seed", "1",
        "--validation-every", "2", "--validation-episodes", "2"]
GENERATIONS = 4  # validated at generations 2 and 4


def nchl(*args, cwd, **kw):
    return subprocess.run([sys.executable, "-m", "nchl.app.cli", *args], cwd=cwd, capture_output=True, text=True, **kw)


def start(*args, cwd):
    """``nchl`` in its own session, as from a terminal (CI may start us with SIGINT ignored)."""
    return subprocess.Popen([sys.executable, "-m", "nchl.app.cli", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_generations(log, n, process, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= n:
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended before generation {n}: {process.stderr.read()}")
        time.sleep(0.05)
    pytest.fail(f"no generation {n} within {timeout} s")


def interrupt(process, sig):
    """SIGINT to the command as Ctrl-C would; SIGKILL to its whole process group, as a dying machine would."""
    if sig == signal.SIGKILL:
        os.killpg(process.pid, sig)
    else:
        process.send_signal(sig)
    process.wait(timeout=120)


def results(run_dir):
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows], (run_dir / "best.npz").read_bytes()


def assert_same_run(a, b):
    log_a, best_a = results(a)
    log_b, best_b = results(b)
    assert [r["generation"] for r in log_b] == list(range(1, GENERATIONS + 1))
    for ra, rb in zip(log_a, log_b):
        assert ra == rb, f"generation {ra['generation']} differs"
    assert best_a == best_b  # byte for byte


@pytest.mark.parametrize("optimizer, dim", [("cma", 408), ("sep-cma", 60_800), ("openai-es", 110_720)])
def test_a_checkpointed_optimizer_continues_exactly(tmp_path, optimizer, dim):
    """Save after 3 generations, scramble the process's generators, restore: the next 5 generations
    ask for exactly the candidates the optimizer that never stopped asks for."""
    def sphere(x):
        return -np.sum((x - 0.5) ** 2, axis=1)

    def generations(opt, n):
        asked = []
        for _ in range(n):
            x = opt.ask()
            opt.tell(x, sphere(x))
            asked.append(x)
        return asked

    x0 = np.random.default_rng(0).uniform(-1, 1, dim)
    opt = make_optimizer(optimizer, x0, 0.1, 6, seed=1)
    generations(opt, 3)
    write_checkpoint(tmp_path / CHECKPOINT, {"optimizer": opt, "np_random": np.random.get_state()})
    expected = generations(opt, 5)
    np.random.seed(12345)  # a new process: the global generator is elsewhere
    state = read_checkpoint(tmp_path / CHECKPOINT)
    np.random.set_state(state["np_random"])
    for want, got in zip(expected, generations(state["optimizer"], 5)):
        np.testing.assert_array_equal(got, want)


class Uninterrupted(dict):
    """The uninterrupted run of each rule, evolved the first time a test asks for it."""

    def __init__(self, root):
        super().__init__()
        self.root = root

    def __missing__(self, rule):
        r = nchl("evolve", *REAL, "--rule", rule, "--generations", str(GENERATIONS), "--out", f"u-{rule}",
                 cwd=self.root)
        assert r.returncode == 0, r.stderr
        self[rule] = self.root / f"u-{rule}"
        return self[rule]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return Uninterrupted(tmp_path_factory.mktemp("uninterrupted"))


@pytest.mark.parametrize("rule, stop", [pytest.param("nchl", 2, marks=pytest.mark.slow), ("nchl", 3),
                                        pytest.param("hl", 3, marks=pytest.mark.slow)])  # sep-CMA: also the unit test
def test_stopped_and_resumed_equals_uninterrupted(tmp_path, uninterrupted, rule, stop):
    """The issue's three commands: a run of ``stop`` generations continued to the end
    (stopped at a validation generation and just after one)."""
    r = nchl("evolve", *REAL, "--rule", rule, "--generations", str(stop), "--out", "r", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = nchl("evolve", "--resume", "r", "--generations", str(GENERATIONS), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert_same_run(uninterrupted[rule], tmp_path / "r")


def interrupted_and_resumed(tmp_path, sig, after):
    p = start("evolve", *REAL, "--rule", "nchl", "--generations", str(GENERATIONS), "--out", "r", cwd=tmp_path)
    wait_for_generations(tmp_path / "r" / "log.jsonl", after, p)
    interrupt(p, sig)
    done = read_checkpoint(tmp_path / "r" / CHECKPOINT)["generation"]
    r = nchl("evolve", "--resume", "r", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"resuming r at generation {done + 1}/" in r.stdout + r.stderr
    return tmp_path / "r"


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGKILL],
                         ids=["SIGINT", "SIGKILL"])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, uninterrupted, sig):
    assert_same_run(uninterrupted["nchl"], interrupted_and_resumed(tmp_path, sig, after=2))


@pytest.mark.slow
@pytest.mark.parametrize("after", range(1, GENERATIONS))
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_at_any_generation_equals_uninterrupted(tmp_path, uninterrupted, sig, after):
    assert_same_run(uninterrupted["nchl"], interrupted_and_resumed(tmp_path, sig, after))


def test_killed_campaign_cell_resumes_to_the_uninterrupted_result(tmp_path, uninterrupted):
    """``kill -9`` of a whole campaign in the middle of a cell, then the same command again: the cell's
    log, champion and evaluation are those of the uninterrupted run with the same settings."""
    from nchl.app.campaign import EVALUATION
    from nchl.app.evolution import evaluate_genome
    from nchl.core.genome import Genome

    (tmp_path / "c.toml").write_text(
        '[campaign]\ntasks = ["vsr-low"]\nrules = ["nchl"]\nseeds = [1]\n'
        f"[evolve]\ngenerations = {GENERATIONS}\npopsize = 6\nvalidation_every = 2\nvalidation_episodes = 2\n"
        "[evaluate]\nepisodes = 2\n")
    p = start("campaign", "c.toml", "--out", "c", "--workers", "2", cwd=tmp_path)
    cell = tmp_path / "c" / "vsr-low-nchl-s1"
    wait_for_generations(cell / "log.jsonl", 2, p)
    interrupt(p, signal.SIGKILL)
    assert not (cell / EVALUATION).exists()
    r = nchl("campaign", "c.toml", "--out", "c", "--workers", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert_same_run(uninterrupted["nchl"], cell)
    best = Genome.load(cell / "best.npz")
    expected = evaluate_genome(best.spec, best.values, "vsr-low", 2, workers=2, log=lambda m: None)
    evaluation = json.loads((cell / EVALUATION).read_text())
    assert {k: evaluation[k] for k in expected} == json.loads(json.dumps(expected))


def test_resume_is_identical_with_domain_randomization(tmp_path):
    """Robust evolution draws every episode's perturbations from its seed: a resumed run is the same run."""
    robust = ["--task", "ant", "--layers", "27,6,8", "--popsize", "6", "--workers", "2", "--seed", "2",
              "--validation-every", "2", "--validation-episodes", "1", "--randomize-p", "0.7",
              "--randomize", "latency=0:5,obs-noise=0:0.05,dead-motor=0:1,leg-damage=0:0.5,mass=0:0.2,push=0:1"]
    assert nchl("evolve", *robust, "--generations", "2", "--out", "u", cwd=tmp_path).returncode == 0
    assert nchl("evolve", *robust, "--generations", "1", "--out", "r", cwd=tmp_path).returncode == 0
    r = nchl("evolve", "--resume", "r", "--generations", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    log_u, best_u = results(tmp_path / "u")
    log_r, best_r = results(tmp_path / "r")
    assert log_u == log_r and best_u == best_r and len(log_u) == 2
    intact = nchl("evolve", *robust[:-4], "--generations", "1", "--out", "i", cwd=tmp_path)
    assert intact.returncode == 0
    assert results(tmp_path / "i")[0][0]["best"] != log_u[0]["best"]  # the randomization did act
