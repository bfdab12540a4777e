"""One validation per public call: a genome is checked where it enters, not again at every stage
below (plan, context, generated files, compiled module)."""

from __future__ import annotations

import numpy as np
import pytest

import nchl.core.controllers as controllers
import nchl.core.fixed as fixed
import nchl_codegen
import nchl_codegen.build as build
from nchl import GenomeError, Spec, Topology

SPECS = [Spec("nchl", Topology((3, 4, 2))), Spec("wnchl", Topology((3, 4, 2)), window=2)]


@pytest.fixture
def count_checks(monkeypatch):
    calls = []
    real = controllers.check_genome

    def counted(*args, **kwargs):
        calls.append(args[0].rule)
        return real(*args, **kwargs)

    for module in (controllers, fixed, nchl_codegen, build):
        monkeypatch.setattr(module, "check_genome", counted)
    return calls


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.rule)
@pytest.mark.parametrize("call", [
    lambda s, g: build.CController(s, g),
    lambda s, g: build.CController(s, g, runtime_params=True),
    lambda s, g: build.FixedCController(s, g),
    lambda s, g: build.build(s, g, numeric="fixed"),
    lambda s, g: build.build(s, g),
    lambda s, g: nchl_codegen.generate(s, g, "p", numeric="fixed"),
    lambda s, g: fixed.make_fixed(s, g),
    lambda s, g: fixed.plan(s, g),
], ids=["c", "c-runtime", "fixed-c", "build-fixed", "build", "generate-fixed", "make-fixed", "plan"])
def test_each_public_call_checks_the_genome_once(spec, call, count_checks):
    g = np.random.default_rng(0).uniform(-0.5, 0.5, spec.genome_length)
    call(spec, g)
    assert count_checks == [spec.rule]


@pytest.mark.parametrize("call", [build.FixedCController, fixed.make_fixed, fixed.plan,
                                  lambda s, g: nchl_codegen.generate(s, g, "p", numeric="fixed")])
def test_the_one_check_still_refuses_a_bad_genome(call):
    spec = SPECS[1]
    with pytest.raises(GenomeError, match="non-finite"):
        call(spec, np.full(spec.genome_length, np.nan))
    with pytest.raises(GenomeError, match="values; expected"):
        call(spec, np.zeros(spec.genome_length + 1))
