"""Evaluation functions with injected faults, run inside real worker processes by test_evolution."""

import hashlib
import os

from nchl.app.evolution import evaluate_candidate


def _tag(genome) -> int:
    return hashlib.sha256(genome.tobytes()).digest()[0]


def raise_first_attempt(payload, attempt):
    """A quarter of the candidates raise once, then succeed on the retry."""
    if attempt == 0 and _tag(payload[2]) % 4 == 0:
        raise RuntimeError("injected fault")
    return evaluate_candidate(payload, attempt)


def die_first_attempt(payload, attempt):
    """A quarter of the candidates kill their worker process once."""
    if attempt == 0 and _tag(payload[2]) % 4 == 1:
        os._exit(3)
    return evaluate_candidate(payload, attempt)


def always_raise_some(payload, attempt):
    """A quarter of the candidates raise on every attempt."""
    if _tag(payload[2]) % 4 == 2:
        raise RuntimeError("injected permanent fault")
    return evaluate_candidate(payload, attempt)
