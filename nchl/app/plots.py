"""``nchl plot``: fitness curves and final-best box plots of evolution runs (headless)."""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..core.errors import NchlError
from .evolution import read_log, training_words


def read_run(run_dir: str | Path) -> tuple[str, np.ndarray, np.ndarray]:
    """(label: task, rule and what it trains on unless intact; best-ever training fitness; best-so-far
    validation mean) per generation of one run directory; the validation curve is NaN before the first
    validation (or without validation)."""
    run_dir = Path(run_dir)
    try:
        cfg = json.loads((run_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise NchlError(f"{run_dir}: not a readable run directory: {e}") from None
    log = read_log(run_dir)
    s = cfg["settings"]
    label = s["rule"] if s["rule"] != "wnchl" else f"wnchl (m={s['window']})"
    training = training_words(s)
    if training != "intact":
        label += f", {training}"  # runs that train differently are curves of their own
    validation = np.array([np.nan if e.get("best_validation") is None else e["best_validation"] for e in log])
    validation[~np.isfinite(validation)] = np.nan
    return f"{s['task']}: {label}", np.array([e["best_ever"] for e in log]), validation


def plot_runs(run_dirs: list[str], path: str) -> dict[str, dict]:
    """Two panels: mean +- std of best-so-far training fitness per generation, grouped by task and
    rule (paper Fig. 2/4), with the best-so-far validation mean dashed where logged; and a box plot
    of the final training bests (Fig. 3/5). Returns the summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[np.ndarray]] = defaultdict(list)
    validations: dict[str, list[np.ndarray]] = defaultdict(list)
    for d in run_dirs:
        label, curve, validation = read_run(d)
        groups[label].append(curve)
        validations[label].append(validation)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    summary = {}
    for label, curves in sorted(groups.items()):
        n = min(len(c) for c in curves)
        m = np.stack([c[:n] for c in curves])
        gens = np.arange(1, n + 1)
        mean, std = m.mean(0), m.std(0)
        line, = ax1.plot(gens, mean, label=f"{label} ({len(curves)} runs), training")
        ax1.fill_between(gens, mean - std, mean + std, alpha=0.25, color=line.get_color())
        finals = [c[-1] for c in curves]
        summary[label] = {"runs": len(curves), "generations": n, "final_mean": float(np.mean(finals)),
                          "final_std": float(np.std(finals)), "finals": [float(f) for f in finals]}
        v = np.stack([c[:n] for c in validations[label]])
        if np.isfinite(v).any():
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN generations before validation
                ax1.plot(gens, np.nanmean(v, 0), "--", color=line.get_color(), label=f"{label}, validation mean")
            summary[label]["final_validation"] = [float(x) for x in v[:, -1]]
    ax1.set_xlabel("generation")
    ax1.set_ylabel("best-so-far fitness (distance, m)")
    ax1.set_title("solid: best training episode; dashed: champion's validation mean", fontsize=8)
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    labels = sorted(groups)
    ax2.boxplot([[c[-1] for c in groups[k]] for k in labels])
    ax2.set_xticks(range(1, len(labels) + 1), labels, rotation=20, fontsize=7)
    ax2.set_ylabel("final best fitness")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return summary
