"""Issue 21: an evolved VSR gait does not depend on the physics step (control period fixed)."""

import dataclasses

import pytest
from nchl_sim import get_task, rollout
from nchl_sim.tasks import VSR_ID

from nchl import Genome
from nchl.core.zoo import names

TOLERANCE = 0.05  # relative distance, task's step vs a quarter of it
VSR_CHAMPIONS = [n for n in names() if get_task(Genome.load(f"zoo:{n}").task).env_id == VSR_ID]


def distance(genome: Genome, timestep: float, steps: int) -> float:
    task = get_task(genome.task)
    task = dataclasses.replace(task, kwargs={**task.kwargs, "timestep": timestep}, episode_steps=steps)
    r = rollout(task.make_env(), genome.controller(), seed=0)
    assert r.reason == "time_limit" and r.steps == steps
    return r.fitness


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
