"""``nchl pil``: processor in the loop. The physics runs here; the firmware of ``nchl firmware`` runs on
the emulated board (QEMU, lockstep build) or as the host build; every control period the raw sensor
counts go out as a frame and the pulse widths that come back drive the physics.

Two references run beside it: the Python model of the firmware (:class:`nchl_codegen.app.AppModel`,
fed the same frames: every pulse width, action, state and fault code is compared at every step) and
the same episode driven by that model alone (its distance must equal the firmware's when every action
is bit-exact). ``distance_task`` is the controller on the task's own observations, without the HAL's
counts and pulse widths: what the sensor and servo quantization cost.

Faults (``--fault``) strike at ``--fault-step``; a second after the firmware reacted, the host presses
and releases the stop input, which clears the latched fault and restarts the controller.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import NchlError

FAULT_SPECS = {
    "stuck-sensor": "a watched channel (an IMU axis) freezes at its last reading",
    "nan-reading": "channel 0 reads NaN (the HAL's invalid marker) for one period",
    "dropped-frame": "sensor frames arrive corrupted (failed checksum) for max_dropped periods in a row",
    "missed-deadline": "the sensor bus stalls for a whole period, max_misses periods in a row",
    "reset": "the board resets (QEMU's system_reset; host: the process is killed and restarted)",
}


@dataclass
class Injection:
    """What the host does to the frame of step ``t``."""

    name: str | None
    onset: int
    periods: int
    channel: int
    recover_at: int

    def active(self, t: int) -> bool:
        return self.name is not None and self.onset <= t < self.onset + self.periods

    def flags(self, t: int) -> int:
        from nchl_codegen.app import FLAG_STALL, FLAG_STOP

        f = FLAG_STOP if t == self.recover_at else 0
        return f | (FLAG_STALL if self.name == "missed-deadline" and self.active(t) else 0)


def injection(name: str | None, config, onset: int | None, steps: int) -> Injection:
    if name is not None and name not in FAULT_SPECS:
        raise NchlError(f"unknown fault {name!r}; choose one of {', '.join(FAULT_SPECS)}")
    onset = steps // 4 if onset is None else onset
    stuck = config.periods(config.stuck_s)
    periods = {"stuck-sensor": stuck + 5, "nan-reading": 1, "dropped-frame": config.max_dropped,
               "missed-deadline": config.max_misses, "reset": 1}.get(name, 0)
    watched = [i for i, c in enumerate(config.channels) if c.watch]
    # the stop input a second after the fault has latched (the stuck sensor: after it is released)
    latch = {"stuck-sensor": stuck + 1, "missed-deadline": periods + 1}.get(name, periods)
    recover = onset + latch + config.periods(1.0) if name is not None else -1
    return Injection(name, onset, periods, watched[0] if watched else 0, recover)


def _episode(link, env, config, controller_fn, seed: int, steps: int, inj: Injection, period_ticks: int) -> dict:
    """One episode: the firmware (``link``; None = the Python model alone) drives ``env``."""
    from nchl_codegen.app import INVALID, AppModel, fault_names, sensor_frame

    from .firmware_cmd import readings

    obs, info = env.reset(seed=seed)
    x0 = float(info["x_position"])
    twin = AppModel(config, controller_fn(), 0)
    if link is not None:
        boot = link.frame()
        if boot["type"] != "boot":
            raise NchlError(f"the firmware did not announce its boot (sent {boot['type']})")
    fixed = config.numeric == "fixed"
    pmin, pmax = twin.pmin, twin.pmax
    safe = twin.pulses() if twin.rate >= (2 * 4096 if fixed else 2.0) else None   # no rate limit: reached at once
    out = {"seed": seed, "mismatches": 0, "first_mismatch": None, "max_abs_action_error": 0.0, "bad_commands": 0,
           "off_safe_pose": 0 if safe is not None else None, "busy": [], "ctrl": [], "events": []}
    frozen, missed, last = None, False, (0, 0)
    steps_done, reason = 0, "time_limit"
    for t in range(steps):
        raw = readings(env, config)
        if inj.name == "stuck-sensor":
            if t == inj.onset:
                frozen = int(raw[inj.channel])
            if inj.active(t):
                raw[inj.channel] = frozen
        if inj.name == "nan-reading" and inj.active(t):
            raw[0] = INVALID
        corrupt = inj.name == "dropped-frame" and inj.active(t)
        flags = inj.flags(t)
        if inj.name == "reset" and t == inj.onset:
            twin.boot(warm=True)
            missed = False
            if link is not None:
                if not link.reset()["warm"]:
                    raise NchlError("the firmware did not see its reset as a restart")
        ref = twin.step(None if corrupt else raw, stop=bool(flags & 1), missed=missed)
        if link is not None:
            fw = link.exchange(sensor_frame(t, raw, flags, corrupt))
            pulses, action, state, faults = fw["pulses"], fw["action"], fw["state"], fw["faults"]
            missed = fw["busy"] > period_ticks
            if state == 0 and fw["ctrl"] and not flags & 2:   # the controller ran, on no injected stall
                out["busy"].append(fw["busy"])
                out["ctrl"].append(fw["ctrl"])
            same = (np.array_equal(pulses, ref["pulses"]) and state == ref["state"] and faults == ref["faults"]
                    and np.array_equal(np.asarray(action).view(np.int32) if not fixed else action,
                                       np.asarray(ref["action"]).view(np.int32) if not fixed else ref["action"]))
            err = float(np.abs(np.asarray(action, dtype=np.float64) - np.asarray(ref["action"], dtype=np.float64))
                        .max()) / (4096 if fixed else 1)
            out["max_abs_action_error"] = max(out["max_abs_action_error"], err)
            if not same:
                out["mismatches"] += 1
                if out["first_mismatch"] is None:
                    out["first_mismatch"] = t
        else:
            pulses, state, faults = ref["pulses"], ref["state"], ref["faults"]
            missed = bool(flags & 2)
        bad = (pulses < pmin) | (pulses > pmax)
        out["bad_commands"] += int(bad.sum())
        if safe is not None and state != 0 and not np.array_equal(pulses, safe):
            out["off_safe_pose"] += 1
        if (state, faults) != last:
            out["events"].append({"step": t, "state": ["run", "safe", "stopped"][state], "faults": fault_names(faults)})
            last = (state, faults)
        action_env = np.array([a.action_of(p) for a, p in zip(config.actuators, pulses)])
        obs, _, terminated, truncated, info = env.step(action_env)
        steps_done = t + 1
        if terminated or truncated:
            reason = "unstable" if info.get("unstable") else "terminated" if terminated else "time_limit"
            break
    out.update(steps=steps_done, reason=reason, distance=float(info["x_position"]) - x0)
    return out


def run_pil(args: argparse.Namespace, log=print) -> dict:
    """Build, run ``args.episodes`` episodes in the loop, and report them."""
    from nchl_codegen.pil import open_link

    from nchl_sim import rollout

    from .evolution import evaluation_controller
    from .firmware_cmd import prepare

    with tempfile.TemporaryDirectory(prefix="nchl-pil-") as tmp:
        work = Path(tmp)
        r = prepare(args, work, lockstep=True)
        task, spec, genome, board, config = r["task"], r["spec"], r["genome"], r["board"], r["config"]
        steps = min(args.steps or task.episode_steps, task.episode_steps)
        inj = injection(args.fault, config, args.fault_step, steps)
        if inj.name is not None and inj.onset >= steps:
            raise NchlError(f"--fault-step {inj.onset} is beyond the episode's {steps} steps")

        def controller():
            return evaluation_controller(spec, genome.values, "python", args.numeric, task.name)

        env = task.make_env()
        period_ticks = round(config.control_period_s * board.clock_hz)
        episodes = []
        try:
            for k in range(args.episodes):
                seed = args.seed + k
                log(f"pil: episode {k + 1}/{args.episodes} (seed {seed}) on {board.name}")
                with open_link(r["binary"], board, config, work) as link:
                    e = _episode(link, env, config, controller, seed, steps, inj, period_ticks)
                    e["reports"] = link.reports[-3:]
                ref = _episode(None, env, config, controller, seed, steps, inj, period_ticks)
                task_run = rollout(task.make_env(), controller(), seed) if inj.name is None else None
                e.update(distance_firmware=e.pop("distance"), distance_reference=ref["distance"],
                         reference_steps=ref["steps"],
                         distance_task=None if task_run is None else task_run.fitness)
                episodes.append(e)
        finally:
            env.close()
    return _summary(args, task, board, config, episodes, inj, r)


def _summary(args, task, board, config, episodes: list[dict], inj: Injection, r: dict) -> dict:
    busy = [b for e in episodes for b in e.pop("busy")]
    ctrl = [c for e in episodes for c in e.pop("ctrl")]
    if not busy:
        raise NchlError("the controller never ran on the board (every step was a fault)")
    clock = (args.clock_mhz * 1e6) if args.clock_mhz else board.clock_hz
    cycles = _cycles(busy, board)
    worst = max(cycles)
    out = {
        "task": task.name, "board": board.name, "numeric": config.numeric, "genome": str(args.genome),
        "episodes": episodes,
        "distance_firmware": float(np.mean([e["distance_firmware"] for e in episodes])),
        "distance_reference": float(np.mean([e["distance_reference"] for e in episodes])),
        "max_abs_action_error": max(e["max_abs_action_error"] for e in episodes),
        "bit_exact": all(e["mismatches"] == 0 for e in episodes),
        "cycles_per_step": float(statistics.median(cycles)), "cycles_per_step_max": float(worst),
        "controller_cycles_per_step": float(statistics.median(_cycles(ctrl, board))),
        "clock_mhz": clock / 1e6, "control_period_s": config.control_period_s,
        "time_per_step_s": worst / clock, "headroom": 1.0 - worst / clock / config.control_period_s,
        "measurement": ("nanoseconds of CLOCK_MONOTONIC on this computer (cycles at 1 GHz)" if board.host else
                        f"SysTick under qemu -icount shift=6 from the sensor frame's arrival to the pulse widths, "
                        f"as instructions (one instruction per cycle at the clock; QEMU does not model cycles)"),
        **{k: r[k] for k in ("flash_bytes", "ram_bytes", "flash_chip", "ram_chip") if k in r},
    }
    if inj.name is not None:
        out["fault"] = {"name": inj.name, "what": FAULT_SPECS[inj.name], "step": inj.onset, "periods": inj.periods,
                        "stop_cycled_at": inj.recover_at}
        out["faults"] = [e["events"] for e in episodes]
        out["bad_commands"] = sum(e["bad_commands"] for e in episodes)
    return out


def _cycles(ticks: list[int], board) -> list[float]:
    """Timer ticks as instructions (QEMU: icount's 64 ns per instruction), or nanoseconds (host)."""
    if board.host:
        return [float(t) for t in ticks]
    from nchl_codegen.firmware import ICOUNT_SHIFT

    return [t * 1e9 / board.clock_hz / 2 ** ICOUNT_SHIFT for t in ticks]


BUS_DELAY_S = 0.5e-3   # reading an MPU-6050's 14 data bytes over 400 kHz I2C (~0.4 ms), rounded up
LATENCY_STEPS = 50     # control steps of the PIL run that measures a step


def board_latency(args: argparse.Namespace, task) -> tuple[int, dict]:
    """Physics sub-steps of delay that one control step costs on ``args.board`` at ``args.clock_mhz``:
    the worst step of a short PIL run plus :data:`BUS_DELAY_S`, rounded up to whole sub-steps."""
    import math

    pil_args = argparse.Namespace(**{**vars(args), "episodes": 1, "steps": LATENCY_STEPS, "fault": None,
                                     "fault_step": None, "prefix": "nchl_ctrl", "rate_limit": None})
    r = run_pil(pil_args, log=lambda m: None)
    substeps, period = task.timing
    delay = r["time_per_step_s"] + BUS_DELAY_S
    n = math.ceil(delay / (period / substeps) - 1e-9)
    return n, {"board": r["board"], "clock_mhz": r["clock_mhz"], "numeric": r["numeric"],
               "compute_s": r["time_per_step_s"], "bus_delay_s": BUS_DELAY_S, "latency_substeps": n,
               "substep_s": period / substeps}


def add_arguments(q: argparse.ArgumentParser) -> None:
    """``nchl pil``'s flags (the deployment flags shared with ``nchl firmware``)."""
    from .firmware_cmd import add_arguments as deployment

    deployment(q)
    q.add_argument("--episodes", type=int, default=1)
    q.add_argument("--seed", type=int, default=0, help="first episode seed (default 0)")
    q.add_argument("--steps", type=int, help="at most this many control steps per episode (default: the task's)")
    q.add_argument("--fault", choices=list(FAULT_SPECS), help="inject a fault: " + "; ".join(
        f"{k}: {v}" for k, v in FAULT_SPECS.items()))
    q.add_argument("--fault-step", dest="fault_step", type=int, metavar="T",
                   help="control step the fault strikes at (default: a quarter into the episode)")
    q.add_argument("--clock-mhz", dest="clock_mhz", type=float,
                   help="clock for time per step and headroom (default: the board's)")
    q.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise NchlError(f"--episodes must be >= 1, got {args.episodes}")
    r = run_pil(args, log=lambda m: print(m, file=sys.stderr))
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"{r['task']} on {r['board']} ({r['numeric']}), processor in the loop:")
        for e in r["episodes"]:
            print(f"  seed {e['seed']}: {e['steps']} steps, firmware {e['distance_firmware']:.3f} m, reference "
                  f"{e['distance_reference']:.3f} m, max action error {e['max_abs_action_error']:.3g}, "
                  f"{e['mismatches']} steps differ")
        print(f"step: {r['cycles_per_step']:.0f} cycles median, {r['cycles_per_step_max']:.0f} max = "
              f"{r['time_per_step_s'] * 1e3:.2f} ms at {r['clock_mhz']:g} MHz of a {r['control_period_s'] * 1e3:g} ms "
              f"period: headroom {100 * r['headroom']:.1f} %")
        if "faults" in r:
            for events in r["faults"]:
                print("  " + ", ".join(f"{e['step']}: {e['state']}{' ' + '+'.join(e['faults']) if e['faults'] else ''}"
                                       for e in events))
            print(f"bad commands: {r['bad_commands']}")
    ok = r["bit_exact"] and (r.get("bad_commands", 0) == 0)
    return 0 if ok else 1
