"""Evolution as a user drives it: the evolve, evaluate and plot commands, Ctrl-C, fine-tuning from a genome."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from evolving import SMALL, evolve, log_of, nchl_cmd

from nchl import Genome, Spec
from nchl.core.errors import NchlError
from nchl.app.evolution import CHECKPOINT, EvolveConfig, Run, read_checkpoint


@pytest.fixture(scope="module")
def nchl_champion(tmp_path_factory):
    """An NcHL genome file for SMALL's task, built in place (random values): evolving one costs seconds."""
    spec = Spec("nchl", SMALL["layers"])
    values = np.random.default_rng(0).uniform(-1, 1, spec.genome_length)
    return Genome(spec, values, task=SMALL["task"]).save(tmp_path_factory.mktemp("source") / "best.npz")


def test_toml_config_and_cli_errors(tmp_path):
    (tmp_path / "ok.toml").write_text('task = "vsr-low"\nlayers = [12, 4, 10]\ngenerations = 1\npopsize = 4\n'
                                      'validation_episodes = 1\nworkers = 1\nout = "run"\n')
    r = nchl_cmd("evolve", "--config", "ok.toml", "--seed", "3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["settings"]["seed"] == 3
    (tmp_path / "bad.toml").write_text('task = "vsr-low"\nspeed = 3\n')
    r = nchl_cmd("evolve", "--config", "bad.toml", "--out", "x", cwd=tmp_path)
    assert r.returncode == 2 and "unknown keys ['speed']" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "broken.toml").write_text('task = \n')
    r = nchl_cmd("evolve", "--config", "broken.toml", "--out", "x", cwd=tmp_path)
    assert r.returncode == 2 and "not valid TOML" in r.stderr
    r = nchl_cmd("evolve", "--resume", "run", "--sigma", "0.5", cwd=tmp_path)
    assert r.returncode == 2 and "only --generations, --workers and --scheduler" in r.stderr


