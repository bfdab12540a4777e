"""The perturbation catalogue: deterministic under its seed, the identity at strength 0, exact delays."""

import dataclasses

import numpy as np
import pytest

from nchl.core.errors import NchlError
from nchl_sim import get_task
from nchl_sim.perturb import CATALOGUE, condition, default_strength, struck_parts

STEPS = 60


def actions(n_act, steps=STEPS, seed=0):
    """An open-loop command sequence: the physics then depends on the perturbation alone."""
    return np.random.default_rng(seed).uniform(-1, 1, (steps, n_act))


def trajectory(task, conditions=(), seed=3, steps=STEPS, repeat=1):
    env = task.make_env(conditions=conditions)
    obs, info = env.reset(seed=seed)
    seen, xs = [obs], []
    for a in actions(env.action_space.shape[0], steps):
        for _ in range(repeat):
            obs, _, terminated, truncated, info = env.step(a)
            seen.append(obs)
            xs.append(info["x_position"])
    env.close()
    return np.array(seen), np.array(xs)


@pytest.mark.parametrize("task_name", ["ant", "vsr-low"])
def test_every_condition_is_deterministic_and_the_identity_at_zero(task_name):
    task = get_task(task_name)
    substeps = task.timing[0]
    for name, kind in CATALOGUE.items():
        if kind.needs is not None and kind.needs not in task.parts:
            continue
        c = condition(name, default_strength(name, substeps))
        steps = 250 if name == "push" else STEPS  # the first push of seed 3 comes after 4.3 s
        intact = trajectory(task, steps=steps)
        a, b = trajectory(task, [c], steps=steps), trajectory(task, [c], steps=steps)
        np.testing.assert_array_equal(a[0], b[0], err_msg=name)
        np.testing.assert_array_equal(a[1], b[1], err_msg=name)
        changed = not (np.array_equal(a[0], intact[0]) and np.array_equal(a[1], intact[1]))
        assert changed, f"{name} at its default strength changed nothing"
        zero = trajectory(task, [condition(name, 0)], steps=steps)
        assert all(np.array_equal(z, i) for z, i in zip(zero, intact)), name
    other_seed = trajectory(task, [condition("obs-noise", 0.05)], seed=4)[0]
    assert not np.array_equal(other_seed, trajectory(task, [condition("obs-noise", 0.05)])[0])


@pytest.mark.parametrize("task_name, substeps", [("ant", 5), ("vsr-low", 20)])
@pytest.mark.parametrize("delay", [1, 3, 7])
def test_latency_shows_the_observation_of_exactly_that_many_substeps_ago(task_name, substeps, delay):
    """The same open-loop commands in a copy of the task with one physics sub-step per control step:
    the delayed observation at control step t is that copy's observation at sub-step substeps*t - delay."""
    task = get_task(task_name)
    fine = dataclasses.replace(task, kwargs={**task.kwargs, ("frame_skip" if task_name == "ant" else "substeps"): 1},
                               episode_steps=task.episode_steps * substeps)
    reference, _ = trajectory(fine, repeat=substeps)
    delayed, _ = trajectory(task, [condition("latency", delay)])
    for t in range(1, STEPS + 1):
        np.testing.assert_array_equal(delayed[t], reference[max(0, substeps * t - delay)], err_msg=f"step {t}")


def test_action_delay_applies_the_command_of_that_many_substeps_ago():
    task = get_task("ant")
    fine = dataclasses.replace(task, kwargs={**task.kwargs, "frame_skip": 1}, episode_steps=5000)
    delay = 3
    commands = np.repeat(actions(8), 5, axis=0)
    shifted = np.vstack([np.zeros((delay, 8)), commands[:-delay]])
    env = fine.make_env()
    env.reset(seed=3)
    reference = [env.step(a)[0] for a in shifted]
    env.close()
    delayed, _ = trajectory(task, [condition("action-delay", delay)])
    np.testing.assert_array_equal(delayed[1:], np.array(reference)[4::5])


