"""Generated C: bit-identical to Python, strict C99, fixed memory, no heap/stdio, sanitizer-clean."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nchl import Genome, NchlError, NonFiniteObservation, Spec, make_controller
from nchl_codegen import c_float, check_prefix, generate, write
from nchl_codegen.build import CController
from nchl_codegen.inspect import FORBIDDEN_SYMBOLS, compile_object, size_report
from nchl_codegen.verify import ulp_distance
from nchl.core.memory import footprint

GOLDEN = Path(__file__).parent / "golden"


def bits(a):
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def assert_bit_identical(py, c, obs):
    for o in obs:
        np.testing.assert_array_equal(bits(c.step(o)), bits(py.step(o)))
        sp, sc = py.state(), c.state()
        for k in sp:
            if np.asarray(sp[k]).dtype == np.float32:
                np.testing.assert_array_equal(bits(sc[k]), bits(sp[k]))
            else:
                assert int(sc[k]) == int(sp[k]), k


specs = st.one_of(
    st.builds(lambda layers, init, clip: Spec("hl", layers, init_range=init, clip=clip),
              st.lists(st.integers(1, 7), min_size=2, max_size=4), st.sampled_from([0.0, 0.3]),
              st.sampled_from([None, 0.8])),
    st.builds(lambda layers, init: Spec("nchl", layers, init_range=init),
              st.lists(st.integers(1, 7), min_size=2, max_size=4), st.sampled_from([0.0, 0.3])),
    st.builds(lambda layers, m: Spec("wnchl", layers, window=m),
              st.lists(st.integers(1, 7), min_size=2, max_size=4), st.sampled_from([1, 2, 5, 40])),
)


@settings(max_examples=30, deadline=None)
@given(spec=specs, seed=st.integers(0, 2**32 - 1))
def test_c_is_bit_identical_to_python(spec, seed):
    """Random topologies (1-neuron layers, no hidden layer), windows 1 .. beyond the episode."""
    rng = np.random.default_rng(seed)
    genome = rng.uniform(-1.5, 1.5, spec.genome_length)
    obs = rng.normal(0, 2, (25, spec.topology.n_in))
    py, c = make_controller(spec, genome), CController(spec, genome)
    py.reset(seed)
    c.reset(seed)
    assert_bit_identical(py, c, obs)


@pytest.mark.parametrize("rule", ["hl", "nchl", "wnchl"])
def test_non_finite_observation_status_and_untouched_state(rule):
    spec = Spec(rule, [4, 3, 2], window=3 if rule == "wnchl" else None)
    c = CController(spec, np.random.default_rng(0).uniform(-1, 1, spec.genome_length))
    for _ in range(4):
        c.step(np.ones(4))
    before = c.state()
    for bad in ([np.nan, 0, 0, 0], [0, 0, -np.inf, 0], [0, 1e39, 0, 0]):
        with pytest.raises(NonFiniteObservation):
            c.step(bad)
        after = c.state()
        for k in before:
            np.testing.assert_array_equal(after[k], before[k])


def generated(tmp_path, spec, prefix="ctl"):
    genome = np.random.default_rng(1).uniform(-1, 1, spec.genome_length)
    return write(generate(spec, genome, prefix), tmp_path)


ALL_VARIANTS = [Spec("hl", [6, 5, 3]), Spec("hl", [6, 5, 3], init_range=0.2, clip=1.0), Spec("nchl", [6, 5, 3]),
                Spec("nchl", [6, 3], init_range=0.1), Spec("wnchl", [6, 5, 4, 3], window=4)]


@pytest.mark.parametrize("spec", ALL_VARIANTS, ids=lambda s: f"{s.rule}-{s.topology}-{s.init_range}-{s.clip}")
@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_strict_compile_no_heap_no_stdio_fixed_memory(tmp_path, spec, cc):
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed")
    h, c_file = generated(tmp_path, spec)
    info = compile_object(c_file, cc)  # -Werror with the strict flag set
    assert not set(info.undefined) & set(FORBIDDEN_SYMBOLS)
    # nothing from libm or libc, but what a compiler may emit for loops on any target
    assert set(info.undefined) <= {"__stack_chk_fail", "memset", "memcpy"}
    defined = {name for name, (kind, _) in info.symbols.items() if kind in "TtDdBbRr"}
    assert {"ctl_init", "ctl_step"} <= defined
    if cc == "gcc":
        assert "ctl_params" in defined and info.stack["ctl_step"] > 0


def test_size_report_matches_the_analytical_model():
    for spec in (Spec("hl", [27, 16, 8]), Spec("nchl", [27, 16, 8]), Spec("wnchl", [27, 16, 8], window=10)):
        r = size_report(spec, "sz")
        assert r["params_bytes"] == r["params_bytes_analytical"]
        assert r["state_bytes"] == r["state_bytes_analytical"]
        assert r["forbidden_symbols"] == []


SANITIZER_MAIN = r"""
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "ctl.h"
static unsigned int lcg = 12345u;
static float rnd(void) { lcg = lcg * 1664525u + 1013904223u; return (float)(lcg >> 8) / 16777216.0f * 2.0f - 1.0f; }
int main(void) {
    static ctl_state_t s, copy;
    float obs[CTL_N_IN], act[CTL_N_OUT];
    int t, i, bad = 0;
    ctl_init(&s, 7u);
    for (t = 0; t < 300; ++t) {
        float scale = (t % 3 == 0) ? 1e30f : (t % 3 == 1 ? 1.0f : 1e-30f);
        for (i = 0; i < CTL_N_IN; ++i) obs[i] = rnd() * scale;
        if (t % 7 == 0) {
            obs[t % CTL_N_IN] = (t % 2) ? NAN : -INFINITY;
            memcpy(&copy, &s, sizeof s);
            if (ctl_step(&s, obs, act) != 1 || memcmp(&copy, &s, sizeof s) != 0) bad = 1;
            continue;
        }
        if (ctl_step(&s, obs, act) != 0) bad = 1;
        /* huge inputs may overflow the weights to inf/NaN (as in Python); never outside [-1, 1] */
        for (i = 0; i < CTL_N_OUT; ++i) if (!isnan(act[i]) && !(act[i] >= -1.0f && act[i] <= 1.0f)) bad = 1;
    }
    printf("%s\n", bad ? "BAD" : "OK");
    return bad;
}
"""


@pytest.mark.parametrize("spec", ALL_VARIANTS, ids=lambda s: f"{s.rule}-{s.topology}-{s.init_range}-{s.clip}")
def test_sanitizer_build_with_random_huge_nan_inf_inputs(tmp_path, spec):
    h, c_file = generated(tmp_path, spec)
    (tmp_path / "main.c").write_text(SANITIZER_MAIN)
    exe = tmp_path / "san"
    subprocess.run(["gcc", "-std=c99", "-g", "-O1", "-ffp-contract=off", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", str(c_file), str(tmp_path / "main.c"), "-o", str(exe), "-lm"],
                   check=True, capture_output=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stdout + r.stderr
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr


GOLDEN_CASES = {"nchl": (Spec("nchl", [3, 2, 1]), "float"), "wnchl": (Spec("wnchl", [3, 2, 1], window=2), "float"),
                "hl": (Spec("hl", [3, 2, 1], init_range=0.5, clip=2.0), "float"),
                "wnchl_fixed": (Spec("wnchl", [3, 2, 1], window=2), "fixed"),
                "nchl_fixed": (Spec("nchl", [3, 2, 1]), "fixed")}


def golden_files(name):
    spec, numeric = GOLDEN_CASES[name]
    genome = np.round(np.linspace(-1, 1, spec.genome_length), 3)
    return generate(spec, genome, f"golden_{name}", numeric=numeric)


@pytest.mark.parametrize("name", list(GOLDEN_CASES))
def test_golden_files_and_determinism(name):
    """Identical inputs give byte-identical files, equal to the reviewed golden copies.

    After an intended template change: python tests/test_codegen.py --regen
    """
    files = golden_files(name)
    assert files == golden_files(name)
    for fname, text in files.items():
        assert (GOLDEN / fname).read_text() == text, f"{fname} differs from tests/golden (regenerate if intended)"


def test_literals_round_trip_and_prefix_checks():
    for v in np.random.default_rng(0).standard_normal(1000).astype(np.float32):
        assert np.float32(float(c_float(v)[:-1])) == v
    assert c_float(1.0) == "1.0f" and c_float(-0.0) == "-0.0f" and c_float(1e-5) == "9.99999975e-06f"
    for bad in ("9ctl", "my-ctl", "int", "", "a b"):
        with pytest.raises(NchlError, match="not a valid C identifier"):
            check_prefix(bad)


def test_ulp_distance():
    one = np.float32(1.0)
    assert ulp_distance(np.array([one]), np.array([np.nextafter(one, np.float32(2))])) == 1
    assert ulp_distance(np.array([0.0], np.float32), np.array([-0.0], np.float32)) == 0
    assert ulp_distance(np.array([-1e-45], np.float32), np.array([1e-45], np.float32)) == 2


def nchl_cmd(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nchl.app.cli", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("extra", [[], ["--rule", "wnchl", "--window", "10"]])
def test_verify_lockstep_on_a_real_ant_rollout(tmp_path, extra):
    spec = Spec("nchl", [27, 16, 8])
    Genome(spec, np.random.default_rng(2).uniform(-0.3, 0.3, spec.genome_length), task="ant").save(tmp_path / "g.npz")
    r = nchl_cmd("verify", "g.npz", "--episodes", "1", "--state", "--json", *extra, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    (e,) = report["episodes"]
    assert report["passed"] and e["steps"] == 1000
    assert e["max_abs_error"] == 0 and e["state_max_abs_error"] == 0 and e["fitness_c"] == e["fitness_python"]


def test_codegen_cli_writes_files_and_report(tmp_path):
    spec = Spec("nchl", [27, 16, 8])
    Genome(spec, np.zeros(spec.genome_length), task="ant").save(tmp_path / "g.npz")
    r = nchl_cmd("codegen", "g.npz", "--prefix", "ant_ctrl", "--out", "c", "--report", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c" / "ant_ctrl.h").exists() and (tmp_path / "c" / "ant_ctrl.c").exists()
    report = json.loads(r.stdout)
    assert report["chosen"]["rule"] == "nchl" and [v["rule"] for v in report["variants"]] == ["hl", "wnchl"]
    r = nchl_cmd("codegen", "g.npz", "--prefix", "9x", cwd=tmp_path)
    assert r.returncode == 2 and "not a valid C identifier" in r.stderr


if __name__ == "__main__" and "--regen" in sys.argv:
    GOLDEN.mkdir(exist_ok=True)
    for case in GOLDEN_CASES:
        for fname, text in golden_files(case).items():
            (GOLDEN / fname).write_text(text)
            print("wrote", GOLDEN / fname)


@pytest.mark.parametrize("rule, extra", [("hl", {}), ("nchl", {"init_range": 0.1}), ("wnchl", {"window": 3})])
@pytest.mark.parametrize("runtime_params", [False, True])
def test_frozen_deployment_c_equals_python_and_stops_learning(rule, extra, runtime_params):
    """--freeze-after K: K plastic steps, then the weights (WNcHL: the window) are kept; C and Python
    agree bit for bit on the actions and the whole state, step counter included."""
    spec = Spec(rule, [5, 4, 3], freeze_after=4, **extra)
    rng = np.random.default_rng(1)
    genome = rng.uniform(-1, 1, spec.genome_length)
    py, c = make_controller(spec, genome), CController(spec, genome, runtime_params=runtime_params)
    plastic = make_controller(dataclasses.replace(spec, freeze_after=None), genome)
    for ctrl in (py, c, plastic):
        ctrl.reset(7)
    for t in range(10):
        obs = rng.uniform(-1, 1, 5)
        a, b, p = py.step(obs), c.step(obs), plastic.step(obs)
        np.testing.assert_array_equal(a, b)
        assert np.array_equal(a, p) == (t <= 4)  # the first frozen step still sees the last weights
        s_py, s_c = py.state(), c.state()
        assert s_py.keys() == s_c.keys() and s_py["t"] == min(t + 1, 4)
        for k in s_py:
            np.testing.assert_array_equal(s_py[k], s_c[k])
        if t == 3:
            learned = s_py
    assert all(np.array_equal(learned[k], s_py[k]) for k in learned)  # nothing changed after step 4
    assert footprint(spec).state_bytes == footprint(dataclasses.replace(spec, freeze_after=None)).state_bytes + 4


def test_static_rule_c_and_onnx_equal_python_and_bad_settings_are_clear(tmp_path):
    """static: the same network with its weights evolved directly, no state; C, ONNX and Python agree."""
    from nchl_codegen.onnx_export import OnnxController

    spec = Spec("static", [27, 16, 8])
    genome = np.random.default_rng(3).uniform(-1, 1, spec.genome_length)
    assert spec.genome_length == 27 * 16 + 16 * 8 and footprint(spec).state_bytes == 0
    Genome(spec, genome, task="ant").save(tmp_path / "s.npz")
    r = nchl_cmd("verify", "s.npz", "--episodes", "1", "--state", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["max_abs_error"] == 0
    py, c, ox = make_controller(spec, genome), CController(spec, genome), OnnxController(spec, genome)
    obs = np.random.default_rng(4).uniform(-3, 3, (20, 27))
    for o in obs:
        a = py.step(o)
        np.testing.assert_array_equal(a, c.step(o))
        np.testing.assert_array_equal(a, ox.step(o))
    assert py.state() == c.state() == ox.state() == {}
    for kwargs, match in (({"init_range": 0.1}, "weights are its genome"), ({"freeze_after": 3}, "nothing to freeze|no plasticity")):
        with pytest.raises(NchlError, match=match):
            Spec("static", [27, 16, 8], **kwargs)
