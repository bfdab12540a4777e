"""A task from the user's own MJCF model: onboard sensors only, optional position servos.

A robot task is a model file plus a few options (a TOML task file, or the defaults inferred from the
model alone). From the model it takes

* the floating base: the body with the free joint (exactly one);
* the actuators, each on a hinge or slide joint: the action in [-1, 1] maps onto each actuator's
  ``ctrlrange`` (under ``[servo]``: the target angle the servo is sent);
* the sensors, if the model declares any, else a default onboard set: the angle and speed of every
  actuated joint (encoders, servo feedback), an IMU at the base (gyro, accelerometer, and the
  gravity direction in the base frame, which an IMU's orientation filter estimates), foot contact
  switches if asked, and the last command sent. Each reading is scaled by its kind to O(1) from a
  declared range (:data:`KINDS`), never fitted to data, and clipped. Measurements no robot makes
  (world position, world velocity, height) are refused.

The fitness is the forward displacement of the base (``info["x_position"]``: the base position
along ``forward``); an episode ends when the base falls below a share of its initial height or tilts
beyond an angle.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

from nchl.core.errors import NchlError

from .servo import ServoBank, ServoSpec


class RobotError(NchlError):
    pass


@dataclass(frozen=True)
class SensorKind:
    what: str
    scale: float       # reading * scale is O(1)
    clip: float        # scaled readings are clipped to [-clip, clip]
    unit: str


# Declared ranges: an MPU-6050-class IMU at +-500 deg/s and +-4 g maps onto [-2, 2]; joint angles
# onto [-1, 1] over their range; joint speeds in units of the servo's no-load speed (10 rad/s for
# other actuators), clipped at twice that.
KINDS: dict[str, SensorKind] = {
    "jointpos": SensorKind("joint angle (encoder / servo feedback), -1..1 over the joint's range", 1.0, 1.0, "rad"),
    "jointvel": SensorKind("joint speed, in units of the servo's no-load speed", 1.0, 2.0, "rad/s"),
    "gyro": SensorKind("base angular velocity in the IMU frame (+-500 deg/s full scale)", 1 / math.radians(250), 2.0,
                       "rad/s"),
    "accelerometer": SensorKind("specific force in the IMU frame (+-4 g full scale)", 1 / (2 * 9.81), 2.0, "m/s^2"),
    "gravity": SensorKind("gravity direction in the IMU frame (an orientation filter's estimate)", 1.0, 1.0, "1"),
    "framequat": SensorKind("IMU orientation quaternion (an orientation filter's estimate)", 1.0, 1.0, "1"),
    "touch": SensorKind("foot contact switch, 1 = touching", 1.0, 1.0, "1"),
    "command": SensorKind("the last command sent, in action units", 1.0, 1.0, "1"),
    "clock": SensorKind("gait clock: sin and cos of 2 pi clock_hz t, t counted by the controller's own timer",
                        1.0, 1.0, "1"),
}
# MuJoCo sensor types taken from a model, and the ones refused because no onboard sensor measures them
_ONBOARD = {
    mujoco.mjtSensor.mjSENS_JOINTPOS: "jointpos", mujoco.mjtSensor.mjSENS_JOINTVEL: "jointvel",
    mujoco.mjtSensor.mjSENS_ACTUATORPOS: "jointpos", mujoco.mjtSensor.mjSENS_ACTUATORVEL: "jointvel",
    mujoco.mjtSensor.mjSENS_GYRO: "gyro", mujoco.mjtSensor.mjSENS_ACCELEROMETER: "accelerometer",
    mujoco.mjtSensor.mjSENS_FRAMEQUAT: "framequat", mujoco.mjtSensor.mjSENS_TOUCH: "touch",
}
_PRIVILEGED = {
    mujoco.mjtSensor.mjSENS_VELOCIMETER, mujoco.mjtSensor.mjSENS_FRAMEPOS, mujoco.mjtSensor.mjSENS_FRAMELINVEL,
    mujoco.mjtSensor.mjSENS_FRAMELINACC, mujoco.mjtSensor.mjSENS_SUBTREECOM, mujoco.mjtSensor.mjSENS_SUBTREELINVEL,
    mujoco.mjtSensor.mjSENS_SUBTREEANGMOM,
}
PLAY = "__play"        # suffix of the backlash hinge added after each servo joint
IMU_SITE = "nchl_imu"  # the IMU site added at the base when the model has none
OBS_BOUND = 2.0        # every scaled reading lies in [-2, 2] (the fixed-point controller's input range)
TERRAIN_DEPTH = 0.005  # m: the height field's floor lies this far below the model's own ground, out of reach


@dataclass(frozen=True)
class Terrain:
    """A height field under the robot: ``size`` (x, y) m, centred ``ahead`` m in front of the start,
    bumps up to ``amplitude`` m above the model's ground on a ``cell`` m grid, drawn from the episode
    seed; flat within ``clear`` m of the start so the robot does not start inside a bump. Its grid is
    aligned with the world axes, so rough ground is the one thing that turning the robot changes."""

    size: tuple[float, float] = (8.0, 4.0)
    amplitude: float = 0.0
    cell: float = 0.05
    ahead: float = 2.0
    clear: float = 0.3


@dataclass(frozen=True)
class RobotConfig:
    """Every option of a robot task; :func:`load_task_file` fills it from a TOML file, and
    ``nchl task init`` writes it out with every inferred default."""

    model: str                                  # absolute path of the MJCF file
    model_sha256: str
    name: str = ""
    forward: tuple[float, float] = (1.0, 0.0)
    control_period_s: float = 0.02
    episode_s: float = 20.0
    timestep: float | None = None               # None: the model's own
    reset_noise: float = 0.05                   # rad, uniform on every joint angle at reset
    fall_height_share: float = 0.5              # 0 = off
    fall_tilt_deg: float = 60.0                 # 0 = off
    contacts: bool = False
    gravity: bool = True
    last_command: bool = True
    clock_hz: float = 0.0                       # > 0: a gait clock input (sin, cos) at this frequency
    hidden: tuple[int, ...] = (32, 32)
    servo: tuple[tuple[str, ServoSpec], ...] = ()   # (actuator, its servo); () = the model's own actuators
    terrain: Terrain | None = None

    @property
    def episode_steps(self) -> int:
        return max(1, round(self.episode_s / self.control_period_s))


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _fail(path: object, why: str) -> RobotError:
    return RobotError(f"{path}: {why}")


def load_spec(path: str | Path) -> mujoco.MjSpec:
    """The user's model as an MjSpec, with a one-line error naming the file."""
    p = Path(path)
    if not p.is_file():
        raise _fail(p, "no such file")
    try:
        spec = mujoco.MjSpec.from_file(str(p))
        spec.compile()
    except Exception as e:  # MuJoCo raises ValueError with its parser's message
        raise _fail(p, f"MuJoCo cannot compile it: {str(e).strip().splitlines()[0] if str(e).strip() else e}") from None
    return spec


