"""Fixed-point NcHL and weightless NcHL: the generated integer C equals the Python integer reference
exactly, stays inside its planned ranges, and the Cortex-M0 build holds no floating-point code."""

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nchl import Genome, NchlError, NonFiniteObservation, Spec
from nchl.core.fixed import ONE, TANH_RANGE, ObservationOutOfRange, make_fixed, plan, quantize_observation, tanh_q
from nchl_codegen import generate, write
from nchl_codegen.build import FixedCController


def assert_same_state(a, b):
    sa, sb = a.state(), b.state()
    assert sorted(sa) == sorted(sb)
    for k in sa:
        np.testing.assert_array_equal(np.asarray(sb[k]), np.asarray(sa[k]), err_msg=k)


def random_obs(rng, steps, n, obs_max):
    """Integer observations over the whole accepted range, with its ends and zero over-represented."""
    obs = rng.integers(-obs_max, obs_max + 1, (steps, n))
    ends = rng.random((steps, n))
    obs[ends < 0.15] = obs_max
    obs[(ends >= 0.15) & (ends < 0.3)] = -obs_max
    obs[(ends >= 0.3) & (ends < 0.35)] = 0
    return obs.astype(np.int16)


@settings(max_examples=40, deadline=None)
@given(layers=st.lists(st.integers(1, 7), min_size=2, max_size=4), window=st.sampled_from([None, 1, 2, 5, 40]),
       scale=st.sampled_from([0.0, 1e-4, 1.0, 5.0]), obs_range=st.sampled_from([0.5, 1.0, 8.0]),
       freeze=st.sampled_from([None, 6]), clip=st.sampled_from([None, 0.05, 3.0]), seed=st.integers(0, 2**32 - 1))
def test_c_equals_the_integer_reference_step_by_step(layers, window, scale, obs_range, freeze, clip, seed):
    """Random topologies, NcHL (window None; with a weight range from its clip, saturated within the
    rollout when small) and windows 1 .. beyond the rollout, parameters from tiny to large (the
    planner's shifts change with them), observations at the range ends: 0 difference in actions and
    state."""
    spec = (Spec("nchl", layers, clip=clip, freeze_after=freeze) if window is None
            else Spec("wnchl", layers, window=window, freeze_after=freeze))
    rng = np.random.default_rng(seed)
    genome = rng.uniform(-1, 1, spec.genome_length) * scale
    py, c = make_fixed(spec, genome, obs_range), FixedCController(spec, genome, obs_range)
    py.reset(seed)
    c.reset(seed)
    for o in random_obs(rng, 30, layers[0], py.plan.obs_max):
        a_py, a_c = py.step_q(o), c.step_q(o)
        assert a_py.dtype == a_c.dtype == np.int16
        np.testing.assert_array_equal(a_c, a_py)
        assert np.abs(a_py.astype(int)).max() <= ONE
        assert_same_state(py, c)


def test_float_face_quantizes_like_the_c_helper_and_rejects_non_finite_values():
    spec = Spec("wnchl", [4, 3, 2], window=3)
    genome = np.random.default_rng(0).uniform(-1, 1, spec.genome_length)
    py, c = make_fixed(spec, genome, obs_range=2.0), FixedCController(spec, genome, obs_range=2.0)
    py.reset(0)
    c.reset(0)
    obs_max = py.plan.obs_max
    assert obs_max == 2 * ONE
    # the helper rounds half away from zero and saturates at +-OBS_MAX
    edge = np.array([0.5 / ONE, -0.5 / ONE, 1e6, -3.0], dtype=np.float32)
    np.testing.assert_array_equal(quantize_observation(edge, obs_max), [1, -1, obs_max, -obs_max])
    for o in np.random.default_rng(1).normal(0, 3, (20, 4)):
        np.testing.assert_array_equal(c.step(o), py.step(o))
        assert_same_state(py, c)
    before = c.state()
    for bad in ([np.nan, 0, 0, 0], [0, 0, -np.inf, 0]):
        for ctl in (py, c):
            with pytest.raises(NonFiniteObservation):
                ctl.step(bad)
    for k, v in c.state().items():
        np.testing.assert_array_equal(v, before[k])


def test_integer_observations_beyond_the_range_are_refused_with_the_state_untouched():
    spec = Spec("wnchl", [3, 2], window=2)
    genome = np.random.default_rng(3).uniform(-1, 1, spec.genome_length)
    py, c = make_fixed(spec, genome, obs_range=1.0), FixedCController(spec, genome, obs_range=1.0)
    for ctl in (py, c):
        ctl.reset(0)
        ctl.step_q(np.array([ONE, -ONE, 0], np.int16))  # the range's ends are accepted
        before = ctl.state()
        for bad in ([ONE + 1, 0, 0], [0, 0, -ONE - 1]):
            with pytest.raises(ObservationOutOfRange, match="beyond"):
                ctl.step_q(np.array(bad, np.int16))
            for k, v in ctl.state().items():
                np.testing.assert_array_equal(v, before[k])
        with pytest.raises(NchlError, match="integer observation must have shape"):
            ctl.step_q(np.zeros(3))
        with pytest.raises(NchlError, match="shape"):
            ctl.step_q(np.zeros(4, np.int16))


