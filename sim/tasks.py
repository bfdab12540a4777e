"""The task registry: named locomotion tasks as Gymnasium environments.

A task fixes the environment, its settings, the episode length and the default
hidden layers of the controller. Every task reports the forward position it is
scored on as ``info["x_position"]`` (Ant: torso x; VSR: centre of mass x), so a
rollout's fitness is the same quantity for all of them: the distance travelled
forward over the episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import gymnasium as gym
import numpy as np

from nchl.errors import NchlError
from nchl.topology import Topology

from .perturb import Condition, Perturbed, substeps_of


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
            view = {"camera": camera} if self.env_id == VSR_ID else CAMERAS[camera]
            kwargs.update(render_mode=render_mode, width=width, height=height, **view)
        env = gym.make(self.env_id, max_episode_steps=self.episode_steps, **kwargs)
        if self.obs_scale:
            env = ScaleObservation(env, np.concatenate([np.full(n, f) for n, f in self.obs_scale]), self.obs_bound)
        if perturbable or any(c.strength > 0 for c in conditions):
            scale = env.observation if isinstance(env, ScaleObservation) else (lambda o: o)
            env = Perturbed(env, conditions, to_observation=scale, ant=self.is_ant)
        return NoProgressStop(env) if early_stop else env

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
        """The MuJoCo Ant (whose feet the perturbation catalogue can damage)."""
        return self.env_id == "Ant-v5"

    @cached_property
    def timing(self) -> tuple[int, float]:
        """(physics sub-steps per control step, control period in seconds)."""
        env = self.make_env()
        try:
            return substeps_of(env), float(env.unwrapped.dt)
        finally:
            env.close()

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


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTask(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None
