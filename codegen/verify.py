"""``nchl verify``: the generated C and the Python reference in the same rollouts.

* lockstep: the Python controller drives the environment; the C controller is
  given the same observation every step; actions (and optionally the whole
  state) are compared at every step.
* closed loop: the C controller drives the environment alone; its fitness is
  reported next to Python's for the same seed.

The two are bit-identical by design (see :mod:`nchl.core.activation`), so the
expected errors are 0; the pass criterion is the stated tolerance on the
maximum absolute action error (default 1e-5).
"""

from __future__ import annotations

import numpy as np

from nchl.core.controllers import Controller
from nchl.core.errors import NchlError

TOLERANCE = 1e-5


def ulp_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Largest distance in float32 units in the last place (+0 and -0 are the same number)."""
    def ordered(x: np.ndarray) -> np.ndarray:
        bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.int64)
        return np.where(bits >= 2**31, 2**31 - bits, bits)

    if np.size(a) == 0:
        return 0
    return int(np.abs(ordered(a) - ordered(b)).max())


def _state_errors(py: Controller, c: Controller) -> tuple[float, int]:
    sp, sc = py.state(), c.state()
    if sp.keys() != sc.keys():
        raise NchlError(f"the two controllers keep different state: {sorted(sp)} vs {sorted(sc)}")
    abs_err = max((float(np.abs(np.asarray(sp[k], np.float64) - np.asarray(sc[k], np.float64)).max()) for k in sp),
                  default=0.0)  # a static controller has no state
    ulp = max((ulp_distance(sp[k], sc[k]) for k in sp if np.asarray(sp[k]).dtype == np.float32), default=0)
    return abs_err, ulp


def lockstep(env, py: Controller, c: Controller, seed: int, compare_state: bool = False,
             float_reference: Controller | None = None) -> dict:
    """One episode driven by ``py`` with ``c`` fed the same observations; with ``float_reference``
    (a fixed-point check) also how far ``py``'s actions are from it on those observations."""
    obs, info = env.reset(seed=seed)
    py.reset(seed)
    c.reset(seed)
    if float_reference is not None:
        float_reference.reset(seed)
    x0, steps = float(info["x_position"]), 0
    max_abs, max_ulp, state_abs, state_ulp = 0.0, 0, 0.0, 0
    deviation = []
    while True:
        a, b = py.step(obs), c.step(obs)
        if float_reference is not None:
            deviation.append(float(np.abs(float_reference.step(obs).astype(np.float64) - a).max()))
        max_abs = max(max_abs, float(np.abs(a.astype(np.float64) - b).max()))
        max_ulp = max(max_ulp, ulp_distance(a, b))
        if compare_state:
            sa, su = _state_errors(py, c)
            state_abs, state_ulp = max(state_abs, sa), max(state_ulp, su)
        obs, _, terminated, truncated, info = env.step(a)
        steps += 1
        if terminated or truncated:
            break
    out = {"seed": seed, "steps": steps, "max_abs_error": max_abs, "max_ulp_error": max_ulp,
           "fitness_python": float(info["x_position"]) - x0}
    if compare_state:
        out.update(state_max_abs_error=state_abs, state_max_ulp_error=state_ulp)
    if deviation:
        out.update(float_max_abs_error=max(deviation), float_mean_abs_error=float(np.mean(deviation)))
    return out


def verify(env, py: Controller, c: Controller, seeds: list[int], compare_state: bool = False,
           tolerance: float = TOLERANCE, float_reference: Controller | None = None) -> dict:
    from nchl_sim import rollout

    episodes = []
    for seed in seeds:
        e = lockstep(env, py, c, seed, compare_state, float_reference)
        e["fitness_c"] = rollout(env, c, seed).fitness  # the other backend driving alone
        episodes.append(e)
    worst = max(e["max_abs_error"] for e in episodes)
    return {"episodes": episodes, "max_abs_error": worst, "max_ulp_error": max(e["max_ulp_error"] for e in episodes),
            "tolerance": tolerance,
            "passed": worst <= tolerance and all(e.get("state_max_abs_error", 0.0) <= tolerance for e in episodes)}
