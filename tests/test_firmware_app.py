"""nchl firmware: the HAL's numbers against the Python task's scaling, the generated loop (built for the
host) against its Python model frame by frame, the timer-driven loop on an emulated board, and the
one-line errors."""

import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from nchl.app.cli import main
from nchl.app.evolution import evaluation_controller, fixed_obs_range
from nchl.app.firmware_cmd import app_config, readings
from nchl.core.fixed import ONE
from nchl.core.genome import Genome
from nchl_codegen.app import (FLAG_STOP, INVALID, AppModel, app_board, render_project, sensor_frame)
from nchl_codegen.pil import HostLink
from nchl_sim import get_task

ARM = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None


def _states(task_name: str, steps: int, seed: int = 3):
    """Environments states along a random-action episode: (env, its observation) at each step."""
    task = get_task(task_name)
    env = task.make_env()
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        yield env, obs
        obs, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape))
    env.close()


@pytest.mark.parametrize("task_name", ["ant", "servo-quadruped"])
@pytest.mark.parametrize("numeric", ["float", "fixed"])
def test_hal_scaling_matches_the_task(task_name, numeric):
    """Raw counts of the simulated sensors, converted as the firmware does, give the task's own
    observation within the counts' and Q12's resolution (exactly the clip bound where clipped)."""
    task = get_task(task_name)
    config = app_config(task, numeric, fixed_obs_range(task_name))
    model = AppModel(config, evaluation_controller(*_genome(task_name), "python", numeric, task_name), 0)
    sensors = [k for k, (s, _) in enumerate(config.inputs) if s == "sensor"]
    tol = np.array([abs(config.channels[config.inputs[k][1]].lsb * config.channels[config.inputs[k][1]].scale) / 2
                    for k in sensors]) + (1.0 / ONE if numeric == "fixed" else 1e-6)
    for env, obs in _states(task_name, 40):
        got = model.observation(readings(env, config)).astype(np.float64)
        if numeric == "fixed":
            got = got / ONE
        assert np.all(np.abs(got[sensors] - obs[sensors]) <= tol), (got[sensors] - obs[sensors])


def _genome(task_name):
    g = Genome.load("zoo:ant-robust" if task_name == "ant" else "zoo:quadruped-robust")
    return g.spec, g.values


def test_pulse_widths_command_the_tasks_servo_angles():
    """Action -> pulse width -> the servo's angle is the task's action -> ctrlrange mapping (to half a
    microsecond of the servo's travel), and the host's inverse gives the action back."""
    task = get_task("servo-quadruped")
    config = app_config(task, "float")
    env = task.make_env()
    u = env.unwrapped
    a = np.linspace(-1, 1, 41, dtype=np.float32)
    for i, act in enumerate(config.actuators):
        servo = u.robot.servos[i]
        model = AppModel(config, evaluation_controller(*_genome("servo-quadruped"), "python"), 0)
        pulses = []
        for v in a:
            model.command = np.full(config.n_act, v, dtype=np.float32)
            pulses.append(model.pulses()[i])
        angle = servo.angle_of(np.array(pulses, dtype=np.float64))
        want = u.robot.lo[i] + (a + 1) / 2 * (u.robot.hi[i] - u.robot.lo[i])
        assert np.abs(angle - want).max() <= abs(servo.rad_per_us) * 0.5 + 1e-9
        assert np.abs(act.action_of(np.array(pulses)) - a).max() <= 0.5 / (abs(act.pulse_hi - act.pulse_lo) / 2) + 1e-9
    env.close()