def _free_body(spec: mujoco.MjSpec, path: object) -> mujoco.MjsBody:
    free = [j for j in spec.joints if j.type == mujoco.mjtJoint.mjJNT_FREE]
    if not free:
        raise _fail(path, "no free joint: the robot's base body needs <freejoint/> so it can walk")
    if len(free) > 1:
        raise _fail(path, f"{len(free)} free joints: a robot task has one floating base")
    return free[0].parent


def _actuators(spec: mujoco.MjSpec, path: object) -> list:
    acts = list(spec.actuators)
    if not acts:
        raise _fail(path, "no actuators: the controller needs at least one <actuator> to drive")
    for i, a in enumerate(acts):
        if not a.name:
            a.name = f"actuator{i}"
        if a.trntype != mujoco.mjtTrn.mjTRN_JOINT:
            raise _fail(path, f"actuator {a.name!r} does not drive a joint (only joint transmissions are supported)")
        j = spec.joint(a.target)
        if j is None or j.type not in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
            raise _fail(path, f"actuator {a.name!r} must drive a hinge or slide joint")
    return acts


def _leaves(spec: mujoco.MjSpec, base: mujoco.MjsBody) -> list[mujoco.MjsBody]:
    """The ends of the robot's kinematic chains below the base: its feet."""
    out, stack = [], list(base.bodies)
    while stack:
        b = stack.pop(0)
        kids = list(b.bodies)
        if kids:
            stack.extend(kids)
        elif list(b.geoms):
            out.append(b)
    return out


@dataclass
class Robot:
    """A compiled robot task model and what the environment needs to read and drive it."""

    config: RobotConfig
    spec: mujoco.MjSpec            # the edited spec (for damage that recompiles)
    model: mujoco.MjModel
    base: int                      # body id
    joints: list[int]              # joint id driven by each actuator
    plays: list[int]               # the backlash hinge of each servo joint (-1: none)
    lo: np.ndarray                 # action -1 maps onto ...
    hi: np.ndarray                 # ... and +1 onto this (ctrlrange)
    feet: list[str]                # the geom at the end of each leg
    obs_names: list[str]
    obs_kinds: list[str]
    sensors: list[tuple[str, int, int, int]] = field(default_factory=list)  # (kind, adr, dim, object)
    body_length: float = 0.0
    servos: list[ServoSpec] = field(default_factory=list)



