"""The firmware application around a generated controller: raw sensor counts in, servo pulse widths out.

:class:`AppConfig` is everything the firmware needs besides the controller: how each raw reading
(int32 counts of a sensor) becomes the task's scaled observation, how each action becomes a pulse
width, and the safety settings. The application layer fills it from a task
(:mod:`nchl.app.firmware_cmd`); this module only knows numbers.

The same numbers run in two places, which compute the same integers (fixed point) or the same
float32 operations (float):

* :func:`render_project` writes a complete project (``make`` builds it offline): the controller, the
  loop and safety code (``app.c``), the HAL header the user implements, a default HAL per board;
* :class:`AppModel`, the Python reference of that loop, step for step: conversion, range / stuck /
  invalid checks, latched faults, stop input, rate limit, pulse widths.

Frames on the wire (little-endian, each ``A5 5A type ... fletcher16``) are defined once here
(:func:`sensor_frame`, :func:`parse_board_frames`) and in the default HAL template.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from nchl.core.errors import NchlError
from nchl.core.fixed import ONE

from . import c_float, check_numeric, check_prefix, generate, write

INVALID = -(2 ** 31)      # a raw count the HAL could not read (the integer firmware's NaN)
RAW_MAX = 2 ** 31 - 1
RANGE_FACTOR = 2.0        # a reading whose scaled value lies beyond twice its clip bound is not physical
PULSE_SHIFT = 16          # fixed point: pulse = (action_q12 * M + B) >> 16
CLOCK_TABLE = 256         # gait clock: sine table entries per turn (Q15, linear interpolation)
MAGIC = b"\xa5\x5a"
FLAG_STOP, FLAG_STALL = 1, 2
STATES = {0: "run", 1: "safe", 2: "stopped"}
# latched fault bits: what each means is in the generated README
FAULTS = {
    "invalid": (0x01, "a reading the HAL marked invalid (INT32_MIN: the integer NaN / inf; a failed bus read)"),
    "range": (0x02, "a reading outside its channel's valid range (scaled beyond twice its clip bound)"),
    "stuck": (0x04, "a watched reading unchanged for stuck_periods periods in a row"),
    "sensor-timeout": (0x08, "no valid sensor frame for max_dropped periods in a row"),
    "deadline": (0x10, "max_misses missed deadlines in a row (a step longer than the control period)"),
    "reset": (0x20, "the firmware restarted while it was running (watchdog, brown-out, crash)"),
    "controller": (0x40, "the controller step refused its observation (cannot happen after the clamps)"),
}


def fault_names(bits: int) -> list[str]:
    return [name for name, (bit, _) in FAULTS.items() if bits & bit]


@dataclass(frozen=True)
class Channel:
    """One raw reading: ``physical = raw * lsb``, ``scaled = clip((physical - offset) * scale, +-clip)``."""

    name: str
    kind: str
    unit: str
    lsb: float           # physical units per count
    offset: float        # physical value that scales to 0
    scale: float
    clip: float          # inf: not clipped (float), the Q12 range (fixed)
    watch: bool = False  # checked for a reading that stops changing

    def raw_range(self) -> tuple[int, int]:
        """Valid counts: a scaled value within ``RANGE_FACTOR`` times the clip bound (all counts if unclipped)."""
        if not math.isfinite(self.clip):
            return -RAW_MAX, RAW_MAX
        a = (self.offset - RANGE_FACTOR * self.clip / abs(self.scale)) / self.lsb
        b = (self.offset + RANGE_FACTOR * self.clip / abs(self.scale)) / self.lsb
        return max(-RAW_MAX, math.ceil(min(a, b))), min(RAW_MAX, math.floor(max(a, b)))

    def counts(self, physical: np.ndarray) -> np.ndarray:
        """What an ideal sensor reports for ``physical`` (rounded to the nearest count; non-finite: INVALID)."""
        p = np.asarray(physical, dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            c = np.round(p / self.lsb)
        ok = np.isfinite(c)
        return np.where(ok, np.clip(np.where(ok, c, 0), -RAW_MAX, RAW_MAX), INVALID).astype(np.int64)


@dataclass(frozen=True)
class Actuator:
    """``pulse_lo`` / ``pulse_hi``: the pulse width (us) commanding action -1 / +1."""

    name: str
    pulse_lo: float
    pulse_hi: float

    @property
    def pulse_range(self) -> tuple[int, int]:
        return round(min(self.pulse_lo, self.pulse_hi)), round(max(self.pulse_lo, self.pulse_hi))

    def action_of(self, pulse: np.ndarray) -> np.ndarray:
        """The action a pulse width commands (the host's side of the wire)."""
        mid, half = (self.pulse_lo + self.pulse_hi) / 2, (self.pulse_hi - self.pulse_lo) / 2
        return (np.asarray(pulse, dtype=np.float64) - mid) / half


@dataclass(frozen=True)
class AppConfig:
    """The firmware's numbers. ``inputs`` says where each observation entry comes from:
    ``("sensor", channel)``, ``("command", actuator)`` (the last command sent) or ``("clock", 0|1)``
    (sin / cos of the gait clock, from the step count)."""

    task: str
    control_period_s: float
    channels: tuple[Channel, ...]
    actuators: tuple[Actuator, ...]
    inputs: tuple[tuple[str, int], ...]
    numeric: str = "float"
    obs_max_q: int = 32767         # the fixed-point controller's input bound (Q12)
    clock_hz: float = 0.0
    safe_action: tuple[float, ...] = ()   # () = every actuator at its centre (action 0)
    rate_limit_us: float | None = None    # largest pulse change per period; None = the whole span
    stuck_s: float = 1.0
    max_dropped: int = 3
    max_misses: int = 3
    report_s: float = 1.0
    raw_notes: str = ""            # what the raw units are (for the README)

    def __post_init__(self) -> None:
        check_numeric(self.numeric)
        if self.safe_action and len(self.safe_action) != len(self.actuators):
            raise NchlError(f"safe pose has {len(self.safe_action)} actions for {len(self.actuators)} actuators")
        if any(not -1 <= a <= 1 for a in self.safe_action):
            raise NchlError("safe pose actions must lie in [-1, 1]")
        if self.rate_limit_us is not None and not self.rate_limit_us > 0:
            raise NchlError(f"rate limit must be > 0 us per period, got {self.rate_limit_us:g}")

    # -- derived numbers ---------------------------------------------------------------------
    @property
    def n_sensors(self) -> int:
        return len(self.channels)

    @property
    def n_act(self) -> int:
        return len(self.actuators)

    def periods(self, seconds: float) -> int:
        return max(1, round(seconds / self.control_period_s))

    @property
    def safe(self) -> np.ndarray:
        return np.array(self.safe_action or [0.0] * self.n_act, dtype=np.float64)

    @property
    def rate_limit_action(self) -> float:
        """The rate limit in action units per period (2 = the whole range: no limit)."""
        if self.rate_limit_us is None:
            return 2.0
        return min(2.0, min(self.rate_limit_us / (abs(a.pulse_hi - a.pulse_lo) / 2) for a in self.actuators))

    def fixed_channel(self, c: Channel) -> tuple[int, int, int, int]:
        """``q = clamp((raw * M + B) >> S, +-L)`` in int64: the Q12 observation of a raw count."""
        k = c.lsb * c.scale * ONE
        s = max(0, min(40, 30 - math.ceil(math.log2(abs(k))))) if k else 0
        m = round(k * 2 ** s)
        b = round(-c.offset * c.scale * ONE * 2 ** s) + (1 << (s - 1) if s else 0)
        limit = self.obs_max_q if not math.isfinite(c.clip) else min(self.obs_max_q, round(c.clip * ONE))
        return m, b, s, limit

    def fixed_pulse(self, a: Actuator) -> tuple[int, int]:
        mid, half = (a.pulse_lo + a.pulse_hi) / 2, (a.pulse_hi - a.pulse_lo) / 2
        return round(half * 2 ** PULSE_SHIFT / ONE), round(mid * 2 ** PULSE_SHIFT) + (1 << (PULSE_SHIFT - 1))

    @property
    def clock_step(self) -> int:
        """Gait clock phase advance per period, in 2**-32 turns (a phase accumulator)."""
        return round((self.clock_hz * self.control_period_s % 1.0) * 2 ** 32) % 2 ** 32


CLOCK_SIN = [round(32767 * math.sin(2 * math.pi * k / CLOCK_TABLE)) for k in range(CLOCK_TABLE + 1)]


def clock_q15(phase: int) -> int:
    """sin of ``phase`` (2**-32 turns) in Q15 from :data:`CLOCK_SIN`, linearly interpolated (integers)."""
    idx, frac = phase >> 24, (phase >> 8) & 0xFFFF
    a, b = CLOCK_SIN[idx], CLOCK_SIN[idx + 1]
    return a + (((b - a) * frac) >> 16)


class AppModel:
    """The Python reference of the firmware loop (``app.c``): the same integers, the same float32
    operations, the same fault logic. ``controller`` is the Python reference controller (float32 or
    :class:`~nchl.core.fixed.FixedController`)."""

    def __init__(self, config: AppConfig, controller, seed: int) -> None:
        self.c, self.controller, self.seed = config, controller, seed
        c = config
        self.fixed = c.numeric == "fixed"
        lo, hi = zip(*(ch.raw_range() for ch in c.channels)) if c.channels else ((), ())
        self.raw_lo, self.raw_hi = np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64)
        self.watch = np.array([ch.watch for ch in c.channels], dtype=bool)
        self.stuck_periods = c.periods(c.stuck_s)
        if self.fixed:
            self.mbsl = [c.fixed_channel(ch) for ch in c.channels]
            self.pulse_mb = [c.fixed_pulse(a) for a in c.actuators]
            self.safe_cmd = np.array([round(v * ONE) for v in c.safe], dtype=np.int64)
            self.rate = round(c.rate_limit_action * ONE)
        else:
            f32 = np.float32
            self.k = np.array([f32(ch.lsb * ch.scale) for ch in c.channels], dtype=np.float32)
            self.b = np.array([f32(-ch.offset * ch.scale) for ch in c.channels], dtype=np.float32)
            self.clip = np.array([f32(min(ch.clip, 3.0e38)) for ch in c.channels], dtype=np.float32)
            self.p0 = np.array([(a.pulse_lo + a.pulse_hi) / 2 for a in c.actuators], dtype=np.float32)
            self.p1 = np.array([(a.pulse_hi - a.pulse_lo) / 2 for a in c.actuators], dtype=np.float32)
            self.safe_cmd = c.safe.astype(np.float32)
            self.rate = np.float32(c.rate_limit_action)
        self.pmin = np.array([a.pulse_range[0] for a in c.actuators], dtype=np.int64)
        self.pmax = np.array([a.pulse_range[1] for a in c.actuators], dtype=np.int64)
        self.boot(warm=False)

    def boot(self, warm: bool) -> None:
        """Power-on (or a reset: ``warm``, which latches the reset fault and holds the safe pose)."""
        self.faults = FAULTS["reset"][0] if warm else 0
        self.state = 1 if warm else 0
        self.stop_seen = False
        self.dropped_run = self.miss_run = 0
        self.misses = self.dropped = 0
        self.steps = 0
        self.last = np.zeros(len(self.c.channels), dtype=np.int64)
        self.same = np.zeros(len(self.c.channels), dtype=np.int64)
        self.command = self.safe_cmd.copy()
        self.action = self.safe_cmd.copy()
        self.phase = 0
        self.controller.reset(self.seed)

    def _latch(self, name: str) -> None:
        self.faults |= FAULTS[name][0]
        if self.state == 0:
            self.state = 1

    def observation(self, raw: np.ndarray):
        """The controller's input from raw counts (Q12 int64, or float32), before the step."""
        c, out = self.c, []
        if self.fixed:
            scaled = [max(-lim, min(lim, (int(r) * m + b) >> s)) for r, (m, b, s, lim) in zip(raw, self.mbsl)]
        else:
            with np.errstate(over="ignore"):
                v = raw.astype(np.float32) * self.k + self.b
            scaled = np.minimum(np.maximum(v, -self.clip), self.clip)
        for source, i in c.inputs:
            if source == "sensor":
                out.append(scaled[i])
            elif source == "command":
                out.append(self.command[i])
            else:
                q15 = clock_q15((self.phase + (0 if i == 0 else 1 << 30)) % 2 ** 32)
                out.append((q15 + 4) >> 3 if self.fixed else np.float32(q15) * np.float32(1.0 / 32768.0))
        return np.array(out, dtype=np.int64) if self.fixed else np.array(out, dtype=np.float32)

    def step(self, raw: np.ndarray | None, stop: bool = False, missed: bool = False) -> dict:
        """One period: ``raw`` counts (None: no valid frame this period), the stop input, and whether
        the previous step missed its deadline. Returns the pulse widths and what the firmware reports."""
        if missed:
            self.misses += 1
            self.miss_run += 1
            if self.miss_run >= self.c.max_misses:
                self._latch("deadline")
        else:
            self.miss_run = 0
        run_controller = False
        if raw is None:
            self.dropped += 1
            self.dropped_run += 1
            if self.dropped_run >= self.c.max_dropped:
                self._latch("sensor-timeout")
        else:
            raw = np.asarray(raw, dtype=np.int64)
            self.dropped_run = 0
            if stop:
                self.state, self.stop_seen = 2, True
            elif self.stop_seen:   # released after a stop: faults cleared, the controller starts over
                self.stop_seen, self.state, self.faults = False, 0, 0
                self.controller.reset(self.seed)
                self.phase = 0
                self.same[:] = 0
            if (raw == INVALID).any():
                self._latch("invalid")
            elif ((raw < self.raw_lo) | (raw > self.raw_hi)).any():
                self._latch("range")
            changed = raw != self.last
            self.same = np.where(changed, 0, self.same + 1)
            self.last = raw
            if (self.watch & (self.same >= self.stuck_periods)).any():
                self._latch("stuck")
            run_controller = self.state == 0
        if run_controller:
            obs = self.observation(raw)
            try:
                act = self.controller.step_q(obs) if self.fixed else self.controller.step(obs)
            except NchlError:
                self._latch("controller")
            else:
                self.action = np.asarray(act, dtype=np.int64 if self.fixed else np.float32)
            self.phase = (self.phase + self.c.clock_step) % 2 ** 32
        target = self.action if self.state == 0 else self.safe_cmd
        if raw is None and self.state == 0:
            target = self.command            # no reading: hold the last command
        self.command = np.minimum(np.maximum(target, self.command - self.rate), self.command + self.rate)
        if not self.fixed:
            self.command = self.command.astype(np.float32)
        self.steps += 1
        return {"pulses": self.pulses(), "action": self.action.copy(), "state": self.state, "faults": self.faults,
                "misses": self.misses, "dropped": self.dropped}

    def pulses(self) -> np.ndarray:
        if self.fixed:
            p = np.array([(int(a) * m + b) >> PULSE_SHIFT for a, (m, b) in zip(self.command, self.pulse_mb)])
        else:
            p = np.trunc(self.p1 * self.command + self.p0 + np.float32(0.5)).astype(np.int64)
        return np.clip(p, self.pmin, self.pmax)