@pytest.mark.parametrize("numeric", ["float", "fixed"])
def test_host_build_equals_its_python_model(tmp_path, numeric):
    """The generated loop, compiled with -Werror for the host, and AppModel agree on every pulse width,
    action, state and fault code over frames with invalid, out-of-range, stuck and corrupted readings
    and the stop input pressed and released."""
    task = get_task("servo-quadruped")
    spec, values = _genome("servo-quadruped")
    config = app_config(task, numeric, fixed_obs_range(task.name), rate_limit_us=150.0)
    render_project(config, app_board("host"), spec, values, tmp_path, obs_range=fixed_obs_range(task.name))
    subprocess.run(["make", "-C", str(tmp_path), "EXTRA=-Werror"], check=True, capture_output=True)
    model = AppModel(config, evaluation_controller(spec, values, "python", numeric, task.name), 0)
    rng = np.random.default_rng(7)
    lo, hi = zip(*(c.raw_range() for c in config.channels))
    lo, hi = np.array(lo), np.array(hi)
    raw = rng.integers(lo // 4, hi // 4 + 1)
    with HostLink(tmp_path / "nchl_app", config, tmp_path) as link:
        assert link.frame()["type"] == "boot"
        seen = set()
        for t in range(300):
            raw = np.clip(raw + rng.integers(-40, 41, raw.shape), lo, hi)
            frame_raw, corrupt = raw.copy(), t in (40, 41, 42, 200)
            if t == 60:
                frame_raw[3] = INVALID
            if t == 120:
                frame_raw[0] = hi[0] + 1
            if 150 <= t < 150 + model.stuck_periods + 2:   # gyro x (watched) stops changing
                frame_raw[8] = 1234
            stop = t in (80, 140, 230, 260)
            fw = link.exchange(sensor_frame(t, frame_raw, FLAG_STOP if stop else 0, corrupt))
            ref = model.step(None if corrupt else frame_raw, stop=stop, missed=False)
            assert np.array_equal(fw["pulses"], ref["pulses"]), t
            assert (fw["state"], fw["faults"]) == (ref["state"], ref["faults"]), t
            a = np.asarray(fw["action"])
            assert np.array_equal(a.view(np.int32) if numeric == "float" else a,
                                  np.asarray(ref["action"]).view(np.int32) if numeric == "float" else ref["action"]), t
            seen.add(fw["faults"])
    assert {0x01, 0x02, 0x04, 0x08} <= {b for f in seen for b in (1, 2, 4, 8, 16, 32) if f & b}


@pytest.mark.skipif(not ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_timer_loop_on_an_emulated_board(tmp_path):
    """The flashed build on QEMU's MPS2 AN385 runs one step per SysTick period on its own: with no
    sensor frames it reports the sensor timeout, steps counted at the report rate, and the watchdog
    (modelled by QEMU, kicked every period) never resets it."""
    assert main(["firmware", "zoo:ant-robust", "--board", "mps2-an385", "--numeric", "fixed",
                 "--out", str(tmp_path)]) == 0
    config = app_config(get_task("ant"), "fixed", 5.0)
    board = app_board("mps2-an385")
    uart = tmp_path / "uart.sock"
    proc = subprocess.Popen(["qemu-system-arm", *board.qemu_machine, "-display", "none", "-nodefaults",
                             "-monitor", "none", "-serial", f"unix:{uart},server=on,wait=on", "-icount",
                             "shift=6,sleep=off", "-kernel", str(tmp_path / "firmware.elf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        s = socket.socket(socket.AF_UNIX)
        for _ in range(500):
            try:
                s.connect(str(uart))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.01)
        s.settimeout(10)
        from nchl_codegen.pil import Link

        def receive():
            data = s.recv(4096)
            assert data, "the emulator closed its UART"
            return data

        link = Link(config)
        link._receive = receive
        boots = [link.frame()]
        while len(link.reports) < 5:
            f = link.frame()
            boots += [f] if f["type"] == "boot" else []
    finally:
        proc.kill()
        proc.wait()
    assert len(boots) == 1 and not boots[0]["warm"]
    steps = [int(r.split()[1].split("=")[1]) for r in link.reports[:5]]
    assert steps == [20, 40, 60, 80, 100]      # a report every second of 50 ms periods
    assert all("state=safe" in r and "faults=8" in r for r in link.reports[:5])


@pytest.mark.parametrize("argv, message", [
    (["--board", "arduino"], "unknown board 'arduino'"),
    (["--board", "microbit"], "float32 on microbit (cortex-m0, no FPU) needs at least"),
])
def test_bad_boards_are_one_line_errors(tmp_path, capsys, argv, message):
    assert main(["firmware", "zoo:ant-nchl", *argv, "--out", str(tmp_path / "fw")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.skipif(not ARM, reason="needs arm-none-eabi-gcc")
def test_a_controller_too_big_for_the_chip_says_by_how_much(tmp_path, capsys):
    assert main(["firmware", "zoo:ant-nchl", "--board", "microbit", "--numeric", "fixed",
                 "--out", str(tmp_path / "fw")]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not fit microbit: RAM (16K) overflowed by" in err and len(err.splitlines()) == 1
