"""Issue 21: an evolved VSR gait does not depend on the physics step (control period fixed)."""

import gymnasium as gym
import pytest

import nchl_sim  # noqa: F401  (registers nchl/VSRWalker-v1)
from nchl import Genome
from nchl.zoo import names

TOLERANCE = 0.05  # relative distance, task's step vs a quarter of it
VSR_CHAMPIONS = [n for n in names() if Genome.load(f"zoo:{n}").task.startswith("vsr")]


def distance(genome: Genome, timestep: float, steps: int) -> float:
    env = gym.make("nchl/VSRWalker-v1", timestep=timestep, **nchl_sim.get_task(genome.task).kwargs)
    controller = genome.controller()
    obs, info = env.reset(seed=0)
    controller.reset(0)
    x0 = info["x_position"]
    for _ in range(steps):
        obs, _, terminated, _, info = env.step(controller.step(obs))
        assert not terminated
    env.close()
    return info["x_position"] - x0


def test_the_vsr_champion_walks_as_far_at_a_quarter_of_the_physics_step():
    """A short version (5 s) of the benchmark's criterion, on the shipped VSR champion."""
    genome = Genome.load("zoo:vsr-high-nchl")
    coarse, fine = distance(genome, 0.001, 250), distance(genome, 0.00025, 250)
    assert fine > 1.0  # it walks: a relative criterion on a gait that stands still means nothing
    assert abs(coarse - fine) <= TOLERANCE * abs(fine), (coarse, fine)


@pytest.mark.slow
@pytest.mark.parametrize("name", VSR_CHAMPIONS)
def test_every_vsr_champion_walks_as_far_at_a_quarter_of_the_physics_step_for_a_whole_episode(name):
    genome = Genome.load(f"zoo:{name}")
    coarse, fine = distance(genome, 0.001, 1000), distance(genome, 0.00025, 1000)
    assert abs(coarse - fine) <= TOLERANCE * abs(fine), (coarse, fine)
