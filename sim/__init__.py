"""Locomotion tasks for nchl: MuJoCo Ant and a MuJoCo voxel-based soft robot walker.

Importing this package registers the Gymnasium ids ``nchl/VSRWalker-v1`` (the VSR model whose gaits
do not depend on the physics step) and ``nchl/VSRWalker-v0`` (the stiffer model before it, kept to
reproduce earlier results).
"""

import gymnasium as gym

from .rollout import RolloutResult, load_trace, rollout, save_trace
from .tasks import ROBOT_ID, TASKS, VSR_ID, VSR_V0_ID, ModelChanged, NoProgressStop, Task, UnknownTask, get_task, task_for_genome
from .vsr import VSR_V0_PARAMS

if VSR_ID not in gym.registry:
    gym.register(VSR_ID, entry_point="nchl_sim.vsr_env:VSRWalkerEnv", max_episode_steps=1000)
    gym.register(ROBOT_ID, entry_point="nchl_sim.robot:RobotEnv", max_episode_steps=1000)
    gym.register(VSR_V0_ID, entry_point="nchl_sim.vsr_env:VSRWalkerEnv", max_episode_steps=1000,
                 kwargs={"params": VSR_V0_PARAMS})

__all__ = ["TASKS", "ModelChanged", "NoProgressStop", "RolloutResult", "Task", "UnknownTask", "get_task", "load_trace",
           "rollout", "save_trace", "task_for_genome"]
