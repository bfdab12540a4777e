"""Tasks: VSR physics sanity, Gymnasium conformance, registry, rollouts."""

import json
import warnings
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import nchl_sim
from nchl import Genome, NchlError, Spec, make_controller
from nchl_sim import get_task, load_trace, rollout, save_trace
from nchl_sim.vsr import VSR_V0_PARAMS, BodyError, VSRParams, parse_body
from nchl_sim.vsr_env import VSRWalkerEnv


def run(env, actions):
    for a in actions:
        _, _, terminated, _, info = env.step(a)
        assert not terminated, info
    return env


def weightless(env):
    env.model.opt.gravity[:] = 0.0
    return env


def test_zero_control_settles_at_rest_areas():
    """Without gravity every voxel keeps its rest area; standing, the soft (8 Hz) links sag a little."""
    env = weightless(VSRWalkerEnv())
    env.reset(seed=0)
    run(env, [np.zeros(10)] * 150)
    np.testing.assert_allclose(env.voxel_areas() / 0.2**2, 1.0, atol=1e-3)
    env = VSRWalkerEnv()
    env.reset(seed=0)
    run(env, [np.zeros(10)] * 150)
    np.testing.assert_allclose(env.voxel_areas() / 0.2**2, 1.0, atol=0.06)
    assert np.abs(env.data.qvel).max() < 1e-3
    assert env.positions()[:, 1].min() > 0  # standing on the ground, not through it


@pytest.mark.parametrize("u", [1.0, -1.0])
def test_full_actuation_scales_areas_by_configured_amount(u):
    a = VSRParams().actuation
    env = weightless(VSRWalkerEnv())
    env.reset(seed=0)
    run(env, [np.full(10, u)] * 150)
    np.testing.assert_allclose(env.voxel_areas() / 0.2**2, (1 + a * u) ** 2, rtol=1e-3)


def test_actuation_lag_delays_the_rest_length_by_its_time_constant():
    """A first-order lag: a step command reaches 1 - 1/e of its effect after one time constant."""
    a, tau = VSRParams().actuation, 0.1
    env = weightless(VSRWalkerEnv(params=VSRParams(actuation_lag=tau)))
    env.reset(seed=0)
    run(env, [np.ones(10)] * round(tau / env.dt))
    np.testing.assert_allclose(env.data.act, 1 - np.exp(-1), rtol=1e-6)
    grown = env.voxel_areas() / 0.2**2 - 1
    assert ((0.3 < grown / ((1 + a) ** 2 - 1)) & (grown / ((1 + a) ** 2 - 1) < 0.9)).all()


@pytest.mark.parametrize("terrain", ["flat", "uneven"])
def test_random_controls_for_a_full_episode_stay_bounded(terrain):
    env = VSRWalkerEnv(terrain=terrain)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    masses = env.model.body_mass[1:]
    for _ in range(1000):
        obs, _, terminated, _, info = env.step(rng.uniform(-1, 1, 10))
        assert not terminated, info
        assert np.isfinite(env.data.qpos).all() and np.isfinite(obs).all()
        kinetic = 0.5 * np.sum(masses * env.data.qvel.reshape(-1, 2).T ** 2)
        assert kinetic < 5.0  # J; the body weighs under 1 kg
    z = env.positions()[:, 1]
    assert z.min() > -0.05 and z.max() < 2.0


def sine_gait(env, steps, freq=3.0, phase=-np.pi / 2):
    cols = env.vsr.voxels[:, 1]
    return [np.sin(2 * np.pi * freq * t * env.dt - phase * cols) for t in range(steps)]


def test_open_loop_sine_gait_walks_forward():
    env = VSRWalkerEnv()
    _, info = env.reset(seed=0)
    run(env, sine_gait(env, 500))
    assert env.com_x() - info["x_position"] > 0.5  # metres in 10 s


