"""The nchl command, run as a user runs it (a subprocess from another directory)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


def nchl(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nchl.app.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_params_json_matches_paper_counts(tmp_path):
    r = nchl("params", "--layers", "28,128,64,8", "--window", "10", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = {x["rule"]: x for x in json.loads(r.stdout)["rules"]}
    assert rows["hl"]["genome_length"] == 61_440 and rows["nchl"]["genome_length"] == 1_104
    assert rows["wnchl"]["state_bytes"] == 4 * 10 * 228 + 8


def test_params_plot_writes_png(tmp_path):
    r = nchl("params", "--layers", "28,128,64,8", "--plot", "fig1.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "fig1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["params", "--layers", "28,0,8"], "layer 1 has size 0"),
    (["params", "--layers", "28,x"], "cannot read layer sizes"),
    (["params", "--layers", "28,8", "--window", "0"], "window m >= 1"),
])
def test_bad_arguments_exit_2_with_message(tmp_path, args, message):
    r = nchl(*args, cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_tasks_json(tmp_path):
    r = nchl("tasks", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    tasks = {t["name"]: t for t in json.loads(r.stdout)}
    assert tasks["ant"]["layers"] == [27, 128, 64, 8] and tasks["vsr-low"]["obs"] == 12


def test_main_job_pipeline_reduced(tmp_path):
    """The README's main job at a tiny budget: evolve -> C for NcHL and WNcHL -> verify -> sizes, then a
    zoo champion as float C on the Cortex-M4F and fixed-point C on the micro:bit's Cortex-M0."""
    r = nchl("pipeline", "--task", "vsr-low", "--generations", "2", "--popsize", "4", "--workers", "1",
             "--champion", "vsr-high-nchl", "--out", "p", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    variants = {v["variant"]: v for v in summary["variants"]}
    assert set(variants) == {"nchl", "wnchl(m=10)"}
    for v in variants.values():
        assert v["passed"] and v["max_abs_error"] == 0 and v["steps"] == 1000
        assert v["fitness_c"] == v["fitness_python"]
        assert v["emulated_steps"] == 1000 and v["emulated_max_abs_error"] == 0
        assert v["instructions_per_step"] > v["floor_macs_per_step"] > 0
        assert v["target"] == "cortex-m4f" and 0 < v["period_share"] < 1
    # RAM of the Cortex-M4F firmware: the ring buffer, two counters, the harness's obs/act buffers
    assert variants["wnchl(m=10)"]["ram_bytes"] == 4 * 10 * (12 + 32 + 32 + 10) + 8 + 4 * (12 + 10)
    assert (tmp_path / "p" / "demo" / "c" / "nchl-float" / "vsr_low_nchl.c").exists()
    assert "|C-py| chip" in r.stdout and "instr/step" in r.stdout
    # the zoo champion: float C on the M4F, integer C on the M0, both bit-exact on the host and the chip
    champion = summary["champion"]
    assert champion["name"] == "vsr-high-nchl" and champion["evaluation"]["episodes"] == 100
    assert [(v["numeric"], v["target"]) for v in champion["variants"]] == [("float", "cortex-m4f"),
                                                                            ("fixed", "cortex-m0")]
    assert all(v["passed"] and v["max_abs_error"] == 0 and v["emulated_max_abs_error"] == 0
               for v in champion["variants"])
    fixed = champion["variants"][1]
    assert fixed["clock_mhz"] == 16 and fixed["ram_bytes"] < 16 * 1024 and fixed["float_max_abs_error"] > 0
    assert "zoo:vsr-high-nchl" in r.stdout and "micro:bit" in r.stdout


def test_installed_console_script_runs_from_any_directory(tmp_path):
    script = Path(sys.executable).parent / "nchl"
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable} (not a virtualenv install)")
    r = subprocess.run([str(script), "params", "--layers", "28,128,64,8", "--json"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["synapses"] == 12_288


@pytest.mark.slow
def test_main_job_full_size(tmp_path):
    """The README's main job as a user runs it (Ant, 60 generations; about a minute). `pytest -m slow`."""
    r = nchl("pipeline", "--out", "p", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert all(v["passed"] and v["emulated_max_abs_error"] == 0
               for v in summary["variants"] + summary["champion"]["variants"])
