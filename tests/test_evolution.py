"""Evolution: small end-to-end runs, determinism, resume, faults, validation, config errors, optimizers."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from evolving import SMALL, evolve, log_of

from nchl import Genome, Spec
from nchl.core.errors import NchlError
from nchl.app.evolution import CHECKPOINT, EvolveConfig, Run, read_checkpoint
from nchl.app.optimizers import OpenAIES, PyCMA, centered_ranks, resolve
from nchl.app.workers import Outcome


@pytest.mark.parametrize("rule, extra", [("hl", {}), ("nchl", {}), ("wnchl", {"window": 5}), ("static", {})])
def test_small_run_per_rule(tmp_path, small_run, rule, extra):
    run_dir, logs = small_run if rule == "nchl" else evolve(tmp_path, rule, rule=rule, **extra)  # SMALL is NcHL
    log = log_of(run_dir)
    assert [e["generation"] for e in log] == [1, 2, 3]
    assert all(e["evaluations"] == SMALL["popsize"] * e["generation"] for e in log)
    assert log[-1]["best_ever"] == max(e["best"] for e in log)
    # validated at the last generation only (every 5 by default): top 3 and the ES mean
    assert [e["validation_mean"] is None for e in log] == [True, True, False]
    assert log[-1]["validation_of"] in ("rank 1", "rank 2", "rank 3", "mean")
    best = Genome.load(run_dir / "best.npz")
    assert best.spec.rule == rule and best.task == "vsr-low" and best.fitness == log[-1]["best_validation"]
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["optimizer"] == "cma" and {"numpy", "cma", "mujoco", "cpu"} <= set(cfg["versions"])
    if Path("/proc/cpuinfo").is_file():  # the model this run computed on, and its SIMD features
        model = next(line.partition(":")[2].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
        assert cfg["versions"]["cpu"].startswith(model + " (")
    assert any("gen    3/3" in m and "ETA" in m for m in logs)


def test_same_seed_same_log_regardless_of_workers_and_backend(tmp_path, small_run):
    a, _ = small_run  # seed 0, one worker, the generated C
    b, _ = evolve(tmp_path, "b", workers=2)
    p, _ = evolve(tmp_path, "p", backend="python")  # the reference gives the very same fitness
    c, _ = evolve(tmp_path, "c", seed=1, generations=1, validation_episodes=0)
    assert log_of(a) == log_of(b) == log_of(p)
    assert log_of(a)[0]["best"] != log_of(c)[0]["best"]  # another seed, other candidates
    np.testing.assert_array_equal(Genome.load(a / "best.npz").values, Genome.load(b / "best.npz").values)


@pytest.mark.parametrize("optimizer", ["cma", "openai-es"])
def test_resume_equals_uninterrupted(tmp_path, optimizer):
    ant = dict(optimizer=optimizer, task="ant", layers=(27, 3, 8), popsize=6, episodes=2, validation_every=1,
               validation_top=1)
    full, _ = evolve(tmp_path, "full", generations=4, **ant)
    part, _ = evolve(tmp_path, "part", generations=2, **ant)
    # a crash after the log line of generation 3 but before its checkpoint
    with open(part / "log.jsonl", "a") as f:
        f.write(json.dumps({"generation": 3, "stale": True}) + "\n")
    Run(part, resume=True, generations=4, log=lambda m: None).run()
    assert log_of(part) == log_of(full)
    np.testing.assert_array_equal(Genome.load(part / "best.npz").values, Genome.load(full / "best.npz").values)


@pytest.mark.parametrize("evaluator", ["faults:raise_first_attempt", "faults:die_first_attempt"])
def test_faults_are_retried_and_change_nothing(tmp_path, small_run, evaluator):
    clean, _ = small_run
    faulty, logs = evolve(tmp_path, "faulty", workers=2, evaluator=evaluator)
    assert any("failed (attempt 1)" in m for m in logs)
    assert log_of(faulty) == log_of(clean)


def test_permanent_failures_score_worst_and_the_run_goes_on(tmp_path):
    run_dir, logs = evolve(tmp_path, "f", evaluator="faults:always_raise_some", workers=2)
    log = log_of(run_dir)
    assert len(log) == 3 and sum(e["failures"] for e in log) > 0
    assert any("failed (attempt 2)" in m and "injected permanent fault" in m for m in logs)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, small_run):
    run_dir = shutil.copytree(small_run[0], tmp_path / "c")
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


def test_layers_must_fit_the_task_and_out_must_be_new(tmp_path, small_run):
    with pytest.raises(NchlError, match="do not fit task"):
        Run(tmp_path / "x", EvolveConfig.from_mapping({**SMALL, "layers": (5, 3, 10)}))
    with pytest.raises(NchlError, match="unknown task"):
        Run(tmp_path / "y", EvolveConfig.from_mapping({**SMALL, "task": "walker"}))
    run_dir = shutil.copytree(small_run[0], tmp_path / "z")
    with pytest.raises(NchlError, match="already holds a run"):
        Run(run_dir, EvolveConfig.from_mapping(SMALL))


def test_seed_ranges_are_disjoint():
    from nchl.app.seeds import EVALUATION, TRAINING, VALIDATION, evaluation_seeds, training_seeds, validation_seeds

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
    from nchl.app import evolution

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

    from nchl.app.evolution import load_toml

    configs = sorted((Path(__file__).parent.parent / "experiments").rglob("*.toml"))
    runs = [(path, load_toml(path)) for path in configs]
    runs = [(path, values) for path, values in runs if "campaign" not in values]  # campaigns: test_campaign.py
    assert len(runs) >= 30
    for path, values in runs:
        values.pop("out")
        EvolveConfig.from_mapping(values, str(path)).spec()


def test_action_rate_cost_scores_distance_less_action_travel():
    from nchl.app.evolution import Episodes, action_travel, evaluate_candidate

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


