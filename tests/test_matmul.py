"""gatedrnn._core.matmul, the product Dense runs on: against NumPy, and its argument checks."""

import numpy as np
import pytest

from gatedrnn import _core


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("M, N, K", [(1, 1, 1), (7, 13, 5), (3200, 97, 256), (640, 20, 300),
                                     (0, 4, 3), (5, 4, 0),
                                     # up to 64 rows, B not transposed: read in place by whole
                                     # panels, a partial last panel packed (N = 100, 31), or
                                     # whole panels only (N = 64), a long K; then one row more
                                     (64, 100, 77), (33, 64, 1536), (13, 31, 40), (65, 50, 20),
                                     # K in several depth blocks of equal depth (up to one less)
                                     (200, 100, 1601)])
def test_matmul_matches_numpy(dtype, rtol, trans_a, trans_b, M, N, K):
    rng = np.random.default_rng(M * 31 + N * 7 + K)
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    want = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    got = _core.matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    assert got.dtype == dtype and got.shape == (M, N)
    # float32: K products each rounded, summed: relative error ~ sqrt(K) eps, well inside 1e-5
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.sqrt(max(K, 1)))
    out = rng.standard_normal((M, N)).astype(dtype)
    expect = want + 0.5 * out
    res = _core.matmul(a, b, trans_a=trans_a, trans_b=trans_b, out=out, beta=0.5)
    assert res is out
    np.testing.assert_allclose(out, expect, rtol=rtol, atol=rtol * np.sqrt(max(K, 1)))


def test_matmul_reads_non_contiguous_inputs():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 8))[:, ::2]
    b = rng.standard_normal((4, 5)).T
    np.testing.assert_allclose(_core.matmul(a, b.T), a @ b.T, rtol=1e-12)


@pytest.mark.parametrize("call, error, match", [
    (lambda: _core.matmul(np.zeros((2, 3), np.float32), np.zeros((4, 2), np.float32)),
     ValueError, "K = 3"),
    (lambda: _core.matmul(np.zeros((2, 3), np.float32), np.zeros((3, 2))), TypeError, "b"),
    (lambda: _core.matmul(np.zeros((2, 3), np.int64), np.zeros((3, 2))), TypeError, "a"),
    (lambda: _core.matmul(np.zeros(3), np.zeros((3, 2))), ValueError, "a"),
    (lambda: _core.matmul(np.zeros((2, 3)), np.zeros((3, 2)), out=np.zeros((2, 3))),
     ValueError, "out"),
    (lambda: _core.matmul(np.zeros((2, 3)), np.zeros((3, 2)), out=np.zeros((2, 2)).T),
     ValueError, "out"),
    (lambda: _core.matmul(np.zeros((2, 3)), np.zeros((3, 2)), beta=1.0), ValueError, "beta"),
])
def test_matmul_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_matmul_out_must_not_overlap_the_inputs():
    a = np.ones((4, 4))
    with pytest.raises(ValueError, match="share memory"):
        _core.matmul(a, np.ones((4, 4)), out=a, beta=1.0)


@pytest.mark.parametrize("M, N, K", [(3200, 97, 256),    # 8 row blocks claimed one at a time
                                     (1500, 300, 200),   # 4 row blocks of 2 column groups each
                                     (600, 300, 200)])   # 2 row blocks: contiguous shares
def test_matmul_is_bitwise_the_same_whichever_thread_takes_a_tile(M, N, K):
    # With two threads, row blocks are claimed as each thread finishes its last, so which
    # thread computes which tile changes from call to call; every tile is still computed whole
    # by one thread in the same order, so the result may not change by a bit.
    import gatedrnn
    rng = np.random.default_rng(M + N + K)
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((N, K)).astype(np.float32)
    before = gatedrnn.get_num_threads()
    try:
        gatedrnn.set_num_threads(1)
        serial = _core.matmul(a, b, trans_b=True)
        gatedrnn.set_num_threads(2)
        runs = [_core.matmul(a, b, trans_b=True) for _ in range(5)]
    finally:
        gatedrnn.set_num_threads(before)
    np.testing.assert_allclose(serial, a.astype(np.float64) @ b.T.astype(np.float64),
                               rtol=1e-5, atol=1e-5 * np.sqrt(K))
    for got in runs:
        np.testing.assert_array_equal(got, serial)
