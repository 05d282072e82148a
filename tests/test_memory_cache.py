"""The core's cache of large blocks (gatedrnn/memory.h): released blocks are reused, the limit
holds, and no kernel reads memory it did not write.

The last point is what the cache puts at risk: fresh pages from the operating system are zero,
recycled blocks (large ones shared by the process, small ones kept per thread) hold whatever the
previous user left. Every cached block is overwritten with
0xFF bytes (NaN in float32 and float64) before the calls under test, whose results must then be
bit-identical to the same calls with the cache off.
"""

import numpy as np
import pytest

import gatedrnn as gr
from gatedrnn import _core
from gatedrnn import functional as F

from conftest import VARIANTS, backward, forward, make_inputs, make_output_grads

DEFAULT_LIMIT = gr.info()["memory_cache_limit"]


@pytest.fixture
def cache_limit():
    """Restores the process's cache limit after the test."""
    yield gr.set_memory_cache_limit
    gr.set_memory_cache_limit(DEFAULT_LIMIT)


def _train_step(variant, kw, grads_seed, bidirectional):
    """Forward (training) and backward of one call; every output, as copies."""
    extra = {"training": True}
    if bidirectional:
        extra["bidirectional"] = True
    out = forward(F, variant, kw, **extra)
    g = make_output_grads(np.random.default_rng(grads_seed), variant, out)
    grads = backward(F, variant, out.ctx, **g, return_dh_seq=True)
    results = [np.array(a) for a in out if isinstance(a, np.ndarray)]
    results += [np.array(a) for a in grads if isinstance(a, np.ndarray)]
    inference = forward(F, variant, kw, **({"bidirectional": True} if bidirectional else {}))
    results += [np.array(a) for a in inference if isinstance(a, np.ndarray)]
    return results


def _stack_for_bidirectional(kw):
    kw = dict(kw)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        kw[name] = np.stack([kw[name], kw[name][::-1].copy()])
    for name in ("h0", "c0"):
        if kw.get(name) is not None:
            kw[name] = np.stack([kw[name], -kw[name]])
    return kw


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", ["full", "mixed-lengths", "mask-bidirectional"])
@pytest.mark.parametrize("size", ["large", "small"])
def test_recycled_blocks_change_no_result(variant, dtype, case, size, cache_limit):
    rng = np.random.default_rng(7)
    # large: the workspace, gradients and outputs are shared cached blocks (>= 256 KB);
    # small: everything comes from the calling thread's small blocks (a streaming-sized call)
    T, B, I, H = (24, 20, 96, 128) if size == "large" else (3, 3, 5, 4)
    kw = make_inputs(rng, variant, T, B, I, H, dtype,
                     lengths="mixed" if case == "mixed-lengths" else None,
                     mask=case == "mask-bidirectional")
    bidirectional = case == "mask-bidirectional"
    if bidirectional:
        kw = _stack_for_bidirectional(kw)
        kw["recurrent_mask"] = np.stack([kw["recurrent_mask"], kw["recurrent_mask"][::-1].copy()])

    cache_limit(0)
    want = _train_step(variant, kw, 1, bidirectional)
    assert gr.info()["memory_cached"] == 0

    cache_limit(DEFAULT_LIMIT)
    _train_step(variant, kw, 1, bidirectional)        # fills the cache with this call's blocks
    if size == "large":
        assert gr.info()["memory_cached"] > 0
    _core._fill_memory_cache(0xFF)
    got = _train_step(variant, kw, 1, bidirectional)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape
        np.testing.assert_array_equal(g, w, err_msg=f"result {i}")


