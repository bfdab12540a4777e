"""``nchl report``: the paper's figures and tests from a campaign directory.

Writes ``report.md`` and PNG figures: Fig. 1 (parameters vs depth and width);
per task the best-so-far curves of each rule (mean +- std over seeds, validation
dashed), box plots of every champion on its held-out episodes, a table with
parameters, state memory and champion statistics plus pairwise two-sided
Mann-Whitney U tests with Holm's correction; the WNcHL window sweep
(performance vs state memory, NcHL as reference); a behaviour map per task
(per-episode descriptors of every champion projected on their two principal
components); and how the weights of the best NcHL, HL and WNcHL champions evolve
within an episode; and, when the campaign's ``[evaluate]`` has ``stress`` conditions, the share
of the intact distance each champion keeps under each of them, per rule, with the same tests.
Every caption states the budget, so a small campaign never passes for the paper's.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np

from nchl_sim.perturb import kind_of

from .behaviour import DESCRIPTORS, descriptors
from .campaign import EVALUATION, read_manifest, summary
from ..core.errors import NchlError
from .evolution import evaluation_controller, read_log, training_words
from ..core.genome import Genome
from ..core.spec import RULES
from ..core.memory import fig1, footprint
from .plots import plot_runs

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(fig, out: Path, name: str, caption: str) -> list[str]:
    """Save a figure and return its report.md lines (image, caption)."""
    plt = _plt()
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return [f"![{name[:-4]}]({name})", "", f"*{caption}*", ""]


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    order = np.argsort(pvalues)
    m, adjusted, running = len(pvalues), [0.0] * len(pvalues), 0.0
    for rank, k in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[k]))
        adjusted[k] = running
    return adjusted


def pairwise_tests(groups: dict[str, list[float]]) -> list[dict]:
    """Two-sided Mann-Whitney U between every pair of groups, Holm-corrected."""
    from scipy.stats import mannwhitneyu

    pairs = [(a, b) for a, b in itertools.combinations(sorted(groups), 2) if groups[a] and groups[b]]
    rows = []
    for a, b in pairs:
        u, p = mannwhitneyu(groups[a], groups[b], alternative="two-sided")
        rows.append({"a": a, "b": b, "U": float(u), "p": float(p), "n_a": len(groups[a]), "n_b": len(groups[b])})
    for row, adj in zip(rows, holm([r["p"] for r in rows])):
        row["p_holm"] = adj
    return rows


def _variant(r: dict) -> str:
    """A finished run's rule variant as the report compares it (``nchl``, ``wnchl-m10``); when the reported
    campaigns train differently, what this run trained on joins it (``nchl (randomized)``)."""
    return f"{r['cell'].variant} ({r['training']})" if r.get("training") else r["cell"].variant


def _run_name(r: dict) -> str:
    return f"{r['cell'].name} ({r['training']})" if r.get("training") else r["cell"].name


def _best_runs(cells: list[dict], key: Callable[[dict], str]) -> dict[str, dict]:
    """The run with the best held-out mean for each value of ``key`` (the variant, the rule)."""
    best: dict[str, dict] = {}
    for r in cells:
        k = key(r)
        if k not in best or r["evaluation"]["mean"] > best[k]["evaluation"]["mean"]:
            best[k] = r
    return best


def best_champion_tests(cells: list[dict]) -> tuple[dict[str, dict], list[dict]]:
    """Each rule variant's best run (by held-out mean) and pairwise tests between those champions' episode
    distances; no tests where every episode of a champion is the same (a deterministic task such as the VSR)."""
    best = _best_runs(cells, _variant)
    episodes = {v: [e["fitness"] for e in r["evaluation"]["per_episode"]] for v, r in best.items()}
    if len(best) < 2 or all(np.ptp(x) == 0 for x in episodes.values()):
        return best, []
    return best, pairwise_tests(episodes)


def _recorded_episodes(genome: Genome, task: str, seeds: list[int]) -> list:
    """(rollout with its actions, control period) of a champion per seed, run by the generated C."""
    from nchl_sim import get_task, rollout

    env = get_task(task).make_env()
    ctrl = evaluation_controller(genome.spec, genome.values, "c")
    return [(rollout(env, ctrl, s, record=True), float(env.unwrapped.dt)) for s in seeds]


def _run_cost(run_dir: Path) -> tuple[int, float]:
    """Training environment steps and evolution wall time (s, summed over resumes) of a run, from the
    last row of its log: what a larger campaign will cost, per rule and task."""
    last = read_log(run_dir)[-1]
    return int(last["env_steps"]), float(last["wall_time"])


_WEIGHT_STYLE = {"nchl": "-", "hl": "--", "wnchl": ":"}


def _weight_trace(genome: Genome, task: str, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-step norm of each layer's weights, all weights at the end, and the control period, over one
    episode of the Python reference (the C computes the same bits but does not expose its state here)."""
    from nchl_sim import get_task

    env = get_task(task).make_env()
    ctrl = genome.controller()
    obs, _ = env.reset(seed=seed)
    ctrl.reset(seed)
    norms, done = [], False
    while not done:
        obs, _, terminated, truncated, _ = env.step(ctrl.step(obs))
        weights = ctrl.weights  # WNcHL rebuilds them on every access: once per step
        norms.append([float(np.linalg.norm(w)) for w in weights])
        done = terminated or truncated
    return np.array(norms), np.concatenate([np.asarray(w).ravel() for w in weights]), float(env.unwrapped.dt)


