"""Hand-computed 2-2-1 examples, one per rule, in float64.

Observation x = [1, -1] at every step; initial weights are zero, so step 1
outputs 0 and only the D and A terms act in the first update.
"""

import math

import numpy as np
import pytest

from nchl import Spec, make_controller

X = np.array([1.0, -1.0])


def test_hl_2_2_1():
    # every synapse: A=0.1, B=0.2, C=0.3, D=0.4, eta=0.5 (blocks A|B|C|D|eta of W=6)
    genome = np.repeat([0.1, 0.2, 0.3, 0.4, 0.5], 6)
    c = make_controller(Spec("hl", [2, 2, 1]), genome, np.float64)
    assert c.step(X)[0] == 0.0
    # weights are (pre, post): layer 0: dw_ij = 0.5 (0.1 x_i + 0.4) -> 0.25 (i=0), 0.15 (i=1);
    # layer 1: 0.5 * 0.4 = 0.2
    np.testing.assert_allclose(c.weights[0], [[0.25, 0.25], [0.15, 0.15]], rtol=1e-15)
    np.testing.assert_allclose(c.weights[1], [[0.2], [0.2]], rtol=1e-15)
    u = math.tanh(0.25 - 0.15)
    assert c.step(X)[0] == pytest.approx(math.tanh(0.2 * u * 2), rel=1e-14)
    # second update of layer 0 with h = [u, u]: 0.5 (0.1 x_i + 0.2 u + 0.3 x_i u + 0.4)
    np.testing.assert_allclose(
        c.weights[0],
        [[0.25 + 0.5 * (0.5 + 0.5 * u)] * 2, [0.15 + 0.5 * (0.3 - 0.1 * u)] * 2], rtol=1e-14)


def test_hl_layout_is_A_B_C_D_eta_row_major_pre_post():
    genome = np.zeros(30)
    genome[24:30] = 1.0          # eta = 1 everywhere
    genome[1] = 0.7              # A of layer 0, pre 0, post 1
    genome[6 + 3] = 0.3          # B of layer 0, pre 1, post 1
    c = make_controller(Spec("hl", [2, 2, 1]), genome, np.float64)
    c.step(X)
    np.testing.assert_array_equal(c.weights[0], [[0, 0.7], [0, 0]])
    np.testing.assert_array_equal(c.weights[1], [[0], [0]])  # B * y_j with y = 0 on step 1
    c.step(X)  # hidden activations are now [tanh(0), tanh(0.7)]
    np.testing.assert_allclose(c.weights[0], [[0, 1.4], [0, 0.3 * math.tanh(0.7)]], rtol=1e-15)


# NcHL genome for [2,2,1]: eta[5] A[4] B[3] C[5] D[5]; neurons 0,1 in, 2,3 hidden, 4 out
ETA = [1.0, 0.0, 0.5, 0.5, 0.3]
NCHL_GENOME = np.array(ETA + [0.1] * 4 + [0.2] * 3 + [0.3] * 5 + [0.4] * 5)


def test_nchl_2_2_1():
    c = make_controller(Spec("nchl", [2, 2, 1]), NCHL_GENOME, np.float64)
    assert len(NCHL_GENOME) == 5 * 5 - 2 - 1
    assert c.step(X)[0] == 0.0
    # layer 0: eta_ij = (eta_i + eta_j)/2 = 0.75 (i=0), 0.25 (i=1);
    #          dw = eta_ij (0.1 x_i + D_i D_j) = 0.75 * 0.26, 0.25 * 0.06
    np.testing.assert_allclose(c.weights[0], [[0.195, 0.195], [0.015, 0.015]], rtol=1e-14)
    # layer 1: eta_ij = (0.5 + 0.3)/2 = 0.4; dw = 0.4 * 0.16 (pre activations are 0)
    np.testing.assert_allclose(c.weights[1], [[0.064], [0.064]], rtol=1e-14)
    v = math.tanh(0.195 - 0.015)
    o2 = math.tanh(2 * 0.064 * v)
    assert c.step(X)[0] == pytest.approx(o2, rel=1e-14)


def test_wnchl_2_2_1_window_1_forgets():
    c = make_controller(Spec("wnchl", [2, 2, 1], window=1), NCHL_GENOME, np.float64)
    assert c.step(X)[0] == 0.0
    v = math.tanh(0.195 - 0.015)
    o2 = math.tanh(2 * 0.064 * v)
    assert c.step(X)[0] == pytest.approx(o2, rel=1e-14)   # window holds step 1 only: same as NcHL
    # step 3 sees only the update of step 2 (h = v, out = o2), with C_i C_j = 0.09, D_i D_j = 0.16:
    w0 = [0.75 * (0.1 + 0.2 * v + 0.09 * v + 0.16), 0.25 * (-0.1 + 0.2 * v - 0.09 * v + 0.16)]
    h3 = math.tanh(w0[0] - w0[1])
    w1 = 0.4 * (0.1 * v + 0.2 * o2 + 0.09 * v * o2 + 0.16)
    assert c.step(X)[0] == pytest.approx(math.tanh(2 * w1 * h3), rel=1e-13)
    nchl = make_controller(Spec("nchl", [2, 2, 1]), NCHL_GENOME, np.float64)
    for _ in range(2):
        nchl.step(X)
    assert nchl.step(X)[0] != pytest.approx(math.tanh(2 * w1 * h3), rel=1e-6)
