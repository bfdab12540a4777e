"""The reality gap as a catalogue of perturbations, composable on any task's environment.

A :class:`Condition` is a catalogue name, a strength and an onset (the control step from which it
acts: 0 = the whole episode, 500 = an event in the middle, to measure recovery). At strength 0 a
condition is the identity, bit for bit: it is not even installed. Every random choice (noise, the
motor that dies, the leg that is damaged, when pushes come) is drawn from the episode seed given
to ``reset``, so a perturbed episode is a function of its seed.

Sensors and actuators act at the physics sub-step where time matters (latency and actuation
delay: Ant has 5 sub-steps of 10 ms per 50 ms control step, the VSR 20 of 1 ms per 20 ms), through
the sub-step hook every MuJoCo task here offers: ``_step_mujoco_simulation(ctrl, n_frames)`` and
``_get_obs()`` (Gymnasium's MuJoCo environments, and :class:`~nchl_sim.vsr_env.VSRWalkerEnv`).
Body changes edit the compiled MuJoCo model in place (from a modified MjSpec for a damaged leg),
so they can also strike in the middle of an episode; the model is restored at the next reset.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import mujoco
import numpy as np

from nchl.core.errors import NchlError


class PerturbationError(NchlError):
    pass


@dataclass(frozen=True)
class Kind:
    what: str
    unit: str
    default: float | str          # a number, or "control step" (one control period, in sub-steps)
    maximum: float                 # strengths lie in [0, maximum]
    integer: bool = False
    needs: str | None = None      # what the task must have: "legs" (feet to damage), "servos", "terrain"
    harsher_above: bool = True    # a larger strength is a harsher condition (not for ADC bits)

    @property
    def delays(self) -> bool:
        """Whether the condition delays the control loop (its strength counts physics sub-steps)."""
        return self.unit == "sub-steps"


CATALOGUE: dict[str, Kind] = {
    "obs-noise": Kind("Gaussian noise on every observation (the task's scaled units)", "sigma", 0.05, 10.0),
    "quantize": Kind("observations quantized by an ADC over the observation range (0 = off)", "bits", 8, 32,
                     integer=True, harsher_above=False),
    "latency": Kind("the controller sees the observation of this many physics sub-steps ago", "sub-steps",
                    "control step", 1000, integer=True),
    "motor-gain": Kind("every motor loses this share of its strength (a servo: of its torque)", "share lost", 0.2, 1.0),
    "dead-motor": Kind("one motor (drawn per episode) loses this share of its strength; 1 = dead",
                       "share lost", 1.0, 1.0),
    "action-noise": Kind("Gaussian noise on every action (clipped to [-1, 1])", "sigma", 0.1, 10.0),
    "action-delay": Kind("motors receive the command of this many physics sub-steps ago", "sub-steps",
                         "control step", 1000, integer=True),
    "leg-damage": Kind("one foot segment (leg drawn per episode) loses this share of its length; 1 = removed",
                       "share lost", 0.5, 1.0, needs="legs"),
    "mass": Kind("every body is this much heavier", "relative", 0.2, 10.0),
    "friction": Kind("floor and body friction lose this share", "share lost", 0.5, 0.99),
    "push": Kind("horizontal pushes of this impulse at random times (every 2 s on average, 0.1 s each)",
                 "N s", 0.5, 100.0),
    "backlash": Kind("every servo's gear play grows to this many degrees", "deg", 3.0, 30.0, needs="servos"),
    "deadband": Kind("every servo's dead band widens to this many microseconds of pulse", "us", 20.0, 500.0,
                     needs="servos"),
    "supply-sag": Kind("the servo supply sags: stall torque and no-load speed lose this share", "share lost", 0.25,
                       0.95, needs="servos"),
    "servo-lag": Kind("every servo follows its command through a first-order lag of this time constant", "ms",
                      40.0, 1000.0, needs="servos"),
    "terrain": Kind("the ground becomes bumps up to this height, drawn per episode", "m", 0.01, 1.0,
                    needs="terrain"),
}
NEEDS = {"legs": "a task with feet (the Ant, a robot task)", "servos": "a task with servos",
         "terrain": "a task with a [terrain] height field"}
SERVO_CONDITIONS = ("backlash", "deadband", "supply-sag", "servo-lag")
ANT_FEET = ("left_ankle_geom", "right_ankle_geom", "third_ankle_geom", "fourth_ankle_geom")
PUSH_RATE = 0.5        # pushes per second, Poisson
PUSH_DURATION = 0.1    # s


@dataclass(frozen=True)
class Condition:
    """One perturbation: catalogue ``name``, ``strength`` in its unit, acting from control step ``onset``."""

    name: str
    strength: float
    onset: int = 0

    def label(self) -> str:
        s = f"{self.name}={self.strength:g}"
        return s if self.onset == 0 else f"{s}@{self.onset}"


ANT_MASS = 0.91088   # kg: Gymnasium's Ant, whose pushes the catalogue's default impulse was chosen for


def default_strength(name: str, substeps: int, mass: float | None = None) -> float:
    """The catalogue's default strength; with the robot's ``mass`` (robot tasks), the default push
    gives it the velocity change (0.55 m/s) that the default 0.5 N s gives the Ant."""
    kind = kind_of(name)
    if kind.default == "control step":
        return float(substeps)
    if name == "push" and mass is not None:
        return round(float(kind.default) * mass / ANT_MASS, 3)
    return float(kind.default)


def kind_of(name: str) -> Kind:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise PerturbationError(f"unknown condition {name!r}; choose from {', '.join(CATALOGUE)}") from None


def check_applicable(names: list[str] | tuple[str, ...], parts: frozenset[str], task: str = "this task") -> None:
    """Every named condition exists and fits the task: it has the ``parts`` (legs, servos,
    terrain) the condition acts on."""
    for name in names:
        needs = kind_of(name).needs
        if needs is not None and needs not in parts:
            raise PerturbationError(f"{name} applies to {NEEDS[needs]}, not {task}")


def condition(name: str, strength: float, onset: int = 0) -> Condition:
    """A checked :class:`Condition`: known name, a finite strength in the condition's range, onset >= 0."""
    kind = kind_of(name)
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise PerturbationError(f"{name}: strength must be a finite number, got {strength!r}")
    if not 0 <= strength <= kind.maximum:
        raise PerturbationError(f"{name}: strength must be in [0, {kind.maximum:g}] ({kind.unit}), got {strength:g}")
    if kind.integer and strength != int(strength):
        raise PerturbationError(f"{name}: strength counts {kind.unit}: it must be a whole number, got {strength:g}")
    if isinstance(onset, bool) or not isinstance(onset, int) or onset < 0:
        raise PerturbationError(f"onset must be a control step >= 0, got {onset!r}")
    return Condition(name, float(strength), onset)


