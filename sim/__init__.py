"""Locomotion tasks for nchl: MuJoCo Ant and a MuJoCo voxel-based soft robot walker.

Importing this package registers the Gymnasium id ``nchl/VSRWalker-v0``.
"""

import gymnasium as gym

from .rollout import RolloutResult, load_trace, rollout, save_trace
from .tasks import TASKS, VSR_ID, NoProgressStop, Task, UnknownTask, get_task

if VSR_ID not in gym.registry:
    gym.register(VSR_ID, entry_point="nchl_sim.vsr_env:VSRWalkerEnv", max_episode_steps=1000)

__all__ = ["TASKS", "NoProgressStop", "RolloutResult", "Task", "UnknownTask", "get_task", "load_trace", "rollout", "save_trace"]
