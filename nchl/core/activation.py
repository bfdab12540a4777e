"""The network's arithmetic kernels, written so numpy and the generated C agree bit for bit.

Two things make float results depend on the implementation: the order of a
sum, and the activation function. Both are fixed here.

* :func:`seq_sum` adds along axis 0 in index order, starting from zero, which
  is what the C loops do. numpy reduces a C-contiguous array with two or more
  columns along its outer axis one row at a time (pairwise summation only
  happens along the inner, contiguous axis, which is what an array with a
  single column becomes); a single column or a 1-D array is accumulated with
  ``cumsum``, sequential by definition. A final ``+ 0`` turns the only
  possible difference, a ``-0`` where C has ``+0``, into C's result.
  ``tests/test_kernels.py`` checks the order against a Python loop.
* :func:`tanh` in float32 is a rational function, ``x P(x^2) / Q(x^2)`` with
  degree-4 polynomials evaluated by Horner's rule, the input clamped to
  ``[-9, 9]`` and the output to ``[-1, 1]``: only ``+ * /`` and comparisons,
  all correctly rounded in IEEE single precision, so numpy, x86-64 C and a
  Cortex-M FPU (or soft float) compute the same bits. Its error against the
  true tanh is below 3.5e-7 (about 6 float32 ULP near +-1). The coefficients
  are a float32 least-squares/minimax fit of ``tanh(x)/x`` over ``[0, 9]``.
  float64 (analysis) uses numpy's exact tanh.
"""

from __future__ import annotations

import numpy as np

TANH_CLAMP = 9.0
# Horner coefficients, lowest order first, exact float32 values
TANH_P = (1.0, float.fromhex("0x1.120b84p-3"), float.fromhex("0x1.ca2f8ap-9"),
          float.fromhex("0x1.59c99cp-16"), float.fromhex("0x1.caedd6p-27"))
TANH_Q = (1.0, float.fromhex("0x1.de5b0cp-2"), float.fromhex("0x1.a7f966p-6"),
          float.fromhex("0x1.588a0cp-12"), float.fromhex("0x1.a18b58p-21"))

_F32 = np.dtype(np.float32)
_P32 = tuple(np.float32(c) for c in TANH_P)
_Q32 = tuple(np.float32(c) for c in TANH_Q)


def tanh(z: np.ndarray) -> np.ndarray:
    """The activation: the shared rational tanh in float32, numpy's tanh in float64."""
    if z.dtype != _F32:
        return np.tanh(z)
    c = np.float32(TANH_CLAMP)
    x = np.clip(z, -c, c)
    s = x * x
    p = _P32[-1]
    for k in _P32[-2::-1]:
        p = p * s + k
    q = _Q32[-1]
    for k in _Q32[-2::-1]:
        q = q * s + k
    one = np.float32(1.0)
    return np.clip((x * p) / q, -one, one)


def seq_sum(a: np.ndarray) -> np.ndarray:
    """Sum over axis 0 in index order from zero, like ``for i: acc += a[i]`` in C."""
    zero = a.dtype.type(0)
    if a.shape[0] == 0:
        return np.zeros(a.shape[1:], dtype=a.dtype)
    if a.size == a.shape[0]:  # one column: numpy would sum it pairwise
        return np.cumsum(a.reshape(-1))[-1].reshape(a.shape[1:]) + zero
    return np.add.reduce(np.ascontiguousarray(a), axis=0) + zero
