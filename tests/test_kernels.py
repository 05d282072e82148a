"""The kernel layer: vectorised activations (stated error bounds), run-time ISA dispatch and its
override, denormal handling, and the thread cap."""

import os
import subprocess
import sys

import numpy as np
import pytest

import gatedrnn
from gatedrnn import _core
from gatedrnn import functional as F
from gatedrnn import reference as R

ISAS = _core._available_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    """Runs the test on every kernel path this CPU supports, then restores the default."""
    default = gatedrnn.info()["simd"]
    _core._set_isa(request.param)
    yield request.param
    _core._set_isa(default)


def _grid(dtype):
    """Dense values over the whole interesting range, tiny magnitudes (where relative accuracy
    is hardest for tanh), the clamp boundaries, and exact zero."""
    lin = np.linspace(-100, 100, 400_001)
    tiny = np.geomspace(1e-30, 20, 50_000)
    x = np.concatenate([lin, tiny, -tiny, [0.0, -87.0, 87.0, -9.0, 9.0, 708.0, -708.0]])
    return x.astype(dtype)


# Error bounds in units in the last place of the true result (float64 computed by NumPy),
# where an ulp is measured at the result's magnitude but never below the smallest normal
# number: results below it are flushed (no subnormals are produced). The kernels' design
# (Taylor to below 0.1 ulp after exact range reduction, then one quotient: a division, or on
# AVX-512 float a refined reciprocal within 0.5 ulp + 2^-27) gives ~2-4 ulp; measured here:
# sigmoid 2.2 / 4.0 ulp (float32 / float64), tanh 2.5 / 3.0. The bounds leave about one ulp.
BOUNDS = {("sigmoid", np.float32): 3, ("tanh", np.float32): 4,
          ("sigmoid", np.float64): 5, ("tanh", np.float64): 4}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_activation_error_bound(isa, name, dtype):
    x = _grid(dtype)
    xd = x.astype(np.float64)
    with np.errstate(over="ignore"):
        want = 1.0 / (1.0 + np.exp(-xd)) if name == "sigmoid" else np.tanh(xd)
    got = _core._activation(name, x).astype(np.float64)
    ulp = np.maximum(np.spacing(np.abs(want).astype(dtype)).astype(np.float64),
                     np.finfo(dtype).tiny)
    err = np.abs(got - want) / ulp
    worst = int(np.argmax(err))
    assert err[worst] <= BOUNDS[name, dtype], (
        f"{isa} {name} {np.dtype(dtype).name}: {err[worst]:.2f} ulp at x = {xd[worst]!r}")


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_activation_keeps_nan_and_saturates(isa, name):
    x = np.array([np.nan, np.inf, -np.inf, -1e30, 1e30], np.float32)
    got = _core._activation(name, x)
    assert np.isnan(got[0]), "NaN must propagate through every clamp"
    low = 0.0 if name == "sigmoid" else -1.0
    np.testing.assert_array_equal(got[1:], [1.0, low, low, 1.0])


def test_activation_output_never_subnormal(isa):
    x = np.linspace(-120, 120, 100_001).astype(np.float32)
    for name in ("sigmoid", "tanh"):
        out = np.abs(_core._activation(name, x))
        assert not np.any((out > 0) & (out < np.finfo(np.float32).tiny)), name