def _behaviour_map(task: str, cells: list[dict], out: Path, episodes: int, budget: str) -> list[str]:
    """One task's behaviour map and descriptor table: every champion on ``episodes`` held-out episodes,
    standardised descriptors projected on their first two principal components. Per task, because
    walking a soft body and an Ant differ more than any two rules do."""
    plt = _plt()
    rows = []
    for r in cells:
        genome = Genome.load(r["dir"] / "best.npz")
        for res, dt in _recorded_episodes(genome, task, list(range(episodes))):
            rows.append((_variant(r), descriptors(res.actions, res.fitness, dt)))
    d = np.array([x for _, x in rows])
    z = (d - d.mean(0)) / np.where(d.std(0) > 0, d.std(0), 1.0)
    _, sv, vt = np.linalg.svd(z, full_matrices=False)
    pc = z @ vt[:2].T if len(vt) >= 2 else np.column_stack([z @ vt[:1].T, np.zeros(len(z))])
    explained = (sv[:2] ** 2).sum() / max((sv ** 2).sum(), 1e-12)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    variants = _variants(cells)
    for i, v in enumerate(variants):
        k = [j for j, (vv, _) in enumerate(rows) if vv == v]
        ax.scatter(pc[k, 0], pc[k, 1], s=14, label=v, marker="os^Dv<>"[i % 7])
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    caption = (f"{task}: every champion on {episodes} held-out episodes, "
               f"described by {', '.join(DESCRIPTORS)}, standardised and projected on their first two principal "
               f"components ({100 * explained:.0f}% of the variance): overlapping clouds mean the rules found "
               f"similar behaviours. {budget}")
    md = [f"### {task}: behaviours", ""] + _figure(fig, out, f"behaviour-{task}.png", caption)
    md += ["| rule | " + " | ".join(DESCRIPTORS) + " |", "|---|" + "---|" * len(DESCRIPTORS)]
    for v in variants:
        m = np.mean([x for vv, x in rows if vv == v], axis=0)
        md.append(f"| {v} | " + " | ".join(f"{x:.3g}" for x in m) + " |")
    return md + [""]


WALKS_FORWARD = 0.9  # a champion walks when at least this share of its held-out episodes goes forward


def _walks(r: dict) -> bool:
    """Whether a finished run's champion walks, so that a share of its intact distance means something."""
    return r["evaluation"]["forward_fraction"] >= WALKS_FORWARD and r["stress"]["intact"]["mean"] > 0


