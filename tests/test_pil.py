"""nchl pil: the firmware in the loop with the physics, against the Python model of the firmware at
every step; each fault of the catalogue and the firmware's response to it."""

import json
import shutil

import pytest

from nchl.app.cli import main

ARM = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None
needs_arm = pytest.mark.skipif(not ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")


def pil(capsys, *argv) -> dict:
    code = main(["pil", *argv, "--json"])
    r = json.loads(capsys.readouterr().out)
    assert code == (0 if r["bit_exact"] and r.get("bad_commands", 0) == 0 else 1)
    return r


@needs_arm
def test_micro_bit_fixed_point_walks_bit_exact(capsys):
    r = pil(capsys, "zoo:ant-robust", "--board", "microbit", "--numeric", "fixed", "--steps", "100")
    (e,) = r["episodes"]
    assert r["bit_exact"] and r["max_abs_action_error"] == 0 and e["mismatches"] == 0
    assert r["distance_firmware"] == r["distance_reference"] > 0.5
    assert 0.8 < r["headroom"] < 1 and r["clock_mhz"] == 16
    assert r["controller_cycles_per_step"] < r["cycles_per_step"] <= r["cycles_per_step_max"]
    assert r["ram_bytes"] < r["ram_chip"] == 16384


def test_host_board_runs_the_same_loop(capsys):
    r = pil(capsys, "zoo:ant-robust", "--board", "host", "--steps", "100")
    assert r["bit_exact"] and r["distance_firmware"] == r["distance_reference"]
    assert r["episodes"][0]["events"] == [] and r["cycles_per_step"] > 0   # never left the run state


@needs_arm
def test_servo_quadruped_pulse_widths_on_a_cortex_m4f(capsys):
    r = pil(capsys, "zoo:quadruped-robust", "--board", "mps2-an386", "--steps", "100")
    assert r["bit_exact"] and r["max_abs_action_error"] == 0
    assert r["distance_firmware"] == r["distance_reference"]
    assert r["control_period_s"] == 0.02 and r["headroom"] > 0.5


# (fault, the step its fault latches relative to the onset, the fault's name); Ant: 50 ms periods, so
# stuck = 20 periods, max_dropped = max_misses = 3; the stop input is cycled a second after the latch
FAULTS = [("stuck-sensor", 20, "stuck"), ("nan-reading", 0, "invalid"), ("dropped-frame", 2, "sensor-timeout"),
          ("missed-deadline", 3, "deadline"), ("reset", 0, "reset")]


@needs_arm
@pytest.mark.parametrize("fault, latch, name", FAULTS)
def test_fault_safe_pose_latched_then_recovered(capsys, fault, latch, name):
    onset = 10
    r = pil(capsys, "zoo:ant-robust", "--board", "microbit", "--numeric", "fixed", "--steps", "80",
            "--fault", fault, "--fault-step", str(onset))
    (e,) = r["episodes"]
    stop = r["fault"]["stop_cycled_at"]
    assert e["events"] == [{"step": onset + latch, "state": "safe", "faults": [name]},
                           {"step": stop, "state": "stopped", "faults": [name]},
                           {"step": stop + 1, "state": "run", "faults": []}]
    assert r["faults"] == [e["events"]]
    assert r["bad_commands"] == 0 and e["off_safe_pose"] == 0   # every command finite, in range; safe pose held
    assert r["bit_exact"]                                       # the Python model predicted every step


@pytest.mark.slow
def test_stress_takes_the_boards_compute_time_as_latency(capsys):
    """nchl stress --board: the measured step plus the stated sensor delay, in whole sub-steps, acts in
    every setting; a latency condition adds to it."""
    code = main(["stress", "zoo:ant-robust", "--board", "host", "--conditions", "latency=2", "--episodes", "1",
                 "--workers", "1", "--json"])
    r = json.loads(capsys.readouterr().out)
    b = r["board_latency"]
    assert code == 0 and b["latency_substeps"] == 1 and b["compute_s"] + b["bus_delay_s"] <= b["substep_s"]
    assert r["conditions"][0]["name"] == "latency" and r["conditions"][0]["strength"] == 2
