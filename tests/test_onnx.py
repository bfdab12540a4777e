"""ONNX export: checker, metadata, and full-length lockstep rollouts under onnxruntime."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from nchl import Genome, NonFiniteObservation, Spec, make_controller
from nchl_codegen.onnx_export import OnnxController, export


@pytest.mark.parametrize("spec", [Spec("hl", [5, 4, 2], clip=0.7), Spec("nchl", [5, 4, 2], init_range=0.3),
                                  Spec("wnchl", [5, 4, 2], window=3)], ids=lambda s: s.rule)
def test_model_is_valid_and_described(spec):
    model = export(spec, np.linspace(-1, 1, spec.genome_length), sha256="abc")
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["rule"] == spec.rule and meta["layers"] == "5,4,2" and meta["genome_sha256"] == "abc"
    assert meta["window"] == ("3" if spec.rule == "wnchl" else "")
    ins, outs = [i.name for i in model.graph.input], [o.name for o in model.graph.output]
    if spec.rule == "wnchl":
        assert ins == ["obs", "acts", "pos", "count"] and outs == ["action", "acts_out", "pos_out", "count_out"]
    else:
        assert ins == ["obs", "w0", "w1"] and outs == ["action", "w0_out", "w1_out"]
    assert len(model.graph.initializer) > 0


def test_onnx_state_and_non_finite_input():
    spec = Spec("wnchl", [3, 2], window=2)
    g = np.random.default_rng(0).uniform(-1, 1, spec.genome_length)
    o, py = OnnxController(spec, g), make_controller(spec, g)
    for x in np.random.default_rng(1).uniform(-1, 1, (5, 3)):
        np.testing.assert_array_equal(o.step(x), py.step(x))
    so, sp = o.state(), py.state()
    np.testing.assert_array_equal(so["acts"], sp["acts"])
    assert (int(so["pos"]), int(so["count"])) == (int(sp["pos"]), int(sp["count"]))
    with pytest.raises(NonFiniteObservation):
        o.step([np.nan, 0, 0])


@pytest.mark.parametrize("extra", [["--rule", "nchl"], ["--rule", "wnchl", "--window", "10"], ["hl"]],
                         ids=["nchl", "wnchl", "hl"])
def test_full_length_ant_rollout_in_lockstep_with_onnxruntime(tmp_path, extra):
    if extra == ["hl"]:
        spec, extra = Spec("hl", [27, 32, 8]), []
    else:
        spec = Spec("nchl", [27, 32, 8])
    Genome(spec, np.random.default_rng(4).uniform(-0.5, 0.5, spec.genome_length), task="ant").save(tmp_path / "g.npz")
    r = subprocess.run([sys.executable, "-m", "nchl.app.cli", "verify", "g.npz", "--backend", "onnx", "--episodes", "1",
                        "--json", *extra], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    (e,) = report["episodes"]
    assert e["steps"] == 1000 and report["max_abs_error"] <= 1e-5 and report["passed"]
    r = subprocess.run([sys.executable, "-m", "nchl.app.cli", "export-onnx", "g.npz", "-o", "c.onnx", *extra],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    onnx.checker.check_model(onnx.load(str(tmp_path / "c.onnx")))