def _retained_boxes(task: str, retained: dict[str, dict[str, list[float]]], variants: list[str], out: Path,
                    caption: str) -> list[str]:
    """One panel per condition: the retained shares of each variant's walking champions over seeds."""
    plt = _plt()
    cols = min(4, len(retained))
    rows = -(-len(retained) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    for ax, (lab, by_variant) in zip(axes.flat, retained.items()):
        ax.boxplot([by_variant[v] for v in variants])
        ax.set_xticks(range(1, len(variants) + 1), variants, rotation=45, fontsize=7)
        ax.axhline(1.0, color="grey", lw=0.6)
        ax.set_title(lab, fontsize=9)
        ax.set_ylabel("retained distance", fontsize=8)
    for ax in list(axes.flat)[len(retained):]:
        ax.axis("off")
    return _figure(fig, out, f"robustness-{task}.png", caption)


def _delay_vs_frequency(task: str, walkers: list[dict], variants: list[str], out: Path, budget: str) -> list[str]:
    """Retained share under each delay condition against the intact gait's dominant action frequency, one
    point per walking champion: a gait whose rhythm is a few control steps long is shifted by a large part
    of its period by one step of delay, so delay tolerance should fall with frequency (Spearman's rho)."""
    from scipy.stats import spearmanr

    panels: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for r in walkers:
        hz = r["stress"]["intact"].get("dominant_frequency_hz")
        for c in r["stress"]["conditions"]:
            if kind_of(c["name"]).delays and not c["onset"] and hz is not None:
                panels[f"{c['name']}={c['strength']:g}"].append((_variant(r), hz, c["retained"]))
    panels = {lab: pts for lab, pts in panels.items() if len(pts) >= 3}
    if not panels:
        return []
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    colors = {v: plt.cm.tab10(i % 10) for i, v in enumerate(variants)}
    md = ["| delay condition | walking champions | Spearman rho (frequency, retained) | p |", "|---|---|---|---|"]
    for ax, (lab, pts) in zip(axes.flat, panels.items()):
        for v in dict.fromkeys(p[0] for p in pts):
            ax.scatter([p[1] for p in pts if p[0] == v], [p[2] for p in pts if p[0] == v], color=colors[v], label=v)
        rho, pval = spearmanr([p[1] for p in pts], [p[2] for p in pts])
        md.append(f"| {lab} | {len(pts)} | {rho:.2f} | {pval:.3g} |")
        ax.set_title(f"{lab}: rho = {rho:.2f}", fontsize=9)
        ax.set_xlabel("dominant action frequency intact (Hz)", fontsize=8)
        ax.set_ylabel("retained distance", fontsize=8)
        ax.axhline(1.0, color="grey", lw=0.6)
    axes.flat[0].legend(fontsize=7)
    caption = (f"{task}: share kept under each delay against the intact gait's dominant action frequency, one "
               f"point per walking champion. {budget}")
    return _figure(fig, out, f"delay-frequency-{task}.png", caption) + md + [""]


def _condition_label(c: dict) -> str:
    """A stress condition as the report names it: ``latency=5``, ``dead-motor=1@500``."""
    return f"{c['name']}={c['strength']:g}" + (f"@{c['onset']}" if c["onset"] else "")


def _training_effect(task: str, cells: list[dict]) -> list[str]:
    """What training differently (randomized vs intact) changes per rule: the held-out mean and the mean
    distance under each stress condition, medians over seeds of each training, Mann-Whitney U between
    the two sets of seeds with Holm over the rules of one row. Empty unless the cells train differently."""
    trainings = list(dict.fromkeys(r.get("training") for r in cells))
    if len(trainings) < 2:
        return []
    ranked = sorted(cells, key=lambda r: (RULES.index(r["cell"].rule), r["cell"].window or 0))
    rules = list(dict.fromkeys(r["cell"].variant for r in ranked))
    measures: dict[str, dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in cells:
        key = (r["cell"].variant, r["training"])
        measures["held-out mean"][key].append(r["evaluation"]["mean"])
        for c in (r.get("stress") or {}).get("conditions", []):
            measures[_condition_label(c)][key].append(c["mean"])
    md = []
    for other in trainings[1:]:
        ref = trainings[0]
        md += [f"### {task}: trained {other} against trained {ref}", "",
               f"Mean distance (m), median over seeds trained {ref} -> trained {other}, and Holm-corrected p of "
               "a two-sided Mann-Whitney U between the two sets of seeds (over the rules of a row):", "",
               "| measure | " + " | ".join(rules) + " |", "|---|" + "---|" * len(rules)]
        for name, values in measures.items():
            pairs = [v for v in rules if values[(v, ref)] and values[(v, other)]]
            p = dict(zip(pairs, holm([pairwise_tests({ref: values[(v, ref)], other: values[(v, other)]})[0]["p"]
                                      for v in pairs])))
            md.append(f"| {name} | " + " | ".join(
                f"{np.median(values[(v, ref)]):.2f} -> {np.median(values[(v, other)]):.2f} (p {p[v]:.2g})"
                if v in p else "-" for v in rules) + " |")
        md.append("")
    return md


def _robustness(task: str, cells: list[dict], out: Path, budget: str) -> list[str]:
    """Retained distance (condition mean / intact mean over the stress episodes) per rule variant and
    condition, box plots over seeds, and Mann-Whitney U + Holm between variants per condition."""
    stressed = [r for r in cells if r.get("stress")]
    if not stressed:
        return []
    variants = _variants(stressed)

    walkers = [r for r in stressed if _walks(r)]
    walking_runs = {_run_name(r) for r in walkers}
    retained: dict[str, dict[str, list[float]]] = defaultdict(lambda: {v: [] for v in variants})
    distance: dict[str, dict[str, list[float]]] = defaultdict(lambda: {v: [] for v in variants})
    for r in stressed:
        distance["intact"][_variant(r)].append(r["stress"]["intact"]["mean"])
        for c in r["stress"]["conditions"]:
            distance[_condition_label(c)][_variant(r)].append(c["mean"])
            if _run_name(r) in walking_runs and c.get("retained") is not None:
                retained[_condition_label(c)][_variant(r)].append(c["retained"])
    labels = list(retained)
    episodes = stressed[0]["stress"]["episodes"]
    caption = (f"{task}: share of its intact mean distance that each walking champion keeps under each condition "
               f"({episodes} held-out episodes per condition, the same seeds intact and perturbed), one box per rule "
               f"variant over seeds. {budget}")
    md = [f"### {task}: robustness", ""] + (_retained_boxes(task, retained, variants, out, caption) if labels else [])
    md += ["| condition | " + " | ".join(f"{v} median" for v in variants) + " |", "|---|" + "---|" * len(variants)]
    for lab in labels:
        md.append(f"| {lab} | " + " | ".join(f"{np.median(retained[lab][v]):.2f}" if retained[lab][v] else "-"
                                             for v in variants) + " |")
    walking = {v: sum(_variant(r) == v for r in walkers) for v in variants}
    counted = {v: sum(_variant(r) == v for r in stressed) for v in variants}
    md.append("| champions that walk | " + " | ".join(f"{walking[v]} of {counted[v]}" for v in variants) + " |")
    md += ["", f"Shares count only champions that walk: forward on at least {WALKS_FORWARD:.0%} of their held-out "
               "episodes, with a positive intact mean. A share of a champion that barely moves is noise over noise "
               "(a few cm intact against a few dm perturbed reads as several hundred per cent)."]
    md += [""] + _delay_vs_frequency(task, walkers, variants, out, budget)
    md += ["Mean distance (m) intact and under each condition, median over seeds (defined for every "
               "champion, and the scale that says whether a share is a share of a walk):", "",
           "| condition | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    for lab, by_variant in distance.items():
        md.append(f"| {lab} | " + " | ".join(f"{np.median(by_variant[v]):.2f}" if by_variant[v] else "-"
                                             for v in variants) + " |")
    md += ["", "Seed-level tests per condition (retained shares of the rules with at least two walking champions; "
               "Holm over the pairs of one condition):", "",
           "| condition | A | B | U | p | p (Holm) |", "|---|---|---|---|---|---|"]
    for lab in labels:
        testable = {v: x for v, x in retained[lab].items() if len(x) >= 2}
        md += [f"| {lab} | {t['a']} | {t['b']} | {t['U']:.1f} | {t['p']:.3g} | {t['p_holm']:.3g} |"
               for t in pairwise_tests(testable)]
    return md + [""]


def _variants(cells: list[dict]) -> list[str]:
    """The rule variants of some cells in reading order: hl, nchl, then WNcHL by growing window, each
    in the order of the campaigns that trained it differently."""
    trainings = list(dict.fromkeys(r.get("training") for r in cells))
    key = {_variant(r): (RULES.index(r["cell"].rule), r["cell"].window or 0, trainings.index(r.get("training")))
           for r in cells}
    return sorted(key, key=key.get)


def _test_rows(tests: list[dict]) -> list[str]:
    return ["| A | B | U | p | p (Holm) |", "|---|---|---|---|---|"] + [
        f"| {t['a']} | {t['b']} | {t['U']:.1f} | {t['p']:.3g} | {t['p_holm']:.3g} |" for t in tests]


def _champion_boxes(task: str, cells: list[dict], out: Path, caption: str) -> list[str]:
    """Box plot of every run's champion on its held-out episodes, coloured by rule variant."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(cells) + 2), 4))
    variants = _variants(cells)
    ordered = sorted(cells, key=lambda r: (variants.index(_variant(r)), r["cell"].seed))
    colors = {v: plt.cm.tab10(i % 10) for i, v in enumerate(variants)}
    box = ax.boxplot([[e["fitness"] for e in r["evaluation"]["per_episode"]] for r in ordered], patch_artist=True)
    for patch, r in zip(box["boxes"], ordered):
        patch.set_facecolor(colors[_variant(r)])
    ax.set_xticks(range(1, len(ordered) + 1), [_run_name(r) for r in ordered], rotation=60, fontsize=7)
    ax.set_ylabel("distance on a held-out episode (m)")
    ax.grid(alpha=0.3)
    return _figure(fig, out, f"champions-{task}.png", caption)


def _rule_table(cells: list[dict], costs: dict) -> tuple[list[str], list[tuple]]:
    """Per rule variant: size, state memory, champion statistics and compute, then the seed-level tests.
    Also returns ``(variant, spec, state bytes, champion means, training)`` per variant for the window sweep."""
    variants = _variants(cells)
    groups = {v: [r["evaluation"]["mean"] for r in cells if _variant(r) == v] for v in variants}
    md = ["| rule | parameters | state memory B | runs | champion median (m) | mean (m) | IQR (m) "
          "| env steps per run (M) | wall time per run (min) |",
          "|---|---|---|---|---|---|---|---|---|"]
    sweep = []
    for v in variants:
        r0 = next(r for r in cells if _variant(r) == v)
        spec = Genome.load(r0["dir"] / "best.npz").spec
        fp, g = footprint(spec), np.array(groups[v])
        q1, q3 = np.percentile(g, [25, 75])
        steps, wall = np.mean([costs[_run_name(r)] for r in cells if _variant(r) == v], axis=0)
        md.append(f"| {v} | {fp.genome_length:,} | {fp.state_bytes:,} | {len(g)} | {np.median(g):.2f} | "
                  f"{g.mean():.2f} | {q1:.2f} - {q3:.2f} | {steps / 1e6:.2f} | {wall / 60:.1f} |")
        sweep.append((v, spec, fp.state_bytes, g, r0.get("training")))
    tests = pairwise_tests(groups)
    md += [""] + (_test_rows(tests) if tests else ["(one rule finished so far: no pairwise test)"]) + [""]
    return md, sweep


def _best_champion_section(cells: list[dict], episodes: int) -> list[str]:
    """The paper's Fig. 5 test between each rule's best champion, where its episodes differ."""
    best, tests = best_champion_tests(cells)
    if not tests:
        return []
    names = ", ".join(f"{v}: {r['cell'].name}" for v, r in best.items())
    return [f"Best champion of each rule ({names}) on its {episodes} held-out episodes, as in the paper's Fig. 5: "
            "two-sided Mann-Whitney U between episode distances, Holm-corrected. This compares single "
            "controllers, not rules: the seed-level test above is the one about rules.", ""] + _test_rows(tests) + [""]


def _window_sweep(task: str, sweep: list[tuple], out: Path, budget: str) -> list[str]:
    """WNcHL champion means against state memory, one point per window and one line per training
    (intact, randomized), NcHL as the reference line of the same training."""
    trainings = list(dict.fromkeys(t for *_, t in sweep))
    if not any(s.rule == "wnchl" for _, s, *_ in sweep):
        return []
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, training in enumerate(trainings):
        suffix = f" ({training})" if training else ""
        windows = sorted(((s.window, mem, g) for _, s, mem, g, t in sweep if s.rule == "wnchl" and t == training),
                         key=lambda w: w[0])
        if windows:
            ax.errorbar([m for _, m, _ in windows], [g.mean() for *_, g in windows], color=f"C{i}",
                        yerr=[g.std() for *_, g in windows], marker="o", capsize=3, label=f"WNcHL{suffix}")
        for (w, m, g) in windows:
            ax.annotate(f"m={w}", (m, g.mean()), fontsize=8, xytext=(4, 4), textcoords="offset points")
        for _, s, mem, g, t in sweep:
            if s.rule == "nchl" and t == training:
                ax.axhline(g.mean(), color=f"C{i}", ls="--", label=f"NcHL{suffix} ({mem:,} B of weights)")
    ax.set_xscale("log")
    ax.set_xlabel("controller state memory (bytes, float32)")
    ax.set_ylabel("champion held-out mean (m)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _figure(fig, out, f"window-sweep-{task}.png", f"{task}: WNcHL performance vs state memory for each "
                   f"window m (mean +- std over seeds), NcHL dashed. {budget}")


def _weights_figure(task: str, cells: list[dict], out: Path, budget: str) -> list[str]:
    """Weights of each rule's best champion within one held-out episode: norms over time, final values."""
    best = _best_runs(cells, lambda r: r["cell"].rule)
    weight_runs = {rule: best[rule] for rule in ("nchl", "hl", "wnchl") if rule in best}
    fig, (ax1, ax2) = _plt().subplots(1, 2, figsize=(11, 4))
    for rule, r in weight_runs.items():
        norms, finals, dt = _weight_trace(Genome.load(r["dir"] / "best.npz"), task, 0)
        t = np.arange(1, len(norms) + 1) * dt
        for layer in range(norms.shape[1]):
            ax1.plot(t, norms[:, layer], color=f"C{layer}", ls=_WEIGHT_STYLE[rule],
                     label=f"{rule} layer {layer} ({r['cell'].name})")
        ax2.hist(finals, bins=60, alpha=0.5, log=True,
                 label=f"{rule} ({r['cell'].name}), max |w| {np.abs(finals).max():.3g}")
    ax1.set_yscale("log")
    ax1.set_xlabel("time in episode (s)")
    ax1.set_ylabel("weight norm per layer (Frobenius)")
    ax1.legend(fontsize=6)
    ax1.grid(alpha=0.3)
    ax2.set_xlabel("weight at the end of the episode")
    ax2.set_ylabel("synapses")
    ax2.legend(fontsize=7)
    return _figure(fig, out, f"weights-{task}.png", f"{task}: weights of the best NcHL, HL and WNcHL champions "
                   f"within one held-out episode (seed 0): norm per layer over time, and the distribution at the "
                   f"end. WNcHL stores no weights: shown are those its window stands for, rebuilt at every step. "
                   f"{budget}")


def _training_labels(campaigns: list, dirs: list[Path]) -> list[str | None]:
    """Per campaign, what its runs trained on when the campaigns differ there (``intact``, ``randomized``;
    their directories if those words do not tell them apart), else None: one training, no label."""
    if all(c.evolve == campaigns[0].evolve for c in campaigns):
        return [None] * len(campaigns)
    words = [training_words(c.evolve) for c in campaigns]
    same_word_other_settings = any(w == v and a.evolve != b.evolve
                                   for a, w in zip(campaigns, words) for b, v in zip(campaigns, words))
    return [str(d) for d in dirs] if same_word_other_settings else words


def _finished_runs(campaign_dirs: list[Path]) -> tuple[list, list[dict], int]:
    """The campaigns, their finished cells (each with its run ``dir``) and the number of cells in all.
    Several campaigns are reported together only when they share one budget and no cell name; campaigns
    that train differently (intact and randomized) keep their cells apart by a ``training`` label."""
    campaigns = [read_manifest(src)[0] for src in campaign_dirs]
    for src, campaign in zip(campaign_dirs[1:], campaigns[1:]):
        if not campaign.same_budget_but_training(campaigns[0]):
            raise NchlError(f"{src} ran at another budget than {campaign_dirs[0]} ([evolve] or [evaluate] "
                            "differ beyond what the runs train on): a report combines campaigns of one budget only")
    done, total, where = [], 0, {}
    for src, label in zip(campaign_dirs, _training_labels(campaigns, campaign_dirs)):
        for r in summary(src):
            if label:
                r = r | {"training": label}
            name = _run_name(r)
            if name in where:
                raise NchlError(f"run {name} is in both {where[name]} and {src}: which one to report is ambiguous")
            where[name] = src
            total += 1
            if r["state"] == "done":
                done.append(r | {"dir": src / r["cell"].name})
    if not done:
        raise NchlError(f"{', '.join(map(str, campaign_dirs))}: no finished run yet (nothing has {EVALUATION}); "
                        "run nchl campaign first")
    return campaigns, done, total


def make_report(campaign_dirs: str | Path | list[str | Path], out: str | Path, behaviour_episodes: int = 3,
                log: Callable[[str], None] = print) -> Path:
    """``report.md`` and its figures for one campaign directory, or for several that share a budget
    (e.g. a grid and a later sweep that adds windows on one task)."""
    dirs = [Path(d) for d in (campaign_dirs if isinstance(campaign_dirs, list) else [campaign_dirs])]
    out = Path(out)
    campaigns, done, total = _finished_runs(dirs)
    campaign = campaigns[0]
    out.mkdir(parents=True, exist_ok=True)
    first = json.loads((done[0]["dir"] / "config.json").read_text())
    gens = campaign.evolve.get("generations", 100)
    seeds = {s for c in campaigns for s in c.seeds}
    budget = (f"Budget: {gens} generations, popsize {first['popsize']}, {len(seeds)} seeds per "
              f"configuration, champions re-scored on {campaign.episodes} held-out episodes; "
              f"{len(done)} of {total} runs finished.")
    costs = {_run_name(r): _run_cost(r["dir"]) for r in done}
    compute = (f"Compute: {sum(c[0] for c in costs.values()) / 1e6:.1f} M training environment steps and "
               f"{sum(c[1] for c in costs.values()) / 3600:.1f} h of evolution wall time over the finished runs "
               f"({first['settings']['workers']} evaluation workers per run), champion re-scoring not counted.")
    md = [f"# Campaign report: {' + '.join(map(str, dirs))}", "", budget, "", compute, "",
          "Statistical test: two-sided Mann-Whitney U test (scipy.stats.mannwhitneyu) between the champions' "
          "held-out means of two rule variants (one value per seed), p-values adjusted with Holm's step-down "
          "correction over all pairs of a task. With few seeds per configuration these tests have little power.", ""]
    layers = first["layers"]
    fig1(str(out / "fig1.png"), layers[0], layers[-1])
    md += ["## Parameters vs depth and width (Fig. 1)", "", "![Fig. 1](fig1.png)", "",
           f"*HL vs NcHL genome length for {layers[0]} inputs and {layers[-1]} outputs.*", ""]
    by_task: dict[str, list[dict]] = defaultdict(list)
    for r in done:
        by_task[r["cell"].task].append(r)
    for task, cells in by_task.items():
        md += [f"## {task}", ""]
        plot_runs([str(r["dir"]) for r in cells], str(out / f"curves-{task}.png"))
        md += [f"![curves {task}](curves-{task}.png)", "",
               f"*{task}: best-so-far training fitness per generation, mean +- std over seeds (solid), champion's "
               f"validation mean (dashed); right: final training bests. {budget}*", ""]
        md += _champion_boxes(task, cells, out, f"{task}: every run's champion on its {campaign.episodes} held-out "
                              f"episodes (Fig. 3/5 of the paper). {budget}")
        table, sweep = _rule_table(cells, costs)
        md += table
        md += _best_champion_section(cells, campaign.episodes)
        md += _window_sweep(task, sweep, out, budget)
        log(f"report: {task}: recording {behaviour_episodes} episodes per champion for the behaviour map")
        md += _behaviour_map(task, cells, out, behaviour_episodes, budget)
        md += _weights_figure(task, cells, out, budget)
        md += _robustness(task, cells, out, budget)
        md += _training_effect(task, cells)
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path


__all__ = ["best_champion_tests", "descriptors", "holm", "make_report", "pairwise_tests"]
