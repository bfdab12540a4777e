"""``nchl stress``: a controller on held-out episodes, intact and under the perturbation catalogue.

Every condition runs on the same episode seeds as the intact controller, so ``retained`` (the
condition's mean distance over the intact mean) compares like with like. Each episode also gives
the controller's saturated share and dominant actuation frequency (:mod:`nchl.app.behaviour`), and
for a condition with an onset (an event in the middle of the episode) the forward velocity over
time, to see whether and how fast the controller recovers. A damage condition is also split by the
part it struck in each episode (which motor, which foot), since that can decide more than the
condition does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from nchl_sim import get_task, rollout
from nchl_sim.perturb import CATALOGUE, Condition, check_applicable, condition, struck_parts

from .behaviour import descriptors
from ..core.errors import NchlError
from .evolution import evaluation_controller, worker_env
from .seeds import evaluation_seeds, held_out
from ..core.spec import Spec
from .workers import WorkerPool

STRESS = "stress.json"   # a campaign cell's stress table


def parse_conditions(items: Sequence[str], task: str, strengths: Sequence[float] | None = None,
                     onset: int = 0) -> list[Condition]:
    """``NAME`` (its default strength, or each of ``strengths``) or ``NAME=S1/S2/...``; ``all`` is every
    condition of the catalogue that applies to ``task`` (leg damage where it has feet, servo
    conditions where it has servos, terrain where it has a height field)."""
    t = get_task(task)
    names: list[tuple[str, list[float] | None]] = []
    for item in items:
        name, _, given = item.partition("=")
        if name == "all":
            names += [(n, None) for n, k in CATALOGUE.items() if k.needs is None or k.needs in t.parts]
            continue
        check_applicable([name], t.parts, repr(task))
        try:
            values = [float(v) for v in given.split("/")] if given else None
        except ValueError:
            raise NchlError(f"{item!r}: strengths must be numbers separated by '/'") from None
        names.append((name, values))
    out = []
    for name, values in names:
        for s in values or strengths or [t.default_strength(name)]:
            out.append(condition(name, s, onset))
    if len(set(out)) != len(out):
        raise NchlError("a condition is listed twice")
    return out


def stress_episode(payload: tuple, attempt: int) -> dict:
    """One episode of a genome under ``conditions`` (runs in a worker; environments are reused)."""
    task_name, spec, genome, seed, conditions, backend, track = payload
    env = worker_env(task_name, conditions=conditions)
    r = rollout(env, evaluation_controller(spec, genome, backend), seed, record=True)
    d = descriptors(r.actions, r.fitness, float(env.unwrapped.dt))
    return {"seed": seed, "fitness": r.fitness, "steps": r.steps, "reason": r.reason, "struck": struck_parts(env),
            "saturated_share": float(d[3]), "dominant_frequency_hz": float(d[4]),
            "x": r.x.tolist() if track else None}


@dataclass
class Trial:
    """The episodes of one setting (no condition: the intact controller)."""

    conditions: tuple[Condition, ...]
    episodes: list[dict]

    def summary(self, intact: "Trial | None", dt: float) -> dict:
        row = _statistics(self.episodes)
        if intact is not None:
            row["retained"] = _retained(self.episodes, intact)
            parts = self.by_part(intact)
            if parts:
                row["by_part"] = parts
        xs = [e["x"] for e in self.episodes if e["x"] is not None]
        if xs:  # mean forward velocity per control step over the episodes that lasted that long
            longest = max(len(x) for x in xs)
            v = np.full((len(xs), longest), np.nan)
            for i, x in enumerate(xs):
                v[i, 1:len(x)] = np.diff(x) / dt
            counts = np.isfinite(v).sum(axis=0)  # steps that no episode reached stay None
            mean = np.nansum(v, axis=0) / np.maximum(counts, 1)
            row["velocity"] = [round(float(u), 4) if n else None for u, n in zip(mean, counts)]
        return row

    def by_part(self, intact: "Trial") -> list[dict]:
        """The episodes split by the part the damage struck (which motor, which foot), each part's
        ``retained`` against the intact episodes of the same seeds: a mean over random parts hides
        that losing one motor stops a gait and losing another does not."""
        c = self.conditions[-1]   # the condition of this row (after any base setting)
        groups: dict[str, list[dict]] = {}
        for e in self.episodes:
            if c.name in e["struck"]:
                groups.setdefault(e["struck"][c.name], []).append(e)
        return [{"part": part, "episodes": len(es), **_statistics(es, per_episode=False),
                 "retained": _retained(es, intact)} for part, es in sorted(groups.items())]


def _statistics(episodes: list[dict], per_episode: bool = True) -> dict:
    f = np.array([e["fitness"] for e in episodes])
    row = {"mean": float(f.mean()), "std": float(f.std()), "median": float(np.median(f)),
           "forward_fraction": float((f > 0).mean()),
           "saturated_share": float(np.mean([e["saturated_share"] for e in episodes])),
           "dominant_frequency_hz": float(np.median([e["dominant_frequency_hz"] for e in episodes]))}
    if per_episode:
        row["per_episode"] = [round(float(x), 4) for x in f]
    return row


def _retained(episodes: list[dict], intact: Trial) -> float | None:
    """Mean distance over the intact mean of the same seeds (None when the intact controller does not
    move forward: a share of nothing)."""
    base = {e["seed"]: e["fitness"] for e in intact.episodes}
    reference = float(np.mean([base[e["seed"]] for e in episodes]))
    return float(np.mean([e["fitness"] for e in episodes]) / reference) if reference > 0 else None


def run_stress(spec: Spec, genome: np.ndarray, task: str, conditions: list[Condition], episodes: int,
               seed: int = 0, workers: int = 2, backend: str = "c",
               log: Callable[[str], None] = print, base: tuple[Condition, ...] = ()) -> dict:
    """Statistics of a genome over ``episodes`` held-out episodes, intact and under each condition.
    ``base`` acts in every setting, the intact one included (a board's compute time as latency); a
    condition of the same name adds its strength to it."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise NchlError(f"episodes must be an integer >= 1, got {episodes!r}")
    seeds = evaluation_seeds(seed, episodes)
    settings = [base] + [_on_base(base, c) for c in conditions]
    track = any(c.onset for c in conditions)  # forward velocity over time, for events (and intact beside them)
    jobs = [(task, spec, genome, s, setting, backend, track) for setting in settings for s in seeds]
    log(f"stress: {len(settings)} settings x {episodes} episodes on {min(workers, len(jobs))} workers")
    with WorkerPool("nchl.app.stress:stress_episode", min(workers, len(jobs)), log=log) as pool:
        results = pool.map(jobs)
    failed = [r for r in results if not r.ok]
    if failed:
        raise NchlError(f"{len(failed)} of {len(jobs)} episodes failed; first error:\n{failed[0].errors[-1]}")
    _, dt = get_task(task).timing
    trials = [Trial(setting, [r.value for r in results[k * episodes:(k + 1) * episodes]])
              for k, setting in enumerate(settings)]
    intact = trials[0].summary(None, dt)
    rows = []
    for t, c in zip(trials[1:], conditions):
        rows.append({"name": c.name, "strength": c.strength, "unit": CATALOGUE[c.name].unit, "onset": c.onset,
                     **t.summary(trials[0], dt)})
    return {"task": task, "rule": spec.rule, "window": spec.window, "freeze_after": spec.freeze_after,
            "episodes": episodes,
            "seeds": [seeds[0], seeds[-1]], "held_out": held_out(seeds), "control_period_s": dt,
            "intact": intact, "conditions": rows}


def _on_base(base: tuple[Condition, ...], c: Condition) -> tuple[Condition, ...]:
    same = [b for b in base if b.name == c.name]
    if not same:
        return (*base, c)
    return (*(b for b in base if b.name != c.name), condition(c.name, c.strength + same[0].strength, c.onset))


def read_table(cell: str | Path) -> dict:
    """The stress table a campaign stored for a champion (``CELL/stress.json``, archived or not)."""
    path = Path(cell) / STRESS
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        best = Path(cell) / "best.npz"
        hint = f"stress its champion: nchl stress {best}" if best.is_file() else "give a campaign cell's directory"
        raise NchlError(f"{cell} holds no {STRESS}; {hint}") from None
    except (OSError, ValueError) as e:
        raise NchlError(f"{path} is not a stress table written by nchl ({e})") from None
    missing = [k for k in ("task", "episodes", "seeds", "intact", "conditions") if k not in report]
    if missing:
        raise NchlError(f"{path} is not a stress table written by nchl (no {', '.join(missing)})")
    report["genome"] = str(Path(cell) / "best.npz")
    return report


def table(report: dict) -> str:
    """One line per setting; under a damage condition, one per part it struck (``  hip_1  3 ep``)."""
    w = max([14] + [len(p["part"]) + 3 for r in report["conditions"] for p in r.get("by_part", [])])
    head = (f"{'condition':<{w}}{'strength':>10}  {'mean m':>8}{'median m':>10}{'forward':>9}{'retained':>10}"
            f"{'saturated':>11}{'freq Hz':>9}")
    lines = [head]

    def line(name: str, strength: str, r: dict) -> str:
        kept = "" if r.get("retained") is None else f"{100 * r['retained']:.0f}%"
        return (f"{name:<{w}}{strength:>10}  {r['mean']:8.2f}{r['median']:10.2f}{100 * r['forward_fraction']:8.0f}%"
                f"{kept:>10}{100 * r['saturated_share']:10.0f}%{r['dominant_frequency_hz']:9.1f}")

    lines.append(line("intact", "-", {**report["intact"], "retained": 1.0}))
    for r in report["conditions"]:
        strength = f"{r['strength']:g}" + (f"@{r['onset']}" if r["onset"] else "")
        lines.append(line(r["name"], strength, r))
        lines += [line(f"  {p['part']}", f"{p['episodes']} ep", p) for p in r.get("by_part", [])]
    return "\n".join(lines)


def plot(report: dict, out: str | Path, title: str) -> None:
    """Retained distance vs strength, one panel per condition; for events, forward velocity over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["conditions"]
    names = list(dict.fromkeys(r["name"] for r in rows))
    events = [r for r in rows if r["onset"]]
    panels = len(names) + (1 if events else 0)
    cols = min(4, panels)
    nrows = -(-panels // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.8 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        mine = sorted((r for r in rows if r["name"] == name), key=lambda r: r["strength"])
        intact = [(0.0, 1.0)] if CATALOGUE[name].harsher_above else []  # strength 0 is the intact controller
        s = [x for x, _ in intact] + [r["strength"] for r in mine]
        kept = [y for _, y in intact] + [np.nan if r.get("retained") is None else r["retained"] for r in mine]
        ax.plot(s, kept, "o-")
        ax.axhline(1.0, color="grey", lw=0.6)
        ax.axhline(0.0, color="grey", lw=0.6)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(mine[0]["unit"], fontsize=8)
        ax.set_ylabel("retained distance", fontsize=8)
    if events:
        ax = axes.flat[len(names)]
        dt = report["control_period_s"]
        window = max(1, round(1.0 / dt))  # a 1 s moving average: gaits oscillate within a second

        def smooth(velocity: list) -> np.ndarray:
            v = np.array([np.nan if u is None else u for u in velocity], dtype=float)
            return np.convolve(np.nan_to_num(v), np.ones(window) / window, mode="same")

        v = smooth(report["intact"]["velocity"])
        ax.plot(np.arange(len(v)) * dt, v, lw=1.0, color="k", label="intact")
        for r in events:
            v = smooth(r["velocity"])
            ax.plot(np.arange(len(v)) * dt, v, lw=0.8, label=f"{r['name']}={r['strength']:g}")
        ax.axvline(events[0]["onset"] * dt, color="k", ls="--", lw=0.8)
        ax.set_title(f"events at step {events[0]['onset']}", fontsize=9)
        ax.set_xlabel("time (s)", fontsize=8)
        ax.set_ylabel("forward velocity (m/s, 1 s mean)", fontsize=8)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[panels:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
