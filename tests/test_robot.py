"""Robot tasks from a user's MJCF model: inference, onboard observations, servos, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nchl.app.cli import main
from nchl.core.errors import NchlError
from nchl.core.genome import Genome
from nchl.core.spec import Spec
from nchl_sim import ModelChanged, get_task, rollout, task_for_genome
from nchl_sim.perturb import CATALOGUE, condition
from nchl_sim.robot import KINDS, RobotEnv, load_task_file, task_file_text
from nchl_sim.servo import ServoBank, ServoSpec

# A two-legged sled: a box base on a free joint, two hinged legs, no sensors of its own (the task
# adds the default onboard set). Elliptic friction cones: MuJoCo's default pyramidal cone is not
# isotropic, so turning the robot about the vertical would change its physics.
SLED = """<mujoco model="sled">
  <compiler angle="radian"/>
  <option timestep="0.005" cone="elliptic"/>
  <worldbody>
    <geom name="floor" type="plane" size="20 20 0.1"/>
    <body name="base" pos="{x} {y} 0.1" quat="{quat}">
      <freejoint/>
      <geom type="box" size="0.1 0.05 0.02" mass="0.3"/>
      <body name="front" pos="0.08 0 -0.02">
        <joint name="front_hip" type="hinge" axis="0 1 0" range="-0.8 0.8"/>
        <geom name="front_foot" type="capsule" fromto="0 0 0 0 0 -0.06" size="0.01" mass="0.02"/>
      </body>
      <body name="back" pos="-0.08 0 -0.02">
        <joint name="back_hip" type="hinge" axis="0 1 0" range="-0.8 0.8"/>
        <geom name="back_foot" type="capsule" fromto="0 0 0 0 0 -0.06" size="0.01" mass="0.02"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <position name="front" joint="front_hip" kp="2" ctrlrange="-0.6 0.6"/>
    <position name="back" joint="back_hip" kp="2" ctrlrange="-0.6 0.6"/>
  </actuator>
  {sensors}
</mujoco>
"""
SERVO = """
[task]
model = "sled.xml"
control_period_s = 0.02
episode_s = 2.0
hidden = [6]

