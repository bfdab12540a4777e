"""Topology, spec, controller surface and bad input."""

import numpy as np
import pytest

from nchl import (Genome, GenomeError, NonFiniteObservation, NchlError, Spec, SpecError, Topology,
                  TopologyError, make_controller)
from nchl.core.memory import compare
from nchl.core.prng import uniform_weights


def test_paper_parameter_counts():
    assert Spec("hl", [28, 128, 64, 8]).genome_length == 61_440
    assert Spec("nchl", [28, 128, 64, 8]).genome_length == 1_104
    assert Spec("wnchl", [28, 128, 64, 8], window=3).genome_length == 1_104


def test_memory_model_for_ant_network():
    hl, nchl, wnchl, static = compare(Topology((27, 128, 64, 8)), window=10)
    assert (static.params_bytes, static.state_bytes) == (4 * 12_160, 0)
    assert (hl.params_bytes, hl.state_bytes) == (4 * 5 * 12_160, 4 * 12_160)
    assert (nchl.params_bytes, nchl.state_bytes) == (4 * (5 * 227 - 27 - 8), 4 * 12_160)
    assert wnchl.state_bytes == 4 * 10 * 227 + 8
    assert wnchl.work_bytes == 4 * 2 * 128


@pytest.mark.parametrize("layers", [[], [3], [3, 0, 2], [3, -1], [2.5, 3], ["a", 2], [True, 2]])
def test_invalid_topologies(layers):
    with pytest.raises(TopologyError):
        Topology.of(layers)


def test_topology_from_string():
    assert Topology.of("27, 128,64,8").layers == (27, 128, 64, 8)
    with pytest.raises(TopologyError, match="27,128"):
        Topology.of("27;128")


@pytest.mark.parametrize("kwargs, match", [
    (dict(rule="xyz"), "unknown rule"),
    (dict(rule="wnchl"), "window m >= 1"),
    (dict(rule="wnchl", window=0), "window m >= 1"),
    (dict(rule="wnchl", window=2.0), "window m >= 1"),
    (dict(rule="nchl", window=3), "only applies"),
    (dict(rule="wnchl", window=3, init_range=0.1), "init_range must be 0"),
    (dict(rule="wnchl", window=3, clip=1.0), "nothing to clip"),
    (dict(rule="hl", init_range=-1.0), "init_range"),
    (dict(rule="hl", init_range=float("nan")), "init_range"),
    (dict(rule="nchl", clip=0.0), "clip"),
])
def test_invalid_specs(kwargs, match):
    with pytest.raises(SpecError, match=match):
        Spec(topology=[2, 2], **kwargs)


def test_wrong_genome_length_names_expected_length_and_layout():
    with pytest.raises(GenomeError, match=r"22 values, eta\[5\] A\[4\] B\[3\] C\[5\] D\[5\]"):
        make_controller(Spec("nchl", [2, 2, 1]), np.zeros(21))
    with pytest.raises(GenomeError, match=r"5W = 5\*6 = 30"):
        make_controller(Spec("hl", [2, 2, 1]), np.zeros(31))
    with pytest.raises(GenomeError, match="1-D"):
        make_controller(Spec("nchl", [2, 2, 1]), np.zeros((22, 1)))
    with pytest.raises(GenomeError, match="non-finite"):
        make_controller(Spec("nchl", [2, 2, 1]), np.r_[np.zeros(21), np.nan])


@pytest.mark.parametrize("rule", ["hl", "nchl", "wnchl"])
def test_non_finite_observation_raises_and_leaves_state_untouched(rule):
    spec = Spec(rule, [3, 4, 2], window=2 if rule == "wnchl" else None)
    c = make_controller(spec, np.random.default_rng(0).uniform(-1, 1, spec.genome_length))
    for _ in range(3):
        c.step([0.1, -0.2, 0.3])
    before = c.state()
    for bad in ([np.nan, 0, 0], [0, np.inf, 0], [0, 0, 1e39]):  # 1e39 overflows float32
        with pytest.raises(NonFiniteObservation, match="state is unchanged"):
            c.step(bad)
        after = c.state()
        for k in before:
            np.testing.assert_array_equal(after[k], before[k])
    with pytest.raises(NchlError, match=r"shape \(3,\)"):
        c.step([0.0, 0.0])


