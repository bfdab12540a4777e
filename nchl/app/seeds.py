"""Disjoint episode-seed ranges for training, validation and held-out evaluation.

A controller is judged on episodes it was never selected on. Episode seeds pick
the environment's initial state (and random initial weights), so the three
uses draw from disjoint ranges of the uint32 seed space:

* evaluation (held out): ``[0, 2**20)``; ``nchl evaluate`` starts at 0 by default;
* validation (champion selection): ``[2**20, 2**21)``, a fixed set per run;
* training (what the optimizer sees): ``[2**21, 2**32)``, new seeds each generation.
"""

from __future__ import annotations

import numpy as np

EVALUATION = range(0, 2**20)
VALIDATION = range(2**20, 2**21)
TRAINING = range(2**21, 2**32)


def training_seeds(seed: int, generation: int, episodes: int) -> list[int]:
    """The episode seeds every candidate of ``generation`` is trained on (common random numbers)."""
    rng = np.random.default_rng([seed, generation])
    return [int(s) for s in rng.integers(TRAINING.start, TRAINING.stop, size=episodes)]


def validation_seeds(seed: int, episodes: int) -> list[int]:
    """The run's fixed validation episodes: distinct seeds of the validation range."""
    rng = np.random.default_rng([seed, 0x56414C])  # "VAL": a stream apart from the training one
    picks = rng.choice(len(VALIDATION), size=episodes, replace=False)
    return [VALIDATION.start + int(k) for k in picks]


def evaluation_seeds(first: int, episodes: int) -> list[int]:
    """Consecutive held-out seeds ``first .. first + episodes - 1``."""
    return [first + k for k in range(episodes)]


def held_out(seeds: list[int]) -> bool:
    """Whether every seed lies in the evaluation range (never seen in training or validation)."""
    return all(s in EVALUATION for s in seeds)