# -- frames ---------------------------------------------------------------------------------
def fletcher16(data: bytes) -> int:
    a = b = 0
    for byte in data:
        a = (a + byte) % 255
        b = (b + a) % 255
    return (b << 8) | a


def sensor_frame(seq: int, raw: np.ndarray, flags: int = 0, corrupt: bool = False) -> bytes:
    body = b"S" + struct.pack(f"<HB{len(raw)}i", seq % 65536, flags, *(int(v) for v in raw))
    check = fletcher16(body) ^ (0xFFFF if corrupt else 0)
    return MAGIC + body + struct.pack("<H", check)


def board_frame_size(kind: str, config: AppConfig) -> int:
    """Bytes after MAGIC + type, checksum included, of a board frame (``R`` has a length byte)."""
    width = 2 if config.numeric == "fixed" else 4
    return {"A": 2 + 1 + 2 + 2 + 2 + 4 + 4 + 2 * config.n_act + width * config.n_act + 2, "B": 2 + 1 + 2}[kind]


def decode_board_frame(kind: str, payload: bytes, config: AppConfig) -> dict:
    """A board frame's fields (``payload``: after the type byte, checksum checked and dropped)."""
    if kind == "B":
        boots, warm = struct.unpack("<HB", payload)
        return {"type": "boot", "boots": boots, "warm": bool(warm)}
    if kind == "R":
        return {"type": "report", "text": payload[1:].decode("ascii", "replace")}
    n = config.n_act
    seq, state, faults, misses, dropped, busy, ctrl = struct.unpack_from("<HBHHHII", payload)
    at = struct.calcsize("<HBHHHII")
    pulses = np.array(struct.unpack_from(f"<{n}H", payload, at), dtype=np.int64)
    at += 2 * n
    if config.numeric == "fixed":
        action = np.array(struct.unpack_from(f"<{n}h", payload, at), dtype=np.int64)
    else:
        action = np.frombuffer(payload[at:at + 4 * n], dtype="<f4").astype(np.float32)
    return {"type": "actuators", "seq": seq, "state": state, "faults": faults, "misses": misses,
            "dropped": dropped, "busy": busy, "ctrl": ctrl, "pulses": pulses, "action": action}


