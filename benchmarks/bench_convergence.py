"""Does a gait depend on the physics step? Distance and trajectory at the task's step and finer ones.

Every controller walks the same episode (seed ``--seed``) with the physics step divided by 1, 2,
4, 8 and the control period fixed (the sub-steps multiply): evolved zoo champions, open-loop
sinusoids (``u_v = sin(2 pi f t - pi col_v / 2)``, every voxel a quarter period behind its left
neighbour) and random NcHL genomes on the VSR; the zoo's Ant champion as the reference (Gymnasium's
model, 10 ms physics step, 5 per 50 ms control step). Reported per controller and step: the
distance, its difference from the finest step's, and the RMS difference of the centre of mass's x
over the episode from the finest step's trajectory. The convergence criterion of issue 21 is the
distance at the task's step vs a quarter of it (``rel_dt_vs_quarter``).

    python benchmarks/bench_convergence.py [--steps 1000] [--divisors 1,2,4,8] [--genomes G.npz ...]
        [--vsr-params stiffness=600,damping=10,timestep=0.002] [--json out.json] [--plot out.png]

``--vsr-params`` replaces fields of the VSR model (``VSRParams``); the control period stays 20 ms,
so ``timestep=0.002,stiffness=600,damping=10`` is ``nchl/VSRWalker-v0``, the model before issue 21.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings

import gymnasium as gym
import numpy as np
from bench_tasks import run as steps_per_second
from common import emit_json
from nchl_sim import get_task, rollout
from nchl_sim.tasks import VSR_ID, VSR_V0_ID
from nchl_sim.vsr import VSRParams

from nchl import Genome, Spec, make_controller
from nchl.app.report import pairwise_tests
from nchl.core.zoo import names


class Sinusoid:
    """Open-loop gait: every voxel a quarter period behind its left neighbour."""

    def __init__(self, freq: float, columns: np.ndarray, dt: float) -> None:
        self.freq, self.columns, self.dt = freq, columns, dt

    def reset(self, seed: int = 0) -> None:
        self.t = 0

    def step(self, obs: np.ndarray) -> np.ndarray:
        phase = 2 * np.pi * self.freq * self.t * self.dt - 0.5 * np.pi * self.columns
        self.t += 1
        return np.sin(phase).astype(np.float32)


def make_env(task_name: str, divisor: int, steps: int, vsr_params: dict | None = None, reset_noise: float = 0.0):
    """The task's environment, ``steps`` control steps long without termination, its physics step
    divided by ``divisor`` (VSR: with :class:`~nchl_sim.vsr.VSRParams` fields changed by
    ``vsr_params``, and initial velocities drawn from +-``reset_noise`` m/s by the episode seed)."""
    task = dataclasses.replace(get_task(task_name), episode_steps=steps)
    if task.is_ant:
        env = task.make_env(full_length=True)
        u = env.unwrapped
        u.model.opt.timestep = u.model.opt.timestep / divisor
        u.frame_skip *= divisor
        return env
    params = VSRParams(**(vsr_params or {}))
    task = dataclasses.replace(task, kwargs={**task.kwargs, "params": params, "timestep": params.timestep / divisor,
                                             "reset_noise": reset_noise})
    return task.make_env(full_length=True)


def run(env, controller, seed: int) -> tuple[float, np.ndarray]:
    """Distance and the x of the centre of mass (the fitness's position, from 0) after every control step."""
    r = rollout(env, controller, seed, record=True)
    return r.fitness, r.x - (r.x[-1] - r.fitness)


def parse_vsr_params(text: str) -> dict:
    """``name=value,...`` as :class:`~nchl_sim.vsr.VSRParams` fields, each value of its field's type."""
    defaults = VSRParams()
    out = {}
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        if not hasattr(defaults, name):
            raise SystemExit(f"--vsr-params: VSRParams has no field {name!r}")
        out[name] = type(getattr(defaults, name))(value)
    return out


def cost(vsr_params: dict, rounds: int = 5, steps: int = 300) -> dict:
    """Control steps per second of the bare VSR (random actions) on this model and on ``v0``, the
    model before issue 21, interleaved round by round; medians and their ratio (v0 / this)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # v0 is out of date: that is the point
        old = gym.make(VSR_V0_ID, sensors="high")
    envs = {"v0": old, "this": gym.make(VSR_ID, sensors="high", params=VSRParams(**vsr_params))}
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, *old.action_space.shape)).astype(np.float32)
    rates: dict[str, list[float]] = {k: [] for k in envs}
    for _ in range(rounds):
        for k, env in envs.items():
            rates[k].append(steps_per_second(env, steps, actions=actions))
    med = {k: float(np.median(v)) for k, v in rates.items()}
    return {"v0_steps_per_s": med["v0"], "steps_per_s": med["this"], "cost_vs_v0": med["v0"] / med["this"]}


def controllers(task_name: str, n_random: int, genomes: dict[str, Genome]):
    """(label, kind, factory(env)) for one task: those of ``genomes`` (label -> genome) on it, sinusoids
    and random NcHL genomes on the VSR."""
    out = [(label, "evolved", lambda env, g=g: g.controller()) for label, g in genomes.items() if g.task == task_name]
    task = get_task(task_name)
    if not task.is_ant:
        for f in (1.0, 2.0, 5.0):
            out.append((f"sine {f:g} Hz", "open-loop",
                        lambda env, f=f: Sinusoid(f, env.unwrapped.vsr.voxels[:, 1].astype(float), env.unwrapped.dt)))
        spec = Spec("nchl", task.topology())
        for k in range(n_random):
            genome = np.random.default_rng(k).uniform(-1, 1, spec.genome_length)
            out.append((f"random nchl {k}", "random", lambda env, genome=genome: make_controller(spec, genome)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="vsr-high,ant", help="tasks whose zoo champions, sinusoids and random "
                    "genomes to run (the tasks of --genomes are added)")
    ap.add_argument("--genomes", nargs="*", default=[], metavar="GENOME",
                    help="more evolved controllers: genome files (e.g. a campaign's */best.npz) or zoo:NAME")
    ap.add_argument("--divisors", default="1,2,4,8")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--episodes", type=int, default=1, help="episodes per controller and step (seeds from --seed); "
                    "the distance compared is their mean")
    ap.add_argument("--reset-noise", type=float, default=0.0, metavar="M_PER_S",
                    help="VSR: initial velocities uniform in +-this (the VSR is otherwise deterministic, so an "
                    "ensemble needs it)")
    ap.add_argument("--kinds", default="evolved,open-loop,random", help="which controllers to run")
    ap.add_argument("--random", type=int, default=3, help="random NcHL genomes per VSR task")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--table", metavar="JSON", help="print the table of a finished run's JSON and exit")
    ap.add_argument("--plot", metavar="PNG", help="trajectories of each controller at each step")
    ap.add_argument("--vsr-params", default="", metavar="NAME=VALUE,...",
                    help="VSR model settings to try (VSRParams fields, e.g. corner_mass=0.2,integrator=rk4)")
    args = ap.parse_args()
    if args.table:
        with open(args.table) as f:
            report = json.load(f)
        rows = report["rows"]
        print_table(rows, sorted({r["divisor"] for r in rows}), report.get("episodes", 1),
                    report["seed"], report.get("reset_noise", 0.0), report["steps"])
        return
    divisors = [int(d) for d in args.divisors.split(",")]
    vsr_params = parse_vsr_params(args.vsr_params)
    zoo = {f"zoo:{n}": Genome.load(f"zoo:{n}") for n in names()}
    # the zoo's VSR champions, one Ant reference, and the genomes asked for
    genomes = {k: g for k, g in zoo.items() if k == "zoo:ant-nchl" or not get_task(g.task).is_ant}
    genomes |= {p: zoo.get(p) or Genome.load(p) for p in args.genomes}
    rows, traces = [], {}
    tasks = list(dict.fromkeys(args.tasks.split(",") + [genomes[p].task for p in args.genomes]))
    for task_name in tasks:
        for label, kind, factory in controllers(task_name, args.random, genomes):
            if kind not in args.kinds.split(","):
                continue
            per = {}
            for d in divisors:
                env = make_env(task_name, d, args.steps, vsr_params, args.reset_noise)
                t0 = time.perf_counter()
                episodes = [run(env, factory(env), args.seed + k) for k in range(args.episodes)]
                wall = time.perf_counter() - t0
                dists = [e[0] for e in episodes]
                per[d] = (float(np.mean(dists)), episodes[0][1], env.unwrapped.model.opt.timestep,
                          sum(len(e[1]) for e in episodes) / wall, dists)
                env.close()
            finest = per[max(divisors)]
            for d in divisors:
                dist, xs, dt, sps, dists = per[d]
                n = min(len(xs), len(finest[1]))
                rows.append({"task": task_name, "controller": label, "kind": kind, "divisor": d, "timestep": dt,
                             "distance": dist, "distances": dists, "env_steps_per_s": sps,
                             "rel_vs_finest": abs(dist - finest[0]) / max(abs(finest[0]), 1e-9),
                             "com_rms_vs_finest": float(np.sqrt(np.mean((xs[:n] - finest[1][:n]) ** 2)))})
            if 1 in per and 4 in per:
                quarter = per[4][0]
                for r in rows[-len(divisors):]:
                    r["rel_dt_vs_quarter"] = abs(per[1][0] - quarter) / max(abs(quarter), 1e-9)
            traces[(task_name, label)] = {d: per[d][1] for d in divisors}
    print_table(rows, divisors, args.episodes, args.seed, args.reset_noise, args.steps)
    speed = cost(vsr_params) if any(not get_task(t).is_ant for t in tasks) else None
    if speed:
        print(f"VSR cost at the task's step: {speed['steps_per_s']:.0f} control steps/s vs {speed['v0_steps_per_s']:.0f} "
              f"on v0 (x{speed['cost_vs_v0']:.2f}; bare env, random actions, median of 5 interleaved rounds)")
    if args.plot:
        plot(traces, divisors, args.plot)
    emit_json({"benchmark": "convergence", "steps": args.steps, "seed": args.seed, "episodes": args.episodes,
               "reset_noise": args.reset_noise, "vsr_params": vsr_params,
               "rows": rows, "vsr_cost": speed}, args.json)


def dt_vs_quarter_p(rows: list[dict]) -> float | None:
    """Two-sided Mann-Whitney U p-value of one controller's episode distances at dt vs dt/4.

    A forking gait's distance spreads over metres between episodes that differ by a micrometre per
    second; this says whether a difference of means is larger than that spread explains.
    """
    by = {r["divisor"]: r.get("distances", [r["distance"]]) for r in rows}
    if 1 not in by or 4 not in by or min(len(by[1]), len(by[4])) < 2:
        return None
    return pairwise_tests({"dt": by[1], "dt/4": by[4]})[0]["p"]


def print_table(rows: list[dict], divisors: list[int], episodes: int, seed: int, reset_noise: float,
                steps: int) -> None:
    what = (f"mean distance (m) of {episodes} episodes (seeds from {seed}, VSR reset noise "
            f"{reset_noise:g} m/s)" if episodes > 1 else f"distance (m), seed {seed}")
    print(f"{what} after {steps} control steps; physics step divided by "
          f"{', '.join(map(str, divisors))}, control period fixed")
    keys = list(dict.fromkeys((r["task"], r["controller"]) for r in rows))
    width = max([22] + [len(k[1]) + 2 for k in keys])
    print(f"{'task':<10}{'controller':<{width}}" + "".join(f"{'dt/' + str(d):>9}" for d in divisors)
          + f"{'|dt-dt/4|':>11}" + (f"{'p (MWU)':>9}" if episodes > 1 else "") + f"{'steps/s':>9}")
    for key in keys:
        rs = [r for r in rows if (r["task"], r["controller"]) == key]
        rel, p = rs[0].get("rel_dt_vs_quarter"), dt_vs_quarter_p(rs)
        print(f"{key[0]:<10}{key[1]:<{width}}" + "".join(f"{r['distance']:>9.2f}" for r in rs)
              + (f"{100 * rel:>10.1f}%" if rel is not None else f"{'':>11}")
              + ((f"{p:>9.3f}" if p is not None else f"{'':>9}") if episodes > 1 else "")
              + f"{rs[0]['env_steps_per_s']:>9.0f}")


def plot(traces: dict, divisors: list[int], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(traces)
    cols = min(n, 3)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(4.2 * cols, 3.0 * ((n + cols - 1) // cols)),
                             squeeze=False)
    for ax, ((task, label), per) in zip(axes.ravel(), traces.items()):
        for d in divisors:
            ax.plot(per[d], label=f"dt/{d}", lw=1)
        ax.set_title(f"{task}: {label}", fontsize=9)
        ax.set_xlabel("control step")
        ax.set_ylabel("x (m)")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
