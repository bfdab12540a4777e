"""Evolution: small end-to-end runs, determinism, resume, faults, config errors, evaluate, plot."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nchl import Genome, Spec
from nchl.errors import NchlError
from nchl.evolution import CHECKPOINT, EvolveConfig, Run, read_checkpoint
from nchl.optimizers import OpenAIES, PyCMA, centered_ranks, resolve
from nchl.workers import Outcome

DETERMINISTIC = ("generation", "best", "mean", "std", "best_ever", "validation_mean", "validation_std",
                 "validation_of", "best_validation", "sigma", "evaluations", "env_steps", "failures")
SMALL = dict(task="vsr-low", layers=(12, 4, 10), generations=3, popsize=6, workers=1, validation_episodes=2)


@pytest.fixture(scope="module")
def nchl_champion(tmp_path_factory):
    """An NcHL genome file for SMALL's task, built in place (random values): evolving one costs seconds."""
    spec = Spec("nchl", SMALL["layers"])
    values = np.random.default_rng(0).uniform(-1, 1, spec.genome_length)
    return Genome(spec, values, task=SMALL["task"]).save(tmp_path_factory.mktemp("source") / "best.npz")


def log_of(run_dir):
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    return [{k: json.loads(line)[k] for k in DETERMINISTIC} for line in lines]


def evolve(tmp_path, name, quiet=True, evaluator="nchl.evolution:evaluate_candidate", **settings):
    cfg = EvolveConfig.from_mapping({**SMALL, **settings})
    logs = []
    Run(tmp_path / name, cfg, log=logs.append, evaluator=evaluator).run()
    return tmp_path / name, logs


@pytest.mark.parametrize("rule, extra", [("hl", {}), ("nchl", {}), ("wnchl", {"window": 5}), ("static", {})])
def test_small_run_per_rule(tmp_path, rule, extra):
    run_dir, logs = evolve(tmp_path, rule, rule=rule, **extra)
    log = log_of(run_dir)
    assert [e["generation"] for e in log] == [1, 2, 3]
    assert all(e["evaluations"] == 6 * e["generation"] for e in log)
    assert log[-1]["best_ever"] == max(e["best"] for e in log)
    # validated at the last generation only (every 5 by default): top 3 and the ES mean on 2 episodes
    assert [e["validation_mean"] is None for e in log] == [True, True, False]
    assert log[-1]["validation_of"] in ("rank 1", "rank 2", "rank 3", "mean")
    best = Genome.load(run_dir / "best.npz")
    assert best.spec.rule == rule and best.task == "vsr-low" and best.fitness == log[-1]["best_validation"]
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["optimizer"] == "cma" and {"numpy", "cma", "mujoco"} <= set(cfg["versions"])
    assert any("gen    3/3" in m and "ETA" in m for m in logs)


def test_same_seed_same_log_regardless_of_workers_and_backend(tmp_path):
    a, _ = evolve(tmp_path, "a", seed=7)
    b, _ = evolve(tmp_path, "b", seed=7, workers=2)
    p, _ = evolve(tmp_path, "p", seed=7, backend="python")  # the reference gives the very same fitness
    c, _ = evolve(tmp_path, "c", seed=8)
    assert log_of(a) == log_of(b) == log_of(p)
    assert log_of(a) != log_of(c)
    np.testing.assert_array_equal(Genome.load(a / "best.npz").values, Genome.load(b / "best.npz").values)


@pytest.mark.parametrize("optimizer", ["cma", "openai-es"])
def test_resume_equals_uninterrupted(tmp_path, optimizer):
    ant = dict(optimizer=optimizer, task="ant", layers=(27, 3, 8), episodes=2, validation_every=1, validation_top=1)
    full, _ = evolve(tmp_path, "full", generations=4, **ant)
    part, _ = evolve(tmp_path, "part", generations=2, **ant)
    # a crash after the log line of generation 3 but before its checkpoint
    with open(part / "log.jsonl", "a") as f:
        f.write(json.dumps({"generation": 3, "stale": True}) + "\n")
    Run(part, resume=True, generations=4, log=lambda m: None).run()
    assert log_of(part) == log_of(full)
    np.testing.assert_array_equal(Genome.load(part / "best.npz").values, Genome.load(full / "best.npz").values)


@pytest.mark.parametrize("evaluator", ["faults:raise_first_attempt", "faults:die_first_attempt"])
def test_faults_are_retried_and_change_nothing(tmp_path, evaluator):
    clean, _ = evolve(tmp_path, "clean", workers=2)
    faulty, logs = evolve(tmp_path, "faulty", workers=2, evaluator=evaluator)
    assert any("failed (attempt 1)" in m for m in logs)
    assert log_of(faulty) == log_of(clean)