def test_timestep_keeps_the_control_period_and_bad_steps_are_refused():
    base = VSRWalkerEnv()
    for dt, substeps in ((0.001, 20), (0.0005, 40), (0.002, 10), (0.00025, 80)):
        env = gym.make("nchl/VSRWalker-v1", timestep=dt)
        assert env.unwrapped.model.opt.timestep == pytest.approx(dt)
        assert env.unwrapped.substeps == substeps and env.unwrapped.dt == pytest.approx(base.dt)
        env.reset(seed=0)
        _, _, terminated, _, _ = env.step(np.zeros(10, np.float32))
        assert not terminated
        env.close()
    rk4 = VSRWalkerEnv(timestep=0.001, params=VSRParams(integrator="rk4"))
    assert rk4.model.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4 and rk4.substeps == 20
    for bad, match in ((0.003, "does not divide the control period"), (0, "timestep must be a number"),
                       (-1e-3, "timestep must be a number"), ("1ms", "timestep must be a number")):
        with pytest.raises(NchlError, match=match):
            VSRWalkerEnv(timestep=bad)
    with pytest.raises(NchlError, match="unknown integrator 'verlet'"):
        VSRWalkerEnv(params=VSRParams(integrator="verlet"))
    with pytest.raises(NchlError, match="timestep 0.003 s does not divide the control period 0.02 s"):
        VSRWalkerEnv(params=VSRParams(timestep=0.003))  # the physics step alone must still fit 20 ms


def test_v0_is_the_stiff_model_at_2_ms_and_says_it_is_out_of_date():
    with pytest.warns(DeprecationWarning, match="out of date"):
        env = gym.make("nchl/VSRWalker-v0")
    u = env.unwrapped
    assert u.vsr.params == VSR_V0_PARAMS and u.substeps == 10 and u.dt == pytest.approx(0.02)
    assert u.model.actuator_biasprm[0, 1] == -600.0 and u.model.actuator_biasprm[0, 2] == -10.0

@pytest.mark.parametrize("body, match", [
    ([], "empty"),
    (["#.#"], "4-connected"),
    (["##", "#"], "rectangular"),
    (["..", ".."], "no voxel"),
    (["#x"], "only use"),
    ("##", "not a single string"),
    ([[2, 0]], "booleans or 0/1"),
])
def test_bad_bodies(body, match):
    with pytest.raises(BodyError, match=match):
        parse_body(body)


def test_any_connected_grid_builds():
    env = VSRWalkerEnv(body=[[1, 1, 1], [0, 1, 0]], sensors="medium")
    assert env.action_space.shape == (4,)
    assert env.observation_space.shape == (4 * 2 + 3 * 2,)


@pytest.mark.parametrize("name, obs, act", [
    ("ant", 27, 8), ("ant-contacts", 105, 8), ("ant-v5-strict", 27, 8), ("ant-contacts-v5-strict", 105, 8),
    ("vsr-high", 50, 10), ("vsr-medium", 28, 10), ("vsr-low", 12, 10), ("vsr-high-uneven", 50, 10)])
def test_registry_sizes(name, obs, act):
    assert get_task(name).sizes == (obs, act)


def test_unknown_task_lists_choices():
    with pytest.raises(NchlError, match="unknown task 'walker'.*ant, ant-contacts"):
        get_task("walker")
    with pytest.raises(NchlError, match="unknown sensor configuration"):
        VSRWalkerEnv(sensors="ultra")
    with pytest.raises(NchlError, match="unknown terrain"):
        VSRWalkerEnv(terrain="ice")


@pytest.mark.parametrize("name", ["ant", "vsr-high", "vsr-medium", "vsr-low", "vsr-high-uneven"])
def test_check_env_passes(name):
    env = get_task(name).make_env()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")  # Ant's own unbounded Box
        check_env(env.unwrapped, skip_render_check=True)


def test_registered_gymnasium_id():
    env = gym.make("nchl/VSRWalker-v1", sensors="low")
    assert env.observation_space.shape == (12,)
    assert env.spec.max_episode_steps == 1000


