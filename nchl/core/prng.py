"""The initial-weight generator shared by Python, C and ONNX.

Firmware must not spend flash on initial weights, so they are regenerated from
the episode seed. The generator is counter based, so numpy computes all weights
in one vectorised pass and C computes weight ``k`` without any state:

    key  = fmix32(seed XOR 0xA511E9B3)
    h_k  = fmix32(key + k * 0x9E3779B9)           (uint32 wrap-around)
    v_k  = float(h_k >> 8) * 2**-23 - 1           exact in float32, in [-1, 1)
    w_k  = r * v_k                                one rounding, in the controller dtype

``fmix32`` is MurmurHash3's 32-bit finaliser. ``k`` runs over all synapses in
genome order (layer by layer, each matrix row-major ``(pre, post)``). Every step
above is exact except the final multiply, which C and numpy round identically,
so the float32 weights are bit-identical in every backend.
"""

from __future__ import annotations

import numpy as np

from .errors import NchlError

SEED_MIX = 0xA511E9B3
GOLDEN = 0x9E3779B9
SEED_MAX = 2**32 - 1


def check_seed(seed: object) -> int:
    """Episode seeds are uint32 so that C sees the same value."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise NchlError(f"seed must be an integer, got {seed!r}")
    if not 0 <= int(seed) <= SEED_MAX:
        raise NchlError(f"seed must be in [0, 2**32 - 1], got {seed}")
    return int(seed)


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 finaliser on a uint32 array (a bijection of uint32)."""
    h = np.asarray(h, dtype=np.uint32).copy()
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def uniform_weights(seed: int, count: int, r: float, dtype: np.dtype) -> np.ndarray:
    """``count`` weights uniform in ``[-r, r)`` for episode ``seed``."""
    seed = check_seed(seed)
    key = fmix32(np.uint32(seed ^ SEED_MIX))
    k = np.arange(count, dtype=np.uint32)
    h = fmix32(key + k * np.uint32(GOLDEN))
    v = (h >> np.uint32(8)).astype(dtype) * dtype.type(2.0**-23) - dtype.type(1.0)
    return dtype.type(r) * v
