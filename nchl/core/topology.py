"""Network topology: fully connected, tanh on every layer, no biases.

A topology is the tuple of layer sizes ``(n_0, ..., n_L)``. Neurons are
numbered layer by layer, inputs first; synapses of layer ``l`` connect the
``n_l`` neurons of layer ``l`` (pre) to the ``n_{l+1}`` neurons of layer
``l + 1`` (post) and are stored row-major as ``(pre, post)`` matrices: weight
``W[i, j]`` goes from pre neuron ``i`` to post neuron ``j``, ``y = tanh(x W)``,
and both numpy and C sum over ``i`` in order, one contiguous row at a time.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from .errors import TopologyError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Topology:
    """Layer sizes ``(n_0, ..., n_L)`` with at least an input and an output layer."""

    layers: tuple[int, ...]

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        if len(layers) < 2:
            raise TopologyError(
                f"a topology needs at least an input and an output layer, got {list(layers)}"
            )
        for k, n in enumerate(layers):
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise TopologyError(
                    f"layer {k} has size {n!r}; every layer size must be an integer >= 1"
                )
        object.__setattr__(self, "layers", layers)

    @classmethod
    def of(cls, layers: "Topology | Iterable[int] | str") -> "Topology":
        """Build from a Topology, a sequence of ints, or a string like ``"27,128,64,8"``."""
        if isinstance(layers, Topology):
            return layers
        if isinstance(layers, str):
            parts = [p.strip() for p in layers.split(",")]
            try:
                sizes = [int(p) for p in parts]
            except ValueError:
                raise TopologyError(
                    f"cannot read layer sizes from {layers!r}; expected e.g. '27,128,64,8'"
                ) from None
            return cls(tuple(sizes))
        return cls(tuple(_as_size(n) for n in layers))

    @property
    def n_in(self) -> int:
        return self.layers[0]

    @property
    def n_out(self) -> int:
        return self.layers[-1]

    @property
    def n_layers(self) -> int:
        """Number of weight layers ``L``."""
        return len(self.layers) - 1

    @property
    def neurons(self) -> int:
        """``N``: all neurons, inputs and outputs included."""
        return sum(self.layers)

    @property
    def synapses(self) -> int:
        """``W``: all synapses."""
        return sum(a * b for a, b in zip(self.layers[:-1], self.layers[1:]))

    @property
    def offsets(self) -> tuple[int, ...]:
        """Index of the first neuron of each layer (length ``L + 2``, last = ``N``)."""
        out = [0]
        for n in self.layers:
            out.append(out[-1] + n)
        return tuple(out)

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        """Weight matrix shape ``(pre, post)`` of each layer."""
        return tuple(zip(self.layers[:-1], self.layers[1:]))

    def split_matrices(self, flat: "np.ndarray") -> list["np.ndarray"]:
        """Views of a flat per-synapse vector as the layers' ``(pre, post)`` matrices, genome order."""
        out, k = [], 0
        for n, p in self.shapes:
            out.append(flat[k:k + n * p].reshape(n, p))
            k += n * p
        return out

    @property
    def max_width(self) -> int:
        """Widest non-input layer: the size of one scratch activation buffer."""
        return max(self.layers[1:])

    def __str__(self) -> str:
        return ",".join(str(n) for n in self.layers)


def _as_size(n: object) -> object:
    """numpy integers become ints; anything else is left for validation to reject."""
    if isinstance(n, bool):
        return n
    try:
        return operator.index(n)  # type: ignore[arg-type]
    except TypeError:
        return n