def build_robot(config: RobotConfig) -> Robot:
    """Compile the task's model: servos, backlash hinges, the IMU and the terrain added."""
    path = config.model
    spec = load_spec(path)
    base = _free_body(spec, path)
    acts = _actuators(spec, path)
    names = [a.name for a in acts]
    servos = dict(config.servo)
    unknown = set(servos) - set(names)
    if unknown:
        raise _fail(path, f"servo settings name actuators the model lacks: {sorted(unknown)}")
    compiled = spec.compile()   # joint ranges in radians, whatever the model's compiler angle unit
    lo, hi, play_names = [], [], []
    for a in acts:
        j = spec.joint(a.target)
        j_range = compiled.joint(a.target).range
        if a.ctrllimited == mujoco.mjtLimited.mjLIMITED_TRUE or (a.ctrllimited == mujoco.mjtLimited.mjLIMITED_AUTO
                                                                and a.ctrlrange[0] < a.ctrlrange[1]):
            r = (float(a.ctrlrange[0]), float(a.ctrlrange[1]))
        elif a.name in servos and j_range[0] < j_range[1]:
            r = (float(j_range[0]), float(j_range[1]))
        else:
            raise _fail(path, f"actuator {a.name!r} has no ctrlrange: the action in [-1, 1] maps onto it")
        if not r[0] < r[1]:
            raise _fail(path, f"actuator {a.name!r}: ctrlrange must be [low, high] with low < high")
        lo.append(r[0])
        hi.append(r[1])
        s = servos.get(a.name)
        if s is None:
            play_names.append(None)
            continue
        if j.type != mujoco.mjtJoint.mjJNT_HINGE:
            raise _fail(path, f"servo {a.name!r} must drive a hinge joint")
        span = (math.radians(min(s.angle_deg)), math.radians(max(s.angle_deg)))
        if r[0] < span[0] - 1e-9 or r[1] > span[1] + 1e-9:
            raise _fail(path, f"servo {a.name!r}: ctrlrange [{r[0]:.3f}, {r[1]:.3f}] rad exceeds the servo's travel "
                              f"{list(s.angle_deg)} deg")
        j.armature, j.frictionloss = s.armature, s.frictionloss
        play = j.parent.add_joint(name=f"{j.name}{PLAY}", type=mujoco.mjtJoint.mjJNT_HINGE, axis=j.axis, pos=j.pos,
                                  limited=mujoco.mjtLimited.mjLIMITED_TRUE,
                                  range=[-math.radians(max(s.backlash_deg, 1e-3)) / 2,
                                         math.radians(max(s.backlash_deg, 1e-3)) / 2],
                                  armature=1e-6, damping=1e-4)
        play_names.append(play.name)
        a.set_to_motor()
        a.gear = [1.0, 0, 0, 0, 0, 0]
        a.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE
        a.forcelimited = mujoco.mjtLimited.mjLIMITED_FALSE
    if config.timestep is not None:
        spec.option.timestep = config.timestep
    period, step = config.control_period_s, spec.option.timestep
    if abs(round(period / step) * step - period) > 1e-9 * period or round(period / step) < 1:
        raise _fail(path, f"timestep {step:g} s does not divide the control period {period:g} s into whole sub-steps")
    # sensors: the model's own, else the default onboard set
    declared = list(spec.sensors)
    imu = None
    for s in declared:
        if s.type in _PRIVILEGED:
            raise _fail(path, f"sensor {s.name or s.type.name!r} ({s.type.name[7:].lower()}) is not an onboard "
                              f"measurement: a robot cannot measure it; remove it")
        if s.type not in _ONBOARD:
            raise _fail(path, f"sensor {s.name or s.type.name!r}: unknown sensor kind {s.type.name[7:].lower()!r}; "
                              f"onboard kinds: jointpos, jointvel, actuatorpos, actuatorvel, gyro, accelerometer, "
                              f"framequat, touch")
        if s.type in (mujoco.mjtSensor.mjSENS_GYRO, mujoco.mjtSensor.mjSENS_ACCELEROMETER):
            imu = s.objname
    if imu is None:
        imu = IMU_SITE
        base.add_site(name=IMU_SITE, pos=[0, 0, 0], size=[0.005, 0, 0])
    if not declared:
        for kind in (mujoco.mjtSensor.mjSENS_GYRO, mujoco.mjtSensor.mjSENS_ACCELEROMETER):
            spec.add_sensor(type=kind, objtype=mujoco.mjtObj.mjOBJ_SITE, objname=imu, name=f"nchl_{kind.name[8:].lower()}")
    leaves = _leaves(spec, base)
    feet = []
    for k, b in enumerate(leaves):
        g = list(b.geoms)[-1]
        if not g.name:
            g.name = f"nchl_foot{k}"
        feet.append(g.name)
    if config.terrain is not None:
        _add_terrain(spec, config.terrain)
    if not any(c.name == "track" for c in spec.cameras):
        base.add_camera(name="track", mode=mujoco.mjtCamLight.mjCAMLIGHT_TRACKCOM, pos=[0, -1.0, 0.3],
                        xyaxes=[1, 0, 0, 0, 0.3, 1])
    try:
        model = spec.compile()
    except Exception as e:
        raise _fail(path, f"MuJoCo cannot compile the task model: {e}") from None
    base_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, base.name) if base.name else _body_of_free(model)
    joints = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, spec.actuator(n).target) for n in names]
    plays = [-1 if p is None else mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, p) for p in play_names]
    robot = Robot(config, spec, model, base_id, joints, plays, np.array(lo), np.array(hi), feet, [], [],
                  servos=[servos[n] for n in names if n in servos])
    _observation_layout(robot, declared, names, imu)
    robot.body_length = _body_length(model, base_id, np.array([*config.forward, 0.0]))
    return robot


def _body_of_free(model: mujoco.MjModel) -> int:
    j = int(np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_FREE)[0])
    return int(model.jnt_bodyid[j])


def _add_terrain(spec: mujoco.MjSpec, t: Terrain) -> None:
    nx, ny = max(2, round(t.size[0] / t.cell) + 1), max(2, round(t.size[1] / t.cell) + 1)
    spec.add_hfield(name="nchl_terrain", nrow=ny, ncol=nx, size=[t.size[0] / 2, t.size[1] / 2, TERRAIN_DEPTH, 0.05],
                    userdata=[0.0] * (nx * ny))
    spec.worldbody.add_geom(name="nchl_terrain", type=mujoco.mjtGeom.mjGEOM_HFIELD, hfieldname="nchl_terrain",
                            pos=[t.ahead, 0, -TERRAIN_DEPTH], rgba=[0.45, 0.5, 0.4, 1], conaffinity=1, contype=1)