@settings(max_examples=200, deadline=None)
@given(z=st.integers(-2**31 + 1, 2**31 - 1), q=st.integers(5, 27))
def test_tanh_table_is_within_two_q12_units_of_tanh_and_saturates(z, q):
    y = int(tanh_q(np.array([z], np.int64), q)[0])
    assert abs(y - math.tanh(z / 2**q) * ONE) <= 2
    assert int(tanh_q(np.array([-z], np.int64), q)[0]) == -y  # odd
    if abs(z) >= TANH_RANGE << q:
        assert abs(y) == ONE


def test_tanh_table_is_monotonic():
    z = np.arange(-(9 << 12), 9 << 12, 7, dtype=np.int64)
    assert np.all(np.diff(tanh_q(z, 12)) >= 0)


def test_planner_errors_are_clear():
    for spec in (Spec("hl", [3, 2]), Spec("static", [3, 2])):
        with pytest.raises(NchlError, match="--numeric fixed supports rules nchl, wnchl"):
            plan(spec, np.zeros(spec.genome_length))
    spec = Spec("nchl", [3, 2], init_range=0.1)
    with pytest.raises(NchlError, match="starts from zero weights"):
        plan(spec, np.zeros(spec.genome_length))
    spec = Spec("wnchl", [3, 2], window=2)
    for bad in (0, -1.0, "8"):
        with pytest.raises(NchlError, match="observation range must be a number > 0"):
            plan(spec, np.zeros(spec.genome_length), bad)
    spec = Spec("wnchl", [6, 4], window=40)
    with pytest.raises(NchlError, match="the parameters are too large for int16/int32 arithmetic"):
        plan(spec, np.full(spec.genome_length, 300.0))


UBSAN_MAIN = r"""
#include <stdio.h>
#include "ctl.h"
static unsigned int lcg = 12345u;
static int pick(void) { lcg = lcg * 1664525u + 1013904223u; return (int)(lcg >> 29); }
int main(void) {
    static ctl_state_t s;
    int16_t obs[CTL_N_IN], act[CTL_N_OUT];
    int t, i, bad = 0;
    ctl_init(&s, 1u);
    for (t = 0; t < 200; ++t) {
        /* worst cases: every observation at an end of the range, signs mixed or all equal */
        for (i = 0; i < CTL_N_IN; ++i) {
            int r = (t % 4 == 0) ? 0 : (t % 4 == 1) ? 1 : pick();
            obs[i] = (int16_t)(r < 4 ? CTL_OBS_MAX : -CTL_OBS_MAX);
        }
        if (ctl_step(&s, obs, act) != 0) bad = 1;
        for (i = 0; i < CTL_N_OUT; ++i) if (act[i] > CTL_ONE || act[i] < -CTL_ONE) bad = 1;
    }
    obs[0] = CTL_OBS_MAX + 1;
    if (ctl_step(&s, obs, act) != 1) bad = 1;
    printf("%s\n", bad ? "BAD" : "OK");
    return bad;
}
"""


@pytest.mark.parametrize("scale, window, clip", [(1.0, 3, None), (5.0, 40, None), (1e-4, 1, None), (1.0, None, None),
                                                (5.0, None, None), (1.0, None, 0.5)])
