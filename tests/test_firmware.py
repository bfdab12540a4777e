"""Cortex-M: cross-built sizes and emulated replay on QEMU's MPS2 boards, for small networks.

These need Debian's gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm,
which setup.sh installs. On a developer machine without them the tests skip and
say why; under CI (CI=true) a missing toolchain fails them.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from nchl import Genome, Spec
from nchl.core.memory import macs_per_step
from nchl_codegen import generate, write
from nchl_codegen.firmware import BOARDS, FLAGS, TARGETS, emulate, size_firmware

TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-objdump", "qemu-system-arm")
missing = [t for t in TOOLS if shutil.which(t) is None]
if missing and os.environ.get("CI"):
    raise RuntimeError(f"CI must have the Cortex-M toolchain; missing {missing} (run setup.sh)")
pytestmark = pytest.mark.skipif(bool(missing), reason=f"Cortex-M toolchain not installed ({', '.join(missing)}): "
                                                      "run setup.sh")

SPECS = [Spec("hl", [6, 5, 3], init_range=0.2, clip=1.5), Spec("nchl", [6, 5, 3]),
         Spec("wnchl", [6, 5, 3], window=1), Spec("wnchl", [6, 5, 3], window=40)]


def genome_of(spec, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, spec.genome_length)


@pytest.mark.parametrize("target", [t for t in TARGETS if t.startswith("cortex")])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.rule}-m{s.window}")
def test_size_on_each_core(spec, target):
    r = size_firmware(spec, genome_of(spec), "ctl", target)
    n_in, n_out = spec.topology.n_in, spec.topology.n_out
    assert r["ram_bytes"] == r["state_bytes_analytical"] + 4 * (n_in + n_out)  # state + the harness buffers
    assert r["controller_const_bytes"] >= r["params_bytes_analytical"]
    assert r["flash_bytes"] > r["controller_code_bytes"] + r["params_bytes_analytical"]
    assert 0 < r["stack_bytes"] < 1024


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.rule}-m{s.window}")
def test_emulated_cortex_m4_replay_is_bit_exact(spec):
    obs = np.random.default_rng(1).normal(0, 1.5, (60, spec.topology.n_in))
    obs[7, 2] = 0.0
    r = emulate(spec, genome_of(spec), obs, seed=5)
    assert r["steps"] == 60 and r["nonzero_status"] == 0
    assert r["max_abs_error"] == 0.0 and r["max_ulp_error"] == 0
    assert r["floor_macs_per_step"] == macs_per_step(spec)
    assert r["instructions_per_step_median"] > r["floor_macs_per_step"]


@pytest.mark.parametrize("board", ["mps2-an385", "mps2-an505"])
def test_other_boards_replay_bit_exact_and_count_instructions(board):
    """Cortex-M3 (soft float: libgcc's IEEE routines) and Cortex-M33 compute the same bits too."""
    spec = Spec("nchl", [6, 5, 3])
    obs = np.random.default_rng(2).normal(0, 1.5, (20, 6))
    r = emulate(spec, genome_of(spec), obs, seed=1, board_name=board, clock_mhz=50)
    m4 = emulate(spec, genome_of(spec), obs, seed=1)
    assert r["board"] == board and r["target"] == BOARDS[board].target
    assert r["max_abs_error"] == 0.0 and r["nonzero_status"] == 0
    assert r["estimated_us_per_step"] == pytest.approx(r["instructions_per_step_median"] / 50)
    if board == "mps2-an505":  # the same Thumb-2 + FPU code as the M4: within 10% of its count
        assert abs(r["instructions_per_step_median"] / m4["instructions_per_step_median"] - 1) < 0.1
    else:  # every float operation is a library call
        assert r["instructions_per_step_median"] > 5 * m4["instructions_per_step_median"]


@pytest.mark.parametrize("target", ["cortex-m4f", "cortex-m33", "cortex-m3"])
def test_multiply_adds_are_chained_never_fused(tmp_path, target):
    """Where the FPU has VMLA.F32 (product rounded, then added: the reference's two operations) the
    generated code uses it; a fused VFMA would round once and break bit-exactness. No FPU: no VFP code."""
    spec = Spec("wnchl", [6, 5, 3], window=6)
    write(generate(spec, genome_of(spec), "ctl"), tmp_path)
    subprocess.run(["arm-none-eabi-gcc", *TARGETS[target], *FLAGS, "-c", "ctl.c", "-o", "ctl.o"], cwd=tmp_path,
                   check=True)
    asm = subprocess.run(["arm-none-eabi-objdump", "-d", "ctl.o"], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    assert "vfma" not in asm and "vfms" not in asm
    if target == "cortex-m3":
        assert "vmla" not in asm and "vmul" not in asm
    else:
        assert asm.count("vmla.f32") >= 20


def nchl_cmd(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nchl.app.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_cli_size_and_emulate_with_a_recorded_trace(tmp_path):
    spec = Spec("nchl", [12, 4, 10])
    Genome(spec, genome_of(spec), task="vsr-low").save(tmp_path / "g.npz")
    r = nchl_cmd("evaluate", "g.npz", "--episodes", "1", "--workers", "1", "--trace", "t.npz", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = nchl_cmd("emulate", "g.npz", "--trace", "t.npz", "--steps", "80", "--rule", "wnchl", "--window", "5",
                 "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["steps"] == 80 and out["max_abs_error"] == 0 and out["window"] == 5
    r = nchl_cmd("codegen", "g.npz", "--prefix", "vsr_ctrl", "--out", "c", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = nchl_cmd("size", "c", "--target", "cortex-m0,cortex-m4f", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(x["target"], x["rule"]) for x in rows] == [("cortex-m0", "nchl"), ("cortex-m4f", "nchl")]
    r = nchl_cmd("size", "g.npz", "--windows", "2,8", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wnchl(m=8)" in r.stdout and "hl " in r.stdout
    r = nchl_cmd("size", "c", "--target", "cortex-m99", cwd=tmp_path)
    assert r.returncode == 2 and "unknown target" in r.stderr
    r = nchl_cmd("size", "g.npz", "--windows", "2,x", cwd=tmp_path)
    assert r.returncode == 2 and "expected comma-separated windows >= 1" in r.stderr
    r = nchl_cmd("emulate", "g.npz", "--trace", "g.npz", cwd=tmp_path)  # a genome is not a trace
    assert r.returncode == 2 and "not a trace written by nchl evaluate --trace" in r.stderr


# instructions per multiply-add of the zoo's Ant champions in fixed point: QEMU -icount makes the count a
# deterministic function of the code, so these bounds are behaviour. NcHL on the M3 and weightless m=10
# on the M0 hold issue 40's targets; m=2 and m=1 on the M0 hold their measured figures (13.7 and 19.3 here;
# the target, 8, is not reached: docs/results.md says why)
COUNT_BOUNDS = [("ant-nchl", "cortex-m3", 4.0), ("ant-wnchl", "cortex-m0", 8.0), ("ant-wnchl-m2", "cortex-m0", 14.0),
                ("ant-robust", "cortex-m0", 19.8)]


@pytest.mark.parametrize("champion, target, bound", COUNT_BOUNDS)
def test_fixed_point_instructions_per_multiply_add_stay_within_bounds(champion, target, bound):
    genome = Genome.load(f"zoo:{champion}")
    spec = genome.spec
    obs = np.random.default_rng(3).normal(0, 1, (2 * (spec.window or 4) + 4, spec.topology.n_in))
    r = emulate(spec, genome.values, obs, seed=0, board_name="mps2-an385", target=target, numeric="fixed",
                obs_range=5.0)
    assert r["max_abs_error"] == 0.0 and r["nonzero_status"] == 0
    assert r["instructions_per_mac"] <= bound, r["instructions_per_mac"]