@pytest.mark.parametrize("name, strength", [("leg-damage", 1.0), ("mass", 0.2), ("latency", 5), ("obs-noise", 0.1)])
def test_an_event_changes_nothing_before_its_onset_and_the_body_is_restored(name, strength):
    """Onset 30: the controller's inputs from control step 30 on (obs[30]: what step 29 returns) and the
    physics from step 30 on are perturbed, nothing before."""
    task = get_task("ant")
    intact, _ = trajectory(task)
    env = task.make_env(conditions=[condition(name, strength, onset=30)])
    for episode in range(2):  # the second episode starts on a restored body
        obs = [env.reset(seed=3)[0]]
        obs += [env.step(a)[0] for a in actions(8)]
        obs = np.array(obs)
        np.testing.assert_array_equal(obs[:30], intact[:30])
        assert not np.array_equal(obs[30:], intact[30:])
    env.close()


@pytest.mark.parametrize("args, match", [
    (("gravity", 1.0), "unknown condition 'gravity'; choose from obs-noise"),
    (("obs-noise", -0.1), r"strength must be in \[0, 10\]"),
    (("latency", 2.5), "must be a whole number"),
    (("dead-motor", 1.5), r"strength must be in \[0, 1\]"),
    (("mass", float("nan")), "strength must be a finite number"),
    (("mass", 0.2, -1), "onset must be a control step >= 0"),
])
def test_bad_conditions_are_clear_errors(args, match):
    with pytest.raises(NchlError, match=match):
        condition(*args)


def test_conditions_that_do_not_fit_the_task_are_clear_errors():
    with pytest.raises(NchlError, match="leg-damage applies to a task with feet"):
        get_task("vsr-low").make_env(conditions=[condition("leg-damage", 0.5)])
    with pytest.raises(NchlError, match="quantize needs a bounded observation space"):
        get_task("ant-v5-strict").make_env(conditions=[condition("quantize", 8)])
    with pytest.raises(NchlError, match="appears twice"):
        get_task("ant").make_env(conditions=[condition("mass", 0.1), condition("mass", 0.2)])


def test_randomization_draws_from_the_episode_seed_within_its_ranges():
    from nchl_sim.perturb import Randomization

    r = Randomization.of({"latency": [0, 5], "obs-noise": [0.01, 0.05], "dead-motor": [1, 1]}, p=0.5)
    draws = [r.draw(s) for s in range(200)]
    assert draws[:20] == [r.draw(s) for s in range(20)]
    on = {n: [c.strength for d in draws for c in d if c.name == n] for n in ("latency", "obs-noise", "dead-motor")}
    for n, strengths in on.items():
        assert 70 < len(strengths) < 130  # each condition on in about half of the episodes
    assert set(on["latency"]) == {0, 1, 2, 3, 4, 5} and set(on["dead-motor"]) == {1.0}
    assert all(0.01 <= s <= 0.05 for s in on["obs-noise"])


@pytest.mark.parametrize("ranges, p, match", [
    ({"latency": [0, 2.5]}, 1.0, "must be a whole number"),
    ({"mass": [0.5, 0.1]}, 1.0, "low 0.5 is above high 0.1"),
    ({"mass": 0.5}, 1.0, r"give \[low, high\]"),
    ({"wind": [0, 1]}, 1.0, "unknown condition 'wind'"),
    ({"mass": [0, 0.2]}, 0.0, r"randomize_p must be a probability in \(0, 1\]"),
])
def test_bad_randomization_is_a_clear_error(ranges, p, match):
    from nchl_sim.perturb import Randomization

    with pytest.raises(NchlError, match=match):
        Randomization.of(ranges, p)


def test_the_struck_part_is_drawn_from_the_episode_seed_and_named():
    ant = get_task("ant")
    env = ant.make_env(conditions=(condition("dead-motor", 1.0), condition("leg-damage", 0.5)))
    parts = []
    for seed in range(40):
        env.reset(seed=seed)
        parts.append(struck_parts(env))
    env.reset(seed=7)
    assert struck_parts(env) == parts[7]  # a function of the seed
    motors = {p["dead-motor"] for p in parts}
    assert motors == {f"{j}_{k}" for j in ("hip", "ankle") for k in (1, 2, 3, 4)}  # the Ant's joints, all drawn
    assert {p["leg-damage"] for p in parts} == {"left_ankle_geom", "right_ankle_geom", "third_ankle_geom",
                                                 "fourth_ankle_geom"}
    env = get_task("vsr-low").make_env(conditions=(condition("dead-motor", 0.5),))
    env.reset(seed=0)
    assert list(struck_parts(env)) == ["dead-motor"] and struck_parts(env)["dead-motor"].startswith("action ")
    intact = ant.make_env()
    intact.reset(seed=0)
    assert struck_parts(intact) == {}
