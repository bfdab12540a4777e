"""Small evolution runs shared by the evolution tests: settings, the run's deterministic log, the CLI."""

import json
import subprocess
import sys

from nchl.app.evolution import EvolveConfig, Run

DETERMINISTIC = ("generation", "best", "mean", "std", "best_ever", "validation_mean", "validation_std",
                 "validation_of", "best_validation", "sigma", "evaluations", "env_steps", "failures")
SMALL = dict(task="vsr-low", layers=(12, 4, 10), generations=3, popsize=4, workers=1, validation_episodes=1)


def log_of(run_dir):
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    return [{k: json.loads(line)[k] for k in DETERMINISTIC} for line in lines]


def evolve(tmp_path, name, evaluator="nchl.app.evolution:evaluate_candidate", **settings):
    cfg = EvolveConfig.from_mapping({**SMALL, **settings})
    logs = []
    Run(tmp_path / name, cfg, log=logs.append, evaluator=evaluator).run()
    return tmp_path / name, logs


def nchl_cmd(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nchl.app.cli", *args], cwd=cwd, capture_output=True, text=True)