# -- the project ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BoardInfo:
    """What the templates need of a board: its core, memory map, clock and default HAL."""

    name: str
    target: str                 # a key of codegen.firmware.TARGETS, or "host"
    clock_hz: int
    flash: str = ""
    ram: str = ""
    flash_origin: str = ""
    ram_origin: str = ""
    qemu_machine: tuple[str, ...] = ()
    uart: str = ""              # cmsdk | nrf51 | "" (host)
    uart_base: str = ""
    watchdog: str = ""          # cmsdk | nrf51 | "" (none modelled)
    watchdog_base: str = ""
    description: str = ""
    uart_irq: int = -1          # the UART's receive interrupt (NVIC line)

    @property
    def host(self) -> bool:
        return self.target == "host"

    @property
    def qemu_command(self) -> str:
        """How the Makefile's ``run`` starts the emulator (the UART on a socket, instructions counted)."""
        return (f"qemu-system-arm {' '.join(self.qemu_machine)} -display none -monitor none "
                f"-serial unix:uart.sock,server=on -icount shift=6,sleep=off -kernel firmware.elf")

    def bytes_of(self, size: str) -> int:
        units = {"K": 1024, "M": 1024 * 1024}
        return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)


def _mcu(name: str, uart: str, uart_base: str, uart_irq: int, watchdog: str, watchdog_base: str,
         description: str) -> BoardInfo:
    from .firmware import BOARDS

    b = BOARDS[name]
    return BoardInfo(name, b.target, b.cpu_hz, b.flash_length, b.ram_length, b.flash_origin, b.ram_origin,
                     b.machine or ("-M", name), uart, uart_base, watchdog, watchdog_base, description, uart_irq)


