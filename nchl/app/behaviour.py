"""How a controller moves, per episode: the descriptors that the report's behaviour map and
``nchl stress`` show (a bang-bang controller saturates; a servo cannot follow a fast one)."""

from __future__ import annotations

import numpy as np

DESCRIPTORS = ("distance (m)", "mean abs action", "action std", "saturated share", "dominant frequency (Hz)",
               "action sign changes per s")
SATURATED = 0.9  # |action| above this counts as saturated


def descriptors(actions: np.ndarray, distance: float, dt: float) -> np.ndarray:
    """Per-episode behaviour descriptors (see :data:`DESCRIPTORS`) of ``actions`` (steps, n_out)
    taken every ``dt`` seconds."""
    a = np.asarray(actions, dtype=float)
    spectrum = np.abs(np.fft.rfft(a - a.mean(0), axis=0)).mean(1)
    freqs = np.fft.rfftfreq(len(a), dt)
    dominant = float(freqs[1:][np.argmax(spectrum[1:])]) if len(a) > 2 else 0.0
    flips = (np.diff(np.sign(a), axis=0) != 0).sum(0).mean() / (len(a) * dt)
    return np.array([distance, np.abs(a).mean(), a.std(), (np.abs(a) > SATURATED).mean(), dominant, flips])