[servo]
stall_torque = 0.3
speed_s_per_60deg = 0.12
"""


def sled(path: Path, x: float = 0.0, y: float = 0.0, yaw: float = 0.0, sensors: str = "") -> Path:
    quat = f"{math.cos(yaw / 2)!r} 0 0 {math.sin(yaw / 2)!r}"
    path.write_text(SLED.format(x=x, y=y, quat=quat, sensors=sensors))
    return path


@pytest.fixture(scope="module")
def sled_files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sled")
    sled(d / "sled.xml")
    (d / "sled.toml").write_text(SERVO)
    return d


def test_a_model_alone_infers_base_actuators_and_onboard_sensors(sled_files):
    task = get_task(str(sled_files / "sled.xml"))
    env = task.make_env()
    robot = env.unwrapped.robot
    assert env.unwrapped.model.body(robot.base).name == "base"
    assert robot.lo.tolist() == [-0.6, -0.6] and robot.hi.tolist() == [0.6, 0.6]
    kinds = robot.obs_kinds
    assert kinds == ["jointpos"] * 2 + ["jointvel"] * 2 + ["gyro"] * 3 + ["accelerometer"] * 3 + \
        ["gravity"] * 3 + ["command"] * 2
    assert task.sizes == (15, 2) and task.privileged == [] and task.control_period_s == pytest.approx(0.02)
    assert task.body_length == pytest.approx(0.2)
    obs, _ = env.reset(seed=0)
    for _ in range(60):   # it settles: the accelerometer reads 1 g up, gravity points down
        obs, *_ = env.step(np.zeros(2))
    assert obs[9] == pytest.approx(9.81 * KINDS["accelerometer"].scale, abs=0.05)
    assert obs[12] == pytest.approx(-1.0, abs=1e-3)
    assert np.all(np.abs(obs) <= 2.0)


def test_action_maps_onto_ctrlrange_and_the_servo_follows_it(sled_files):
    env = get_task(str(sled_files / "sled.toml")).make_env()
    u = env.unwrapped
    env.reset(seed=1)
    for _ in range(50):
        env.step(np.array([1.0, -0.5], dtype=np.float32))
    # the servo's P loop holds the target within its dead band plus the gear play, under load
    play = math.radians(ServoSpec().backlash_deg)
    assert u.joint_angles() == pytest.approx([0.6, -0.3], abs=0.03 + play)


def test_the_gait_clock_is_sin_and_cos_of_the_episode_time(sled_files, tmp_path):
    """A clock input is the controller's own timer: it restarts with every episode and is the same
    whatever the robot does, so the chip computes it from its step count."""
    (tmp_path / "sled.xml").write_text((sled_files / "sled.xml").read_text())
    (tmp_path / "clock.toml").write_text(SERVO.replace("[servo]", "[sensors]\nclock_hz = 1.5\n\n[servo]"))
    env = RobotEnv(load_task_file(tmp_path / "clock.toml"))
    assert env.robot.obs_names[-2:] == ["clock:sin", "clock:cos"]
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        assert obs[-2:].tolist() == [0.0, 1.0]
        for k in range(1, 31):
            obs, *_ = env.step(np.full(2, (-1.0) ** (k + seed)))
        phase = 2 * math.pi * 1.5 * 30 * 0.02
        assert obs[-2:] == pytest.approx([math.sin(phase), math.cos(phase)], abs=1e-9)
    with pytest.raises(NchlError, match=r"\[sensors\] clock_hz must be a finite number >= 0"):
        (tmp_path / "bad.toml").write_text(SERVO.replace("[servo]", "[sensors]\nclock_hz = -1\n\n[servo]"))
        load_task_file(tmp_path / "bad.toml")


def test_observations_do_not_change_when_the_robot_is_moved_or_turned(tmp_path):
    """The onboard observation law: shifting the robot in the world and turning it about the vertical
    leaves every observation of a rollout unchanged. Only rounding differs: world coordinates enter
    the contact solver, and contacts amplify their last bits over a rollout to ~1e-7; an observation
    that saw the frame (a position, a world-frame velocity, a heading) would differ by O(1)."""
    def observations(x, y, yaw):
        sled(tmp_path / "sled.xml", x, y, yaw)
        env = RobotEnv(load_task_file(tmp_path / "sled.toml"))
        obs, _ = env.reset(seed=3)
        out = [obs]
        for i in range(100):
            obs, *_ = env.step(np.sin(0.4 * i + np.arange(2)))
            out.append(obs)
        return np.array(out)

    (tmp_path / "sled.toml").write_text(SERVO)
    reference = observations(0.0, 0.0, 0.0)

    @settings(max_examples=4, deadline=None, derandomize=True)
    @given(st.floats(-5, 5), st.floats(-5, 5), st.floats(-math.pi, math.pi))
    def law(x, y, yaw):
        assert np.abs(observations(x, y, yaw) - reference).max() < 1e-5

    law()


def test_a_model_becomes_a_task_evolves_and_its_fixed_point_c_verifies(sled_files, tmp_path, capsys):
    task = str(sled_files / "sled.toml")
    run = tmp_path / "run"
    assert main(["evolve", "--task", task, "--rule", "nchl", "--generations", "2", "--popsize", "4",
                 "--workers", "1", "--validation-episodes", "1", "--out", str(run)]) == 0
    genome = Genome.load(run / "best.npz")
    assert genome.task == task and genome.model_sha256 == get_task(task).model_sha256
    capsys.readouterr()
    assert main(["verify", str(run / "best.npz"), "--episodes", "1", "--numeric", "fixed", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["max_abs_error"] == 0.0


def test_a_genome_on_a_changed_model_is_refused(sled_files, tmp_path):
    (tmp_path / "sled.toml").write_text(SERVO)
    sled(tmp_path / "sled.xml")
    task = get_task(str(tmp_path / "sled.toml"))
    spec = Spec("nchl", task.topology())
    genome = Genome(spec, np.zeros(spec.genome_length), task=str(tmp_path / "sled.toml"),
                    model_sha256=task.model_sha256)
    genome.save(tmp_path / "g.npz")
    assert task_for_genome(Genome.load(tmp_path / "g.npz")) is task
    sled(tmp_path / "sled.xml", x=0.5)   # the user edits the model
    with pytest.raises(ModelChanged, match="the model changed since the genome was evolved"):
        task_for_genome(Genome.load(tmp_path / "g.npz"))
    assert main(["evaluate", str(tmp_path / "g.npz"), "--episodes", "1"]) == 2


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.replace("<freejoint/>", ""), "no free joint"),
    (lambda s: s.replace('<actuator>', '<!--').replace('</actuator>', '-->'), "no actuators"),
    (lambda s: s.replace("<geom type=\"box\"", "<geom type=\"boxx\""), "MuJoCo cannot compile it"),
    (lambda s: s.replace('ctrlrange="-0.6 0.6"', ""), "has no ctrlrange"),
    (lambda s: s.replace("{sensors}", '<sensor><framepos objtype="body" objname="base"/></sensor>'),
     "not an onboard measurement"),
    (lambda s: s.replace("{sensors}", '<sensor><rangefinder site="s"/></sensor>')
     .replace('<geom type="box"', '<site name="s"/><geom type="box"'), "unknown sensor kind 'rangefinder'"),
])
def test_bad_models_are_one_line_errors_naming_the_file(tmp_path, edit, match):
    path = tmp_path / "robot.xml"
    path.write_text(edit(SLED).format(x=0, y=0, quat="1 0 0 0", sensors=""))
    with pytest.raises(NchlError, match=match) as e:
        get_task(str(path)).make_env()
    assert str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text, match", [
    ("[task]\nmodel = 'missing.xml'\n", "no such file"),
    ("[task]\nmodel = 'sled.xml'\nepisode = 3\n", r"unknown \[task\] option"),
    ("[task]\nmodel = 'sled.xml'\n[servo]\nstall = 1\n", "unknown servo option"),
    ("[task]\nmodel = 'sled.xml'\n[servo]\nstall_torque = -1\n", "stall_torque must be > 0"),
    ("[task]\nmodel = 'sled.xml'\n[servo.actuator.elbow]\nkp = 3\n", "actuators the model lacks"),
    ("[task]\nmodel = 'sled.xml'\ncontrol_period_s = 0.0123\n", "does not divide the control period"),
    ("[task]\nmodel = 'sled.xml'\n[fall]\ntilt = 3\n", r"unknown \[fall\] option"),
    ("[task\n", "not a valid TOML task file"),
])
def test_bad_task_files_are_one_line_errors(sled_files, tmp_path, text, match):
    sled(tmp_path / "sled.xml")
    path = tmp_path / "task.toml"
    path.write_text(text)
    with pytest.raises(NchlError, match=match):
        get_task(str(path)).make_env()


def test_missing_task_file_and_unknown_task_name(tmp_path):
    with pytest.raises(NchlError, match="no such task file"):
        get_task(str(tmp_path / "nope.toml"))
    with pytest.raises(NchlError, match="give an MJCF .xml or a task .toml"):
        get_task("no-such-task")


def test_task_init_writes_every_default_and_reads_back_the_same_task(sled_files, tmp_path):
    out = tmp_path / "mine.toml"
    assert main(["task", "init", str(sled_files / "sled.xml"), "-o", str(out)]) == 0
    text = out.read_text()
    for key in ("forward", "control_period_s", "episode_s", "timestep", "reset_noise", "height_share", "tilt_deg",
                "contacts", "gravity", "last_command"):
        assert f"\n{key} = " in text
    a, b = load_task_file(sled_files / "sled.xml"), load_task_file(out)
    assert (b.model, b.forward, b.control_period_s, b.episode_s, b.fall_tilt_deg) == \
        (a.model, a.forward, a.control_period_s, a.episode_s, a.fall_tilt_deg)
    assert main(["task", "init", str(sled_files / "sled.xml"), "-o", str(out)]) == 2   # no overwrite
    assert text == task_file_text(sled_files / "sled.xml", out)


def test_tasks_json_gives_period_body_length_and_privileged_inputs(capsys):
    assert main(["tasks", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["ant"]["privileged"] == [0, 13, 14, 15] and rows["ant-onboard"]["privileged"] == []
    assert rows["servo-quadruped"]["privileged"] == [] and rows["servo-quadruped"]["body_length"] == pytest.approx(0.16)
    assert rows["vsr-low"]["privileged"] == [] and len(rows["vsr-high"]["privileged"]) == 20
    assert all(r["control_period_s"] > 0 for r in rows.values())


# -- servos -----------------------------------------------------------------------------------------

def bank(**kw) -> ServoBank:
    return ServoBank([ServoSpec(**kw)], timestep=0.002)


def test_servo_torque_follows_the_torque_speed_line():
    s = ServoSpec()
    b = bank(deadband_us=0.0)
    assert b.torque(np.array([1.0]), np.array([0.0]), np.array([0.0]))[0] == pytest.approx(s.stall_torque)
    assert b.torque(np.array([1.0]), np.array([0.0]), np.array([s.no_load_speed]))[0] == pytest.approx(0.0, abs=1e-12)
    half = b.torque(np.array([1.0]), np.array([0.0]), np.array([s.no_load_speed / 2]))[0]
    assert half == pytest.approx(s.stall_torque / 2)
    b.override.supply = 0.5   # a sagging supply halves stall torque and no-load speed
    assert b.torque(np.array([1.0]), np.array([0.0]), np.array([s.no_load_speed / 2]))[0] == pytest.approx(0.0, abs=1e-12)


def test_servo_dead_band_resolution_and_update_rate():
    b = bank(deadband_us=5.0, resolution_us=0.0)
    inside = 4.0 * abs(ServoSpec().rad_per_us)
    assert b.torque(np.array([inside]), np.array([0.0]), np.array([0.0]))[0] == 0.0
    b = bank(update_hz=50.0, deadband_us=0.0)   # latches every 10 sub-steps of 2 ms
    b.torque(np.array([0.1]), np.array([0.0]), np.array([0.0]))
    for _ in range(9):   # a new command between latches is not seen
        b.torque(np.array([-0.1]), np.array([0.0]), np.array([0.0]))
    assert b.latched[0] == pytest.approx(0.1, abs=abs(ServoSpec().rad_per_us))
    b.torque(np.array([-0.1]), np.array([0.0]), np.array([0.0]))
    assert b.latched[0] == pytest.approx(-0.1, abs=abs(ServoSpec().rad_per_us))
    step = abs(ServoSpec().rad_per_us)
    assert b.latched[0] / step == pytest.approx(round(b.latched[0] / step))   # 1 us command resolution


def test_catalogue_conditions_act_on_a_servo_robot_and_vanish_at_zero(sled_files):
    """Every condition applies to a servo robot with legs; at strength 0 it is the identity, and at its
    default strength it changes the episode."""
    task = get_task(str(sled_files / "sled.toml"))
    assert task.parts == {"legs", "servos"}

    def xs(conditions):
        env = task.make_env(conditions=conditions, perturbable=True)
        obs, _ = env.reset(seed=4)
        out = []
        for i in range(60):
            obs, _, term, _, info = env.step(np.sin(0.3 * i + np.arange(2)).astype(np.float32))
            out.append(obs)
            if term:
                break
        return np.array(out)

    intact = xs([])
    for name, kind in CATALOGUE.items():
        if kind.needs == "terrain":
            continue
        assert np.array_equal(xs([condition(name, 0.0)]), intact), name
        changed = xs([condition(name, task.default_strength(name))])
        assert changed.shape != intact.shape or not np.array_equal(changed, intact), name


def test_servo_conditions_need_servos_and_terrain_needs_a_height_field(sled_files):
    with pytest.raises(NchlError, match="applies to a task with servos"):
        get_task(str(sled_files / "sled.xml")).make_env(conditions=[condition("backlash", 3.0)])
    with pytest.raises(NchlError, match=r"applies to a task with a \[terrain\] height field"):
        get_task(str(sled_files / "sled.toml")).make_env(conditions=[condition("terrain", 0.01)])


def test_the_servo_quadruped_stands_on_its_servos():
    env = get_task("servo-quadruped").make_env()
    r = rollout(env, _Still(8), seed=0)
    assert r.steps == 1000 and r.reason == "time_limit" and abs(r.fitness) < 0.02


class _Still:
    """Sends the servos to the middle of their range and keeps them there."""

    def __init__(self, n: int) -> None:
        self.n = n

    def reset(self, seed: int) -> None:
        pass

    def step(self, obs):
        return np.zeros(self.n, dtype=np.float32)
