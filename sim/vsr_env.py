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

Rendering (``render_mode="rgb_array"`` or ``"human"``): the walker is planar, so
frames are drawn in 2-D with Pillow, no OpenGL needed: every voxel a filled
quad on its four corner masses, coloured by its last actuation (blue = -1
contracted, grey = 0, red = +1 expanded), the ground and its steps, and marks
every 0.5 m so that motion shows when the camera follows the robot
(``camera="track"``; ``"fixed"`` looks at the start).
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import mujoco
import numpy as np

from nchl.core.errors import NchlError

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


def _substeps(period: float, timestep: object) -> int:
    """Whole physics steps of ``timestep`` seconds in a control ``period``."""
    if isinstance(timestep, bool) or not isinstance(timestep, (int, float)) or not timestep > 0:
        raise NchlError(f"timestep must be a number of seconds > 0, got {timestep!r}")
    n = round(period / timestep)
    if n < 1 or abs(n * timestep - period) > 1e-9 * period:
        raise NchlError(f"timestep {timestep:g} s does not divide the control period {period:g} s into whole sub-steps")
    return n


CONTROL_DT = 0.02  # s: the controller runs at 50 Hz whatever the physics step


class VSRWalkerEnv(gym.Env):
    """Walk a voxel-based soft robot forward (+x) on MuJoCo."""

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 50}

    def __init__(self, body=BIPED, sensors: str = "high", terrain: str = "flat", terrain_seed: int = 0,
                 substeps: int | None = None, reset_noise: float = 0.0, velocity_scale: float = 2.0,
                 params: VSRParams = VSRParams(), render_mode: str | None = None, width: int = 480,
                 height: int = 270, camera: str = "track", timestep: float | None = None) -> None:
        """``substeps`` physics steps of ``params.timestep`` make one control step (default: as many
        as make :data:`CONTROL_DT`). ``timestep`` changes the physics step and keeps the control
        period: the sub-steps become ``substeps * params.timestep / timestep``, which must be a whole
        number (a convergence study halves the step and doubles the sub-steps); ``params.integrator``
        picks MuJoCo's integrator."""
        if substeps is None:
            substeps = _substeps(CONTROL_DT, params.timestep)
        elif isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
            raise NchlError(f"substeps must be an integer >= 1, got {substeps!r}")
        if timestep is not None:
            period = substeps * params.timestep
            substeps = _substeps(period, timestep)
            params = dataclasses.replace(params, timestep=period / substeps)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise NchlError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if camera not in ("track", "fixed"):
            raise NchlError(f"camera must be 'track' or 'fixed', got {camera!r}")
        for name, v in (("width", width), ("height", height)):
            if isinstance(v, bool) or not isinstance(v, int) or not 16 <= v <= 4096:
                raise NchlError(f"{name} must be an integer pixel count in [16, 4096], got {v!r}")
        self.render_mode, self.width, self.height, self.camera = render_mode, width, height, camera
        self._figure = None
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
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}
        self._actuation = np.zeros(n_vox)

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

    # The sub-step hook of Gymnasium's MuJoCo environments, which nchl_sim.perturb drives
    def _step_mujoco_simulation(self, ctrl: np.ndarray, n_frames: int) -> None:
        self.data.ctrl[:] = ctrl
        mujoco.mj_step(self.model, self.data, nstep=n_frames)

    def _get_obs(self) -> np.ndarray:
        return self._obs(self.positions())

    # -- gymnasium API ----------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        if self.reset_noise > 0:
            self.data.qvel[:] = self.np_random.uniform(-self.reset_noise, self.reset_noise, self.model.nv)
        mujoco.mj_forward(self.model, self.data)
        positions = self.positions()
        self._x = self._x0 = float(positions[:, 0].mean())
        self._actuation[:] = 0.0
        if self.render_mode == "human":
            self.render()
        return self._obs(positions), {"x_position": self._x}

    def step(self, action):
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise NchlError(f"action must have shape {self.action_space.shape}, got {a.shape}")
        if not np.isfinite(a).all():
            raise NchlError("action has non-finite values")
        self._actuation[:] = np.clip(a, -1.0, 1.0)
        warnings_before = self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number
        self._step_mujoco_simulation(self._actuation[self.vsr.act_voxel], self.substeps)
        unstable = (self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number != warnings_before
                    or not np.isfinite(self.data.qpos).all())
        positions = self.positions()  # read once per step for both the fitness and the sensors
        x = float(positions[:, 0].mean()) if not unstable else self._x
        reward = x - self._x
        self._x = x
        info = {"x_position": x}
        if unstable:
            info["unstable"] = True
        if self.render_mode == "human":
            self.render()
        return self._obs(positions), reward, bool(unstable), False, info

    # -- rendering ----------------------------------------------------------
    def render(self):
        """The current frame as ``(height, width, 3)`` uint8 (``rgb_array``), or shown in a window (``human``)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' to the env")
            return None
        frame = self._draw()
        if self.render_mode == "rgb_array":
            return frame
        import matplotlib.pyplot as plt

        if self._figure is None:
            plt.ion()
            self._figure = plt.figure("VSR walker")
            self._image = self._figure.gca().imshow(frame)
            self._figure.gca().set_axis_off()
        self._image.set_data(frame)
        plt.pause(1.0 / self.metadata["render_fps"])
        return None

    def _ground(self) -> list[tuple[float, float, float]]:
        """(x_left, x_right, top z) of every terrain box."""
        m = self.model
        boxes = (np.flatnonzero((self.vsr.mass_of_geom < 0) & (m.geom_type == mujoco.mjtGeom.mjGEOM_BOX)))
        return [(m.geom_pos[g, 0] - m.geom_size[g, 0], m.geom_pos[g, 0] + m.geom_size[g, 0],
                 m.geom_pos[g, 2] + m.geom_size[g, 2]) for g in boxes]

    def _draw(self) -> np.ndarray:
        from PIL import Image, ImageDraw

        ss = 2  # supersampling, then a box-filter downscale: smooth edges at any size
        w, h = self.width * ss, self.height * ss
        pos = self.positions()
        view = 2.5 if self.camera == "track" else 5.0            # metres across the frame
        scale = w / view
        cx = float(pos[:, 0].mean()) if self.camera == "track" else self._x0 + 0.4 * view
        ground_px = 0.8 * h

        def px(x: float, z: float) -> tuple[float, float]:
            return (w / 2 + (x - cx) * scale, ground_px - z * scale)

        img = Image.new("RGB", (w, h), (236, 242, 248))
        d = ImageDraw.Draw(img)
        d.rectangle([0, ground_px, w, h], fill=(120, 140, 110))
        for x0, x1, top in self._ground():
            if abs((x0 + x1) / 2 - cx) < view:
                d.rectangle([*px(x0, top), *px(x1, 0.0)], fill=(105, 122, 96))
        left = cx - view / 2
        for k in range(int(np.floor(left / 0.5)), int(np.ceil((left + view) / 0.5)) + 1):
            x, y = px(0.5 * k, 0.0)
            d.line([x, y, x, y + (0.06 if k % 2 else 0.12) * h], fill=(60, 70, 55), width=ss)
        for v, quad in enumerate(pos[self.vsr.corners]):
            u = float(self._actuation[v])
            base, tip = np.array([150, 150, 150]), np.array([215, 60, 50] if u > 0 else [50, 90, 215])
            colour = tuple(int(c) for c in base + abs(u) * (tip - base))
            d.polygon([px(x, z) for x, z in quad], fill=colour, outline=(30, 30, 30), width=ss)
        return np.asarray(img.resize((self.width, self.height), Image.Resampling.BOX))

    def close(self) -> None:
        if self._figure is not None:
            import matplotlib.pyplot as plt

            plt.close(self._figure)
            self._figure = None