@pytest.mark.parametrize("name", ["ant", "vsr-high"])
def test_rollouts_are_deterministic_and_record_traces(name):
    task = get_task(name)
    spec = Spec("nchl", task.topology())
    c = make_controller(spec, np.random.default_rng(3).uniform(-1, 1, spec.genome_length))
    env = task.make_env(early_stop=True)
    a = rollout(env, c, seed=5, record=True)
    b = rollout(env, c, seed=5, record=True)
    assert a.as_dict() == b.as_dict()
    np.testing.assert_array_equal(a.obs, b.obs)
    assert a.obs.shape == (a.steps, task.sizes[0]) and a.actions.shape == (a.steps, task.sizes[1])
    # replaying the recorded observations reproduces the recorded actions
    c.reset(5)
    np.testing.assert_array_equal(np.array([c.step(o) for o in a.obs]), a.actions)


ARCHIVE = Path(__file__).resolve().parent.parent / "experiments" / "archive" / "paper-small-vsr"


@pytest.mark.parametrize("cell", ["vsr-high-wnchl-m2-s0", "vsr-low-wnchl-m10-s0"])
def test_archived_vsr_champions_walk_their_recorded_distance_on_any_machine(cell):
    """Two forking gaits, scored on machines without and with AVX-512: when np.linalg.norm (OpenBLAS,
    whose kernel depends on the CPU) built the rest lengths, their last bits, and these distances
    (23.67 vs 9.47 m; 17.68 vs 21.53 m), depended on the machine."""
    genome = Genome.load(ARCHIVE / cell / "best.npz")
    recorded = json.loads((ARCHIVE / cell / "evaluation.json").read_text())
    env = get_task(recorded["task"]).make_env()
    distance = rollout(env, make_controller(genome.spec, genome.values), seed=0).fitness
    assert distance == pytest.approx(recorded["median"], rel=1e-12)


def test_traces_round_trip_and_bad_traces_are_refused(tmp_path):
    task = get_task("vsr-low")
    spec = Spec("nchl", task.topology())
    c = make_controller(spec, np.random.default_rng(3).uniform(-1, 1, spec.genome_length))
    r = rollout(task.make_env(), c, seed=2, record=True)
    save_trace(tmp_path / "t.npz", r, {"seed": 2})
    np.testing.assert_array_equal(load_trace(tmp_path / "t.npz", task.sizes[0]), r.obs)
    with pytest.raises(NchlError, match="do not fit a controller with 7 inputs"):
        load_trace(tmp_path / "t.npz", 7)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(NchlError, match="not a trace written by nchl evaluate --trace"):
        load_trace(tmp_path / "bad.npz", task.sizes[0])
    with pytest.raises(NchlError, match="not recorded"):
        save_trace(tmp_path / "u.npz", rollout(task.make_env(), c, seed=2), {})


def test_ant_seeds_differ():
    task = get_task("ant")
    spec = Spec("nchl", task.topology())
    c = make_controller(spec, np.random.default_rng(3).uniform(-1, 1, spec.genome_length))
    env = task.make_env()
    assert rollout(env, c, seed=1).fitness != rollout(env, c, seed=2).fitness


class Backwards:
    """A controller that walks the VSR backwards with a sine gait."""

    def __init__(self, env):
        self.env = env

    def reset(self, seed):
        self.t = 0

    def step(self, obs):
        cols = self.env.unwrapped.vsr.voxels[:, 1]
        self.t += 1
        return np.sin(2 * np.pi * 3.0 * self.t * self.env.unwrapped.dt - np.pi / 2 * cols)  # phase reversed


def test_early_stop_after_200_steps_of_which_30_backwards():
    env = get_task("vsr-high").make_env(early_stop=True)
    r = rollout(env, Backwards(env), seed=0)
    assert r.reason == "no_progress" and 200 < r.steps < 1000 and r.fitness < 0
    r_full = rollout(get_task("vsr-high").make_env(), Backwards(env), seed=0)
    assert r_full.reason == "time_limit" and r_full.steps == 1000