def test_every_path_matches_the_reference(isa):
    """One shape with tails in every dimension (H=37 is not a multiple of any vector width,
    B=7 not a multiple of any row tile) per cell, forward and backward, on this path."""
    rng = np.random.default_rng(7)
    T, B, I, H = 6, 7, 11, 37
    x = rng.standard_normal((T, B, I))
    lengths = np.array([6, 0, 3, 6, 1, 5, 2])
    for fwd, bwd, G, opts in [(F.rnn, F.rnn_backward, 1, {"nonlinearity": "relu"}),
                              (F.gru, F.gru_backward, 3, {"reset_after": False}),
                              (F.gru, F.gru_backward, 3, {"reset_after": True}),
                              (F.lstm, F.lstm_backward, 4, {})]:
        w = [rng.uniform(-0.4, 0.4, s) for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]
        mask = (rng.random((B, H)) > 0.3) / 0.7
        core = fwd(x, *w, lengths=lengths, training=True, recurrent_mask=mask, **opts)
        ref = getattr(R, fwd.__name__)(x, *w, lengths=lengths, training=True,
                                       recurrent_mask=mask, **opts)
        dy = rng.standard_normal(core.y.shape)
        got, want = bwd(core.ctx, dy=dy), getattr(R, bwd.__name__)(ref.ctx, dy=dy)
        np.testing.assert_allclose(core.y, ref.y, rtol=1e-12, atol=1e-13)
        for g, r, field in zip(got, want, got._fields):
            np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-12, err_msg=f"{isa} {field}")


@pytest.mark.parametrize("M", [7, 8, 15, 16, 33, 64])
def test_small_batch_products_with_weights_read_in_place(isa, M):
    """A batch of a few tens of rows (half a panel's width and more) multiplies weights read in
    place as C^T = W^T A^T, the transposed A packed: both forms of it (a row-major B, the
    backward's dX = dG W_ih; B^T, the forward's x W_ih^T in a one-step call) against float64
    products, with a depth of several blocks (K = 600) and ragged column chunks (N = 203); and
    a row-major B whose rows of 2 KB or more are copied in blocks of rows before the tiles read
    them (N = 1100: several copied widths, the last ragged; K = 150: several blocks of rows)."""
    rng = np.random.default_rng(M)
    for (K, N), dtype, rtol in [((600, 203), np.float64, 1e-12), ((600, 203), np.float32, 1e-5),
                                ((150, 1100), np.float64, 1e-12), ((150, 1100), np.float32, 1e-5)]:
        a = rng.standard_normal((M, K)).astype(dtype)
        b = rng.standard_normal((K, N)).astype(dtype)
        want = a.astype(np.float64) @ b.astype(np.float64)
        out = rng.standard_normal((M, N)).astype(dtype)
        expect = want + 0.5 * out
        _core.matmul(a, b, out=out, beta=0.5)
        np.testing.assert_allclose(out, expect, rtol=rtol, atol=rtol * np.sqrt(K), err_msg=isa)
    # One step of every cell, weights read in place (no handle), forward and backward.
    I, H = 300, 70
    x = rng.standard_normal((1, M, I))
    for fwd, bwd, G, opts in [(F.rnn, F.rnn_backward, 1, {}),
                              (F.gru, F.gru_backward, 3, {"reset_after": False}),
                              (F.gru, F.gru_backward, 3, {"reset_after": True}),
                              (F.lstm, F.lstm_backward, 4, {})]:
        w = [rng.uniform(-0.2, 0.2, s) for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]
        h0 = rng.standard_normal((M, H))
        core = fwd(x, *w, h0=h0, training=True, **opts)
        ref = getattr(R, fwd.__name__)(x, *w, h0=h0, training=True, **opts)
        np.testing.assert_allclose(core.y, ref.y, rtol=1e-12, atol=1e-13, err_msg=isa)
        dy = rng.standard_normal(core.y.shape)
        got, want = bwd(core.ctx, dy=dy), getattr(R, bwd.__name__)(ref.ctx, dy=dy)
        for g, r, field in zip(got, want, got._fields):
            np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-12, err_msg=f"{isa} {field}")