def _body_length(model: mujoco.MjModel, base: int, forward: np.ndarray) -> float:
    """Extent of the base body's geoms along the forward axis at the initial pose (m)."""
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    lo, hi = math.inf, -math.inf
    for g in np.flatnonzero(model.geom_bodyid == base):
        centre = data.geom_xpos[g] @ forward
        half = np.abs(data.geom_xmat[g].reshape(3, 3).T @ forward) @ model.geom_aabb[g, 3:]
        lo, hi = min(lo, centre - half), max(hi, centre + half)
    return float(hi - lo) if hi > lo else 0.0


def _observation_layout(robot: Robot, declared: list, actuators: list[str], imu: str) -> None:
    m, names, kinds, sensors = robot.model, robot.obs_names, robot.obs_kinds, robot.sensors

    def joint_of(s) -> int:
        if s.type in (mujoco.mjtSensor.mjSENS_ACTUATORPOS, mujoco.mjtSensor.mjSENS_ACTUATORVEL):
            return robot.joints[actuators.index(s.objname)] if s.objname in actuators else -1
        return mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, s.objname)

    if declared:
        for k, s in enumerate(declared):
            kind = _ONBOARD[s.type]
            sid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SENSOR, s.name) if s.name else k
            adr, dim = int(m.sensor_adr[sid]), int(m.sensor_dim[sid])
            obj = joint_of(s) if kind in ("jointpos", "jointvel") else -1
            if kind in ("jointpos", "jointvel") and obj < 0:
                raise _fail(robot.config.model, f"sensor {s.name!r} reads no joint of the model")
            label = s.name or f"{kind}{k}"
            sensors.append((kind, adr, dim, obj))
            names.extend([label] if dim == 1 else [f"{label}[{i}]" for i in range(dim)])
            kinds.extend([kind] * dim)
    else:
        for kind in ("jointpos", "jointvel"):
            for a, j in zip(actuators, robot.joints):
                sensors.append((kind, -1, 1, j))
                names.append(f"{kind}:{mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j)}")
                kinds.append(kind)
        for kind in ("gyro", "accelerometer"):
            sid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SENSOR, f"nchl_{kind}")
            sensors.append((kind, int(m.sensor_adr[sid]), 3, -1))
            names.extend(f"{kind}:{a}" for a in "xyz")
            kinds.extend([kind] * 3)
    if robot.config.gravity:
        sensors.append(("gravity", -1, 3, mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, imu)))
        names.extend(f"gravity:{a}" for a in "xyz")
        kinds.extend(["gravity"] * 3)
    if robot.config.contacts:
        for f in robot.feet:
            sensors.append(("touch", -1, 1, mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, f)))
            names.append(f"touch:{f}")
            kinds.append("touch")
    if robot.config.last_command:
        names.extend(f"command:{a}" for a in actuators)
        kinds.extend(["command"] * len(actuators))
    if robot.config.clock_hz > 0:
        names.extend(["clock:sin", "clock:cos"])
        kinds.extend(["clock"] * 2)