def test_permanent_failures_score_worst_and_the_run_goes_on(tmp_path):
    run_dir, logs = evolve(tmp_path, "f", evaluator="faults:always_raise_some", workers=2)
    log = log_of(run_dir)
    assert len(log) == 3 and sum(e["failures"] for e in log) > 0
    assert any("failed (attempt 2)" in m and "injected permanent fault" in m for m in logs)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    run_dir, _ = evolve(tmp_path, "c", generations=1)
    data = bytearray((run_dir / CHECKPOINT).read_bytes())
    data[-10] ^= 0xFF
    (run_dir / CHECKPOINT).write_bytes(bytes(data))
    with pytest.raises(NchlError, match="corrupt or truncated"):
        Run(run_dir, resume=True)
    (run_dir / CHECKPOINT).write_bytes(b"garbage")
    with pytest.raises(NchlError, match="bad header"):
        read_checkpoint(run_dir / CHECKPOINT)


@pytest.mark.parametrize("settings, match", [
    ({"colour": 1}, r"unknown keys \['colour'\]"),
    ({"generations": 0}, "generations must be an integer >= 1"),
    ({"sigma": -1.0}, "sigma must be a number > 0"),
    ({"rule": "abc"}, "rule must be one of"),
    ({"episodes": 1.5}, "episodes must be an integer"),
    ({"early_stop": "yes"}, "early_stop must be true or false"),
    ({"validation_every": 0}, "validation_every must be an integer >= 1"),
    ({"validation_episodes": -1}, "validation_episodes must be an integer >= 0"),
])
def test_config_validation(settings, match):
    with pytest.raises(NchlError, match=match):
        EvolveConfig.from_mapping({**SMALL, **settings}, "x.toml")


def test_layers_must_fit_the_task_and_out_must_be_new(tmp_path):
    with pytest.raises(NchlError, match="do not fit task"):
        Run(tmp_path / "x", EvolveConfig.from_mapping({**SMALL, "layers": (5, 3, 10)}))
    with pytest.raises(NchlError, match="unknown task"):
        Run(tmp_path / "y", EvolveConfig.from_mapping({**SMALL, "task": "walker"}))
    run_dir, _ = evolve(tmp_path, "z", generations=1)
    with pytest.raises(NchlError, match="already holds a run"):
        Run(run_dir, EvolveConfig.from_mapping(SMALL))


