"""``nchl plot``: fitness curves and final-best box plots of evolution runs (headless)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from .errors import NchlError


def read_run(run_dir: str | Path) -> tuple[str, np.ndarray]:
    """(label, best-ever fitness per generation) of one run directory."""
    run_dir = Path(run_dir)
    try:
        cfg = json.loads((run_dir / "config.json").read_text())
        log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise NchlError(f"{run_dir}: not a readable run directory: {e}") from None
    if not log:
        raise NchlError(f"{run_dir}: the run has no completed generation yet")
    s = cfg["settings"]
    label = s["rule"] if s["rule"] != "wnchl" else f"wnchl (m={s['window']})"
    return f"{s['task']}: {label}", np.array([e["best_ever"] for e in log])


def plot_runs(run_dirs: list[str], path: str) -> dict[str, dict]:
    """Two panels: mean +- std of best-so-far fitness per generation, grouped by task and
    rule (paper Fig. 2/4), and a box plot of the final bests (Fig. 3/5). Returns the summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[np.ndarray]] = defaultdict(list)
    for d in run_dirs:
        label, curve = read_run(d)
        groups[label].append(curve)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    summary = {}
    for label, curves in sorted(groups.items()):
        n = min(len(c) for c in curves)
        m = np.stack([c[:n] for c in curves])
        gens = np.arange(1, n + 1)
        mean, std = m.mean(0), m.std(0)
        ax1.plot(gens, mean, label=f"{label} ({len(curves)} runs)")
        ax1.fill_between(gens, mean - std, mean + std, alpha=0.25)
        finals = [c[-1] for c in curves]
        summary[label] = {"runs": len(curves), "generations": n, "final_mean": float(np.mean(finals)),
                          "final_std": float(np.std(finals)), "finals": [float(f) for f in finals]}
    ax1.set_xlabel("generation")
    ax1.set_ylabel("best-so-far fitness (distance, m)")
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
