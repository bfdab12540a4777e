"""nchl stress: the JSON a user scripts against, the table, events, and clear errors."""

import json
import subprocess
import sys

import pytest


def nchl(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nchl.app.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_stress_json_schema_and_retained_share(tmp_path):
    r = nchl("stress", "zoo:ant-wnchl-m2", "--episodes", "2", "--conditions", "latency", "dead-motor=0.5/1",
             "--json", "--plot", "s.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    intact = report["intact"]
    assert report["episodes"] == 2 and report["seeds"] == [0, 1] and report["held_out"]
    assert len(intact["per_episode"]) == 2 and intact["mean"] == pytest.approx(sum(intact["per_episode"]) / 2, abs=1e-3)
    assert [(c["name"], c["strength"]) for c in report["conditions"]] == [
        ("latency", 5.0), ("dead-motor", 0.5), ("dead-motor", 1.0)]  # latency: one Ant control step
    for c in report["conditions"]:
        assert c["retained"] == pytest.approx(c["mean"] / intact["mean"])
        assert {"median", "forward_fraction", "saturated_share", "dominant_frequency_hz", "unit", "onset"} <= set(c)
        assert 0 <= c["saturated_share"] <= 1 and "velocity" not in c
        # damage is split by the part it struck (the Ant's motors are named by their joints),
        # each part against the intact episodes of its own seeds
        parts = c.get("by_part", [])
        assert (parts != []) == (c["name"] == "dead-motor")
        assert sum(p["episodes"] for p in parts) == (2 if parts else 0)
        assert all(p["part"].startswith(("hip_", "ankle_")) for p in parts)
        if parts:
            assert sum(p["mean"] * p["episodes"] for p in parts) / 2 == pytest.approx(c["mean"])
    one_seed = json.loads(nchl("stress", "zoo:ant-wnchl-m2", "--episodes", "1", "--seed", "1",
                               "--conditions", "dead-motor", "--json", cwd=tmp_path).stdout)
    (part,) = one_seed["conditions"][0]["by_part"]
    assert part["retained"] == pytest.approx(one_seed["conditions"][0]["mean"] / intact["per_episode"][1], rel=1e-4)
    assert (tmp_path / "s.png").stat().st_size > 10_000


def test_an_event_reports_velocity_over_time(tmp_path):
    r = nchl("stress", "zoo:vsr-high-nchl", "--episodes", "1", "--conditions", "dead-motor", "--onset", "500",
             "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    (c,) = report["conditions"]
    assert c["onset"] == 500 and len(c["velocity"]) == len(report["intact"]["velocity"]) == 1000
    assert c["velocity"][100:500] == report["intact"]["velocity"][100:500]  # the same episode until the event
    assert c["velocity"][600:] != report["intact"]["velocity"][600:]


def test_a_frozen_deployment_is_stressed_like_any_other(tmp_path):
    args = ["zoo:vsr-high-nchl", "--episodes", "1", "--conditions", "dead-motor", "--json"]
    plastic = json.loads(nchl("stress", *args, cwd=tmp_path).stdout)
    r = nchl("stress", *args, "--freeze-after", "50", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    frozen = json.loads(r.stdout)
    assert frozen["freeze_after"] == 50 and plastic["freeze_after"] is None
    assert frozen["intact"]["mean"] != plastic["intact"]["mean"]


def test_table(tmp_path):
    r = nchl("stress", "zoo:vsr-high-nchl", "--episodes", "1", "--conditions", "obs-noise", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "retained" in lines[1] and lines[2].startswith("intact") and lines[3].startswith("obs-noise")


@pytest.mark.parametrize("args, message", [
    (["--conditions", "gravity"], "unknown condition 'gravity'"),
    (["--conditions", "latency=2.5"], "must be a whole number"),
    (["--conditions", "obs-noise=-1"], r"strength must be in [0, 10]"),
    (["--conditions", "obs-noise=big"], "strengths must be numbers"),
    (["--strengths", "0.1,x"], "expected comma-separated numbers"),
    (["--conditions", "leg-damage"], "leg-damage applies to a task with feet"),
    (["--episodes", "0"], "episodes must be an integer >= 1"),
])
def test_bad_conditions_and_strengths_are_clear_errors(tmp_path, args, message):
    r = nchl("stress", "zoo:vsr-high-nchl", *args, cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
