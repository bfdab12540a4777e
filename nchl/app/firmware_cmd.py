"""``nchl firmware``: a complete firmware project for a board, with the task's own numbers.

The task side of the HAL lives here: which raw readings a robot delivers and in which counts, how
each becomes the task's scaled observation (the constants are read from the task's environment, so
they are the numbers the controller was evolved on), how actions become pulse widths, and what an
ideal sensor reports for the simulated robot's state (:func:`readings`, the host's side of
processor-in-the-loop runs).

Raw units: a robot task's sensors in the counts of common parts (12-bit servo feedback / encoders,
an MPU-6050-class IMU at +-500 deg/s and +-4 g, an orientation filter's Q14 gravity vector). Tasks
that are not robot tasks (Gymnasium's Ant, the VSR) have no sensor model: their raw readings are
their observation entries in the environment's own units, in Q16.16 counts.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from nchl_codegen.app import (APP_BOARDS, FPU, Actuator, AppConfig, BoardInfo, Channel, app_board,
                              render_project)
from ..core.errors import NchlError
from ..core.memory import macs_per_step
from .commands.args import add_deployment_args, add_numeric_arg, genome_task

ENCODER_LSB = 2 * math.pi / 4096        # rad per count: 12-bit feedback over a turn (STS3215-class)
GYRO_LSB = math.radians(1 / 65.5)       # rad/s per count: MPU-6050 at +-500 deg/s
ACCEL_LSB = 9.81 / 8192                 # m/s^2 per count: MPU-6050 at +-4 g (the g of KINDS)
UNIT_Q14 = 1 / 16384                    # a unit vector or quaternion in Q14
OBS_LSB = 2.0 ** -16                    # non-robot tasks: observation entries in Q16.16
RC_PULSE = (1000.0, 2000.0)             # us at action -1 / +1 for an actuator that is not a servo
# sensors that read the same value twice only when broken (noise): watched for a stuck reading
WATCHED = {"gyro", "accelerometer"}
SOFT_FLOAT_CYCLES_PER_MAC = 37          # the least measured for soft float32 on a Cortex-M0 (results.md)
_ROBOT_LSB = {"jointpos": (ENCODER_LSB, "count"), "jointvel": (ENCODER_LSB, "count/s"),
              "gyro": (GYRO_LSB, "LSB"), "accelerometer": (ACCEL_LSB, "LSB"), "gravity": (UNIT_Q14, "Q14"),
              "framequat": (UNIT_Q14, "Q14"), "touch": (1.0, "0/1")}


def app_config(task, numeric: str = "float", obs_range: float = 8.0, **safety) -> AppConfig:
    """The firmware numbers of ``task`` (a :class:`nchl_sim.tasks.Task`): channels, actuators, inputs."""
    from nchl.core.fixed import ONE

    env = task.make_env()
    try:
        u = env.unwrapped
        if task.robot is not None:
            channels, inputs, notes = _robot_channels(u)
            actuators = _robot_actuators(u)
            clock_hz = float(task.robot.clock_hz)
        else:
            channels, inputs, notes = _observation_channels(task)
            names = _actuator_names(u, env.action_space.shape[0])
            actuators = tuple(Actuator(n, *RC_PULSE) for n in names)
            clock_hz = 0.0
    finally:
        env.close()
    obs_max = min(32767, round(obs_range * ONE))
    return AppConfig(task.name, task.control_period_s, channels, actuators, inputs, numeric, obs_max, clock_hz,
                     raw_notes=notes, **{k: v for k, v in safety.items() if v is not None})


def _robot_channels(u) -> tuple[tuple[Channel, ...], tuple, str]:
    from nchl_sim.robot import KINDS

    r = u.robot
    channels, inputs, at = [], [], 0
    for kind, _, dim, obj in r.sensors:
        lsb, unit = _ROBOT_LSB[kind]
        k = KINDS[kind]
        for d in range(dim):
            name = r.obs_names[at + d]
            offset, scale = 0.0, k.scale
            if kind in ("jointpos", "jointvel"):
                i = r.joints.index(obj)
                offset = float(u._joint_mid[i]) if kind == "jointpos" else 0.0
                scale = 1.0 / float(u._joint_half[i] if kind == "jointpos" else u._vel_ref[i])
            inputs.append(("sensor", len(channels)))
            channels.append(Channel(name, kind, unit, lsb, offset, scale, k.clip, kind in WATCHED))
        at += dim
    commands = 0
    for kind in r.obs_kinds[at:]:
        if kind == "command":
            inputs.append(("command", commands))
            commands += 1
        elif kind == "clock":
            inputs.append(("clock", sum(1 for s, _ in inputs if s == "clock")))
        else:
            raise NchlError(f"observation kind {kind!r} after the sensors: no firmware input for it")
    notes = ("Servo feedback / encoders: 4096 counts per turn (joint speed: counts per second); IMU: an "
             "MPU-6050-class part at +-500 deg/s (65.5 LSB per deg/s) and +-4 g (8192 LSB per g); the gravity "
             "direction from an orientation filter as a Q14 unit vector. The last commands"
             + (" and the gait clock" if u.robot.config.clock_hz > 0 else "") + " are the board's own.")
    return tuple(channels), tuple(inputs), notes


def _robot_actuators(u) -> tuple[Actuator, ...]:
    r, m = u.robot, u.model
    import mujoco

    out, servo = [], iter(r.servos)
    for i in range(m.nu):
        name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR, i) or f"actuator{i}"
        if u._servo[i]:
            s = next(servo)
            out.append(Actuator(name, float(s.pulse_of(r.lo[i])), float(s.pulse_of(r.hi[i]))))
        else:
            out.append(Actuator(name, *RC_PULSE))
    return tuple(out)


def _observation_channels(task) -> tuple[tuple[Channel, ...], tuple, str]:
    names = task.observation_names
    scale = (np.concatenate([np.full(n, f) for n, f in task.obs_scale]) if task.obs_scale
             else np.ones(len(names)))
    channels = tuple(Channel(n, "observation", "env units", OBS_LSB, 0.0, float(s), task.obs_bound,
                             "angular velocity" in n) for n, s in zip(names, scale))
    notes = (f"Task {task.name} is not a robot task: its raw readings are the environment's observation entries "
             "(before the task's scaling) in Q16.16 counts (65536 counts per unit: m, rad, m/s, rad/s, ...).")
    return channels, tuple(("sensor", i) for i in range(len(channels))), notes


def _actuator_names(u, n: int) -> list[str]:
    import mujoco

    m = getattr(u, "model", None)
    if isinstance(m, mujoco.MjModel) and m.nu == n:
        out = []
        for i in range(n):
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR, i)
            if name is None and m.actuator_trntype[i] == mujoco.mjtTrn.mjTRN_JOINT:
                name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, int(m.actuator_trnid[i, 0]))
            out.append(name or f"action {i}")
        return out
    return [f"action {i}" for i in range(n)]


def physical_readings(env, config: AppConfig) -> np.ndarray:
    """The simulated robot's state as the channels measure it, in physical units (float64)."""
    u = env.unwrapped
    if not hasattr(u, "robot"):
        return np.asarray(u._get_obs(), dtype=np.float64)   # the observation before the task's scaling
    r, d = u.robot, u.data
    out, angles, speeds = [], u.joint_angles(), u.joint_speeds()
    for kind, adr, dim, obj in r.sensors:
        if kind == "jointpos":
            out.append([angles[r.joints.index(obj)]])
        elif kind == "jointvel":
            out.append([speeds[r.joints.index(obj)]])
        elif kind == "gravity":
            out.append(-d.site_xmat[obj].reshape(3, 3)[2])
        elif kind == "touch":
            out.append([float(u._touching(obj) if adr < 0 else d.sensordata[adr] > 0)])
        else:
            out.append(d.sensordata[adr:adr + dim])
    return np.concatenate(out).astype(np.float64)


