"""Evolution strategies with one ask/tell surface and picklable state.

* ``cma``: full CMA-ES (pycma), for genomes up to a few thousand values;
* ``sep-cma``: pycma with a diagonal covariance (``CMA_diagonal``), linear in
  the dimension, for HL's tens of thousands of values;
* ``openai-es``: OpenAI-ES with mirrored sampling, centered-rank fitness
  shaping and Adam, also linear in the dimension.

``auto`` picks ``cma`` up to :data:`FULL_CMA_MAX_DIM` values and ``sep-cma``
above. All maximise. pycma draws from numpy's global generator, so a
checkpoint must store ``np.random.get_state()`` beside the optimizer and refer
to that generator rather than copy it (:mod:`nchl.app.evolution`'s checkpoints do);
the OpenAI-ES keeps its own generator in its state.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import NchlError

OPTIMIZERS = ("auto", "cma", "sep-cma", "openai-es")
FULL_CMA_MAX_DIM = 2000


def resolve(name: str, dim: int) -> str:
    if name not in OPTIMIZERS:
        raise NchlError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    if name == "auto":
        return "cma" if dim <= FULL_CMA_MAX_DIM else "sep-cma"
    if name == "cma" and dim > 20 * FULL_CMA_MAX_DIM:
        raise NchlError(f"full CMA-ES on {dim} parameters needs a {dim}x{dim} covariance; use sep-cma or openai-es")
    return name


class Optimizer:
    """``ask() -> (popsize, dim)`` candidates; ``tell(candidates, fitness)``; higher fitness is better."""

    name: str
    popsize: int

    def ask(self) -> np.ndarray:
        raise NotImplementedError

    def tell(self, candidates: np.ndarray, fitness: np.ndarray) -> None:
        raise NotImplementedError

    @property
    def sigma(self) -> float:
        raise NotImplementedError

    @property
    def center(self) -> np.ndarray:
        """The distribution mean: often more robust than any sampled candidate."""
        raise NotImplementedError


class PyCMA(Optimizer):
    def __init__(self, x0: np.ndarray, sigma: float, popsize: int | None, seed: int, diagonal: bool) -> None:
        import cma

        self.name = "sep-cma" if diagonal else "cma"
        opts = {"seed": seed + 1, "verbose": -9, "verb_log": 0, "verb_disp": 0, "CMA_diagonal": diagonal}
        if popsize:
            opts["popsize"] = popsize
        np.random.seed(seed)
        self.es = cma.CMAEvolutionStrategy(np.asarray(x0, dtype=float), sigma, opts)
        self.popsize = self.es.popsize

    def ask(self) -> np.ndarray:
        return np.array(self.es.ask())

    def tell(self, candidates: np.ndarray, fitness: np.ndarray) -> None:
        self.es.tell(list(candidates), list(-np.asarray(fitness, dtype=float)))

    @property
    def sigma(self) -> float:
        return float(self.es.sigma)

    @property
    def center(self) -> np.ndarray:
        return np.array(self.es.mean, dtype=float)


def centered_ranks(f: np.ndarray) -> np.ndarray:
    """Ranks mapped linearly to [-0.5, 0.5] (ties broken by position)."""
    ranks = np.empty(len(f))
    ranks[np.argsort(f, kind="stable")] = np.arange(len(f))
    return ranks / max(1, len(f) - 1) - 0.5


class OpenAIES(Optimizer):
    """Salimans et al. 2017: mirrored Gaussian perturbations of a mean, centered ranks, Adam."""

    name = "openai-es"

    def __init__(self, x0: np.ndarray, sigma: float, popsize: int | None, seed: int,
                 lr: float = 0.01, weight_decay: float = 0.005) -> None:
        popsize = popsize or 64
        if popsize % 2:
            raise NchlError(f"openai-es uses mirrored pairs: popsize must be even, got {popsize}")
        self.popsize = popsize
        self.mean = np.asarray(x0, dtype=float).copy()
        self._sigma, self.lr, self.weight_decay = float(sigma), lr, weight_decay
        self.rng = np.random.default_rng(seed)
        self.m = np.zeros_like(self.mean)
        self.v = np.zeros_like(self.mean)
        self.t = 0

    def ask(self) -> np.ndarray:
        half = self.rng.standard_normal((self.popsize // 2, self.mean.size))
        return self.mean + self._sigma * np.concatenate([half, -half])

    def tell(self, candidates: np.ndarray, fitness: np.ndarray) -> None:
        eps = (np.asarray(candidates) - self.mean) / self._sigma
        weights = centered_ranks(np.asarray(fitness, dtype=float))
        grad = weights @ eps / (len(weights) * self._sigma) - self.weight_decay * self.mean
        self.t += 1
        b1, b2 = 0.9, 0.999
        self.m = b1 * self.m + (1 - b1) * grad
        self.v = b2 * self.v + (1 - b2) * grad * grad
        step = self.lr * (self.m / (1 - b1 ** self.t)) / (np.sqrt(self.v / (1 - b2 ** self.t)) + 1e-8)
        self.mean = self.mean + step  # gradient ascent

    @property
    def sigma(self) -> float:
        return self._sigma

    @property
    def center(self) -> np.ndarray:
        return self.mean.copy()


def make_optimizer(name: str, x0: np.ndarray, sigma: float, popsize: int | None, seed: int) -> Optimizer:
    name = resolve(name, len(x0))
    if name == "openai-es":
        return OpenAIES(x0, sigma, popsize, seed)
    return PyCMA(x0, sigma, popsize, seed, diagonal=(name == "sep-cma"))