# The boards a firmware project targets: QEMU's Cortex-M boards (their UART and watchdog as QEMU
# models them) and a Linux computer. The clock is the one SysTick counts in the emulator.
APP_BOARDS = {
    "microbit": _mcu("microbit", "nrf51", "0x40002000", 2, "nrf51", "0x40010000",
                     "BBC micro:bit v1, nRF51822: Cortex-M0 at 16 MHz, 256 KB flash, 16 KB RAM, no FPU"),
    "mps2-an385": _mcu("mps2-an385", "cmsdk", "0x40004000", 0, "cmsdk", "0x40008000",
                       "Arm MPS2 AN385: Cortex-M3 at 25 MHz, no FPU"),
    "mps2-an386": _mcu("mps2-an386", "cmsdk", "0x40004000", 0, "cmsdk", "0x40008000",
                       "Arm MPS2 AN386: Cortex-M4F at 25 MHz"),
    "mps2-an505": _mcu("mps2-an505", "cmsdk", "0x50200000", 32, "", "",
                       "Arm MPS2+ AN505: Cortex-M33 with FPU at 20 MHz (secure state)"),
    "host": BoardInfo("host", "host", 1_000_000_000, description="a Linux computer (single-board computer), "
                      "frames on stdin/stdout or UDP; cycles are nanoseconds"),
}
FPU = {"cortex-m4f", "cortex-m33", "host"}