class RobotEnv(MujocoEnv):
    """A robot task as a Gymnasium environment (MuJoCo), with Gymnasium's sub-step hook
    (``_step_mujoco_simulation``, ``_get_obs``) that :mod:`nchl_sim.perturb` drives."""

    metadata = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"]}

    def __init__(self, config: RobotConfig, render_mode: str | None = None, width: int = 480, height: int = 360,
                 camera_name: str | None = None, default_camera_config: dict | None = None,
                 terminate: bool = True) -> None:
        """``terminate=False`` switches the fall rule off (whole episodes, to compare C and Python)."""
        self.robot = build_robot(config)
        self.config = config
        self.terminate = terminate
        frame_skip = round(config.control_period_s / self.robot.model.opt.timestep)
        self.metadata = {**self.metadata, "render_fps": round(1.0 / config.control_period_s)}
        n_obs = len(self.robot.obs_names)
        super().__init__(config.model, frame_skip, gym.spaces.Box(-OBS_BOUND, OBS_BOUND, (n_obs,), np.float64),
                         render_mode=render_mode, width=width, height=height, camera_name=camera_name,
                         default_camera_config=default_camera_config)
        r, m = self.robot, self.model
        self.action_space = gym.spaces.Box(-1.0, 1.0, (m.nu,), np.float32)
        self._qpos = np.array([m.jnt_qposadr[j] for j in r.joints])
        self._dof = np.array([m.jnt_dofadr[j] for j in r.joints])
        self._servo = np.array([p >= 0 for p in r.plays])
        self._play_qpos = np.array([m.jnt_qposadr[p] if p >= 0 else 0 for p in r.plays])
        self._play_dof = np.array([m.jnt_dofadr[p] if p >= 0 else 0 for p in r.plays])
        self.servos = ServoBank(r.servos, m.opt.timestep) if r.servos else None
        self.strength = self.servos.strength if self.servos else None
        self._forward = np.array(config.forward, dtype=np.float64)
        self._forward /= np.linalg.norm(self._forward)
        self._hinge_joints = np.flatnonzero((m.jnt_type == mujoco.mjtJoint.mjJNT_HINGE)
                                            | (m.jnt_type == mujoco.mjtJoint.mjJNT_SLIDE))
        self._nominal_play = m.jnt_range[[p for p in r.plays if p >= 0]].copy()
        self._play_ids = [p for p in r.plays if p >= 0]
        self._foot_geoms = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, f) for f in r.feet])
        self._robot_body = np.zeros(m.nbody, dtype=bool)
        self._robot_body[[b for b in range(m.nbody) if _ancestor(m, b, r.base)]] = True
        span = r.hi - r.lo
        self._joint_mid, self._joint_half = _joint_scale(m, r.joints)
        self._vel_ref = np.full(len(r.joints), 10.0)
        if self.servos is not None:
            self._vel_ref[self._servo] = self.servos.no_load
        self._command = np.zeros(m.nu)
        self._t0 = 0.0
        self._clip = np.array([KINDS[k].clip for k in r.obs_kinds])
        self._lo, self._span = r.lo, span
        self._terrain = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_HFIELD, "nchl_terrain")
        self._amplitude = config.terrain.amplitude if config.terrain else 0.0

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        m = self.robot.model
        m.vis.global_.offwidth = max(m.vis.global_.offwidth, self.width)
        m.vis.global_.offheight = max(m.vis.global_.offheight, self.height)
        return m, mujoco.MjData(m)

    # -- the robot's state as its sensors and the scorer see it -------------------------
    def joint_angles(self) -> np.ndarray:
        """Output shaft angle of every actuated joint (motor hinge + gear play)."""
        q = self.data.qpos[self._qpos].copy()
        q[self._servo] += self.data.qpos[self._play_qpos[self._servo]]
        return q

    def joint_speeds(self) -> np.ndarray:
        v = self.data.qvel[self._dof].copy()
        v[self._servo] += self.data.qvel[self._play_dof[self._servo]]
        return v

    def base_position(self) -> np.ndarray:
        return self.data.xpos[self.robot.base]

    def forward_position(self) -> float:
        return float(self.data.xpos[self.robot.base, :2] @ self._forward)

    def _get_obs(self) -> np.ndarray:
        r, d = self.robot, self.data
        out = []
        angles = speeds = None
        for kind, adr, dim, obj in r.sensors:
            if kind == "jointpos":
                angles = self.joint_angles() if angles is None else angles
                i = r.joints.index(obj)
                out.append([(angles[i] - self._joint_mid[i]) / self._joint_half[i]])
            elif kind == "jointvel":
                speeds = self.joint_speeds() if speeds is None else speeds
                i = r.joints.index(obj)
                out.append([speeds[i] / self._vel_ref[i]])
            elif kind == "gravity":
                out.append(-d.site_xmat[obj].reshape(3, 3)[2])    # world z in the site frame, negated
            elif kind == "touch" and adr < 0:
                out.append([float(self._touching(obj))])
            elif kind == "touch":
                out.append([float(d.sensordata[adr] > 0)])
            else:
                out.append(d.sensordata[adr:adr + dim] * KINDS[kind].scale)
        if r.config.last_command:
            out.append(self._command)
        if r.config.clock_hz > 0:
            phase = 2 * math.pi * r.config.clock_hz * (d.time - self._t0)
            out.append([math.sin(phase), math.cos(phase)])
        obs = np.concatenate(out) if out else np.zeros(0)
        return np.clip(obs, -self._clip, self._clip)

    def _touching(self, geom: int) -> bool:
        n = self.data.ncon
        if not n:
            return False
        pairs = self.data.contact.geom[:n]
        hit = (pairs == geom).any(axis=1)
        if not hit.any():
            return False
        other = np.where(pairs[hit, 0] == geom, pairs[hit, 1], pairs[hit, 0])
        return bool((~self._robot_body[self.model.geom_bodyid[other]]).any())

    # -- driving it ---------------------------------------------------------------------------
    def actuate(self, ctrl: np.ndarray) -> None:
        """Put the command of one physics sub-step into ``data.ctrl``: servos turn their target angle
        into motor torque; other actuators take it as it is."""
        if self.servos is None:
            self.data.ctrl[:] = ctrl
            return
        out = np.array(ctrl, dtype=np.float64)
        s = self._servo
        out[s] = self.servos.torque(out[s], self.joint_angles()[s], self.data.qvel[self._dof[s]])
        self.data.ctrl[:] = out

    def _step_mujoco_simulation(self, ctrl, n_frames: int) -> None:
        if self.servos is None:
            self.data.ctrl[:] = ctrl
            mujoco.mj_step(self.model, self.data, nstep=n_frames)
            return
        for _ in range(n_frames):
            self.actuate(ctrl)
            mujoco.mj_step(self.model, self.data)

    def set_servo_conditions(self, backlash_deg: float | None = None, deadband_us: float | None = None,
                             supply: float = 1.0, lag_ms: float | None = None) -> None:
        """The stress catalogue's servo conditions (None: the datasheet's value)."""
        if self.servos is None:
            raise RobotError("this task has no servos")
        o = self.servos.override
        o.supply, o.deadband_us, o.lag_ms = supply, deadband_us, lag_ms
        if self._play_ids:
            if backlash_deg is None:
                self.model.jnt_range[self._play_ids] = self._nominal_play
            else:
                half = math.radians(max(backlash_deg, 1e-3)) / 2
                self.model.jnt_range[self._play_ids] = [-half, half]

    def reset_model(self) -> np.ndarray:
        m, d, rng = self.model, self.data, self.np_random
        if self._play_ids:
            m.jnt_range[self._play_ids] = self._nominal_play
        if self._terrain >= 0:
            self.set_terrain(self._amplitude, rng)
        qpos = self.init_qpos.copy()
        adr = m.jnt_qposadr[self._hinge_joints]
        if self.config.reset_noise > 0:
            qpos[adr] += rng.uniform(-self.config.reset_noise, self.config.reset_noise, len(adr))
        lim = m.jnt_limited[self._hinge_joints].astype(bool)
        qpos[adr[lim]] = np.clip(qpos[adr[lim]], m.jnt_range[self._hinge_joints[lim], 0],
                                 m.jnt_range[self._hinge_joints[lim], 1])
        self.set_state(qpos, self.init_qvel.copy())
        self._t0 = float(self.data.time)
        self._command[:] = 0.0
        if self.servos is not None:
            self.servos.reset(self.joint_angles()[self._servo])
        self._z0 = float(self.base_position()[2])
        self._x = self.forward_position()
        return self._get_obs()

    def set_terrain(self, amplitude: float, rng: np.random.Generator) -> None:
        """Bumps of up to ``amplitude`` m drawn from ``rng`` (smooth: a sum of random bumps of 0.1-0.3 m)."""
        m, t = self.model, self.config.terrain
        nrow, ncol = int(m.hfield_nrow[self._terrain]), int(m.hfield_ncol[self._terrain])
        x = np.linspace(-t.size[0] / 2, t.size[0] / 2, ncol) + t.ahead
        y = np.linspace(-t.size[1] / 2, t.size[1] / 2, nrow)
        X, Y = np.meshgrid(x, y)
        h = np.zeros_like(X)
        for _ in range(int(t.size[0] * t.size[1] * 4)):
            cx, cy = rng.uniform(x[0], x[-1]), rng.uniform(y[0], y[-1])
            w = rng.uniform(0.1, 0.3)
            h += rng.uniform(0, 1) * np.exp(-((X - cx) ** 2 + (Y - cy) ** 2) / (2 * w * w))
        h /= max(float(h.max()), 1e-12)
        h *= np.clip((np.hypot(X, Y) - t.clear) / t.clear, 0.0, 1.0)   # flat at the start
        # elevation h * (amplitude + depth) - depth: bumps rise up to `amplitude` above the ground,
        # the rest stays below it (flat ground: all of it)
        start = int(m.hfield_adr[self._terrain])
        m.hfield_data[start:start + nrow * ncol] = h.ravel() if amplitude > 0 else 0.0
        m.hfield_size[self._terrain, 2] = amplitude + TERRAIN_DEPTH
        if self.mujoco_renderer is not None and getattr(self.mujoco_renderer, "_viewers", None):
            for v in self.mujoco_renderer._viewers.values():
                mujoco.mjr_uploadHField(m, v.con, self._terrain)

    def _get_reset_info(self) -> dict:
        return {"x_position": self._x}

    def fallen(self) -> bool:
        c = self.config
        z = float(self.base_position()[2])
        if c.fall_height_share > 0 and z < c.fall_height_share * self._z0:
            return True
        if c.fall_tilt_deg > 0:
            up = self.data.xmat[self.robot.base].reshape(3, 3)[2, 2]
            if up < math.cos(math.radians(c.fall_tilt_deg)):
                return True
        return False

    def step(self, action):
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise RobotError(f"action must have shape {self.action_space.shape}, got {a.shape}")
        if not np.isfinite(a).all():
            raise RobotError("action has non-finite values")
        a = np.clip(a, -1.0, 1.0)
        self._command[:] = a
        warnings_before = self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number
        self._step_mujoco_simulation(self._lo + (a + 1.0) * 0.5 * self._span, self.frame_skip)
        unstable = (self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number != warnings_before
                    or not np.isfinite(self.data.qpos).all())
        x = self._x if unstable else self.forward_position()
        reward, self._x = x - self._x, x
        info = {"x_position": x}
        if unstable:
            info["unstable"] = True
        terminated = bool(unstable) or (self.terminate and self.fallen())
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), reward, terminated, False, info

    def damaged_leg(self, foot: str, share: float) -> mujoco.MjModel:
        """The model with ``foot`` shortened by ``share`` of its length (1: only a sphere of its radius
        is left at the leg's last joint), compiled with the same structure."""
        spec = self.robot.spec.copy()
        g = spec.geom(foot)
        left = 1.0 - share
        if left < 1e-3:
            g.type = mujoco.mjtGeom.mjGEOM_SPHERE
            g.fromto[:] = np.nan
            g.pos = [0.0, 0.0, 0.0]
        elif not np.isnan(g.fromto[0]):
            start, end = np.asarray(g.fromto[:3]), np.asarray(g.fromto[3:6])
            g.fromto[3:6] = start + (end - start) * left
        else:
            g.size[1] *= left
            g.pos = list(np.asarray(g.pos) * left)
        model = spec.compile()
        if self._play_ids:
            model.jnt_range[self._play_ids] = self.model.jnt_range[self._play_ids]
        return model