@pytest.mark.parametrize("M", [16, 17, 29, 41, 64])
def test_packed_rows_in_evened_out_tiles(isa, M):
    """Packed A panels follow the row tiles, whose last two are evened out when the remainder
    is short (16 rows: 8 + 8 with 12-row tiles, 6 + 6 + 4 with 6-row ones): GEMMs that pack A
    (enough rows, either layout of A, depth over one block) and steps whose recurrent GEMM packs
    h and dG (a batch of M, weights packed once), against float64."""
    rng = np.random.default_rng(M + 100)
    K, N = 300, 70
    for trans_a in (False, True):
        a = rng.standard_normal((K, M) if trans_a else (M, K))
        b = rng.standard_normal((K, N))
        want = (a.T if trans_a else a) @ b
        got = _core.matmul(a, b, trans_a=trans_a)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.sqrt(K), err_msg=isa)
    T, I, H = 3, 20, 45
    x = rng.standard_normal((T, M, I))
    for fwd, bwd, G, opts in [(F.gru, F.gru_backward, 3, {"reset_after": False}),
                              (F.lstm, F.lstm_backward, 4, {})]:
        w = [rng.uniform(-0.3, 0.3, s) for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]
        packed = F.pack_weights(fwd.__name__, *w, **opts)
        np.testing.assert_allclose(fwd(x, packed).y, getattr(R, fwd.__name__)(x, *w, **opts).y,
                                   rtol=1e-12, atol=1e-13, err_msg=isa)
        core = fwd(x, *w, training=True, **opts)
        ref = getattr(R, fwd.__name__)(x, *w, training=True, **opts)
        dy = rng.standard_normal(core.y.shape)
        got, want = bwd(core.ctx, dy=dy), getattr(R, bwd.__name__)(ref.ctx, dy=dy)
        for g, r, field in zip(got, want, got._fields):
            np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-12, err_msg=f"{isa} {field}")


def test_subnormal_inputs_give_the_same_results(isa):
    """A denormal-heavy input (x entirely subnormal) computes like x = 0: the core flushes
    denormals while it runs, and the difference to the exact result is below 1e-37."""
    rng = np.random.default_rng(3)
    T, B, I, H = 5, 3, 8, 16
    x = np.full((T, B, I), 1e-39, np.float32)
    assert np.all(np.abs(x) < np.finfo(np.float32).tiny)
    w = [rng.uniform(-0.3, 0.3, s).astype(np.float32) for s in [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)]]
    y, h_n, c_n = F.lstm(x, *w)
    ref = R.lstm(x.astype(np.float64), *[a.astype(np.float64) for a in w])
    np.testing.assert_allclose(y, ref.y, rtol=1e-5, atol=1e-6)


