"""The arithmetic kernels that make numpy and C agree bit for bit."""

import numpy as np
from hypothesis import given, settings, strategies as st

from nchl.core.activation import TANH_CLAMP, seq_sum, tanh


def loop_sum(a):
    acc = np.zeros(a.shape[1:], dtype=a.dtype)
    for row in a:
        acc = acc + row
    return acc


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(0, 600), cols=st.sampled_from([(), (1,), (2,), (3,), (7,), (64,), (300,), (1, 1), (5, 4)]),
       seed=st.integers(0, 2**31), dtype=st.sampled_from([np.float32, np.float64]))
def test_seq_sum_is_the_in_order_loop(rows, cols, seed, dtype):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((rows, *cols)) * 10.0 ** rng.integers(-3, 4, (rows, *cols))).astype(dtype)
    got, want = np.asarray(seq_sum(a)), np.asarray(loop_sum(a))
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.view(f"u{a.itemsize}"), want.view(f"u{a.itemsize}"))


def test_seq_sum_zero_sign_matches_c():
    a = np.array([-0.0, -0.0], np.float32)
    assert np.signbit(seq_sum(a)) == np.signbit(np.float32(0.0) + a[0] + a[1])


def test_float32_tanh_accuracy_and_range():
    x = np.linspace(-20, 20, 400_001).astype(np.float32)
    y = tanh(x)
    assert y.dtype == np.float32 and np.all(np.abs(y) <= 1)
    assert np.abs(y.astype(np.float64) - np.tanh(x.astype(np.float64))).max() < 3.6e-7
    assert np.array_equal(tanh(-x), -y)  # odd
    big = tanh(np.array([TANH_CLAMP, TANH_CLAMP * 2, 1e30], np.float32))
    assert np.all(big == big[0]) and big[0] > 1 - 1e-7  # saturated beyond the clamp
    assert np.isnan(tanh(np.array([np.nan], np.float32))[0])
    assert tanh(np.array([0.5])).dtype == np.float64 and tanh(np.array([0.5]))[0] == np.tanh(0.5)
