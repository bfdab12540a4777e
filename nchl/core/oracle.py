"""Naive reference of weightless NcHL, for tests and benchmarks only.

It builds each layer's weight matrix from the window, ``W(t) = sum_k dW(k)``
with the NcHL update itself (:func:`~nchl.core.controllers.window_weights`), at
``O(m n p)`` per layer: the definition the low-rank
:class:`~nchl.core.controllers.WNcHL` must reproduce. The product never uses it.
"""

from __future__ import annotations

import numpy as np

from .activation import tanh
from .controllers import WNcHL, add_synapse_constants, window_weights


class NaiveWNcHL(WNcHL):
    def _unpack(self, blocks: dict[str, np.ndarray]) -> None:
        super()._unpack(blocks)
        for q in self.layer_params:
            add_synapse_constants(q)

    def _layer(self, q: dict[str, np.ndarray], x: np.ndarray, xp: np.ndarray, yp: np.ndarray) -> np.ndarray:
        return tanh(x @ window_weights(q, xp, yp))