@dataclass(frozen=True)
class Randomization:
    """Domain randomization for robust evolution: in every episode each listed condition is on with
    probability ``p``, at a strength uniform in its ``[low, high]`` (whole numbers for counts such as
    latency), all drawn from the episode seed, so a run stays a function of its settings."""

    ranges: tuple[tuple[str, float, float], ...]
    p: float = 1.0

    @classmethod
    def of(cls, ranges: dict, p: float = 1.0) -> "Randomization":
        """From ``{name: [low, high]}`` (a TOML table), checked against the catalogue."""
        if not isinstance(ranges, dict) or not ranges:
            raise PerturbationError(f"randomize must map condition names to [low, high], got {ranges!r}")
        out = []
        for name, bounds in ranges.items():
            kind = kind_of(name)
            if (not isinstance(bounds, (list, tuple)) or len(bounds) != 2):
                raise PerturbationError(f"randomize {name}: give [low, high] in {kind.unit}, got {bounds!r}")
            lo, hi = (condition(name, b).strength for b in bounds)
            if lo > hi:
                raise PerturbationError(f"randomize {name}: low {lo:g} is above high {hi:g}")
            out.append((name, lo, hi))
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise PerturbationError(f"randomize_p must be a probability in (0, 1], got {p!r}")
        return cls(tuple(out), float(p))

    def draw(self, seed: int) -> list[Condition]:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD0A1]))
        out = []
        for name, lo, hi in self.ranges:
            on = rng.random() < self.p
            s = float(rng.integers(int(lo), int(hi) + 1)) if kind_of(name).integer else float(rng.uniform(lo, hi))
            if on:
                out.append(Condition(name, s))
        return out


