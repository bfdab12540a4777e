"""Laws that relate the rules, checked by hypothesis over random topologies and genomes."""

import numpy as np
from hypothesis import given, settings, strategies as st

from nchl import Spec, make_controller
from nchl.core.controllers import nchl_as_hl
from nchl.core.oracle import NaiveWNcHL
from nchl.core.spec import Spec as _Spec

topologies = st.lists(st.integers(1, 6), min_size=2, max_size=4)
seeds = st.integers(0, 2**32 - 1)


def random_run(spec_layers, seed, steps):
    rng = np.random.default_rng(seed)
    nchl = Spec("nchl", spec_layers)
    genome = rng.uniform(-1, 1, nchl.genome_length)
    obs = rng.uniform(-2, 2, (steps, spec_layers[0]))
    return genome, obs


@settings(max_examples=60, deadline=None)
@given(layers=topologies, seed=seeds, steps=st.integers(1, 12))
def test_nchl_equals_hl_with_neuron_derived_synapse_parameters(layers, seed, steps):
    genome, obs = random_run(layers, seed, steps)
    nchl = make_controller(Spec("nchl", layers), genome, np.float64)
    hl_spec, hl_genome = nchl_as_hl(Spec("nchl", layers), genome)
    hl = make_controller(hl_spec, hl_genome, np.float64)
    for o in obs:
        np.testing.assert_allclose(hl.step(o), nchl.step(o), rtol=1e-9, atol=1e-12)
    for wh, wn in zip(hl.weights, nchl.weights):
        np.testing.assert_allclose(wh, wn, rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(layers=topologies, seed=seeds, steps=st.integers(1, 12), extra=st.integers(0, 3))
def test_wnchl_with_window_at_least_episode_equals_nchl(layers, seed, steps, extra):
    genome, obs = random_run(layers, seed, steps)
    nchl = make_controller(Spec("nchl", layers), genome, np.float64)
    wnchl = make_controller(Spec("wnchl", layers, window=steps + extra), genome, np.float64)
    for o in obs:
        np.testing.assert_allclose(wnchl.step(o), nchl.step(o), rtol=1e-9, atol=1e-12)
        for w_rebuilt, w_stored in zip(wnchl.weights, nchl.weights):
            np.testing.assert_allclose(w_rebuilt, w_stored, rtol=1e-9, atol=1e-12)


@settings(max_examples=80, deadline=None)
@given(layers=topologies, seed=seeds, steps=st.integers(1, 15), window=st.integers(1, 6))
def test_low_rank_wnchl_equals_naive_oracle(layers, seed, steps, window):
    genome, obs = random_run(layers, seed, steps)
    spec = Spec("wnchl", layers, window=window)
    fast = make_controller(spec, genome, np.float64)
    naive = NaiveWNcHL(spec, genome, np.float64)
    for o in obs:
        x = o
        for w in fast.weights:  # the weights rebuilt from the window drive this step's forward pass
            x = np.tanh(x @ w)
        out = fast.step(o)
        np.testing.assert_allclose(out, naive.step(o), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(x, out, rtol=1e-9, atol=1e-12)
    s_fast, s_naive = fast.state(), naive.state()
    for k in s_fast:
        np.testing.assert_allclose(s_fast[k], s_naive[k], rtol=1e-9, atol=1e-12)


# Stated tolerance: float32 follows float64 to within 2e-4 absolute on every action
# over 20 steps with genome values in [-1, 1] and observations in [-2, 2].
F32_TOL = 2e-4


@settings(max_examples=60, deadline=None)
@given(layers=topologies, seed=seeds, rule=st.sampled_from(["hl", "nchl", "wnchl"]), window=st.integers(1, 8))
def test_float32_follows_float64(layers, seed, rule, window):
    rng = np.random.default_rng(seed)
    spec = _Spec(rule, layers, window=window if rule == "wnchl" else None)
    genome = rng.uniform(-1, 1, spec.genome_length)
    obs = rng.uniform(-2, 2, (20, layers[0]))
    c32 = make_controller(spec, genome, np.float32)
    c64 = make_controller(spec, genome, np.float64)
    for o in obs:
        a32, a64 = c32.step(o), c64.step(o)
        assert a32.dtype == np.float32 and a64.dtype == np.float64
        np.testing.assert_allclose(a32, a64, rtol=0, atol=F32_TOL)


@settings(max_examples=40, deadline=None)
@given(layers=topologies, seed=seeds, k=st.integers(0, 8), after=st.integers(1, 6),
       rule=st.sampled_from(["nchl", "wnchl"]))
def test_a_frozen_plastic_controller_is_a_static_one_with_its_weights(layers, seed, k, after, rule):
    """Frozen after k steps, NcHL (and WNcHL, whose window stands for weights) from then on is the static
    network whose genome is those weights: the law that makes 'frozen' and 'static' comparable."""
    genome, obs = random_run(layers, seed, k + after)
    spec = Spec(rule, layers, window=3 if rule == "wnchl" else None, freeze_after=k)
    frozen = make_controller(spec, genome, np.float64)
    for o in obs[:k]:
        frozen.step(o)
    weights = np.concatenate([w.ravel() for w in frozen.weights])
    static = make_controller(Spec("static", layers), weights, np.float64)
    for o in obs[k:]:
        np.testing.assert_allclose(static.step(o), frozen.step(o), rtol=1e-9, atol=1e-12)