@pytest.mark.parametrize("rule", ["hl", "nchl", "wnchl"])
def test_state_round_trip_continues_identically(rule):
    spec = Spec(rule, [3, 4, 2], window=3 if rule == "wnchl" else None)
    g = np.random.default_rng(1).uniform(-1, 1, spec.genome_length)
    a, b = make_controller(spec, g), make_controller(spec, g)
    obs = np.random.default_rng(2).uniform(-1, 1, (8, 3))
    for o in obs[:5]:
        a.step(o)
    b.set_state(a.state())
    for o in obs[5:]:
        np.testing.assert_array_equal(a.step(o), b.step(o))
    with pytest.raises(NchlError, match="keys"):
        b.set_state({})


def test_uniform_init_is_reproducible_and_bounded():
    spec = Spec("nchl", [3, 5, 2], init_range=0.25)
    c = make_controller(spec, np.zeros(spec.genome_length))
    c.reset(7)
    w7 = [w.copy() for w in c.weights]
    c.reset(8)
    assert not np.array_equal(w7[0], c.weights[0])
    c.reset(7)
    for a, b in zip(w7, c.weights):
        np.testing.assert_array_equal(a, b)
    flat = np.concatenate([w.ravel() for w in w7])
    assert flat.dtype == np.float32 and np.all(flat >= -0.25) and np.all(flat < 0.25)
    np.testing.assert_array_equal(flat, uniform_weights(7, 25, 0.25, np.dtype(np.float32)))


def test_prng_known_values():
    # Pinned values: C and ONNX backends must reproduce these bits.
    w = uniform_weights(1, 4, 0.1, np.dtype(np.float32))
    assert [float(v).hex() for v in w] == [
        "0x1.282ec40000000p-4", "-0x1.9755d60000000p-4", "0x1.0edc360000000p-4", "-0x1.667f4e0000000p-6"]
    with pytest.raises(NchlError):
        uniform_weights(-1, 4, 0.1, np.dtype(np.float32))
    with pytest.raises(NchlError):
        uniform_weights(2**32, 4, 0.1, np.dtype(np.float32))


@pytest.mark.parametrize("clip", [0.05])
def test_clip_bounds_weights(clip):
    spec = Spec("hl", [2, 3, 1], clip=clip)
    c = make_controller(spec, np.ones(spec.genome_length))
    for _ in range(5):
        c.step([1.0, 1.0])
    assert max(np.abs(w).max() for w in c.weights) == np.float32(clip)


def test_genome_controller_can_redeploy_nchl_as_wnchl():
    spec = Spec("nchl", [2, 3, 1])
    g = Genome(spec, np.linspace(-1, 1, spec.genome_length))
    c = g.controller(spec=Spec("wnchl", [2, 3, 1], window=4))
    assert c.rule == "wnchl" and c.spec.window == 4


def test_redeployment_between_nchl_and_wnchl():
    from nchl import Spec, SpecError

    nchl = Spec("nchl", [4, 3, 2], init_range=0.5, clip=2.0)
    w = nchl.redeployed("wnchl", 7)
    assert (w.rule, w.window, w.init_range, w.clip) == ("wnchl", 7, 0.0, None)
    assert w.genome_length == nchl.genome_length
    assert w.redeployed("nchl") == Spec("nchl", [4, 3, 2])
    with pytest.raises(SpecError, match="needs a window"):
        nchl.redeployed("wnchl")
    with pytest.raises(SpecError, match="window only applies"):
        nchl.redeployed(window=3)
    with pytest.raises(SpecError, match="a hl genome can only run as hl"):
        Spec("hl", [4, 3, 2]).redeployed("nchl")


def test_readme_python_api_example_runs(tmp_path):
    """The README's Python API example, run as written: the docs must match the code."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "g.npz").exists() and (tmp_path / "t.npz").exists()
