"""One episode of a controller in a task environment."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from nchl.core.controllers import Controller
from nchl.core.errors import NchlError


@dataclass
class RolloutResult:
    fitness: float          # distance travelled forward (x_position at the end minus at reset)
    env_return: float       # the environment's own return
    steps: int
    reason: str             # time_limit | terminated | no_progress | unstable
    obs: np.ndarray | None = None      # (steps, n_in) observations given to the controller
    actions: np.ndarray | None = None  # (steps, n_out) actions it returned
    x: np.ndarray | None = None        # (steps,) forward position after each step

    def as_dict(self) -> dict:
        return {"fitness": self.fitness, "env_return": self.env_return, "steps": self.steps, "reason": self.reason}


def rollout(env: gym.Env, controller: Controller, seed: int, record: bool = False) -> RolloutResult:
    """Run one episode; ``seed`` seeds both the environment and the controller's reset.

    With ``record``, the observation/action trace (and the forward position after every step)
    is kept for C and firmware replay and for behaviour statistics.
    """
    obs, info = env.reset(seed=seed)
    controller.reset(seed)
    x0 = float(info["x_position"])
    total, steps = 0.0, 0
    trace_obs, trace_act, trace_x = [], [], []
    while True:
        action = controller.step(obs)
        if record:
            trace_obs.append(np.array(obs, dtype=np.float64))
            trace_act.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        steps += 1
        if record:
            trace_x.append(float(info["x_position"]))
        if terminated or truncated:
            break
    if terminated:
        reason = "unstable" if info.get("unstable") else "terminated"
    else:
        reason = "no_progress" if info.get("no_progress") else "time_limit"
    result = RolloutResult(float(info["x_position"]) - x0, total, steps, reason)
    if record:
        result.obs, result.actions, result.x = np.array(trace_obs), np.array(trace_act), np.array(trace_x)
    return result


def save_trace(path: str | Path, result: RolloutResult, metadata: dict) -> None:
    """Write a recorded episode: its observations and actions, and ``metadata`` as JSON (what ran,
    on which seed), so that ``nchl emulate --trace`` can replay the very same inputs on a chip."""
    if result.obs is None:
        raise NchlError("this rollout was not recorded: run it with record=True")
    np.savez(path, obs=result.obs, actions=result.actions, metadata=np.array(json.dumps(metadata)))


def load_trace(path: str | Path, n_in: int) -> np.ndarray:
    """The observations of a trace written by :func:`save_trace`, checked against ``n_in`` inputs."""
    try:
        with np.load(path, allow_pickle=False) as t:
            obs = t["obs"]
    except (OSError, ValueError, KeyError) as e:
        raise NchlError(f"{path}: not a trace written by nchl evaluate --trace: {e}") from None
    if obs.ndim != 2 or obs.shape[1] != n_in:
        raise NchlError(f"{path}: observations of shape {obs.shape} do not fit a controller with {n_in} inputs")
    return obs