def _layer(env: gym.Env) -> "Perturbed | None":
    while not isinstance(env, Perturbed):
        if not hasattr(env, "env"):
            return None
        env = env.env
    return env


def perturbed_layer(env: gym.Env) -> "Perturbed":
    """The :class:`Perturbed` wrapper inside a task environment."""
    layer = _layer(env)
    if layer is None:
        raise PerturbationError("this environment has no perturbation layer: make it with perturbable=True")
    return layer


def struck_parts(env: gym.Env) -> dict[str, str]:
    """What the damage of the current episode strikes, by condition (``{}`` on an unperturbed task)."""
    layer = _layer(env)
    return {} if layer is None else layer.struck()


def substeps_of(env: gym.Env) -> int:
    base = env.unwrapped
    return int(getattr(base, "frame_skip", getattr(base, "substeps", 1)))


class Perturbed(gym.Wrapper):
    """A task environment under ``conditions`` (all at once).

    Wrap the whole task environment (after its observation scaling); ``to_observation`` turns the
    base environment's raw observation into the task's (its scaling), for latency."""

    def __init__(self, env: gym.Env, conditions: list[Condition] | tuple[Condition, ...],
                 to_observation: Callable[[np.ndarray], np.ndarray] = lambda o: o,
                 parts: frozenset[str] = frozenset()) -> None:
        super().__init__(env)
        self.base = env.unwrapped
        if not hasattr(self.base, "_step_mujoco_simulation") or not hasattr(self.base, "_get_obs"):
            raise PerturbationError(f"{type(self.base).__name__} has no physics sub-step hook to perturb")
        self.parts = parts
        self._feet = list(self.base.robot.feet) if hasattr(self.base, "robot") else list(ANT_FEET)
        self._strength = getattr(self.base, "strength", None)   # servos: motor conditions scale torque
        self._actuate = getattr(self.base, "actuate", None)
        self.to_observation = to_observation
        self._bound = np.asarray(env.observation_space.high, dtype=np.float64)
        self._sub_original = self.base._step_mujoco_simulation
        self._pristine: mujoco.MjModel | None = None
        self._model_edited = False
        self.t = 0
        self.set_conditions(conditions)

    def set_conditions(self, conditions: list[Condition] | tuple[Condition, ...]) -> None:
        """The conditions of the next episodes (domain randomization draws new ones per episode)."""
        names = [c.name for c in conditions]
        if len(set(names)) != len(names):
            raise PerturbationError(f"a condition appears twice in {names}")
        check_applicable(names, self.parts)
        active = {c.name: c for c in conditions if c.strength > 0}
        if "quantize" in active and not np.isfinite(self._bound).all():
            raise PerturbationError("quantize needs a bounded observation space; this task's observations are raw")
        self.conditions = active
        if self._pristine is None and self._edits_body():
            self._pristine = copy.copy(self.base.model)
        hook = any(n in active for n in ("latency", "action-delay", "push"))
        self.base._step_mujoco_simulation = self._substeps if hook else self._sub_original

    def struck(self) -> dict[str, str]:
        """The part each active damage condition strikes this episode (drawn from its seed at reset):
        the motor that dies or weakens, the foot that is shortened. Which part it is can matter more
        than the condition itself, so results can be split by it."""
        out = {}
        if "dead-motor" in self.conditions:
            out["dead-motor"] = self._motor_name(self._dead)
        if "leg-damage" in self.conditions:
            out["leg-damage"] = self._foot
        return out

    def _motor_name(self, i: int) -> str:
        """The actuator's name, else the joint it drives (Gymnasium's Ant names neither motor), else
        ``action i`` (a VSR action drives a voxel's several actuators)."""
        m = self.base.model
        if m.nu == self.env.action_space.shape[0]:
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR, i)
            if name is None and m.actuator_trntype[i] == mujoco.mjtTrn.mjTRN_JOINT:
                name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, int(m.actuator_trnid[i, 0]))
            if name:
                return name
        return f"action {i}"

    # -- what acts now -----------------------------------------------------------
    def _on(self, name: str) -> float:
        c = self.conditions.get(name)
        return c.strength if c is not None and self.t >= c.onset else 0.0

    def _edits_body(self) -> bool:
        return any(n in self.conditions for n in ("leg-damage", "mass", "friction", "terrain"))

    # -- gymnasium API ---------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if self._model_edited:
            _assign(self.base.model, self._pristine)
            self._model_edited = False
        obs, info = self.env.reset(seed=seed, options=options)
        self.t = 0
        root = np.random.SeedSequence([0 if seed is None else seed, 0x5E15])
        self.rng = np.random.default_rng(root)        # noise, drawn as the episode goes
        choices = np.random.default_rng(root.spawn(1)[0])  # what the episode's damage is
        self._dead = int(choices.integers(0, self.env.action_space.shape[0]))
        self._foot = self._feet[int(choices.integers(0, len(self._feet)))]
        self._terrain_rng = np.random.default_rng(root.spawn(2)[1])
        step = self.base.model.opt.timestep
        self._push_start = np.floor(np.cumsum(choices.exponential(1.0 / PUSH_RATE, 64)) / step).astype(np.int64)
        self._push_len = max(1, round(PUSH_DURATION / step))
        angles = choices.uniform(0, 2 * np.pi, 64)
        self._push_dir = np.column_stack([np.cos(angles), np.sin(angles), np.zeros(64)])
        self._substep = 0
        self._ctrl_history = [np.zeros(self.base.model.nu)] * (int(self._on_max("action-delay")) + 1)
        self._history = [self.base._get_obs()] * (int(self._on_max("latency")) + 1)
        self._apply_body()
        return self._observe(obs), info

    def _on_max(self, name: str) -> float:
        c = self.conditions.get(name)
        return 0.0 if c is None else c.strength

    def step(self, action):
        self._apply_body()
        a = np.asarray(action, dtype=np.float64)
        weaker, dead = self._on("motor-gain"), self._on("dead-motor")
        if weaker or dead:
            gain = np.full(a.shape, 1.0 - weaker)
            gain[self._dead] *= 1.0 - dead
            if self._strength is not None:
                self._strength[:] = gain
            else:
                a = a * gain
        if any(n in self.conditions for n in SERVO_CONDITIONS):
            backlash, deadband, lag = self._on("backlash"), self._on("deadband"), self._on("servo-lag")
            self.base.set_servo_conditions(backlash_deg=backlash or None, deadband_us=deadband or None,
                                           supply=1.0 - self._on("supply-sag"), lag_ms=lag or None)
        sigma = self._on("action-noise")
        if sigma:
            a = np.clip(a + self.rng.normal(0.0, sigma, a.shape), -1.0, 1.0)
        obs, reward, terminated, truncated, info = self.env.step(a.astype(np.asarray(action).dtype, copy=False))
        self.t += 1
        if self._on("latency"):
            obs = self.to_observation(self._history[-1 - int(self._on("latency"))])
        return self._observe(obs), reward, terminated, truncated, info

    def close(self) -> None:
        self.base._step_mujoco_simulation = self._sub_original
        super().close()

    # -- sensors -----------------------------------------------------------------------
    def _observe(self, obs: np.ndarray) -> np.ndarray:
        sigma = self._on("obs-noise")
        if sigma:
            obs = np.clip(obs + self.rng.normal(0.0, sigma, obs.shape), -self._bound, self._bound)
        bits = self._on("quantize")
        if bits:
            lsb = 2 * self._bound / 2.0 ** bits
            obs = np.clip(np.round(obs / lsb) * lsb, -self._bound, self._bound)
        return obs

    # -- physics sub-steps: actuation delay, pushes, the observation history for latency --
    def _substeps(self, ctrl, n_frames: int) -> None:
        model, data = self.base.model, self.base.data
        delay = int(self._on("action-delay"))
        push = self._on("push")
        mass = float(model.body_mass.sum())
        for _ in range(n_frames):
            self._ctrl_history.append(np.array(ctrl, dtype=np.float64))
            del self._ctrl_history[0]
            if self._actuate is None:
                data.ctrl[:] = self._ctrl_history[-1 - delay]
            else:
                self._actuate(self._ctrl_history[-1 - delay])   # a servo turns its command into torque
            data.xfrc_applied[:] = 0.0
            if push:
                k = np.searchsorted(self._push_start, self._substep, side="right") - 1
                if k >= 0 and self._substep < self._push_start[k] + self._push_len:
                    force = push / (self._push_len * model.opt.timestep) * self._push_dir[k]
                    data.xfrc_applied[:, :3] = model.body_mass[:, None] / mass * force
            mujoco.mj_step(model, data)
            mujoco.mj_rnePostConstraint(model, data)  # contact forces of this sub-step's observation
            self._substep += 1
            self._history.append(self.base._get_obs())
            del self._history[0]

    # -- body ------------------------------------------------------------------------------
    def _apply_body(self) -> None:
        """Switch the body perturbations on at their onset (once per episode)."""
        if self._pristine is None or self._model_edited:
            return
        damage, heavier, slippery, bumps = (self._on(n) for n in ("leg-damage", "mass", "friction", "terrain"))
        if not (damage or heavier or slippery or bumps):
            return
        model = self._damaged_leg(damage) if damage else copy.copy(self._pristine)
        if bumps:
            self.base.set_terrain(bumps, self._terrain_rng)
            model.hfield_data[:] = self.base.model.hfield_data
            model.hfield_size[:] = self.base.model.hfield_size
        if heavier:
            model.body_mass[:] *= 1.0 + heavier
            model.body_inertia[:] *= 1.0 + heavier
        if slippery:  # MuJoCo takes the larger friction of two touching geoms: scale all of them
            model.geom_friction[:, 0] *= 1.0 - slippery
        mujoco.mj_setConst(model, mujoco.MjData(model))
        _assign(self.base.model, model)
        self._model_edited = True

    def _damaged_leg(self, share: float) -> mujoco.MjModel:
        if hasattr(self.base, "damaged_leg"):
            return self.base.damaged_leg(self._foot, share)
        spec = mujoco.MjSpec.from_file(self.base.fullpath)
        foot = spec.geom(self._foot)
        left = 1.0 - share
        if left < 1e-3:  # removed: a sphere of the leg's radius is all that is left at the joint
            foot.type = mujoco.mjtGeom.mjGEOM_SPHERE
            foot.fromto[:] = np.nan
            foot.pos = [0.0, 0.0, 0.0]
        else:
            foot.fromto[3:6] = np.asarray(foot.fromto[3:6]) * left
        return spec.compile()


def _assign(dst: mujoco.MjModel, src: mujoco.MjModel) -> None:
    """Copy every array and statistic of ``src`` into ``dst`` (same structure), so the environment's
    own model object (and its MjData) stays the one in use."""
    for name in dir(src):
        if name.startswith("_"):
            continue
        value = getattr(src, name)
        if isinstance(value, np.ndarray):
            target = getattr(dst, name)
            if target.shape != value.shape:
                raise PerturbationError(f"model field {name} changed shape: {target.shape} -> {value.shape}")
            target[...] = value
    for name in ("meaninertia", "meanmass", "meansize", "extent", "center"):
        setattr(dst.stat, name, getattr(src.stat, name))