def readings(env, config: AppConfig) -> np.ndarray:
    """Raw counts an ideal sensor reports now (rounded; a non-finite value: the invalid marker)."""
    p = physical_readings(env, config)
    return np.array([int(c.counts(v)) for c, v in zip(config.channels, p)], dtype=np.int64)


def check_runs(spec, config: AppConfig, board: BoardInfo) -> None:
    """Refuse float32 on a core without an FPU when soft float cannot meet the control period."""
    if config.numeric == "fixed" or board.target in FPU:
        return
    cycles = macs_per_step(spec) * SOFT_FLOAT_CYCLES_PER_MAC
    need = cycles / board.clock_hz
    if need > config.control_period_s:
        raise NchlError(f"float32 on {board.name} ({board.target}, no FPU) needs at least {need * 1e3:.0f} ms per "
                        f"step in soft float ({macs_per_step(spec)} multiply-adds x {SOFT_FLOAT_CYCLES_PER_MAC} "
                        f"cycles at {board.clock_hz / 1e6:g} MHz), over the {config.control_period_s * 1e3:g} ms "
                        "control period: use --numeric fixed")


def build(folder: Path, board: BoardInfo, lockstep: bool = False, extra: str = "") -> Path:
    """``make`` in ``folder``; a firmware that does not fit the chip says by how much. Returns the binary."""
    tool = "cc" if board.host else "arm-none-eabi-gcc"
    if shutil.which(tool) is None:
        raise NchlError(f"{tool} not found; install Debian's "
                        f"{'gcc' if board.host else 'gcc-arm-none-eabi and libnewlib-arm-none-eabi'}")
    cmd = ["make", "-B", "-C", str(folder), f"LOCKSTEP={int(lockstep)}", *([f"EXTRA={extra}"] if extra else [])]
    r = subprocess.run(cmd, capture_output=True, text=True)
    import re

    overflow = re.search(r"region `(RAM|FLASH)' overflowed by (\d+) bytes", r.stderr)
    if overflow:
        region, n = overflow.groups()
        size = board.ram if region == "RAM" else board.flash
        raise NchlError(f"the firmware does not fit {board.name}: {region} ({size}) overflowed by {n} bytes")
    if r.returncode != 0:
        raise NchlError(f"make -C {folder} failed:\n{r.stderr[-3000:]}")
    return folder / ("nchl_app" if board.host else "firmware.elf")