def nchl_cmd(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nchl.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_toml_config_and_cli_errors(tmp_path):
    (tmp_path / "ok.toml").write_text('task = "vsr-low"\nlayers = [12, 4, 10]\ngenerations = 1\npopsize = 4\n'
                                      'workers = 1\nout = "run"\n')
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
    p = subprocess.Popen([sys.executable, "-m", "nchl.cli", "evolve", "--task", "vsr-low", "--layers", "12,4,10",
                          "--popsize", "4", "--generations", "1000", "--workers", "1", "--out", "run"],
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

    from nchl.optimizers import PyCMA

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


def test_evaluate_json_trace_and_redeploy(tmp_path):
    run_dir, _ = evolve(tmp_path, "e", generations=1)
    r = nchl_cmd("evaluate", str(run_dir / "best.npz"), "--episodes", "3", "--json", "--trace", "t.npz",
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
    r = nchl_cmd("evaluate", str(run_dir / "best.npz"), "--episodes", "2", "--rule", "wnchl", "--window", "5",
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


def test_seed_ranges_are_disjoint():
    from nchl.seeds import EVALUATION, TRAINING, VALIDATION, evaluation_seeds, training_seeds, validation_seeds

    assert EVALUATION.stop == VALIDATION.start and VALIDATION.stop == TRAINING.start and TRAINING.stop == 2**32
    train = {s for seed in range(3) for g in range(200) for s in training_seeds(seed, g, 3)}
    val = set(validation_seeds(0, 100))
    assert len(val) == 100 and all(s in VALIDATION for s in val)
    assert all(s in TRAINING for s in train) and not (train & val)
    assert validation_seeds(0, 10) == validation_seeds(0, 10) != validation_seeds(1, 10)
    assert all(s in EVALUATION for s in evaluation_seeds(5000, 100))


def test_without_validation_the_champion_is_the_best_training_episode(tmp_path):
    run_dir, _ = evolve(tmp_path, "nv", validation_episodes=0)
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert all(e["validation_mean"] is None and e["best_validation"] is None for e in log)
    assert Genome.load(run_dir / "best.npz").fitness == log[-1]["best_ever"]


def test_validation_uses_its_own_seeds_and_picks_the_best_mean(tmp_path, monkeypatch):
    """The validated genomes run on the validation seeds only, and best.npz is the best mean."""
    from nchl import evolution

    seen = []
    real = evolution.evaluate_candidate

    def spy(payload, attempt):
        seen.append(list(payload[3]))
        return real(payload, attempt)

    monkeypatch.setattr(evolution.WorkerPool, "map",
                        lambda self, jobs: [Outcome(True, spy(j, 1)) for j in jobs])
    run_dir, _ = evolve(tmp_path, "v", task="ant", layers=(27, 3, 8), validation_every=1, validation_top=2,
                        validation_episodes=3, generations=2)
    cfg = json.loads((run_dir / "config.json").read_text())
    val = set(cfg["validation_seeds"])
    assert len(val) == 3
    train = [s for seeds in seen for s in seeds if s not in val]
    assert train and all(s >= 2**21 for s in train)
    assert sum(1 for seeds in seen if set(seeds) <= val) == 2 * 3 * 3  # 2 gens x (top 2 + mean) x 3 episodes
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert Genome.load(run_dir / "best.npz").fitness == max(e["validation_mean"] for e in log)


def test_plot_groups_runs_by_rule(tmp_path):
    a, _ = evolve(tmp_path, "a", generations=2)
    b, _ = evolve(tmp_path, "b", generations=2, seed=1)
    r = nchl_cmd("plot", str(a), str(b), "-o", "f.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "vsr-low: nchl" in r.stdout and "2 runs" in r.stdout
    from nchl.plots import plot_runs

    c, _ = evolve(tmp_path, "c", generations=2, action_rate_cost=0.1)  # trains on another fitness: own group
    summary = plot_runs([str(a), str(b), str(c)], str(tmp_path / "g.png"))
    finals = [json.loads((d / "log.jsonl").read_text().splitlines()[-1])["best_validation"] for d in (a, b)]
    assert summary["vsr-low: nchl"]["final_validation"] == finals
    assert summary["vsr-low: nchl, rate cost 0.1"]["runs"] == 1
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def sphere(x):
    return -np.sum((x - 0.5) ** 2, axis=-1)


@pytest.mark.parametrize("make", [
    lambda x0: PyCMA(x0, 0.3, 10, seed=0, diagonal=False),
    lambda x0: PyCMA(x0, 0.3, 10, seed=0, diagonal=True),
    lambda x0: OpenAIES(x0, 0.1, 20, seed=0),
])
def test_optimizers_climb_a_sphere(make):
    x0 = np.zeros(20)
    opt = make(x0)
    for _ in range(60):
        xs = opt.ask()
        opt.tell(xs, sphere(xs))
    xs = opt.ask()
    assert sphere(xs).mean() > 0.5 * sphere(x0)


def test_optimizer_choice_and_shaping():
    assert resolve("auto", 1_100) == "cma" and resolve("auto", 60_800) == "sep-cma"
    with pytest.raises(NchlError, match="unknown optimizer"):
        resolve("adam", 10)
    np.testing.assert_allclose(centered_ranks(np.array([3.0, -1.0, 10.0])), [0.0, -0.5, 0.5])


def test_experiment_configs_are_valid():
    from pathlib import Path

    from nchl.evolution import load_toml

    configs = sorted((Path(__file__).parent.parent / "experiments").rglob("*.toml"))
    runs = [(path, load_toml(path)) for path in configs]
    runs = [(path, values) for path, values in runs if "campaign" not in values]  # campaigns: test_campaign.py
    assert len(runs) >= 30
    for path, values in runs:
        values.pop("out")
        EvolveConfig.from_mapping(values, str(path)).spec()


def test_action_rate_cost_scores_distance_less_action_travel():
    from nchl.evolution import Episodes, action_travel, evaluate_candidate

    assert action_travel(np.array([[1.0, -1.0], [-1.0, -1.0], [-1.0, 1.0]])) == pytest.approx(1.0 + 1.0 + 1.0)
    spec = Spec("nchl", (12, 4, 10))
    genome = np.random.default_rng(0).uniform(-1, 1, spec.genome_length)
    plain = evaluate_candidate((Episodes("vsr-low"), spec, genome, [5, 6]), 0)
    smooth = evaluate_candidate((Episodes("vsr-low", action_rate_cost=0.01), spec, genome, [5, 6]), 0)
    for p, e in zip(plain["episodes"], smooth["episodes"]):
        assert e["distance"] == p["fitness"] and e["action_travel"] > 0
        assert e["fitness"] == pytest.approx(p["fitness"] - 0.01 * e["action_travel"])
    assert smooth["fitness"] < plain["fitness"]
    with pytest.raises(NchlError, match="action_rate_cost must be a number >= 0"):
        EvolveConfig.from_mapping({**SMALL, "action_rate_cost": -1})


def test_start_from_a_genome_fine_tunes_it_and_resumes_without_it(tmp_path, nchl_champion):
    """The ES mean starts at the given genome (NcHL may start WNcHL); the run records its digest, and a
    resumed run needs the checkpoint only, not the genome file."""
    start = tmp_path / "start.npz"
    start.write_bytes(nchl_champion.read_bytes())
    genome = Genome.load(start)
    tuned = dict(rule="wnchl", window=2, start_from=str(start), sigma=0.02, seed=5, generations=2)
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