def test_no_signed_overflow_at_the_range_ends_under_ubsan(tmp_path, scale, window, clip):
    """The planner's worst-case bounds hold: UBSan traps any int32 overflow or bad shift. NcHL
    (window None) runs its weights into saturation within the 200 steps."""
    spec = Spec("nchl", [9, 7, 5], clip=clip) if window is None else Spec("wnchl", [9, 7, 5], window=window)
    genome = np.random.default_rng(4).uniform(-1, 1, spec.genome_length) * scale
    write(generate(spec, genome, "ctl", numeric="fixed"), tmp_path)
    (tmp_path / "main.c").write_text(UBSAN_MAIN)
    exe = tmp_path / "ub"
    subprocess.run(["gcc", "-std=c99", "-g", "-O1", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", "ctl.c", "main.c", "-o", str(exe)], cwd=tmp_path, check=True,
                   capture_output=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stdout + r.stderr


FLOAT_ROUTINES = ("__aeabi_f", "__aeabi_d", "__aeabi_i2f", "__aeabi_i2d", "__aeabi_ui2f", "__addsf", "__mulsf",
                  "__adddf", "__muldf", "__floatsi", "__fix")


def nchl_cmd(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nchl.app.cli", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed: run setup.sh")
@pytest.mark.parametrize("champion", ["ant-wnchl-m2", "ant-nchl"])
def test_cortex_m0_build_of_the_zoo_champion_has_no_floating_point_code(tmp_path, champion):
    r = nchl_cmd("codegen", f"zoo:{champion}", "--numeric", "fixed", "--out", "q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    q = tmp_path / "q"
    header = (q / "nchl_ctrl.h").read_text()
    assert "Integer arithmetic only" in header and "#define NCHL_CTRL_OBS_MAX" in header
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m0", "-mthumb", "-O2", "-std=c99", "-Wall", "-Werror", "-c",
                    "nchl_ctrl.c", "-o", "ctl.o"], cwd=q, check=True)
    nm = subprocess.run(["arm-none-eabi-nm", "ctl.o"], cwd=q, capture_output=True, text=True, check=True).stdout
    undefined = {ln.split()[-1] for ln in nm.splitlines() if ln.split()[0] == "U"}
    assert undefined <= {"memcpy", "memset"}, undefined
    asm = subprocess.run(["arm-none-eabi-objdump", "-d", "ctl.o"], cwd=q, capture_output=True, text=True,
                         check=True).stdout
    assert "nchl_ctrl_step" in asm
    assert not [name for name in FLOAT_ROUTINES if name in asm + nm]
    # a control: the float32 build of the same champion calls the soft-float library on this core
    r = nchl_cmd("codegen", f"zoo:{champion}", "--out", "f", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m0", "-mthumb", "-O2", "-std=c99", "-c", "nchl_ctrl.c",
                    "-o", "ctl.o"], cwd=tmp_path / "f", check=True)
    nm = subprocess.run(["arm-none-eabi-nm", "ctl.o"], cwd=tmp_path / "f", capture_output=True, text=True).stdout
    assert "__aeabi_f" in nm


@pytest.mark.skipif(any(shutil.which(t) is None for t in ("arm-none-eabi-gcc", "qemu-system-arm")),
                    reason="Cortex-M toolchain not installed: run setup.sh")
@pytest.mark.parametrize("window", [4, None])
def test_emulated_cortex_m0_build_replays_the_integer_reference_exactly(window):
    from nchl_codegen.firmware import emulate

    spec = Spec("wnchl", [6, 5, 3], window=window) if window else Spec("nchl", [6, 5, 3])
    genome = np.random.default_rng(5).uniform(-1, 1, spec.genome_length)
    obs = np.random.default_rng(6).normal(0, 3, (40, 6))  # some beyond the range: the helper saturates them
    r = emulate(spec, genome, obs, seed=0, board_name="mps2-an385", target="cortex-m0", numeric="fixed",
                obs_range=4.0)
    assert r["built_for"] == "cortex-m0" and r["numeric"] == "fixed"
    assert r["steps"] == 40 and r["nonzero_status"] == 0 and r["max_abs_error"] == 0.0
    assert r["instructions_per_step_median"] > r["floor_macs_per_step"]
    with pytest.raises(NchlError, match="cannot run code built for cortex-m4f"):
        emulate(spec, genome, obs[:2], seed=0, board_name="mps2-an385", target="cortex-m4f", numeric="fixed")


