"""Campaigns: grid expansion, names, skip/resume, parallel runs, errors; the report on a tiny campaign."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from nchl.app.campaign import Campaign, Cell, cell_state, load_campaign, run_campaign, time_left
from nchl.core.errors import NchlError
from nchl.app.evolution import Run
from nchl.app.report import _robustness, _training_effect, _training_labels, best_champion_tests, holm, pairwise_tests

TINY = """
[campaign]
tasks = ["vsr-low"]
rules = ["nchl", "wnchl"]
windows = [2]
seeds = [0, 1]
[evolve]
generations = 2
popsize = 4
layers = [12, 4, 10]
validation_episodes = 1
[evaluate]
episodes = 2
"""


def logs(out):
    keep = ("generation", "best", "mean", "best_ever", "validation_mean", "evaluations")
    return {d.name: [{k: json.loads(line)[k] for k in keep} for line in (d / "log.jsonl").read_text().splitlines()]
            for d in sorted(out.iterdir()) if (d / "log.jsonl").exists()}


def test_grid_expansion_and_names():
    c = Campaign.from_mapping({"campaign": {"tasks": ["vsr-low", "vsr-high"], "rules": ["hl", "nchl", "wnchl"],
                                            "windows": [2, 5], "seeds": [0, 1]}, "evolve": {"generations": 3}})
    names = [cell.name for cell in c.cells()]
    assert len(names) == 2 * (1 + 1 + 2) * 2 == len(set(names))
    assert names[:6] == ["vsr-low-hl-s0", "vsr-low-hl-s1", "vsr-low-nchl-s0", "vsr-low-nchl-s1",
                         "vsr-low-wnchl-m2-s0", "vsr-low-wnchl-m2-s1"]
    assert c.config(c.cells()[4]).window == 2 and c.episodes == 100
    assert Campaign.from_mapping({"campaign": {"tasks": ["ant"], "rules": ["hl"], "seeds": [3]}}).windows == ()


@pytest.mark.parametrize("values, match", [
    ({"campaign": {"tasks": ["vsr-low"], "rules": ["nchl"], "seeds": [0], "colour": 1}}, r"unknown keys \['colour'\]"),
    ({"campaign": {"tasks": ["vsr-low"], "rules": ["nchl"], "seeds": [0]}, "evolve": {"speed": 3}}, "unknown keys"),
    ({"campaign": {"tasks": ["vsr-low"], "rules": ["nchl"], "seeds": [0]}, "extra": {}}, r"unknown tables \['extra'\]"),
    ({"campaign": {"tasks": ["vsr-low"], "rules": ["nchl"], "seeds": [0]}, "evolve": {"task": "ant"}}, "cannot set"),
    ({"campaign": {"tasks": ["vsr-low"], "rules": ["abc"], "seeds": [0]}}, "unknown rules"),
    ({"campaign": {"tasks": ["walker"], "rules": ["nchl"], "seeds": [0]}}, "unknown task 'walker'"),
    ({"campaign": {"tasks": ["vsr-low"], "rules": ["nchl"]}}, "needs seeds"),
    ({"campaign": {"tasks": ["vsr-low"], "rules": ["nchl"], "seeds": [0, 0]}}, "repeats"),
    ({"campaign": {"tasks": ["vsr-low"], "rules": ["wnchl"], "seeds": [0], "windows": [0]}}, "window m >= 1"),
    ({"campaign": {"tasks": ["vsr-low"], "rules": ["nchl"], "seeds": [0]}, "evaluate": {"episodes": 0}}, "episodes"),
    ({"campaign": {"tasks": ["vsr-low"], "rules": ["static"], "seeds": [0]}, "evaluate": {"stress": ["gravity"]}},
     "stress on vsr-low: unknown condition 'gravity'"),
    ({"campaign": {"tasks": ["vsr-low"], "rules": ["nchl"], "seeds": [0]}, "evaluate": {"stress": ["leg-damage"]}},
     "leg-damage applies to a task with feet"),
    ({"campaign": {"tasks": ["ant"], "rules": ["nchl"], "seeds": [0]}, "evaluate": {"stress": "all"}},
     "stress must be a list"),
])
def test_campaign_errors_are_clear(values, match):
    with pytest.raises(NchlError, match=match):
        Campaign.from_mapping(values, "c.toml")


def test_skip_resume_equals_uninterrupted_and_parallel(tmp_path, monkeypatch):
    (tmp_path / "c.toml").write_text(TINY.replace("seeds = [0, 1]", "seeds = [0]"))  # nchl-s0, wnchl-m2-s0
    quiet = dict(log=lambda m: None)
    full = run_campaign(tmp_path / "c.toml", tmp_path / "full", workers=1, **quiet)
    assert full == {"out": str(tmp_path / "full"), "runs": 2, "ran": 2}
    assert run_campaign(tmp_path / "c.toml", tmp_path / "full", workers=1, **quiet)["ran"] == 0
    # an interrupted campaign: one run stopped after its first generation, the others not started
    campaign = load_campaign(tmp_path / "c.toml")
    part = tmp_path / "part"
    part.mkdir()  # the campaign's manifest written, as a campaign does before its first run ...
    shutil.copy(tmp_path / "full" / "campaign.json", part)
    cell = campaign.cells()[1]  # ... then its second run stopped after one generation, the first not started

    def ctrl_c_after_first_generation(message):
        if message.startswith("gen    1/"):  # logged after generation 1's checkpoint
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Run(part / cell.name, campaign.config(cell, where={"workers": 1}), log=ctrl_c_after_first_generation).run()
    assert cell_state(part, cell) == "started"
    assert run_campaign(tmp_path / "c.toml", part, workers=1, **quiet)["ran"] == 2
    assert logs(part) == logs(tmp_path / "full")
    for c in campaign.cells():
        a = json.loads((part / c.name / "evaluation.json").read_text())
        assert a == json.loads((tmp_path / "full" / c.name / "evaluation.json").read_text())
        assert {"mujoco", "cpu"} <= set(a["versions"])  # where the held-out scores were computed
    # cells run in their own processes import the nchl that runs the campaign, not a source tree in
    # the working directory (python -m puts it first on sys.path): here a decoy that cannot import
    (tmp_path / "elsewhere" / "nchl").mkdir(parents=True)
    (tmp_path / "elsewhere" / "nchl" / "__init__.py").write_text("raise ImportError('a stale source tree')\n")
    monkeypatch.chdir(tmp_path / "elsewhere")
    par = run_campaign(tmp_path / "c.toml", tmp_path / "par", workers=1, parallel=2, **quiet)
    assert par["ran"] == 2 and logs(tmp_path / "par") == logs(tmp_path / "full")
    for c in campaign.cells():  # a cell run in its own process records the user's command, not the worker's
        command = json.loads((tmp_path / "par" / c.name / "config.json").read_text())["command"]
        assert command == ["nchl", "campaign", str(tmp_path / "c.toml"), "--out", str(tmp_path / "par")]
    (tmp_path / "other.toml").write_text(TINY.replace("generations = 2", "generations = 3"))
    with pytest.raises(NchlError, match="holds a different campaign"):
        run_campaign(tmp_path / "other.toml", tmp_path / "full", workers=1, **quiet)
    # more seeds, same settings: only the new runs run, the finished ones are kept as they are
    before = logs(tmp_path / "full")
    (tmp_path / "more.toml").write_text(TINY)
    messages = []
    assert run_campaign(tmp_path / "more.toml", tmp_path / "full", workers=1, log=messages.append)["ran"] == 2
    assert any("extended by 2 runs" in m for m in messages)
    after = logs(tmp_path / "full")
    assert sorted(after) == sorted(c.name for c in load_campaign(tmp_path / "more.toml").cells())
    assert {k: after[k] for k in before} == before
    with pytest.raises(NchlError, match="holds a different campaign"):  # a smaller grid would drop runs
        run_campaign(tmp_path / "c.toml", tmp_path / "full", workers=1, **quiet)


def test_time_left_uses_each_tasks_own_run_time():
    left = [Cell("vsr-low", "nchl", None, 2), Cell("ant", "nchl", None, 0), Cell("ant", "hl", None, 0)]
    seconds, unseen = time_left({"vsr-low": [10.0, 30.0, 20.0], "ant": [100.0]}, left, parallel=1)
    assert seconds == 20.0 + 100.0 + 100.0 and unseen == []
    seconds, unseen = time_left({"vsr-low": [10.0, 30.0, 20.0], "ant": []}, left, parallel=2)
    assert seconds == (20.0 + 20.0 + 20.0) / 2 and unseen == ["ant"]


def test_report_on_a_tiny_campaign(tmp_path):
    stressed = TINY.replace("[evaluate]\nepisodes = 2", '[evaluate]\nepisodes = 2\nstress = ["latency", "dead-motor=0.5/1"]\n'
                            "stress_episodes = 1")
    (tmp_path / "c.toml").write_text(stressed)
    r = subprocess.run([sys.executable, "-m", "nchl.app.cli", "campaign", "c.toml", "--out", "c", "--workers", "2"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "4/4 done" in r.stderr and "ETA" in r.stderr
    r = subprocess.run([sys.executable, "-m", "nchl.app.cli", "report", "c", "-o", "rep", "--behaviour-episodes", "1"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "Mann-Whitney U" in md and "Holm" in md and "2 generations, popsize 4, 2 seeds" in md
    assert "M training environment steps" in md and "| wall time per run (min) |" in md
    pngs = sorted(p.name for p in (tmp_path / "rep").glob("*.png"))
    expected = {"fig1.png", "curves-vsr-low.png", "window-sweep-vsr-low.png", "behaviour-vsr-low.png",
                "weights-vsr-low.png", "robustness-vsr-low.png"}
    stress = json.loads((tmp_path / "c" / "vsr-low-nchl-s0" / "stress.json").read_text())
    assert [(c["name"], c["strength"]) for c in stress["conditions"]] == [
        ("latency", 20.0), ("dead-motor", 0.5), ("dead-motor", 1.0)]  # one control step: 20 sub-steps
    assert "### vsr-low: robustness" in md and "| dead-motor=0.5 | nchl | wnchl-m2 |" in md
    assert "Mean distance (m) intact and under each condition" in md and "\n| intact | " in md
    assert len(pngs) >= 3 and expected <= set(pngs)
    assert "WNcHL stores no weights: shown are those its window stands for" in md
    for name in pngs:
        assert (tmp_path / "rep" / name).read_bytes()[:4] == b"\x89PNG" and f"]({name})" in md
    r = subprocess.run([sys.executable, "-m", "nchl.app.cli", "report", "nothing", "-o", "x"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "not a campaign directory" in r.stderr
    check_archive(tmp_path, md)
    # a later campaign at the same budget (one more window) is reported together with the first
    sweep = TINY.replace('rules = ["nchl", "wnchl"]', 'rules = ["wnchl"]').replace("windows = [2]", "windows = [3]")
    (tmp_path / "more.toml").write_text(sweep.replace("seeds = [0, 1]", "seeds = [0]"))
    # a campaign that differs only in what it trains on (randomized) is reported beside the intact one
    rand = stressed.replace('rules = ["nchl", "wnchl"]', 'rules = ["wnchl"]').replace("seeds = [0, 1]", "seeds = [0]")
    rand = rand.replace("validation_episodes = 1", "validation_episodes = 1\nrandomize_p = 0.5\n"
                        "[evolve.randomize]\nlatency = [0, 20]\ndead-motor = [0.0, 1.0]")
    (tmp_path / "rand.toml").write_text(rand)
    for name in ("more", "rand"):
        r = subprocess.run([sys.executable, "-m", "nchl.app.cli", "campaign", f"{name}.toml", "--out", name,
                            "--workers", "1"], cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr

    def report(*dirs):
        return subprocess.run([sys.executable, "-m", "nchl.app.cli", "report", *dirs, "-o", "both",
                               "--behaviour-episodes", "1"], cwd=tmp_path, capture_output=True, text=True)

    # one that ran at another budget: its manifest says so (the report reads no run of it)
    shutil.copytree(tmp_path / "more", tmp_path / "other")
    manifest = json.loads((tmp_path / "other" / "campaign.json").read_text())
    manifest["settings"]["evolve"]["generations"] = 1
    (tmp_path / "other" / "campaign.json").write_text(json.dumps(manifest))
    r = report("c", "more")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "both" / "report.md").read_text()
    rows = [line.split(" | ")[0] for line in md.splitlines() if line.startswith("| nchl |") or
            line.startswith("| wnchl-m")][:3]
    assert rows == ["| nchl", "| wnchl-m2", "| wnchl-m3"] and "5 of 5 runs finished" in md
    r = report("c", "other")
    assert r.returncode == 2 and "ran at another budget" in r.stderr
    r = report("c", "rand")  # trained randomized, otherwise c's budget
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "both" / "report.md").read_text()
    rows = [line.split(" | ")[0] for line in md.splitlines() if line.startswith("| wnchl-m2 (")]
    assert rows[:2] == ["| wnchl-m2 (intact)", "| wnchl-m2 (randomized)"] and "| nchl (intact) |" in md
    assert "window-sweep-vsr-low.png" in md  # one line per training, the same window in both
    assert "### vsr-low: trained randomized against trained intact" in md and "| held-out mean | " in md
    r = report("c", "c")
    assert r.returncode == 2 and "is in both" in r.stderr
    (tmp_path / "more" / "vsr-low-wnchl-m3-s0" / "log.jsonl").write_text("")
    r = report("c", "more")
    assert r.returncode == 2 and "log.jsonl is unreadable" in r.stderr and "Traceback" not in r.stderr


def test_shipped_campaign_files_are_valid():
    from pathlib import Path

    root = Path(__file__).parent.parent / "experiments"
    paper, small = load_campaign(root / "paper.toml"), load_campaign(root / "paper-small.toml")
    assert len(paper.cells()) == 5 * (1 + 1 + 6) * 10 and len(small.cells()) == 5 * 4 * 5
    assert small.cells()[0].task.startswith("vsr")  # the VSR part runs first
    ablations = sorted((root / "ablation").glob("*.toml"))
    assert ablations and all(load_campaign(p).cells() for p in ablations)
    # an ablation is reported beside paper-small, so it keeps paper-small's budget or says what it changes
    for p in ablations:
        a = load_campaign(p)
        changed = {k for k in a.evolve.keys() | small.evolve.keys() if a.evolve.get(k) != small.evolve.get(k)}
        assert a.episodes == small.episodes and changed <= {"clip"}, (p.name, changed)


def test_robustness_shares_count_only_champions_that_walk(tmp_path):
    def run(rule, seed, fitnesses, intact, perturbed, hz):
        forward = sum(f > 0 for f in fitnesses) / len(fitnesses)
        return {"cell": Cell("ant", rule, None, seed), "evaluation": {"forward_fraction": forward},
                "stress": {"episodes": 2, "intact": {"mean": intact, "dominant_frequency_hz": hz}, "conditions": [
                    {"name": "latency", "strength": 5.0, "onset": 0, "mean": perturbed, "retained": perturbed / intact}]}}

    cells = [run("nchl", 0, [30.0, 20.0], 25.0, 12.5, 6.0),  # walks: its share counts
             run("nchl", 1, [0.2, -0.1], 0.05, 0.5, 0.0),    # forward in half its episodes: 1000 % of nothing
             run("hl", 0, [0.1, 0.3], 0.2, 0.1, 2.0),         # always forward, if slowly: counts
             run("static", 0, [9.0, 11.0], 10.0, 2.0, 10.0)]
    md = "\n".join(_robustness("ant", cells, tmp_path, "budget"))
    assert "| latency=5 | 0.50 | 0.50 | 0.20 |" in md  # hl, nchl, static; with nchl-s1 nchl's would read 5.25
    assert "| champions that walk | 1 of 1 | 1 of 2 | 1 of 1 |" in md
    assert "| intact | 0.20 | 12.53 | 10.00 |" in md  # mean distances keep every champion
    # the three walkers' shares fall with their gait's frequency: 0.5 at 2 and 6 Hz, 0.2 at 10 Hz
    assert "| latency=5 | 3 | -0.87 |" in md
    for png in ("robustness-ant.png", "delay-frequency-ant.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_training_effect_compares_each_rule_across_trainings():
    def run(rule, seed, training, mean, perturbed):
        return {"cell": Cell("ant", rule, None, seed), "training": training, "evaluation": {"mean": mean},
                "stress": {"conditions": [{"name": "latency", "strength": 5.0, "onset": 0, "mean": perturbed}]}}

    cells = [run(rule, s, t, base + s + (4.0 if t == "randomized" else 0.0), 1.0 + s + (t == "randomized"))
             for rule, base in (("static", 10.0), ("nchl", 1.0)) for t in ("intact", "randomized") for s in range(3)]
    md = "\n".join(_training_effect("ant", cells))
    assert "### ant: trained randomized against trained intact" in md and "| measure | nchl | static |" in md
    # three seeds apart on both rules: U = 0, exact p = 0.1, Holm over the two rules 0.2
    assert "| held-out mean | 2.00 -> 6.00 (p 0.2) | 11.00 -> 15.00 (p 0.2) |" in md
    assert "| latency=5 | 2.00 -> 3.00 (p " in md
    assert _training_effect("ant", [r for r in cells if r["training"] == "intact"]) == []


def test_training_labels_name_campaigns_apart():
    def campaign(**evolve):
        return Campaign.from_mapping({"campaign": {"tasks": ["ant"], "rules": ["nchl"], "seeds": [0]},
                                      "evolve": {"generations": 3, **evolve}})

    intact, rand = campaign(), campaign(randomize={"latency": [0, 5]})
    assert _training_labels([intact, intact], ["a", "b"]) == [None, None]  # one training: no label
    assert _training_labels([intact, rand], ["a", "b"]) == ["intact", "randomized"]
    assert _training_labels([rand, campaign(randomize={"mass": [0.0, 0.2]})], ["a", "b"]) == ["a", "b"]
    assert _training_labels([intact, campaign(action_rate_cost=0.1)], ["a", "b"]) == ["intact", "rate cost 0.1"]
    tuned = campaign(randomize={"latency": [0, 5]}, start_from="zoo:ant-nchl")
    assert _training_labels([rand, tuned], ["a", "b"]) == ["randomized", "randomized, from zoo:ant-nchl"]


def test_holm_and_pairwise_tests():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    rows = pairwise_tests({"a": [1.0, 2.0, 3.0, 4.0, 5.0], "b": [10.0, 11.0, 12.0, 13.0, 14.0], "c": [3.0, 4.0]})
    ab = next(r for r in rows if (r["a"], r["b"]) == ("a", "b"))
    assert ab["U"] == 0.0 and ab["p"] == pytest.approx(0.0079, abs=1e-3) and ab["p_holm"] >= ab["p"]
    assert len(rows) == 3 and np.all([r["p_holm"] <= 1 for r in rows])


def test_best_champion_tests_compare_episode_distributions_of_each_rules_best_run():
    def run(rule, seed, values):
        return {"cell": Cell("ant", rule, None, seed),
                "evaluation": {"mean": float(np.mean(values)), "per_episode": [{"fitness": v} for v in values]}}
    rng = np.random.default_rng(0)
    cells = [run("hl", 0, rng.normal(0, 1, 30)), run("hl", 1, rng.normal(1, 1, 30)),
             run("nchl", 0, rng.normal(5, 1, 30)), run("nchl", 1, rng.normal(-2, 1, 30))]
    best, tests = best_champion_tests(cells)
    assert {v: r["cell"].seed for v, r in best.items()} == {"hl": 1, "nchl": 0}
    assert len(tests) == 1 and tests[0]["p_holm"] < 1e-6
    deterministic = [run("hl", 0, [3.0] * 5), run("nchl", 0, [4.0] * 5)]
    assert best_champion_tests(deterministic)[1] == []


def check_archive(tmp_path, md):
    """The finished tiny campaign ``c``: archived without checkpoints, reported alike, continued."""
    def nchl(*args):
        return subprocess.run([sys.executable, "-m", "nchl.app.cli", *args], cwd=tmp_path, capture_output=True, text=True)

    shutil.copytree(tmp_path / "c", tmp_path / "half")
    (tmp_path / "half" / "vsr-low-nchl-s1" / "evaluation.json").unlink()
    r = nchl("archive", "half", "--out", "arch", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["unfinished"] == ["vsr-low-nchl-s1"] and len(out["copied"]) == 3
    assert not (tmp_path / "arch" / "vsr-low-nchl-s1").exists()
    r = nchl("archive", "c", "--out", "arch", "--json")  # later: the cells finished since are added
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["copied"] == ["vsr-low-nchl-s1"] and len(out["already"]) == 3 and out["unfinished"] == []
    kept = sorted(p.name for p in (tmp_path / "arch" / "vsr-low-nchl-s0").iterdir())
    assert kept == ["best.npz", "config.json", "evaluation.json", "log.jsonl", "stress.json"]
    assert (tmp_path / "c" / "vsr-low-nchl-s0" / "checkpoint.bin").is_file()
    r = nchl("report", "arch", "-o", "rep-arch", "--behaviour-episodes", "1")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "rep-arch" / "report.md").read_text().split("## ")[1:] == md.split("## ")[1:]
    r = nchl("stress", "arch/vsr-low-nchl-s0")  # the stored table, not a rerun
    assert r.returncode == 0 and "dead-motor" in r.stdout and "retained" in r.stdout, r.stderr
    r = nchl("stress", "arch")
    assert r.returncode == 2 and "holds no stress.json" in r.stderr
    r = nchl("campaign", "c.toml", "--out", "arch", "--workers", "1")  # nothing left to run
    assert r.returncode == 0 and "(0 run now)" in r.stdout, r.stderr
    # --rescore scores the finished champions again, evolving nothing: a stale mean is replaced
    scored = tmp_path / "arch" / "vsr-low-nchl-s0" / "evaluation.json"
    original = json.loads(scored.read_text())
    scored.write_text(json.dumps({**original, "mean": 999.0}))
    logs_before = (tmp_path / "arch" / "vsr-low-nchl-s0" / "log.jsonl").read_text()
    r = nchl("campaign", "c.toml", "--out", "arch", "--workers", "1", "--rescore")
    assert r.returncode == 0, r.stderr
    assert "4 champions rescored, 1 changed" in r.stdout and "vsr-low-nchl-s0: 999.0000 -> " in r.stdout
    assert json.loads(scored.read_text()) == original
    assert (tmp_path / "arch" / "vsr-low-nchl-s0" / "log.jsonl").read_text() == logs_before
    r = nchl("archive", "c", "--out", "c")
    assert r.returncode == 2 and "another directory" in r.stderr
    r = nchl("archive", "nothing", "--out", "arch")
    assert r.returncode == 2 and "not a campaign directory" in r.stderr
    shutil.copytree(tmp_path / "c", tmp_path / "other-budget")
    manifest = json.loads((tmp_path / "other-budget" / "campaign.json").read_text())
    manifest["settings"]["episodes"] += 1
    (tmp_path / "other-budget" / "campaign.json").write_text(json.dumps(manifest))
    r = nchl("archive", "other-budget", "--out", "arch")
    assert r.returncode == 2 and "archives another campaign" in r.stderr
    r = nchl("campaign", "c.toml", "--out", "other-budget", "--rescore")
    assert r.returncode == 2 and "rescore it with the campaign file it was run with" in r.stderr
    (tmp_path / "arch" / "vsr-low-nchl-s0" / "stress.json").write_text("{}")
    r = nchl("stress", "arch/vsr-low-nchl-s0")
    assert r.returncode == 2 and "not a stress table written by nchl (no task" in r.stderr
