"""Gymnasium environment of the VSR walker.

Observation: per voxel (voxel order of :mod:`nchl_sim.vsr`), the enabled sensors
among ``area, vx, vz, touch, angle``:

* ``area``: (current area / rest area - 1) / ((1 + a)^2 - 1), i.e. +1 at full expansion;
* ``vx``, ``vz``: velocity of the voxel centre, in units of ``velocity_scale`` (m/s);
* ``touch``: 1 if one of the voxel's corner spheres touches the ground, else 0;
* ``angle``: rotation of the voxel (left-edge midpoint -> right-edge midpoint) over pi.

All values are clipped to [-1, 1]. Sensor configurations (paper-notes):
``high`` = every sensor on every voxel; ``medium`` = area and touch on every
voxel plus velocity on the voxels of the grid's top row; ``low`` = area on every
voxel plus touch on the voxels of the grid's bottom row.

Action: one value per voxel in [-1, 1] (rest-length change of its links).
Reward: forward progress of the centre of mass per step, so the return is the
distance travelled; ``info["x_position"]`` is the centre of mass x.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np

from nchl.errors import NchlError

from .vsr import BIPED, VSRModel, VSRParams, build_model

SENSORS = ("area", "vx", "vz", "touch", "angle")
SENSOR_CONFIGS = ("high", "medium", "low")


def sensor_mask(config: str, vsr: VSRModel) -> np.ndarray:
    """Which sensors each voxel exposes, ``(n_voxels, 5)`` in ``SENSORS`` order."""
    n = len(vsr.voxels)
    top = vsr.voxels[:, 0] == 0
    bottom = vsr.voxels[:, 0] == vsr.grid.shape[0] - 1
    mask = np.zeros((n, len(SENSORS)), dtype=bool)
    if config == "high":
        mask[:] = True
    elif config == "medium":
        mask[:, 0] = mask[:, 3] = True
        mask[top, 1] = mask[top, 2] = True
    elif config == "low":
        mask[:, 0] = True
        mask[bottom, 3] = True
    else:
        raise NchlError(f"unknown sensor configuration {config!r}; choose one of {', '.join(SENSOR_CONFIGS)}")
    return mask


def _areas(q: np.ndarray) -> np.ndarray:
    """Shoelace area of each voxel from its corners ``(n_voxels, 4, 2)`` (counter-clockwise)."""
    x, z = q[..., 0], q[..., 1]
    return 0.5 * np.sum(x * np.roll(z, -1, axis=1) - np.roll(x, -1, axis=1) * z, axis=1)


class VSRWalkerEnv(gym.Env):
    """Walk a voxel-based soft robot forward (+x) on MuJoCo."""

    metadata = {"render_modes": []}

    def __init__(self, body=BIPED, sensors: str = "high", terrain: str = "flat", terrain_seed: int = 0,
                 substeps: int = 10, reset_noise: float = 0.0, velocity_scale: float = 2.0,
                 params: VSRParams = VSRParams()) -> None:
        if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
            raise NchlError(f"substeps must be an integer >= 1, got {substeps!r}")
        self.vsr = build_model(body, params, terrain, terrain_seed)
        self.mask = sensor_mask(sensors, self.vsr)
        self.model = self.vsr.model
        self.data = mujoco.MjData(self.model)
        self.substeps = substeps
        self.reset_noise = float(reset_noise)
        self.velocity_scale = float(velocity_scale)
        self.dt = substeps * self.model.opt.timestep
        n_vox = len(self.vsr.voxels)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (int(self.mask.sum()),), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (n_vox,), np.float32)
        self._rest_area = params.voxel_size ** 2
        self._area_scale = (1 + params.actuation) ** 2 - 1
        self._x = 0.0

    # -- state read-out -------------------------------------------------
    def positions(self) -> np.ndarray:
        """Corner mass positions ``(n_masses, 2)`` (x, z)."""
        return self.vsr.rest_xz + self.data.qpos[self.vsr.qpos_adr]

    def voxel_areas(self) -> np.ndarray:
        return _areas(self.positions()[self.vsr.corners])

    def com_x(self) -> float:
        return float(self.positions()[:, 0].mean())

    def _touching(self) -> np.ndarray:
        ncon = self.data.ncon
        touched = np.zeros(len(self.vsr.rest_xz), dtype=bool)
        if ncon:
            g = self.data.contact.geom[:ncon].ravel()
            m = self.vsr.mass_of_geom[g]
            touched[m[m >= 0]] = True
        return touched[self.vsr.corners].any(axis=1)

    def _obs(self, positions: np.ndarray) -> np.ndarray:
        q = positions[self.vsr.corners]
        v = self.data.qvel[self.vsr.qvel_adr][self.vsr.corners].mean(axis=1)
        area = _areas(q)
        edge = 0.5 * (q[:, 1] + q[:, 2]) - 0.5 * (q[:, 0] + q[:, 3])
        full = np.column_stack([
            (area / self._rest_area - 1.0) / self._area_scale,
            v / self.velocity_scale,
            self._touching(),
            np.arctan2(edge[:, 1], edge[:, 0]) / np.pi,
        ])
        return np.clip(full[self.mask], -1.0, 1.0)

    # -- gymnasium API ----------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        if self.reset_noise > 0:
            self.data.qvel[:] = self.np_random.uniform(-self.reset_noise, self.reset_noise, self.model.nv)
        mujoco.mj_forward(self.model, self.data)
        positions = self.positions()
        self._x = float(positions[:, 0].mean())
        return self._obs(positions), {"x_position": self._x}

    def step(self, action):
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise NchlError(f"action must have shape {self.action_space.shape}, got {a.shape}")
        if not np.isfinite(a).all():
            raise NchlError("action has non-finite values")
        self.data.ctrl[:] = np.clip(a, -1.0, 1.0)[self.vsr.act_voxel]
        warnings_before = self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number
        mujoco.mj_step(self.model, self.data, nstep=self.substeps)
        unstable = (self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number != warnings_before
                    or not np.isfinite(self.data.qpos).all())
        positions = self.positions()  # read once per step for both the fitness and the sensors
        x = float(positions[:, 0].mean()) if not unstable else self._x
        reward = x - self._x
        self._x = x
        info = {"x_position": x}
        if unstable:
            info["unstable"] = True
        return self._obs(positions), reward, bool(unstable), False, info