def test_cli_verify_and_evaluate_fixed_point_on_an_ant_rollout(tmp_path):
    spec = Spec("wnchl", [27, 16, 8], window=2)
    Genome(spec, np.random.default_rng(2).uniform(-0.3, 0.3, spec.genome_length), task="ant").save(tmp_path / "g.npz")
    r = nchl_cmd("verify", "g.npz", "--numeric", "fixed", "--episodes", "1", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    (e,) = report["episodes"]
    assert report["passed"] and e["steps"] == 1000
    assert e["max_abs_error"] == 0 and e["state_max_abs_error"] == 0 and e["fitness_c"] == e["fitness_python"]
    assert 0 < e["float_mean_abs_error"] <= e["float_max_abs_error"] <= 2
    r = nchl_cmd("evaluate", "g.npz", "--numeric", "fixed", "--episodes", "2", "--workers", "1", "--json",
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["numeric"] == "fixed"
    nchl_spec = Spec("nchl", [27, 16, 8])
    Genome(nchl_spec, np.zeros(nchl_spec.genome_length), task="ant").save(tmp_path / "n.npz")
    r = nchl_cmd("codegen", "n.npz", "--numeric", "fixed", "--out", "n", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "#define NCHL_CTRL_N_SYNAPSES 560" in (tmp_path / "n" / "nchl_ctrl.h").read_text()
    r = nchl_cmd("codegen", "n.npz", "--numeric", "fixed", "--report", cwd=tmp_path)
    assert r.returncode == 2 and "nchl size --numeric fixed" in r.stderr
    r = nchl_cmd("codegen", "n.npz", "--numeric", "fixed", "--rule", "wnchl", "--window", "3", "--out", "c",
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "#define NCHL_CTRL_WINDOW 3" in (tmp_path / "c" / "nchl_ctrl.h").read_text()


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_strict_compile_without_libm_heap_or_stdio(tmp_path, cc):
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed")
    for spec in (Spec("wnchl", [6, 5, 4, 3], window=4, freeze_after=20),
                 Spec("nchl", [6, 5, 4, 3], freeze_after=20), Spec("nchl", [6, 5, 4, 3])):
        check_strict(tmp_path, spec, cc)


def check_strict(tmp_path, spec, cc):
    from nchl_codegen.inspect import FORBIDDEN_SYMBOLS, compile_object

    write(generate(spec, np.random.default_rng(7).uniform(-1, 1, spec.genome_length), "ctl", numeric="fixed"),
          tmp_path)
    info = compile_object(tmp_path / "ctl.c", cc)  # -Werror -pedantic -Wconversion -Wshadow ...
    assert not set(info.undefined) & set(FORBIDDEN_SYMBOLS)
    assert set(info.undefined) <= {"__stack_chk_fail", "memset", "memcpy"}


@pytest.mark.skipif(any(shutil.which(t) is None for t in ("arm-none-eabi-gcc", "qemu-system-arm")),
                    reason="Cortex-M toolchain not installed: run setup.sh")
def test_the_micro_bit_runs_a_weightless_controller_and_refuses_what_does_not_fit():
    """QEMU's BBC micro:bit, a real Cortex-M0 with 16 KB of RAM: the M0 build replays exactly."""
    from nchl_codegen.firmware import emulate

    spec = Spec("wnchl", [27, 32, 8], window=2)
    genome = np.random.default_rng(8).uniform(-1, 1, spec.genome_length)
    obs = np.random.default_rng(9).normal(0, 1, (12, 27))
    r = emulate(spec, genome, obs, seed=0, board_name="microbit", numeric="fixed", obs_range=5.0, clock_mhz=16)
    assert r["target"] == "cortex-m0" and r["max_abs_error"] == 0.0 and r["nonzero_status"] == 0
    assert r["instructions_per_step_median"] > r["floor_macs_per_step"]
    big = Spec("nchl", [27, 128, 64, 8])  # 48 KB of weights
    with pytest.raises(NchlError, match=r"does not fit the board: RAM \(16K\) overflowed"):
        emulate(big, np.zeros(big.genome_length), obs[:2], seed=0, board_name="microbit", numeric="fixed")
    with pytest.raises(NchlError, match="cannot run code built for cortex-m3"):
        emulate(spec, genome, obs[:2], seed=0, board_name="microbit", target="cortex-m3", numeric="fixed")


RISCV_TOOLS = ("riscv64-unknown-elf-gcc", "riscv64-unknown-elf-size", "qemu-system-riscv32")
riscv_missing = [t for t in RISCV_TOOLS if shutil.which(t) is None]
if riscv_missing and os.environ.get("CI"):
    raise RuntimeError(f"CI must have the RISC-V toolchain; missing {riscv_missing} (run setup.sh --test)")


@pytest.mark.skipif(bool(riscv_missing), reason="RISC-V toolchain not installed: run setup.sh --test")
@pytest.mark.parametrize("window", [2, None])
def test_rv32imc_build_replays_the_integer_reference_exactly(window):
    """QEMU's 32-bit RISC-V virt machine, rv32imc (no FPU), freestanding: 0 difference; the float32 C
    (which needs a C library) is refused with a clear error; sizes like on the Cortex-M."""
    from nchl_codegen.firmware import emulate, size_firmware

    spec = Spec("wnchl", [6, 5, 3], window=window) if window else Spec("nchl", [6, 5, 3])
    genome = np.random.default_rng(10).uniform(-1, 1, spec.genome_length)
    obs = np.random.default_rng(11).normal(0, 2, (30, 6))
    r = emulate(spec, genome, obs, seed=0, board_name="riscv32-virt", numeric="fixed", obs_range=4.0)
    assert r["target"] == "rv32imc" and r["max_abs_error"] == 0.0 and r["nonzero_status"] == 0
    assert r["instructions_per_step_median"] > r["floor_macs_per_step"]
    with pytest.raises(NchlError, match="builds the integer-only controller"):
        emulate(spec, genome, obs[:2], seed=0, board_name="riscv32-virt")
    size = size_firmware(spec, genome, "ctl", "rv32imc", numeric="fixed", obs_range=4.0)
    assert size["ram_bytes"] == size["state_bytes_analytical"] + 12 + 8  # state + int16 I/O buffers, 4-aligned
    assert 0 < size["stack_bytes"] < 1024