def test_blocks_are_reused_and_the_limit_holds(cache_limit):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 16, 128)).astype(np.float32)
    w_ih = rng.standard_normal((512, 128)).astype(np.float32) * 0.05
    w_hh = rng.standard_normal((512, 128)).astype(np.float32) * 0.05

    gr.empty_memory_cache()
    assert gr.info()["memory_cached"] == 0
    out = F.lstm(x, w_ih, w_hh, training=True)
    ws_bytes = out.ctx.workspace.nbytes
    assert ws_bytes >= 256 << 10
    del out
    held = gr.info()["memory_cached"]
    assert held >= ws_bytes          # the workspace and y came back

    out = F.lstm(x, w_ih, w_hh, training=True)
    assert gr.info()["memory_cached"] < held   # ... and were handed out again
    del out

    cache_limit(ws_bytes // 2)       # below the workspace's block: it is not kept
    assert gr.info()["memory_cache_limit"] == ws_bytes // 2
    assert gr.info()["memory_cached"] <= ws_bytes // 2
    out = F.lstm(x, w_ih, w_hh, training=True)
    del out
    assert gr.info()["memory_cached"] <= ws_bytes // 2

    gr.empty_memory_cache()
    assert gr.info()["memory_cached"] == 0


def test_over_the_limit_the_least_recently_released_blocks_go_first(cache_limit):
    """A process that ran other shapes before holds their blocks; when the current call's
    blocks push the cache over its limit, the stale ones must go, not the current call's
    (largest-first dropped those, so every later call faulted its buffers in afresh)."""
    rng = np.random.default_rng(0)

    def training_call(T, B, H):
        x = rng.standard_normal((T, B, H)).astype(np.float32)
        w = [rng.uniform(-0.1, 0.1, s).astype(np.float32) for s in [(4 * H, H), (4 * H, H)]]
        dy = np.ones((T, B, H), np.float32)

        def call():
            out = F.lstm(x, *w, training=True)
            F.lstm_backward(out.ctx, dy=dy)
        return call

    old, new = training_call(40, 16, 64), training_call(40, 32, 256)
    blocks = {}
    for name, call in (("old", old), ("new", new)):
        gr.empty_memory_cache()
        call()
        blocks[name] = _core._memory_cache_blocks()
    assert max(blocks["new"]) > max(blocks["old"])
    gr.empty_memory_cache()
    cache_limit(sum(blocks["new"]) + sum(blocks["old"]) // 2)
    old()
    new()
    held = _core._memory_cache_blocks()
    for size in set(blocks["new"]):          # every block of the latest call is still there
        assert held.count(size) >= blocks["new"].count(size), (size, held, blocks)
    assert sum(held) <= sum(blocks["new"]) + sum(blocks["old"]) // 2


def test_arrays_from_the_cache_are_ordinary_writable_arrays():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 32, 64)).astype(np.float64)
    w_ih = rng.standard_normal((192, 64)) * 0.1
    w_hh = rng.standard_normal((192, 64)) * 0.1
    y, h_n, ctx = F.gru(x, w_ih, w_hh, training=True)
    assert y.nbytes >= 256 << 10
    assert y.flags.c_contiguous and y.flags.writeable and y.flags.aligned
    y2 = y.copy()
    y += 1.0                          # the array is the caller's to change
    np.testing.assert_array_equal(y, y2 + 1.0)
    view = y[::2]                     # a view keeps the block alive after y is gone
    del y, ctx
    gr.empty_memory_cache()
    np.testing.assert_array_equal(view, (y2 + 1.0)[::2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bidirectional, batch_first", [(False, False), (True, True)])
def test_small_outputs_are_ordinary_arrays(dtype, bidirectional, batch_first):
    """Outputs below the cache's block size come straight from NumPy: each owns its memory,
    is C-contiguous, aligned and writable, and has the call's dtype and shape."""
    rng = np.random.default_rng(2)
    D, T, B, I, H = (2 if bidirectional else 1), 3, 2, 5, 4
    lead = (D,) if bidirectional else ()
    w = [rng.standard_normal(lead + s).astype(dtype) for s in [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)]]
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    handle = F.pack_weights("lstm", *w, bidirectional=bidirectional)
    for weights in (w, [handle]):
        out = F.lstm(x, *weights, batch_first=batch_first, bidirectional=bidirectional)
        want = {"y": x.shape[:2] + (D * H,), "h_n": lead + (B, H), "c_n": lead + (B, H)}
        for name, shape in want.items():
            a = getattr(out, name)
            assert a.shape == shape and a.dtype == dtype, (name, a.shape, a.dtype)
            assert a.flags.owndata and a.base is None, name
            assert a.flags.c_contiguous and a.flags.aligned and a.flags.writeable, name
        before = out.y.copy()
        out.h_n[...] = 7                      # separate arrays: writing one leaves the others
        np.testing.assert_array_equal(out.y, before)


@pytest.mark.parametrize("value, exc, match", [
    (-1, ValueError, "nbytes: expected a byte count >= 0, got -1"),
    (1.5, TypeError, "nbytes: expected an int, got float"),
    ("1", TypeError, "nbytes: expected an int, got str"),
    (True, TypeError, "nbytes: expected an int, got bool"),
])
def test_set_memory_cache_limit_rejects_bad_values(value, exc, match, cache_limit):
    with pytest.raises(exc, match=match):
        gr.set_memory_cache_limit(value)
    assert gr.info()["memory_cache_limit"] == DEFAULT_LIMIT
