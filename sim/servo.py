"""Hobby position servos, configured from a datasheet.

The command is a target angle sent as a pulse width. The servo latches a new pulse at its update
rate, rounded to its command resolution, and runs its own position loop: a proportional-derivative
law on the output shaft's angle (the potentiometer sits on the output shaft) sets the PWM duty of a
DC motor, clipped to [-1, 1], and the motor gives

    torque = stall_torque * (supply * duty - speed / no_load_speed)

the torque-speed line of a DC motor under voltage control: full torque at standstill, none at the
no-load speed, and the back-EMF damping at any duty. A sagging supply (``supply`` < 1) lowers the
stall torque and the no-load speed together, as a lower voltage does. Errors inside the dead band
give no duty. Backlash is gear play between the motor and the output: a second hinge on the same
axis, limited to the play, that the task adds after every servo joint (:mod:`nchl_sim.robot`).

All state is explicit (latched target, lagged target, latch clock), reset with the episode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from nchl.core.errors import NchlError


class ServoError(NchlError):
    pass


@dataclass(frozen=True)
class ServoSpec:
    """One servo model, in datasheet units.

    ``pulse_us`` maps onto ``angle_deg`` linearly (the command at each end of the travel);
    ``speed_s_per_60deg`` is the datasheet's no-load speed; ``kp`` is PWM duty per radian of error
    (the servo's proportional gain: 1 / kp rad of error saturates the motor) and ``kd`` duty per
    rad/s; ``armature`` is the rotor inertia reflected through the gears (kg m^2) and
    ``frictionloss`` the gear train's dry friction (N m)."""

    stall_torque: float = 0.177           # N m
    speed_s_per_60deg: float = 0.10       # s
    pulse_us: tuple[float, float] = (1000.0, 2000.0)
    angle_deg: tuple[float, float] = (-90.0, 90.0)
    deadband_us: float = 5.0
    resolution_us: float = 1.0
    update_hz: float = 50.0
    kp: float = 11.5
    kd: float = 0.0
    backlash_deg: float = 1.0
    lag_ms: float = 0.0
    armature: float = 1e-4
    frictionloss: float = 0.005

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            vals = v if isinstance(v, tuple) else (v,)
            if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in vals):
                raise ServoError(f"servo {f.name} must be finite numbers, got {v!r}")
            object.__setattr__(self, f.name, tuple(float(x) for x in v) if isinstance(v, tuple) else float(v))
        positive = ("stall_torque", "speed_s_per_60deg", "update_hz", "kp")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ServoError(f"servo {name} must be > 0, got {getattr(self, name):g}")
        for name in ("deadband_us", "resolution_us", "kd", "backlash_deg", "lag_ms", "armature", "frictionloss"):
            if getattr(self, name) < 0:
                raise ServoError(f"servo {name} must be >= 0, got {getattr(self, name):g}")
        if len(self.pulse_us) != 2 or self.pulse_us[0] >= self.pulse_us[1]:
            raise ServoError(f"servo pulse_us must be [low, high] with low < high, got {list(self.pulse_us)}")
        if len(self.angle_deg) != 2 or self.angle_deg[0] == self.angle_deg[1]:
            raise ServoError(f"servo angle_deg must be two different angles, got {list(self.angle_deg)}")

    @classmethod
    def of(cls, values: dict, where: str = "servo") -> "ServoSpec":
        """From a TOML table; unknown keys are an error (a typo must not fall back to a default)."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ServoError(f"{where}: unknown servo option(s) {sorted(unknown)}; known: {', '.join(sorted(known))}")
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
        except ServoError as e:
            raise ServoError(f"{where}: {e}") from None

    @property
    def no_load_speed(self) -> float:
        """rad/s"""
        return math.radians(60.0) / self.speed_s_per_60deg

    @property
    def rad_per_us(self) -> float:
        """Output angle per microsecond of pulse width (signed by the servo's direction)."""
        return math.radians(self.angle_deg[1] - self.angle_deg[0]) / (self.pulse_us[1] - self.pulse_us[0])

    def pulse_of(self, angle: np.ndarray) -> np.ndarray:
        """The pulse width (us) that commands ``angle`` (rad, in the servo's frame)."""
        return self.pulse_us[0] + (np.asarray(angle) - math.radians(self.angle_deg[0])) / self.rad_per_us

    def angle_of(self, pulse: np.ndarray) -> np.ndarray:
        return math.radians(self.angle_deg[0]) + (np.asarray(pulse) - self.pulse_us[0]) * self.rad_per_us


# The servo of the shipped quadruped: TowerPro MG90S, figures of its datasheet at 4.8 V (stall torque
# 1.8 kgf cm = 0.177 N m, 0.1 s / 60 deg, dead band 5 us, 1-2 ms for -90..+90 deg); the figures a
# datasheet does not give (gain, play, rotor inertia, friction) are estimates: sim/models/README.md.
MG90S = ServoSpec()


@dataclass
class ServoOverride:
    """What the stress catalogue changes in every servo of a task (neutral values: none)."""

    supply: float = 1.0          # share of the nominal supply's stall torque and speed
    deadband_us: float | None = None
    lag_ms: float | None = None


class ServoBank:
    """The servos of one robot, stepped at every physics sub-step.

    ``offset`` (rad) is each servo's neutral in joint coordinates: the joint angle at the middle of
    the pulse range; ``sign`` its mounting direction."""

    def __init__(self, specs: list[ServoSpec], timestep: float) -> None:
        self.specs = specs
        self.dt = float(timestep)
        a = lambda f: np.array([f(s) for s in specs], dtype=np.float64)  # noqa: E731
        self.stall = a(lambda s: s.stall_torque)
        self.no_load = a(lambda s: s.no_load_speed)
        self.kp, self.kd = a(lambda s: s.kp), a(lambda s: s.kd)
        self.rad_per_us = np.abs(a(lambda s: s.rad_per_us))
        self.resolution = a(lambda s: s.resolution_us) * self.rad_per_us
        self.latch_every = np.maximum(1, np.round(a(lambda s: 1.0 / s.update_hz) / self.dt)).astype(np.int64)
        self.nominal_deadband = a(lambda s: s.deadband_us)
        self.nominal_lag = a(lambda s: s.lag_ms)
        self.strength = np.ones(len(specs))
        self.override = ServoOverride()
        self.reset(np.zeros(len(specs)))

    def reset(self, angle: np.ndarray) -> None:
        """A new episode: the servos hold ``angle`` (their output's angle at rest)."""
        self.latched = np.array(angle, dtype=np.float64)
        self.target = self.latched.copy()
        self.clock = 0
        self.strength[:] = 1.0
        self.override = ServoOverride()

    def torque(self, command: np.ndarray, angle: np.ndarray, motor_speed: np.ndarray) -> np.ndarray:
        """Motor torque for one physics sub-step: ``command`` is the target angle (rad) sent now,
        ``angle`` the output shaft's angle and ``motor_speed`` the motor-side hinge's speed."""
        o = self.override
        latch = self.clock % self.latch_every == 0
        if latch.any():
            q = np.where(self.resolution > 0, np.round(command / np.where(self.resolution > 0, self.resolution, 1.0))
                         * self.resolution, command)
            self.latched = np.where(latch, q, self.latched)
        self.clock += 1
        lag = self.nominal_lag if o.lag_ms is None else np.full_like(self.nominal_lag, o.lag_ms)
        if lag.any():
            k = np.where(lag > 0, -np.expm1(-self.dt / np.maximum(lag, 1e-12) * 1e3), 1.0)
            self.target = self.target + k * (self.latched - self.target)
        else:
            self.target = self.latched
        error = self.target - angle
        deadband = (self.nominal_deadband if o.deadband_us is None else o.deadband_us) * self.rad_per_us
        error = np.where(np.abs(error) < deadband, 0.0, error)
        duty = np.clip(self.kp * error - self.kd * motor_speed, -1.0, 1.0)
        return self.strength * self.stall * (o.supply * duty - motor_speed / self.no_load)