def image_size(elf: Path, board: BoardInfo) -> dict:
    """Flash and RAM of a built firmware against the chip's."""
    from nchl_codegen.firmware import ARM, _sections

    s = _sections(elf, ARM)
    flash = sum(s.get(k, 0) for k in (".isr_vector", ".text", ".rodata", ".ARM.exidx", ".data"))
    ram = s.get(".data", 0) + s.get(".bss", 0)
    return {"flash_bytes": flash, "ram_bytes": ram, "flash_chip": board.bytes_of(board.flash),
            "ram_chip": board.bytes_of(board.ram)}


def prepare(args: argparse.Namespace, out: Path, lockstep: bool = False) -> dict:
    """Genome -> project in ``out`` (built): what ``nchl firmware`` and ``nchl pil`` share."""
    from .evolution import fixed_obs_range

    genome, spec, task = genome_task(args)
    board = app_board(args.board)
    obs_range = fixed_obs_range(task.name)
    config = app_config(task, args.numeric, obs_range, rate_limit_us=getattr(args, "rate_limit", None))
    check_runs(spec, config, board)
    render_project(config, board, spec, genome.values, out, prefix=args.prefix, obs_range=obs_range,
                   genome_label=str(args.genome))
    binary = build(out, board, lockstep) if not getattr(args, "no_build", False) else None
    sizes = image_size(binary, board) if binary is not None and not board.host else {}
    return {"genome": genome, "spec": spec, "task": task, "board": board, "config": config, "binary": binary,
            "obs_range": obs_range, **sizes}


def add_arguments(q: argparse.ArgumentParser) -> None:
    q.add_argument("genome", help="genome file (.npz) or zoo:NAME")
    q.add_argument("--board", required=True, help=", ".join(f"{n} ({b.description.split(':')[0]})"
                                                          for n, b in APP_BOARDS.items()))
    q.add_argument("--task", help="default: the genome's task")
    add_deployment_args(q)
    add_numeric_arg(q)
    q.add_argument("--prefix", default="nchl_ctrl", help="C symbol prefix of the controller (default nchl_ctrl)")
    q.add_argument("--rate-limit", dest="rate_limit", type=float, metavar="US",
                   help="largest pulse-width change per control period in us (default: the whole span, as evolved)")


def add_firmware_arguments(q: argparse.ArgumentParser) -> None:
    """``nchl firmware``'s flags."""
    add_arguments(q)
    q.add_argument("--out", required=True, metavar="DIR")
    q.add_argument("--no-build", dest="no_build", action="store_true", help="write the project without running make")
    q.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    import json

    out = Path(args.out)
    r = prepare(args, out)
    summary = {"out": str(out), "board": args.board, "task": r["task"].name, "numeric": args.numeric,
               "sensors": r["config"].n_sensors, "actuators": r["config"].n_act,
               "control_period_s": r["config"].control_period_s, "built": r["binary"] is not None,
               **{k: r[k] for k in ("flash_bytes", "ram_bytes", "flash_chip", "ram_chip") if k in r}}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"wrote {out}/ ({summary['sensors']} raw channels, {summary['actuators']} actuators, "
          f"{summary['control_period_s'] * 1e3:g} ms period); {out}/README.md says what to implement", file=sys.stderr)
    if "flash_bytes" in r:
        print(f"built {r['binary']}: flash {r['flash_bytes']} of {r['flash_chip']} B, RAM {r['ram_bytes']} of "
              f"{r['ram_chip']} B")
    elif r["binary"] is not None:
        print(f"built {r['binary']}")
    return 0
