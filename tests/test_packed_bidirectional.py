"""Packed weight handles (gatedrnn.functional.pack_weights) and bidirectional calls."""

import numpy as np
import pytest

import gatedrnn
from gatedrnn import _core
from gatedrnn import functional as F
from gatedrnn import reference as R

# (name, forward, backward, gates, options for the call, options for pack_weights)
CELLS = [
    ("rnn_tanh", "rnn", 1, {"nonlinearity": "tanh"}),
    ("rnn_relu", "rnn", 1, {"nonlinearity": "relu"}),
    ("gru_reset_after", "gru", 3, {"reset_after": True}),
    ("gru_reset_before", "gru", 3, {"reset_after": False}),
    ("lstm", "lstm", 4, {}),
]
IDS = [c[0] for c in CELLS]


def _weights(rng, G, I, H, D=None, dtype=np.float64):
    lead = () if D is None else (D,)
    return [rng.uniform(-0.5, 0.5, lead + s).astype(dtype)
            for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]


def _grads_close(got, want, rtol=1e-11, atol=1e-12):
    for field, g, w in zip(want._fields, got, want):
        if w is None:
            assert g is None, field
        else:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=field)


@pytest.mark.parametrize("name, cell, G, opts", CELLS, ids=IDS)
def test_handle_gives_the_same_results_as_arrays(name, cell, G, opts):
    rng = np.random.default_rng(1)
    T, B, I, H = 7, 5, 6, 9
    x = rng.standard_normal((T, B, I))
    w = _weights(rng, G, I, H)
    lengths = np.array([7, 0, 3, 7, 1])
    fwd, bwd = getattr(F, cell), getattr(F, cell + "_backward")
    packed = F.pack_weights(cell, *w, **opts)
    assert packed.hidden_size == H and packed.input_size == I and not packed.bidirectional
    raw = fwd(x, *w, lengths=lengths, training=True, **opts)
    via = fwd(x, packed, lengths=lengths, training=True)
    for a, b in zip(raw[:-1], via[:-1]):
        np.testing.assert_array_equal(a, b)
    dy = rng.standard_normal(raw.y.shape)
    _grads_close(bwd(via.ctx, dy=dy), bwd(raw.ctx, dy=dy), rtol=0, atol=0)


@pytest.mark.parametrize("name, cell, G, opts", CELLS, ids=IDS)
@pytest.mark.parametrize("given", ["ih", "hh", "none"])
def test_handle_folds_the_biases_it_was_given(name, cell, G, opts, given):
    # The handle folds b_ih + b_hh once when packed (the reset-after GRU keeps b_hn apart);
    # with one or both missing it must compute as the arrays do and as the reference does.
    rng = np.random.default_rng(11)
    T, B, I, H = 4, 3, 5, 16
    x = rng.standard_normal((T, B, I))
    w_ih, w_hh, b_ih, b_hh = _weights(rng, G, I, H)
    b_ih = b_ih if given == "ih" else None
    b_hh = b_hh if given == "hh" else None
    fwd = getattr(F, cell)
    packed = F.pack_weights(cell, w_ih, w_hh, b_ih, b_hh, **opts)
    via = fwd(x, packed)
    raw = fwd(x, w_ih, w_hh, b_ih, b_hh, **opts)
    np.testing.assert_array_equal(via.y, raw.y)
    want = getattr(R, cell)(x, w_ih, w_hh, b_ih, b_hh, **opts)
    np.testing.assert_allclose(via.y, want[0], rtol=1e-12, atol=1e-13)
    # and the biases do matter: the same handle without them gives another answer
    if given != "none":
        bare = fwd(x, F.pack_weights(cell, w_ih, w_hh, **opts))
        assert np.abs(bare.y - via.y).max() > 1e-3