class ScriptedX(gym.Env):
    """Reports a scripted x position per step, to pin the early-stop rule exactly."""

    observation_space = gym.spaces.Box(-1, 1, (1,))
    action_space = gym.spaces.Box(-1, 1, (1,))

    def __init__(self, xs):
        self.xs = xs

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros(1, np.float32), {"x_position": 0.0}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), 0.0, False, self.t == len(self.xs), {"x_position": self.xs[self.t - 1]}


def forward_then_back(back_from):
    return [t if t < back_from else 2 * back_from - t for t in range(1, 1001)]


@pytest.mark.parametrize("xs, expect_stop_at", [
    (forward_then_back(100), 201),   # the streak began before step 200: stop as soon as allowed
    (forward_then_back(190), 220),
    (forward_then_back(250), 280),
    ([-(t % 30) - t // 30 * 0.1 for t in range(1, 1001)], None),  # 29 steps back, 1 forward: never 30
])
def test_no_progress_rule(xs, expect_stop_at):
    env = nchl_sim.NoProgressStop(ScriptedX(xs))
    env.reset()
    for t in range(1, 1001):
        *_, truncated, info = env.step(np.zeros(1))
        if truncated:
            break
    if expect_stop_at is None:
        assert t == 1000 and "no_progress" not in info
    else:
        assert (t, info.get("no_progress")) == (expect_stop_at, True)


def _ant_at_height(name, z):
    """Place the task's Ant torso at height ``z``: would its health check end the episode?"""
    env = get_task(name).make_env()
    env.reset(seed=0)
    ant = env.unwrapped
    qpos = ant.data.qpos.copy()
    qpos[2] = z
    ant.set_state(qpos, ant.data.qvel.copy())
    return not ant.is_healthy


@pytest.mark.parametrize("name", ["ant", "ant-contacts"])
def test_ant_ends_only_when_the_torso_falls(name):
    """The authors' semantics: no upper bound on the torso height, a floor at 0.26 m."""
    assert not _ant_at_height(name, 1.6)   # Gymnasium's default check would end this
    assert not _ant_at_height(name, 0.6)
    assert _ant_at_height(name, 0.25)      # the 0.25 m torso sphere lies on the ground
    assert not _ant_at_height(name + "-v5-strict" if name == "ant" else "ant-contacts-v5-strict", 0.6)
    assert _ant_at_height("ant-v5-strict" if name == "ant" else "ant-contacts-v5-strict", 1.6)


def test_random_nchl_genomes_are_not_cut_short_on_ant():
    """Random plastic controllers bounce above 1 m within a few dozen steps; that no longer ends them."""
    task, strict = get_task("ant"), get_task("ant-v5-strict")
    spec = Spec("nchl", task.topology())
    envs = task.make_env(early_stop=True), strict.make_env(early_stop=True)
    steps = np.zeros((2, 4))
    for k in range(4):
        c = make_controller(spec, np.random.default_rng([7, k]).uniform(-1, 1, spec.genome_length))
        steps[:, k] = [rollout(env, c, seed=k).steps for env in envs]
    assert steps[0].mean() > 2 * steps[1].mean() and steps[0].mean() > 60


@pytest.mark.parametrize("name, strict", [("ant", "ant-v5-strict"), ("ant-contacts", "ant-contacts-v5-strict")])
def test_ant_observations_are_scaled_like_the_authors(name, strict):
    """Gymnasium's observation with torso velocity x0.3, angular and joint speeds x0.1, clipped to +-5."""
    a, b = get_task(name).make_env(), get_task(strict).make_env()
    scale = np.ones(b.observation_space.shape[0])
    scale[13:16], scale[16:27] = 0.3, 0.1
    oa, _ = a.reset(seed=4)
    ob, _ = b.reset(seed=4)
    np.testing.assert_array_equal(oa, np.clip(ob * scale, -5, 5))
    action = np.ones(8)
    for _ in range(15):  # a violent action drives raw joint speeds past the clip
        oa = a.step(action)[0]
        ob = b.step(action)[0]
        np.testing.assert_array_equal(oa, np.clip(ob * scale, -5, 5))
    assert a.observation_space.low.min() == -5 and np.isinf(b.observation_space.high).all()
