"""The task registry: named locomotion tasks as Gymnasium environments.

A task fixes the environment, its settings, the episode length and the default
hidden layers of the controller. Every task reports the forward position it is
scored on as ``info["x_position"]`` (Ant: torso x; VSR: centre of mass x), so a
rollout's fitness is the same quantity for all of them: the distance travelled
forward over the episode.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import gymnasium as gym
import numpy as np

from nchl.core.errors import NchlError
from nchl.core.topology import Topology

from .perturb import Condition, Perturbed, default_strength, substeps_of
from .robot import OBS_BOUND, RobotConfig, load_task_file


class UnknownTask(NchlError):
    pass


class NoProgressStop(gym.Wrapper):
    """The paper's early stop: after ``after`` steps, stop an episode once the
    forward progress has been negative for ``patience`` consecutive steps
    (``truncated`` with ``info["no_progress"] = True``)."""

    def __init__(self, env: gym.Env, after: int = 200, patience: int = 30) -> None:
        super().__init__(env)
        self.after, self.patience = after, patience

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._t, self._streak, self._x = 0, 0, info["x_position"]
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._t += 1
        x = info["x_position"]
        self._streak = self._streak + 1 if x < self._x else 0
        self._x = x
        if self._t > self.after and self._streak >= self.patience and not terminated:
            truncated = True
            info = {**info, "no_progress": True}
        return obs, reward, terminated, truncated, info


class ScaleObservation(gym.ObservationWrapper):
    """Multiply the observation by a fixed per-entry scale, then clip it to ``[-bound, bound]``
    (the scaled task's observation space says so)."""

    def __init__(self, env: gym.Env, scale: np.ndarray, bound: float) -> None:
        super().__init__(env)
        self.scale, self.bound = np.asarray(scale, dtype=np.float64), float(bound)
        n = env.observation_space.shape[0]
        if self.scale.shape != (n,):
            raise NchlError(f"observation scale has {self.scale.size} entries for {n} observations")
        self.observation_space = gym.spaces.Box(-self.bound, self.bound, (n,), np.float64)

    def observation(self, observation):
        return np.clip(observation * self.scale, -self.bound, self.bound)


@dataclass(frozen=True)
class Task:
    name: str
    env_id: str
    description: str
    hidden: tuple[int, ...]
    episode_steps: int = 1000
    kwargs: dict = field(default_factory=dict)
    no_termination: dict = field(default_factory=dict)
    obs_scale: tuple[tuple[int, float], ...] = ()   # (count, factor) runs over the observation; () = raw
    obs_bound: float = float("inf")
    robot: RobotConfig | None = None    # a task from an MJCF model (sim/robot.py)

    def make_env(self, early_stop: bool = False, full_length: bool = False, render_mode: str | None = None,
                 width: int = 480, height: int = 360, camera: str = "track",
                 conditions: Sequence[Condition] = (), perturbable: bool = False) -> gym.Env:
        """A fresh environment; ``early_stop`` adds :class:`NoProgressStop`; ``full_length``
        switches off the task's own termination (Ant's unhealthy check), so every episode
        lasts ``episode_steps`` (used to compare C and Python over whole episodes);
        ``conditions`` perturb it (:mod:`nchl_sim.perturb`; none: the task as it is, unless
        ``perturbable`` asks for the perturbation layer anyway, to set conditions per episode).
        ``render_mode`` (``rgb_array``/``human``) renders frames of ``width x height`` pixels
        from a ``camera`` that follows the robot (``track``) or stays at the start (``fixed``);
        MuJoCo tasks need an OpenGL backend for it (``MUJOCO_GL``)."""
        kwargs = {**self.kwargs, **(self.no_termination if full_length else {})}
        if render_mode is not None:
            if camera not in CAMERAS:
                raise NchlError(f"camera must be one of {', '.join(CAMERAS)}, got {camera!r}")
            view = {"camera": camera} if self.env_id == VSR_ID else self._view(camera)
            kwargs.update(render_mode=render_mode, width=width, height=height, **view)
        env = gym.make(self.env_id, max_episode_steps=self.episode_steps, **kwargs)
        if self.obs_scale:
            env = ScaleObservation(env, np.concatenate([np.full(n, f) for n, f in self.obs_scale]), self.obs_bound)
        if perturbable or any(c.strength > 0 for c in conditions):
            scale = env.observation if isinstance(env, ScaleObservation) else (lambda o: o)
            env = Perturbed(env, conditions, to_observation=scale, parts=self.parts)
        return NoProgressStop(env) if early_stop else env

    def _view(self, camera: str) -> dict:
        if self.robot is None or camera == "track":
            return CAMERAS[camera]
        scale = max(self.body_length, 0.05) * 6
        return {"default_camera_config": {"lookat": np.array([scale / 3, 0.0, 0.0]), "distance": scale,
                                          "elevation": -25.0, "azimuth": 120.0}}

    @cached_property
    def sizes(self) -> tuple[int, int]:
        """(observation size, action size)."""
        env = self.make_env()
        try:
            return env.observation_space.shape[0], env.action_space.shape[0]
        finally:
            env.close()

    @property
    def is_ant(self) -> bool:
        """The MuJoCo Ant of Gymnasium (Ant-v5)."""
        return self.env_id == "Ant-v5"

    @cached_property
    def parts(self) -> frozenset[str]:
        """What the perturbation catalogue can strike: ``legs`` (feet to damage), ``servos``, ``terrain``."""
        if self.robot is None:
            return frozenset({"legs"}) if self.is_ant else frozenset()
        return frozenset({"legs"} | ({"servos"} if self.robot.servo else set())
                         | ({"terrain"} if self.robot.terrain is not None else set()))

    @property
    def model_sha256(self) -> str | None:
        """Content hash of the task's own model file (robot tasks), recorded in the genomes evolved on it."""
        return None if self.robot is None else self.robot.model_sha256

    def default_strength(self, condition: str) -> float:
        """A catalogue condition's default strength on this task (delays: one control period;
        a robot task's push: scaled to its mass)."""
        return default_strength(condition, self.timing[0], self._mass if self.robot is not None else None)

    @cached_property
    def _mass(self) -> float:
        env = self.make_env()
        try:
            return float(env.unwrapped.model.body_mass.sum())
        finally:
            env.close()

    @property
    def control_period_s(self) -> float:
        return self.timing[1]

    def _inspect(self, read):
        """``read`` of a fresh environment's unwrapped core, the environment closed after."""
        env = self.make_env()
        try:
            return read(env.unwrapped)
        finally:
            env.close()

    @cached_property
    def observation_names(self) -> list[str]:
        """What each observation entry is."""
        if self.robot is not None:
            return list(self._inspect(lambda u: u.robot.obs_names))
        if self.is_ant:
            names = (["torso z", *(f"torso quat {c}" for c in "wxyz"), *(f"joint {i} angle" for i in range(8)),
                      *(f"torso velocity {c} (world)" for c in "xyz"), *(f"torso angular velocity {c}" for c in "xyz"),
                      *(f"joint {i} speed" for i in range(8))])
            return names + [f"contact force {i}" for i in range(self.sizes[0] - len(names))]
        mask = self._inspect(lambda u: u.mask)
        from .vsr_env import SENSORS

        return [f"voxel {v} {SENSORS[k]}" for v, k in zip(*np.nonzero(mask))]

    @cached_property
    def privileged(self) -> list[int]:
        """Observation entries a real robot could not measure: the Ant's torso height and world-frame
        velocity (and its contact forces, which no sensor gives per body), the VSR's voxel velocities
        in the world frame. Robot tasks observe onboard sensors only, by construction."""
        if self.robot is not None:
            return []
        names = self.observation_names
        return [i for i, n in enumerate(names)
                if n == "torso z" or "(world)" in n or n.startswith("contact force") or n.endswith((" vx", " vz"))]

    @cached_property
    def body_length(self) -> float:
        """Length of the robot's body along the forward axis (m): the scale of its speed."""
        if self.robot is not None:
            return float(self._inspect(lambda u: u.robot.body_length))
        if self.is_ant:
            return 0.5   # the torso, a sphere of radius 0.25 m
        return float(self._inspect(lambda u: u.vsr.grid.shape[1] * u.vsr.params.voxel_size))

    @cached_property
    def timing(self) -> tuple[int, float]:
        """(physics sub-steps per control step, control period in seconds)."""
        return self._inspect(lambda u: (substeps_of(u), float(u.dt)))

    def topology(self, hidden: tuple[int, ...] | None = None) -> Topology:
        n_in, n_out = self.sizes
        return Topology((n_in, *(self.hidden if hidden is None else hidden), n_out))


VSR_ID = "nchl/VSRWalker-v1"
VSR_V0_ID = "nchl/VSRWalker-v0"  # the model before issue 21 (VSR_V0_PARAMS), kept to reproduce its results
# How the 3-D tasks are filmed (Gymnasium MuJoCo env arguments): the model's own "track" camera,
# which follows the centre of mass, or a free camera that stays above the start
CAMERAS = {
    "track": {"camera_name": "track"},
    "fixed": {"default_camera_config": {"lookat": np.array([3.0, 0.0, 0.0]), "distance": 9.0,
                                        "elevation": -30.0, "azimuth": 120.0}},
}

# The authors' task is PyBullet's Ant, and two of its semantics matter for plastic controllers:
# * it ends an episode only when the torso drops below 0.26 m (the torso is a 0.25 m sphere: it lies
#   on the ground), with no upper bound and no tilt limit; Gymnasium's Ant-v5 also ends it above
#   1.0 m, which a plastic controller starting from zero weights reaches within ~20 steps;
# * its observations are scaled to O(1) and clipped to [-5, 5] (torso velocity x0.3, joint speeds
#   x0.1); Ant-v5's are raw, with joint speeds up to ~16 rad/s that blow up the Hebbian products.
# The *-v5-strict tasks are Gymnasium's Ant-v5 unchanged, for comparison.
ANT_FALL_Z = 0.26
ANT_OBS_BOUND = 5.0
_ANT_PAPER = {"healthy_z_range": (ANT_FALL_Z, float("inf"))}
_ANT_OFF = {"terminate_when_unhealthy": False}
# Ant-v5 observation: qpos[2:] (torso z, orientation quaternion, 8 joint angles: 13 values), torso
# linear (3) and angular (3) velocity, 8 joint speeds, then 78 contact forces (already in [-1, 1])
_ANT_SCALE = ((13, 1.0), (3, 0.3), (3, 0.1), (8, 0.1))


def _ant(name: str, contacts: bool, strict: bool) -> Task:
    obs = "with" if contacts else "without"
    if strict:
        what = "Gymnasium's Ant-v5 unchanged: raw observations, torso z must stay in [0.2, 1.0]"
    else:
        what = f"observations scaled as in PyBullet's Ant and clipped to +-{ANT_OBS_BOUND:g}, ends when torso z < {ANT_FALL_Z} m"
    return Task(name, "Ant-v5", f"MuJoCo Ant, observation {obs} contact forces; {what}",
                hidden=(128, 64), kwargs={"include_cfrc_ext_in_observation": contacts, **({} if strict else _ANT_PAPER)},
                no_termination=_ANT_OFF,
                obs_scale=() if strict else _ANT_SCALE + (((78, 1.0),) if contacts else ()),
                obs_bound=float("inf") if strict else ANT_OBS_BOUND)


TASKS: dict[str, Task] = {t.name: t for t in (
    _ant("ant", contacts=False, strict=False),
    _ant("ant-contacts", contacts=True, strict=False),
    _ant("ant-v5-strict", contacts=False, strict=True),
    _ant("ant-contacts-v5-strict", contacts=True, strict=True),
    Task("vsr-high", VSR_ID, "4x3 VSR biped on flat ground, high sensing (all sensors, all voxels)",
         hidden=(32, 32), kwargs={"sensors": "high"}),
    Task("vsr-medium", VSR_ID, "4x3 VSR biped on flat ground, medium sensing",
         hidden=(32, 32), kwargs={"sensors": "medium"}),
    Task("vsr-low", VSR_ID, "4x3 VSR biped on flat ground, low sensing",
         hidden=(32, 32), kwargs={"sensors": "low"}),
    Task("vsr-high-uneven", VSR_ID, "4x3 VSR biped on uneven ground (random steps), high sensing",
         hidden=(32, 32), kwargs={"sensors": "high", "terrain": "uneven"}),
)}


ROBOT_ID = "nchl/Robot-v0"
MODELS = Path(__file__).parent / "models"


def robot_task(config: RobotConfig, name: str, description: str) -> Task:
    return Task(name, ROBOT_ID, description, hidden=config.hidden, episode_steps=config.episode_steps,
                kwargs={"config": config}, no_termination={"terminate": False}, obs_bound=OBS_BOUND, robot=config)


def _ant_onboard() -> Task:
    import gymnasium.envs.mujoco as gm

    model = Path(gm.__file__).parent / "assets" / "ant.xml"
    from .robot import file_sha256

    config = RobotConfig(model=str(model), model_sha256=file_sha256(model), name="ant-onboard", control_period_s=0.05,
                         episode_s=50.0, reset_noise=0.1, fall_height_share=ANT_FALL_Z / 0.75, fall_tilt_deg=0.0,
                         hidden=(128, 64))
    return robot_task(config, "ant-onboard", "MuJoCo Ant observing onboard sensors only: joint angles and speeds, "
                      f"IMU (gyro, accelerometer, gravity direction), last command; ends when torso z < {ANT_FALL_Z} m")


def _shipped_robot(file: str, description: str) -> Task:
    config = load_task_file(MODELS / file)
    return robot_task(config, config.name, description)


TASKS.update({t.name: t for t in (
    _ant_onboard(),
    _shipped_robot("servo-quadruped.toml", "8-servo hobby quadruped (MG90S servos, 0.34 kg), onboard sensors, "
                   "flat ground"),
    _shipped_robot("servo-quadruped-rough.toml", "8-servo hobby quadruped on rough ground (bumps up to 1.5 cm)"),
)})
_FILES: dict[tuple, tuple[Task, tuple]] = {}   # task file stamp -> (its task, its model's stamp)


def _stamp(p: Path) -> tuple[str, float, int]:
    """What says a file is unchanged since it was read: its resolved path, mtime and size (a task file's
    cached task is rebuilt when it or the model it names changes)."""
    st = os.stat(p)
    return str(p.resolve()), st.st_mtime_ns, st.st_size


def get_task(name: str) -> Task:
    """A registered task by name, or a robot task from a path to an MJCF ``.xml`` or a TOML task file."""
    if name in TASKS:
        return TASKS[name]
    if isinstance(name, str) and name.lower().endswith((".xml", ".toml")):
        p = Path(name)
        if not p.is_file():
            raise UnknownTask(f"{name}: no such task file")
        key = _stamp(p)
        task, model_stamp = _FILES.get(key, (None, None))
        if task is None or not Path(task.robot.model).is_file() or _stamp(Path(task.robot.model)) != model_stamp:
            config = load_task_file(p)
            task = robot_task(config, name, f"robot task from {name}")
            _FILES[key] = task, _stamp(Path(config.model))
        return task
    raise UnknownTask(f"unknown task {name!r}; choose one of {', '.join(TASKS)}, or give an MJCF .xml or a "
                      f"task .toml file") from None


class ModelChanged(NchlError):
    pass


def task_for_genome(genome, name: str | None = None, source: object = "genome") -> Task:
    """The task a genome runs on (its own, or ``name``), refused when the genome was evolved on a
    robot model whose content has changed since (its recorded ``model_sha256``)."""
    name = name or genome.task
    if name is None:
        raise NchlError(f"{source} names no task; pass --task")
    task = get_task(name)
    recorded, now = genome.model_sha256, task.model_sha256
    if recorded is not None and recorded != now:
        where = task.robot.model if task.robot is not None else name
        raise ModelChanged(f"{source} was evolved on a model with SHA-256 {recorded[:12]}..., but task {name!r} "
                           f"uses {where} with {'no model hash' if now is None else now[:12] + '...'}: "
                           f"the model changed since the genome was evolved")
    return task