def app_board(name: str) -> BoardInfo:
    try:
        return APP_BOARDS[name]
    except KeyError:
        raise NchlError(f"unknown board {name!r}; choose one of {', '.join(APP_BOARDS)}") from None


def c_context(config: AppConfig, board: BoardInfo, prefix: str) -> dict:
    """Every constant of ``app_config.h``, as C literals."""
    c = config
    fixed = c.numeric == "fixed"
    period_cycles = round(c.control_period_s * board.clock_hz)
    if not board.host and period_cycles >= 2 ** 24:
        raise NchlError(f"the control period {c.control_period_s:g} s is {period_cycles} cycles at "
                        f"{board.clock_hz / 1e6:g} MHz: beyond SysTick's 24-bit reload")
    channels = []
    for ch in c.channels:
        lo, hi = ch.raw_range()
        row = {"name": ch.name, "kind": ch.kind, "unit": ch.unit, "lsb": f"{ch.lsb:.9g}", "lo": lo, "hi": hi,
               "watch": int(ch.watch), "offset": f"{ch.offset:.9g}", "scale": f"{ch.scale:.9g}",
               "clip": "none" if not math.isfinite(ch.clip) else f"{ch.clip:g}"}
        if fixed:
            m, b, s, lim = c.fixed_channel(ch)
            row.update(m=m, b=b, s=s, lim=lim)
        else:
            row.update(k=c_float(ch.lsb * ch.scale), b=c_float(-ch.offset * ch.scale),
                       lim=c_float(min(ch.clip, 3.0e38)))
        channels.append(row)
    acts = []
    for a, safe in zip(c.actuators, c.safe):
        lo, hi = a.pulse_range
        row = {"name": a.name, "lo": lo, "hi": hi, "pulse_lo": f"{a.pulse_lo:.6g}", "pulse_hi": f"{a.pulse_hi:.6g}"}
        if fixed:
            m, b = c.fixed_pulse(a)
            row.update(m=m, b=b, safe=round(safe * ONE))
        else:
            row.update(p0=c_float((a.pulse_lo + a.pulse_hi) / 2), p1=c_float((a.pulse_hi - a.pulse_lo) / 2),
                       safe=c_float(safe))
        acts.append(row)
    return {
        "prefix": check_prefix(prefix), "P": prefix.upper(), "fixed": fixed, "board": board, "task": c.task,
        "period_s": c.control_period_s, "period_us": round(c.control_period_s * 1e6),
        "period_cycles": period_cycles, "clock_hz": board.clock_hz,
        "channels": channels, "actuators": acts, "inputs": list(c.inputs), "n_obs": len(c.inputs),
        "stuck_periods": c.periods(c.stuck_s), "max_dropped": c.max_dropped, "max_misses": c.max_misses,
        "report_periods": c.periods(c.report_s),
        "rate": round(c.rate_limit_action * ONE) if fixed else c_float(c.rate_limit_action),
        "rate_us": "the whole span (no limit)" if c.rate_limit_us is None else f"{c.rate_limit_us:g} us",
        "clock_step": c.clock_step, "clock_hz_value": c.clock_hz, "clock_sin": CLOCK_SIN,
        "clock_table": CLOCK_TABLE, "faults": [(n, bit, what) for n, (bit, what) in FAULTS.items()],
        "raw_notes": c.raw_notes, "invalid": INVALID, "obs_max_q": c.obs_max_q,
        "stuck_s": c.stuck_s, "report_s": c.report_s,
    }