def test_ctrl_c_checkpoints_and_resumes(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "nchl.app.cli", "evolve", "--task", "vsr-low", "--layers", "12,4,10",
                          "--popsize", "4", "--generations", "1000", "--validation-episodes", "1", "--workers", "1",
                          "--out", "run"],
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         # as from a terminal: CI may start us with SIGINT ignored, and children inherit that
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline:
        log = tmp_path / "run" / "log.jsonl"
        if log.exists() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "nchl evolve --resume run" in err
    done = read_checkpoint(tmp_path / "run" / CHECKPOINT)["generation"]
    assert done >= 2
    r = nchl_cmd("evolve", "--resume", "run", "--generations", str(done + 1), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == done + 1


def test_ctrl_c_swallowed_by_a_library_still_stops_the_run(tmp_path, monkeypatch):
    """pycma has bare excepts: a Ctrl-C landing in one must still stop the run at the next generation."""
    import os

    from nchl.app.optimizers import PyCMA

    real_tell = PyCMA.tell

    def tell_that_swallows(self, candidates, fitness):
        real_tell(self, candidates, fitness)
        try:
            os.kill(os.getpid(), signal.SIGINT)  # the handler raises here ...
            time.sleep(1)
        except BaseException:  # ... and a careless library catches it
            pass

    monkeypatch.setattr(PyCMA, "tell", tell_that_swallows)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (CI may ignore SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt):
            evolve(tmp_path, "r", generations=5)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the run restored it
    finally:
        signal.signal(signal.SIGINT, previous)
    assert read_checkpoint(tmp_path / "r" / CHECKPOINT)["generation"] == 1


def test_ctrl_c_while_a_generation_is_saved_keeps_that_generation(tmp_path, monkeypatch):
    """Ctrl-C between a generation's log line and its checkpoint stops the run after the checkpoint:
    a finished generation is never thrown away, and log and checkpoint agree."""
    import os

    import nchl.app.evolution as evolution

    real_write = evolution.write_checkpoint

    def write_after_ctrl_c(path, state):
        if state["generation"] == 2:
            os.kill(os.getpid(), signal.SIGINT)
        real_write(path, state)

    monkeypatch.setattr(evolution, "write_checkpoint", write_after_ctrl_c)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (CI may ignore SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt):
            evolve(tmp_path, "r", generations=5, popsize=4, validation_episodes=0)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert read_checkpoint(tmp_path / "r" / CHECKPOINT)["generation"] == 2
    assert len(log_of(tmp_path / "r")) == 2


def test_evaluate_json_trace_and_redeploy(tmp_path, nchl_champion):
    r = nchl_cmd("evaluate", str(nchl_champion), "--episodes", "3", "--json", "--trace", "t.npz",
                 "--workers", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    assert {"mean", "std", "median", "min", "max", "forward_fraction", "per_episode"} <= set(stats)
    assert stats["episodes"] == 3 and stats["held_out"] and stats["seeds"] == [0, 2]
    f = np.array([e["fitness"] for e in stats["per_episode"]])
    assert [e["seed"] for e in stats["per_episode"]] == [0, 1, 2]
    assert stats["median"] == pytest.approx(np.median(f)) and stats["forward_fraction"] == pytest.approx((f > 0).mean())
    with np.load(tmp_path / "t.npz") as t:
        assert t["obs"].shape == (1000, 12) and t["actions"].shape == (1000, 10)
    r = nchl_cmd("evaluate", str(nchl_champion), "--episodes", "2", "--rule", "wnchl", "--window", "5",
                 "--json", "--workers", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["window"] == 5


@pytest.mark.parametrize("args, match", [
    (["--episodes", "0"], "episodes must be an integer >= 1, got 0"),
    (["--episodes", "-3"], "episodes must be an integer >= 1"),
    (["--seed", "-1"], "seed must be in"),
    (["--workers", "0"], "workers must be an integer >= 1"),
])
def test_evaluate_bad_counts_are_clear_errors(tmp_path, nchl_champion, args, match):
    r = nchl_cmd("evaluate", str(nchl_champion), *args, cwd=tmp_path)
    assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr


def test_plot_groups_runs_by_rule(tmp_path):
    cheap = dict(generations=2, popsize=4, validation_episodes=1)  # a plot needs logs, not good runs
    a, _ = evolve(tmp_path, "a", **cheap)
    b, _ = evolve(tmp_path, "b", **cheap, seed=1)
    r = nchl_cmd("plot", str(a), str(b), "-o", "f.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "vsr-low: nchl" in r.stdout and "2 runs" in r.stdout
    from nchl.app.plots import plot_runs

    c, _ = evolve(tmp_path, "c", **cheap, action_rate_cost=0.1)  # trains on another fitness: own group
    summary = plot_runs([str(a), str(b), str(c)], str(tmp_path / "g.png"))
    finals = [json.loads((d / "log.jsonl").read_text().splitlines()[-1])["best_validation"] for d in (a, b)]
    assert summary["vsr-low: nchl"]["final_validation"] == finals
    assert summary["vsr-low: nchl, rate cost 0.1"]["runs"] == 1
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_start_from_a_genome_fine_tunes_it_and_resumes_without_it(tmp_path, nchl_champion):
    """The ES mean starts at the given genome (NcHL may start WNcHL); the run records its digest, and a
    resumed run needs the checkpoint only, not the genome file."""
    start = tmp_path / "start.npz"
    start.write_bytes(nchl_champion.read_bytes())
    genome = Genome.load(start)
    tuned = dict(rule="wnchl", window=2, start_from=str(start), sigma=0.02, seed=5, generations=2, popsize=4)
    run = Run(tmp_path / "part", EvolveConfig.from_mapping({**SMALL, **tuned, "generations": 1}), log=lambda m: None)
    np.testing.assert_array_equal(run.state["optimizer"].center, genome.values)
    run.run()
    record = json.loads((tmp_path / "part" / "config.json").read_text())
    assert record["genome_init"] == f"start_from {start} (genome sha256 {genome.sha256()})"
    full, _ = evolve(tmp_path, "full", **tuned)
    start.unlink()
    Run(tmp_path / "part", resume=True, generations=2, log=lambda m: None).run()
    assert log_of(tmp_path / "part") == log_of(full)
    scratch, _ = evolve(tmp_path, "scratch", **{**tuned, "start_from": None})
    assert log_of(scratch) != log_of(full)


@pytest.mark.parametrize("settings, match", [
    ({"rule": "hl"}, "a nchl genome can only run as nchl or as nchl/wnchl; this run is hl"),
    ({"layers": (12, 5, 10)}, r"layers \[12,4,10\] differ from this run's \[12,5,10\]"),
    ({"start_from": "missing.npz"}, "missing.npz: no such file"),
    ({"start_from": ""}, "start_from must be a genome file or zoo:NAME"),
])
def test_start_from_must_fit_the_run(tmp_path, nchl_champion, settings, match):
    with pytest.raises(NchlError, match=match):
        Run(tmp_path / "new", EvolveConfig.from_mapping({**SMALL, "start_from": str(nchl_champion), **settings}))
    assert not (tmp_path / "new").exists()