def _ancestor(m: mujoco.MjModel, body: int, root: int) -> bool:
    while body > 0:
        if body == root:
            return True
        body = int(m.body_parentid[body])
    return False


def _joint_scale(m: mujoco.MjModel, joints: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Centre and half-span of every joint's range (a hinge without limits: +-pi)."""
    mid, half = np.zeros(len(joints)), np.full(len(joints), math.pi)
    for i, j in enumerate(joints):
        if m.jnt_limited[j] and m.jnt_range[j, 1] > m.jnt_range[j, 0]:
            mid[i] = 0.5 * (m.jnt_range[j, 0] + m.jnt_range[j, 1])
            half[i] = 0.5 * (m.jnt_range[j, 1] - m.jnt_range[j, 0])
    return mid, half


# -- task files ----------------------------------------------------------------------------------
_TASK_KEYS = {"model", "name", "forward", "control_period_s", "episode_s", "timestep", "reset_noise", "hidden"}
_TABLES = {"task", "fall", "sensors", "servo", "terrain"}


def _number(where: str, v: object, low: float = -math.inf, strict: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < low or (strict and v == low):
        raise RobotError(f"{where} must be a finite number {'>' if strict else '>='} {low:g}, got {v!r}")
    return float(v)


def _servos(table: dict, spec: mujoco.MjSpec, where: str) -> tuple[tuple[str, ServoSpec], ...]:
    """``[servo]`` figures for every actuator, ``[servo.class.NAME]`` for an MJCF default class and
    ``[servo.actuator.NAME]`` for one actuator (each overrides the one before)."""
    base = {k: v for k, v in table.items() if k not in ("class", "actuator")}
    classes, named = table.get("class", {}), table.get("actuator", {})
    for what, t in (("class", classes), ("actuator", named)):
        if not isinstance(t, dict) or not all(isinstance(v, dict) for v in t.values()):
            raise RobotError(f"{where}: [servo.{what}.NAME] must be tables of servo options")
    acts = {a.name: a for a in spec.actuators}
    unknown = set(named) - set(acts)
    if unknown:
        raise RobotError(f"{where}: [servo.actuator] names actuators the model lacks: {sorted(unknown)}")
    known_classes = {a.classname.name for a in spec.actuators if a.classname is not None}
    unknown = set(classes) - known_classes
    if unknown:
        raise RobotError(f"{where}: [servo.class] names classes no actuator uses: {sorted(unknown)}")
    out = []
    for name, a in acts.items():
        cls = a.classname.name if a.classname is not None else None
        values = {**base, **classes.get(cls, {}), **named.get(name, {})}
        out.append((name, ServoSpec.of(values, f"{where}: servo {name!r}")))
    return tuple(out)


def load_task_file(path: str | Path) -> RobotConfig:
    """A robot task from a TOML task file (its ``model`` relative to the file) or an MJCF file
    alone (every option inferred). Errors name the file and the problem, in one line."""
    p = Path(path)
    if not p.is_file():
        raise _fail(p, "no such file")
    if p.suffix.lower() == ".xml":
        load_spec(p)
        return RobotConfig(model=str(p.resolve()), model_sha256=file_sha256(p), name=p.stem)
    try:
        doc = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise _fail(p, f"not a valid TOML task file: {e}") from None
    unknown = set(doc) - _TABLES
    if unknown:
        raise _fail(p, f"unknown table(s) {sorted(unknown)}; a task file has {', '.join(sorted(_TABLES))}")
    task = doc.get("task", {})
    unknown = set(task) - _TASK_KEYS
    if unknown:
        raise _fail(p, f"unknown [task] option(s) {sorted(unknown)}; known: {', '.join(sorted(_TASK_KEYS))}")
    if not isinstance(task.get("model"), str):
        raise _fail(p, "[task] model must name the MJCF file (relative to the task file)")
    model = (p.parent / task["model"]).resolve()
    spec = load_spec(model)
    where = str(p)
    try:
        kw: dict = {"model": str(model), "model_sha256": file_sha256(model), "name": str(task.get("name", p.stem))}
        if "forward" in task:
            f = task["forward"]
            if not isinstance(f, list) or len(f) != 2 or not any(_number(f"{where}: [task] forward", v) for v in f):
                raise RobotError(f"{where}: [task] forward must be a non-zero [x, y] direction, got {f!r}")
            kw["forward"] = (float(f[0]), float(f[1]))
        for key in ("control_period_s", "episode_s"):
            if key in task:
                kw[key] = _number(f"{where}: [task] {key}", task[key], 0.0, strict=True)
        if task.get("timestep") is not None:
            kw["timestep"] = _number(f"{where}: [task] timestep", task["timestep"], 0.0, strict=True)
        if "reset_noise" in task:
            kw["reset_noise"] = _number(f"{where}: [task] reset_noise", task["reset_noise"], 0.0)
        if "hidden" in task:
            h = task["hidden"]
            if not isinstance(h, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in h):
                raise RobotError(f"{where}: [task] hidden must be a list of layer sizes > 0, got {h!r}")
            kw["hidden"] = tuple(h)
        fall = _table(doc, "fall", {"height_share", "tilt_deg"}, where)
        if "height_share" in fall:
            kw["fall_height_share"] = _number(f"{where}: [fall] height_share", fall["height_share"], 0.0)
        if "tilt_deg" in fall:
            kw["fall_tilt_deg"] = _number(f"{where}: [fall] tilt_deg", fall["tilt_deg"], 0.0)
        sensors = _table(doc, "sensors", {"contacts", "gravity", "last_command", "clock_hz"}, where)
        for key in ("contacts", "gravity", "last_command"):
            if key in sensors:
                if not isinstance(sensors[key], bool):
                    raise RobotError(f"{where}: [sensors] {key} must be true or false")
                kw[key] = sensors[key]
        if "clock_hz" in sensors:
            kw["clock_hz"] = _number(f"{where}: [sensors] clock_hz", sensors["clock_hz"], 0.0)
        if "servo" in doc:
            kw["servo"] = _servos(doc["servo"], spec, where)
        if "terrain" in doc:
            t = _table(doc, "terrain", {"size", "amplitude", "cell", "ahead", "clear"}, where)
            tk = {k: _number(f"{where}: [terrain] {k}", t[k], 0.0) for k in ("amplitude", "cell", "ahead", "clear")
                  if k in t}
            if "size" in t:
                if not isinstance(t["size"], list) or len(t["size"]) != 2:
                    raise RobotError(f"{where}: [terrain] size must be [x, y] in metres")
                tk["size"] = tuple(_number(f"{where}: [terrain] size", v, 0.0, strict=True) for v in t["size"])
            kw["terrain"] = Terrain(**tk)
        return RobotConfig(**kw)
    except (RobotError, ValueError) as e:
        msg = str(e)
        raise RobotError(msg if msg.startswith(where) else f"{where}: {msg}") from None


def _table(doc: dict, name: str, keys: set[str], where: str) -> dict:
    t = doc.get(name, {})
    if not isinstance(t, dict):
        raise RobotError(f"{where}: [{name}] must be a table")
    unknown = set(t) - keys
    if unknown:
        raise RobotError(f"{where}: unknown [{name}] option(s) {sorted(unknown)}; known: {', '.join(sorted(keys))}")
    return t


def task_file_text(model: str | Path, out: str | Path) -> str:
    """A task file for ``model`` with every inferred default written out and commented."""
    c = load_task_file(model)
    robot = build_robot(c)
    rel = Path(c.model)
    try:
        rel = rel.relative_to(Path(out).resolve().parent)
    except ValueError:
        pass
    m = robot.model
    acts = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR, i) for i in range(m.nu)]
    base = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, robot.base)
    lines = [
        f"# nchl robot task for {Path(c.model).name}, written by `nchl task init` with every inferred default.",
        f"# Floating base: body {base!r} (the body with the free joint); body length {robot.body_length:.3f} m",
        f"# along the forward direction. Actuators ({m.nu}): {', '.join(acts)};",
        "# the action in [-1, 1] maps onto each actuator's ctrlrange:",
        *(f"#   {a}: [{lo:.4g}, {hi:.4g}]" for a, lo, hi in zip(acts, robot.lo, robot.hi)),
        f"# Observation ({len(robot.obs_names)} entries, onboard sensors only, each scaled by its kind):",
        *(f"#   {i:3d} {n} ({k})" for i, (n, k) in enumerate(zip(robot.obs_names, robot.obs_kinds))),
        "",
        "[task]",
        f'model = "{rel.as_posix()}"   # the MJCF file (a relative path is relative to this file)',
        f'name = "{c.name}"',
        f"forward = [{c.forward[0]:g}, {c.forward[1]:g}]   # fitness: displacement of the base along this direction (m)",
        f"control_period_s = {c.control_period_s:g}   # one controller step; whole physics steps of `timestep`",
        f"episode_s = {c.episode_s:g}   # {c.episode_steps} control steps",
        f"timestep = {m.opt.timestep:g}   # physics step (the model's own)",
        f"reset_noise = {c.reset_noise:g}   # rad, uniform on every joint angle at reset (episodes differ by seed)",
        f"hidden = [{', '.join(map(str, c.hidden))}]   # default hidden layers of the controller",
        "",
        "[fall]   # the episode ends when the base falls",
        f"height_share = {c.fall_height_share:g}   # below this share of its initial height (0 = off)",
        f"tilt_deg = {c.fall_tilt_deg:g}   # or tilts beyond this angle from upright (0 = off)",
        "",
        "[sensors]",
        f"contacts = {str(c.contacts).lower()}   # foot contact switches on the geom at the end of each leg",
        f"gravity = {str(c.gravity).lower()}   # gravity direction in the IMU frame (an orientation filter's estimate)",
        f"last_command = {str(c.last_command).lower()}   # the last command sent is an input",
        f"clock_hz = {c.clock_hz:g}   # > 0: a gait clock input, sin and cos of 2 pi clock_hz t (0 = off)",
        "",
        "# Uncomment to drive every actuator as a hobby position servo (figures: TowerPro MG90S at 4.8 V);",
        "# [servo.actuator.NAME] or [servo.class.NAME] override them for one actuator or one MJCF class.",
        *(f"# {line}" for line in _servo_lines(ServoSpec())),
        "",
        "# Uncomment for a height field under the robot (bumps drawn from the episode seed):",
        "# [terrain]",
        "# size = [8.0, 4.0]   # m",
        "# amplitude = 0.02   # m",
    ]
    return "\n".join(lines) + "\n"


def _servo_lines(s: ServoSpec) -> list[str]:
    def fmt(v):
        return f"[{v[0]:g}, {v[1]:g}]" if isinstance(v, tuple) else f"{v:g}"

    return ["[servo]", *(f"{f.name} = {fmt(getattr(s, f.name))}" for f in fields(s))]