# files of a project: (template, output name, for which boards)
_FILES = (("app_config.h.j2", "app_config.h", "all"), ("app_hal.h.j2", "app_hal.h", "all"),
          ("app.c.j2", "app.c", "all"),
          ("app_hal_mcu.c.j2", "hal_board.c", "mcu"), ("app_startup.c.j2", "startup.c", "mcu"),
          ("link.ld.j2", "link.ld", "mcu"), ("app_hal_host.c.j2", "hal_board.c", "host"),
          ("app_Makefile.j2", "Makefile", "all"), ("app_README.md.j2", "README.md", "all"))


def render_project(config: AppConfig, board: BoardInfo, spec, genome: np.ndarray, out: str | Path,
                   prefix: str = "nchl_ctrl", obs_range: float = 8.0, genome_label: str = "") -> list[Path]:
    """Write the whole project into ``out``: ``make -C out`` builds it."""
    from nchl import __version__

    from . import _environment
    from .firmware import TARGETS

    if spec.topology.n_in != len(config.inputs) or spec.topology.n_out != config.n_act:
        raise NchlError(f"controller layers [{spec.topology}] do not fit the firmware's {len(config.inputs)} "
                        f"inputs and {config.n_act} actuators")
    files = dict(generate(spec, genome, prefix, numeric=config.numeric, obs_range=obs_range))
    ctx = {**c_context(config, board, prefix), "version": __version__,
           "cflags": "" if board.host else " ".join(TARGETS[board.target]),
           "rule": spec.rule, "window": spec.window, "layers": list(spec.topology.layers), "genome": genome_label,
           # link.ld.j2's names
           "flash_origin": board.flash_origin, "flash_length": board.flash, "ram_origin": board.ram_origin,
           "ram_length": board.ram}
    env = _environment()
    which = "host" if board.host else "mcu"
    for template, name, boards in _FILES:
        if boards in ("all", which):
            files[name] = env.get_template(template).render(**{**ctx, "board": board if name != "link.ld"
                                                                else board.target})
    return write(files, out)


def with_safety(config: AppConfig, **changes) -> AppConfig:
    """``config`` with other safety settings (None values keep the current one)."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})