@pytest.mark.parametrize("name, cell, G, opts", CELLS, ids=IDS)
def test_streaming_one_step_per_call_matches_the_whole_sequence(name, cell, G, opts):
    rng = np.random.default_rng(2)
    T, B, I, H = 9, 1, 5, 8
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    w = _weights(rng, G, I, H, dtype=np.float32)
    fwd = getattr(F, cell)
    whole = fwd(x, *w, **opts)
    packed = F.pack_weights(cell, *w, **opts)
    state = {"h0": np.zeros((B, H), np.float32)}
    if cell == "lstm":
        state["c0"] = np.zeros((B, H), np.float32)
    for t in range(T):
        out = fwd(x[t:t + 1], packed, **state)
        np.testing.assert_allclose(out.y[0], whole.y[t], rtol=1e-6, atol=1e-6)
        state["h0"] = out.h_n
        if cell == "lstm":
            state["c0"] = out.c_n
    np.testing.assert_allclose(state["h0"], whole.h_n, rtol=1e-6, atol=1e-6)


def test_handle_is_an_immutable_copy():
    """An optimizer updating the arrays in place must not change what the handle computes."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 2, 3))
    w = _weights(rng, 4, 3, 5)
    packed = F.pack_weights("lstm", *w)
    before = F.lstm(x, packed)
    for a in w:
        a += 1.0
    after = F.lstm(x, packed)
    np.testing.assert_array_equal(before.y, after.y)
    with pytest.raises(ValueError):
        packed.weight_hh[0, 0] = 1.0  # the handle's own copies are read-only
    # a fresh handle of the updated arrays computes with them (rounding apart: this tiny
    # raw-array call reads the weights in place, the handle packed copies)
    np.testing.assert_allclose(F.lstm(x, *w).y, F.lstm(x, F.pack_weights("lstm", *w)).y,
                               rtol=1e-14, atol=1e-15)


def test_handle_packed_for_another_kernel_path_still_computes_right():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3, 4))
    w = _weights(rng, 3, 4, 37)
    default = gatedrnn.info()["simd"]
    packed = F.pack_weights("gru", *w)
    try:
        for isa in _core._available_isas():
            _core._set_isa(isa)
            np.testing.assert_allclose(F.gru(x, packed).y, R.gru(x, *w).y, rtol=1e-12, atol=1e-13)
    finally:
        _core._set_isa(default)


def _reference_bidirectional(cell, x, w, lengths, opts, h0=None, c0=None, dy=None, dh_n=None):
    """Both directions through gatedrnn.reference, stitched as the bidirectional call defines."""
    fwd, bwd = getattr(R, cell), getattr(R, cell + "_backward")
    outs, grads = [], []
    for d in range(2):
        kw = dict(opts)
        if h0 is not None:
            kw["h0"] = h0[d]
        if c0 is not None:
            kw["c0"] = c0[d]
        out = fwd(x, *[a[d] for a in w], lengths=lengths, reverse=d == 1, training=True, **kw)
        outs.append(out)
        H = out.h_n.shape[-1]
        grads.append(bwd(out.ctx, dy=None if dy is None else dy[..., d * H:(d + 1) * H],
                         dh_n=None if dh_n is None else dh_n[d]))
    y = np.concatenate([outs[0].y, outs[1].y], axis=-1)
    return outs, y, grads


@pytest.mark.parametrize("name, cell, G, opts", CELLS, ids=IDS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_bidirectional_matches_two_reference_directions(name, cell, G, opts, batch_first):
    rng = np.random.default_rng(5)
    T, B, I, H = 6, 4, 5, 7
    x = rng.standard_normal((T, B, I))
    lengths = np.array([6, 2, 0, 5])
    w = _weights(rng, G, I, H, D=2)
    h0 = rng.standard_normal((2, B, H))
    c0 = rng.standard_normal((2, B, H)) if cell == "lstm" else None
    extra = {"c0": c0} if cell == "lstm" else {}
    xin = x.transpose(1, 0, 2).copy() if batch_first else x
    out = getattr(F, cell)(xin, *w, h0=h0, lengths=lengths, bidirectional=True, training=True,
                           batch_first=batch_first, **opts, **extra)
    dy = rng.standard_normal((T, B, 2 * H))
    dh_n = rng.standard_normal((2, B, H))
    outs, y, grads = _reference_bidirectional(cell, x, w, lengths, opts, h0, c0, dy, dh_n)
    got_y = out.y.transpose(1, 0, 2) if batch_first else out.y
    np.testing.assert_allclose(got_y, y, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(out.h_n, np.stack([o.h_n for o in outs]), rtol=1e-12, atol=1e-13)
    g = getattr(F, cell + "_backward")(out.ctx, dy=dy.transpose(1, 0, 2).copy() if batch_first else dy,
                                       dh_n=dh_n)
    dx = g.dx.transpose(1, 0, 2) if batch_first else g.dx
    np.testing.assert_allclose(dx, grads[0].dx + grads[1].dx, rtol=1e-11, atol=1e-12)
    for field in ("dh0", "dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh"):
        want = np.stack([getattr(grads[0], field), getattr(grads[1], field)])
        np.testing.assert_allclose(getattr(g, field), want, rtol=1e-11, atol=1e-12, err_msg=field)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_bidirectional_parity_with_torch(cell, torch):
    rng = np.random.default_rng(6)
    T, B, I, H = 8, 5, 6, 10
    G = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    module = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](
        I, H, bidirectional=True).double()
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    w = [np.stack([getattr(module, f"{n}_l0").detach().numpy(),
                   getattr(module, f"{n}_l0_reverse").detach().numpy()]) for n in names]
    x = rng.standard_normal((T, B, I))
    lengths = np.array([8, 3, 5, 1, 8])
    xt = torch.tensor(x, requires_grad=True)
    packed_seq = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False)
    out_t, state = module(packed_seq)
    y_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out_t, total_length=T)
    h_t = state[0] if cell == "lstm" else state
    dy = rng.standard_normal((T, B, 2 * H))
    (y_t * torch.tensor(dy)).sum().backward()
    out = getattr(F, cell)(x, *w, lengths=lengths, bidirectional=True, training=True)
    np.testing.assert_allclose(out.y, y_t.detach().numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(out.h_n, h_t.detach().numpy(), rtol=1e-11, atol=1e-12)
    g = getattr(F, cell + "_backward")(out.ctx, dy=dy)
    np.testing.assert_allclose(g.dx, xt.grad.numpy(), rtol=1e-10, atol=1e-11)
    for n in names:
        want = np.stack([getattr(module, f"{n}_l0").grad.numpy(),
                         getattr(module, f"{n}_l0_reverse").grad.numpy()])
        np.testing.assert_allclose(getattr(g, "d" + n), want, rtol=1e-10, atol=1e-11, err_msg=n)


def test_bidirectional_handle():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 3, 4))
    w = _weights(rng, 4, 4, 6, D=2)
    packed = F.pack_weights("lstm", *w, bidirectional=True)
    assert packed.bidirectional
    np.testing.assert_array_equal(F.lstm(x, packed).y, F.lstm(x, *w, bidirectional=True).y)


def test_handle_errors():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 2, 4))
    w = _weights(rng, 3, 4, 5)
    packed = F.pack_weights("gru", *w, reset_after=False)
    with pytest.raises(TypeError, match="weight_hh.*None.*PackedWeights"):
        F.gru(x, packed, w[1])
    with pytest.raises(TypeError, match="weight_ih.*gru.*call gatedrnn.functional.gru, not lstm"):
        F.lstm(x, packed)
    with pytest.raises(ValueError, match="reset_after.*packed for reset_after=False"):
        F.gru(x, packed, reset_after=True)
    with pytest.raises(ValueError, match="bidirectional.*packed for bidirectional=False"):
        F.gru(x, packed, bidirectional=True)
    with pytest.raises(TypeError, match="x: expected dtype float64.*handle.*float32"):
        F.gru(x.astype(np.float32), packed)
    with pytest.raises(ValueError, match="x: expected input size I = 4"):
        F.gru(rng.standard_normal((3, 2, 5)), packed)
    with pytest.raises(TypeError, match="weight_hh: missing"):
        F.gru(x, w[0])
    with pytest.raises(ValueError, match="weight_ih: expected shape"):
        F.pack_weights("gru", w[0][:-1], w[1])
    with pytest.raises(ValueError, match="nonlinearity"):
        F.rnn(x, F.pack_weights("rnn", *_weights(rng, 1, 4, 5)), nonlinearity="relu")
    # the handle's choices are the defaults (this tiny raw-array call reads the weights in
    # place, the handle packed ones: the same sums in another order, so float64 rounding apart)
    np.testing.assert_allclose(F.gru(x, packed).y, F.gru(x, *w, reset_after=False).y,
                               rtol=1e-14, atol=1e-15)


def test_bidirectional_errors():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 2, 4))
    w = _weights(rng, 4, 4, 5, D=2)
    with pytest.raises(ValueError, match="reverse"):
        F.lstm(x, *w, bidirectional=True, reverse=True)
    with pytest.raises(ValueError, match=r"weight_hh: expected a 3-D array \(D, G\*H, H\) with D = 2"):
        F.lstm(x, *[a[0] for a in w], bidirectional=True)
    with pytest.raises(ValueError, match=r"weight_hh: expected shape \(D, G\*H, H\) with D = 2"):
        F.lstm(x, w[0], np.concatenate([w[1], w[1][:1]]), bidirectional=True)
    with pytest.raises(ValueError, match=r"h0: expected a 3-D array \(D, B, H\) with D = 2"):
        F.lstm(x, *w, h0=np.zeros((2, 5)), bidirectional=True)


@pytest.mark.parametrize("name, cell, G, opts", CELLS, ids=IDS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_bidirectional_worth_threading_matches_two_single_calls(name, cell, G, opts, threads):
    """A pair big enough to thread runs its directions at the same time on 2-3 threads (each on
    one thread, dx of the second into its own buffer): the results are those of two
    one-direction calls."""
    rng = np.random.default_rng(11)
    T, B, I, H = 24, 9, 40, 48                     # ~1-2 M multiply-adds per direction
    x = rng.standard_normal((T, B, I))
    lengths = rng.integers(0, T + 1, B)
    w = _weights(rng, G, I, H, D=2)
    dy = rng.standard_normal((T, B, 2 * H))
    dh_n = rng.standard_normal((2, B, H))
    fwd, bwd = getattr(F, cell), getattr(F, cell + "_backward")
    before = gatedrnn.get_num_threads()
    gatedrnn.set_num_threads(threads)
    try:
        out = fwd(x, *w, lengths=lengths, bidirectional=True, training=True, **opts)
        g = bwd(out.ctx, dy=dy, dh_n=dh_n)
        singles = [fwd(x, *[a[d] for a in w], lengths=lengths, reverse=d == 1, training=True,
                       **opts) for d in range(2)]
        gs = [bwd(s.ctx, dy=dy[..., d * H:(d + 1) * H].copy(), dh_n=dh_n[d])
              for d, s in enumerate(singles)]
    finally:
        gatedrnn.set_num_threads(before)
    np.testing.assert_allclose(out.y, np.concatenate([s.y for s in singles], -1), rtol=1e-12,
                               atol=1e-13)
    np.testing.assert_allclose(g.dx, gs[0].dx + gs[1].dx, rtol=1e-11, atol=1e-12)
    for field in ("dh0", "dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh"):
        np.testing.assert_allclose(getattr(g, field), np.stack([getattr(s, field) for s in gs]),
                                   rtol=1e-11, atol=1e-12, err_msg=field)


@pytest.mark.parametrize("name, cell, G, opts", CELLS, ids=IDS)
@pytest.mark.parametrize("B, T", [(1, 1), (3, 2), (5, 1)])
@pytest.mark.parametrize("packed", [False, True])
def test_short_calls_split_by_units_match_the_reference(name, cell, G, opts, B, T, packed):
    """Short inference calls on weights too big for one thread's cache are split by hidden
    units, each thread projecting only its own units' gate columns inside the step's parallel
    region (no separate projection): every unit must still get its projection."""
    rng = np.random.default_rng(13)
    I, H = 200, 256                     # W_ih + W_hh > half an L2: two threads even for B = 1
    x = rng.standard_normal((T, B, I))
    w = [a * 0.2 for a in _weights(rng, G, I, H)]
    h0 = rng.standard_normal((B, H))
    extra = {"c0": rng.standard_normal((B, H))} if cell == "lstm" else {}
    before = gatedrnn.get_num_threads()
    gatedrnn.set_num_threads(2)
    try:
        args = [F.pack_weights(cell, *w, **opts)] if packed else w
        got = getattr(F, cell)(x, *args, h0=h0, **({} if packed else opts), **extra)
    finally:
        gatedrnn.set_num_threads(before)
    want = getattr(R, cell)(x, *w, h0=h0, **opts, **extra)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name, cell, G, opts", CELLS, ids=IDS)
@pytest.mark.parametrize("B", [9, 33, 64, 65])
def test_single_step_calls_reading_weights_in_place(name, cell, G, opts, B):
    """A one-step call of up to 64 rows reads W_ih and W_hh in place (no packing): forward,
    training forward and backward still give the reference's numbers."""
    rng = np.random.default_rng(17)
    I, H = 24, 40
    x = rng.standard_normal((1, B, I))
    w = _weights(rng, G, I, H)
    extra = {"c0": rng.standard_normal((B, H))} if cell == "lstm" else {}
    h0 = rng.standard_normal((B, H))
    got = getattr(F, cell)(x, *w, h0=h0, training=True, **opts, **extra)
    want = getattr(R, cell)(x, *w, h0=h0, training=True, **opts, **extra)
    for a, b in zip(got[:-1], want[:-1]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    dy = rng.standard_normal((1, B, H))
    _grads_close(getattr(F, cell + "_backward")(got.ctx, dy=dy),
                 getattr(R, cell + "_backward")(want.ctx, dy=dy))


@pytest.mark.parametrize("name, cell, G, opts", CELLS, ids=IDS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("T, B, training", [(1, 1, False), (1, 3, False), (6, 2, False),
                                             (3, 9, False), (3, 9, True)])
def test_zigzag_sweeps_repeat_bit_for_bit(name, cell, G, opts, threads, T, B, training):
    """With I = H = 512 in float64, a thread's share of W_hh (and, for one step, of W_ih)
    is above the 1.5 MB from which each thread reads the weights in alternate directions from
    one sweep to the next (every step, and every call: a one-step call on the reversed turn
    runs its recurrent GEMM before the projection). Only the order of the panels changes, never
    the order of the products in an output element: calls on the two turns agree bit for bit,
    and with the reference. Two inputs alternate, so that no call can pass by finding the
    previous call's numbers in a reused buffer."""
    rng = np.random.default_rng(19)
    I = H = 512
    xs = [rng.standard_normal((T, B, I)) for _ in range(2)]
    w = [a * 0.05 for a in _weights(rng, G, I, H)]
    h0 = rng.standard_normal((B, H))
    extra = {"c0": rng.standard_normal((B, H))} if cell == "lstm" else {}
    if B > 2:  # a ragged batch: one sequence without steps, the others of different lengths
        extra["lengths"] = np.array([T] + [0] + [max(1, T - 1)] * (B - 2))
    packed = F.pack_weights(cell, *w, **opts)
    before = gatedrnn.get_num_threads()
    gatedrnn.set_num_threads(threads)
    try:
        runs = [getattr(F, cell)(xs[i % 2], packed, h0=h0, training=training, **extra)
                for i in range(7)]
    finally:
        gatedrnn.set_num_threads(before)
    fields = [f for f in runs[0]._fields if f != "ctx"]
    for i, x in enumerate(xs):
        want = getattr(R, cell)(x, *w, h0=h0, **opts, **extra)
        for field in fields:
            np.testing.assert_allclose(getattr(runs[i], field), getattr(want, field), rtol=1e-12,
                                       atol=1e-13, err_msg=field)
    for i in range(2, len(runs)):
        for field in fields:
            np.testing.assert_array_equal(getattr(runs[i], field), getattr(runs[i % 2], field),
                                          err_msg=f"call {i}: {field}")