def test_forced_isa_is_reported_and_used():
    for name in ISAS:
        out = subprocess.run(
            [sys.executable, "-c", "import gatedrnn; print(gatedrnn.info()['simd'])"],
            env={**os.environ, "GATEDRNN_ISA": name}, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == name


@pytest.mark.parametrize("value, message", [("avx9000", "expected one of"),
                                            ("avx512", "does not support")])
def test_forcing_an_unknown_or_unsupported_isa_is_a_clear_error(value, message):
    if value == "avx512" and "avx512" in ISAS:
        pytest.skip("this CPU supports AVX-512, so forcing it is not an error here")
    out = subprocess.run([sys.executable, "-c", "import gatedrnn"], capture_output=True,
                         text=True, env={**os.environ, "GATEDRNN_ISA": value}, timeout=120)
    assert out.returncode != 0
    assert "GATEDRNN_ISA" in out.stderr and message in out.stderr


def test_set_num_threads_caps_every_call_and_keeps_results():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((20, 64, 64)).astype(np.float32)
    w = [rng.uniform(-0.1, 0.1, s).astype(np.float32) for s in [(768, 64), (768, 256), (768,), (768,)]]
    default = gatedrnn.get_num_threads()
    try:
        gatedrnn.set_num_threads(1)
        assert gatedrnn.get_num_threads() == 1 and gatedrnn.info()["num_threads"] == 1
        one = F.gru(x, *w)
        gatedrnn.set_num_threads(2)
        assert gatedrnn.get_num_threads() == 2
        two = F.gru(x, *w)
    finally:
        gatedrnn.set_num_threads(0)
    assert gatedrnn.get_num_threads() == default
    ref = R.gru(x.astype(np.float64), *[a.astype(np.float64) for a in w])
    for out in (one, two):
        np.testing.assert_allclose(out.y, ref.y, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("bad, error, match", [
    (-1, ValueError, r"n: expected a thread count >= 1 \(or 0 for the default\), got -1"),
    (1.5, TypeError, "n: expected an int, got float"),
    ("2", TypeError, "n: expected an int, got str"),
    (True, TypeError, "n: expected an int, got bool"),
])
def test_set_num_threads_rejects_bad_values(bad, error, match):
    before = gatedrnn.get_num_threads()
    with pytest.raises(error, match=match):
        gatedrnn.set_num_threads(bad)
    assert gatedrnn.get_num_threads() == before


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("ragged", [True, False])
@pytest.mark.parametrize("H", [256, 512])
def test_inference_projection_blocks_match_training(H, ragged, reverse, batch_first):
    """Inference projects the input in blocks of steps; training projects all rows at once.
    With two threads, H=256 splits a step by batch rows (each thread projecting its own rows
    by blocks when every sequence is full length, training included: 16 steps per block here) and H=512 by hidden units
    (each thread projecting its own gate columns: 8 steps of B = 64 per block); T = 40 spans
    several blocks, and ragged lengths make them uneven. The same kernels, but a row may land
    in a tile of another height (short tiles keep partial sums over k), so the two agree to
    float32 rounding, not bit for bit; and both match the reference."""
    rng = np.random.default_rng(11)
    T, B, I = 40, 64, 24
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(np.float32)
    w = [rng.uniform(-0.06, 0.06, s).astype(np.float32) for s in [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)]]
    lengths = rng.integers(0, T + 1, size=B) if ragged else None
    if ragged:
        lengths[3] = T
    kw = dict(lengths=lengths, reverse=reverse, batch_first=batch_first)
    infer = F.lstm(x, *w, **kw)
    train = F.lstm(x, *w, training=True, **kw)
    for a, b in zip(infer, train[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    ref = R.lstm(x.astype(np.float64), *[a.astype(np.float64) for a in w], **kw)
    for got in (infer, train):
        np.testing.assert_allclose(got.y, ref.y, rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(got.c_n, ref.c_n, rtol=1e-4, atol=2e-5)


SMALLER_TEAM_SCRIPT = r"""
import sys
import numpy as np, gatedrnn
from gatedrnn import functional as F, reference as R
gatedrnn.set_num_threads(int(sys.argv[1]))
rng = np.random.default_rng(0)
# (B, H): a weight-stationary split by hidden units, and a split by batch rows (whose inference
# projects each thread's rows inside the loop: B=128 is divisible by the 2 or 4 threads asked
# for, not by a team of 3)
for T, B, I, H in [(4, 8, 16, 256), (4, 128, 16, 48)]:
    x = rng.standard_normal((T, B, I))
    for cell, G, opts in [("rnn", 1, {}), ("gru", 3, {"reset_after": False}),
                          ("gru", 3, {"reset_after": True}), ("lstm", 4, {})]:
        w = [rng.uniform(-0.2, 0.2, s) for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]
        got = getattr(F, cell)(x, *w, training=True, **opts)
        want = getattr(R, cell)(x, *w, training=True, **opts)
        dy = rng.standard_normal(got.y.shape)
        pairs = [(got.y, want.y)] + list(zip(getattr(F, cell + "_backward")(got.ctx, dy=dy),
                                             getattr(R, cell + "_backward")(want.ctx, dy=dy)))
        pairs.append((getattr(F, cell)(x, *w, **opts).y, want.y))   # inference
        for a, b in pairs:
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12, err_msg=f"{cell} B={B}")
print("ok")
"""


@pytest.mark.parametrize("cap, limit", [(2, 1), (4, 3)])
def test_a_smaller_team_than_requested_still_computes_everything(cap, limit):
    """OpenMP may start fewer threads than a call asks for (OMP_THREAD_LIMIT, or a call from
    inside another parallel region); every slice of the work must still be computed. With the
    cap at 2 and the limit at 1, a partition by the requested count would skip half the units;
    with 4 and 3, the team does not divide the batch that the plan split by rows."""
    env = {**os.environ, "OMP_THREAD_LIMIT": str(limit)}
    out = subprocess.run([sys.executable, "-c", SMALLER_TEAM_SCRIPT, str(cap)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
