"""Parity of gatedrnn.interop.keras against Keras itself (Keras 3, torch backend).

Both directions: Keras layers/models -> from_keras -> same outputs and final states in
gatedrnn, and gatedrnn layers/models with random weights -> to_keras -> same outputs in Keras.
Masks are right- and left-padded (keras.utils.pad_sequences pads on the left by default), with
a fully masked sequence among them.

Tolerance: both sides compute in float32 with different summation orders and activation
implementations (gatedrnn's tanh/sigmoid are within 4 ulp of the exact value). On these sizes
(I, U <= 8, T = 7, weights ~ N(0, 0.4^2)) a step's pre-activations are sums of ~12 products of
O(1) terms, so each step adds an absolute error of a few float32 ulps of O(1) (~1e-7), which
the contracting gates do not amplify over 7 steps; entries far above 1 (the unbounded relu
SimpleRNN reaches ~10) carry errors relative to their own size. Hence atol 1e-6 plus rtol 1e-5.
Measured over this file, the worst entry uses 30% of that tolerance (3e-7 on an entry of 7e-3;
1e-6 on entries of ~10), while any real mapping error (a swapped gate block, a misplaced bias,
a wrong masked step) is O(1e-2..1). float64 cases use 1e-12.
"""

import os
import sys
import warnings

import numpy as np
import pytest

from conftest import require_peer

import gatedrnn as gr
from gatedrnn.interop.keras import (KerasConversionWarning, from_keras, from_keras_weights,
                                    to_keras, to_keras_weights)

pytestmark = [
    pytest.mark.peers,
    # Keras 3's torch backend converts variables through a NumPy-1 style __array__ (its own
    # deprecation warning, thousands per run): not ours to fix, so not ours to print.
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

RTOL, ATOL = 1e-5, 1e-6
B, T, I, U = 4, 7, 5, 6


@pytest.fixture(scope="module")
def keras():
    """Keras 3 on the torch backend (KERAS_BACKEND must be set before keras's first import)."""
    require_peer("torch")
    if "keras" in sys.modules:
        backend = sys.modules["keras"].backend.backend()
        if backend != "torch":
            pytest.fail(f"keras was imported with the {backend!r} backend before this module; "
                        f"these tests need KERAS_BACKEND=torch set before the first keras "
                        f"import", pytrace=False)
    else:
        os.environ["KERAS_BACKEND"] = "torch"
    k = require_peer("keras")
    assert k.backend.backend() == "torch", k.backend.backend()
    return k


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def rng_for(*parts):
    import zlib
    return np.random.default_rng(zlib.crc32(repr(parts).encode()))


def numpy_list(keras, out):
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    return [keras.ops.convert_to_numpy(o) for o in outs]


def as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def assert_same(got, want, dtype=np.float32, what="output"):
    got, want = as_list(got), as_list(want)
    assert len(got) == len(want), f"{what}: {len(got)} outputs, expected {len(want)}"
    tol = dict(rtol=RTOL, atol=ATOL) if np.dtype(dtype) == np.float32 else dict(rtol=1e-12,
                                                                               atol=1e-12)
    for i, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape, f"{what}[{i}]: shape {g.shape}, expected {w.shape}"
        np.testing.assert_allclose(g, w, err_msg=f"{what}[{i}]", **tol)


def randomize_keras(layer, rng, scale=0.4):
    """Random weights everywhere (biases too: Keras initializes them to zero, which would hide a
    misplaced bias)."""
    layer.set_weights([(scale * rng.standard_normal(w.shape)).astype(w.dtype)
                       for w in layer.get_weights()])


def randomize_ours(layer, rng, scale=0.4):
    layer.set_weights([(scale * rng.standard_normal(w.shape)).astype(w.dtype)
                       for w in layer.get_weights()])


def make_mask(kind, batch=B, steps=T):
    """Right-padded / left-padded masks with lengths (T, 4, 1, 0) (one sequence fully masked)."""
    if kind is None:
        return None
    lengths = np.array([steps, 4, 1, 0][:batch])
    t = np.arange(steps)
    if kind == "right":
        return t[None, :] < lengths[:, None]
    if kind == "left":
        return t[None, :] >= (steps - lengths)[:, None]
    raise ValueError(kind)


def keras_call(keras, layer, x, mask=None, initial_state=None, **kw):
    if mask is not None:
        kw["mask"] = keras.ops.convert_to_tensor(mask)
    if initial_state is not None:
        kw["initial_state"] = [keras.ops.convert_to_tensor(s) for s in initial_state]
    return numpy_list(keras, layer(keras.ops.convert_to_tensor(x), **kw))


VARIANTS = {
    "simple_rnn_tanh": ("SimpleRNN", {"activation": "tanh"}),
    "simple_rnn_relu": ("SimpleRNN", {"activation": "relu"}),
    "gru_reset_after": ("GRU", {"reset_after": True}),
    "gru_reset_before": ("GRU", {"reset_after": False}),
    "lstm": ("LSTM", {}),
}


def keras_layer(keras, variant, **kw):
    cls, opts = VARIANTS[variant]
    return getattr(keras.layers, cls)(U, **opts, **kw)


def ours_layer(variant, **kw):
    cls, opts = VARIANTS[variant]
    return getattr(gr.layers, cls)(U, **opts, **kw)


def n_states(variant):
    return 2 if variant == "lstm" else 1


OPTIONS = {
    "last": {},
    "seq": {"return_sequences": True},
    "state": {"return_state": True},
    "backwards": {"go_backwards": True},
    "seq_state_backwards": {"return_sequences": True, "return_state": True,
                            "go_backwards": True},
}


# --------------------------------------------------------------------------------------------
# single layers: Keras -> gatedrnn
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mask_kind", [None, "right", "left"])
@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_from_keras_layer(keras, variant, options, mask_kind):
    rng = rng_for("from", variant, options, mask_kind)
    k = keras_layer(keras, variant, **OPTIONS[options])
    k.build((None, None, I))
    randomize_keras(k, rng)
    ours = from_keras(k)
    assert type(ours).__name__ == type(k).__name__
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    mask = make_mask(mask_kind)
    # outputs, and with return_state the final states, all compared
    assert_same(ours(x, mask=mask), keras_call(keras, k, x, mask))


@pytest.mark.parametrize("mask_kind", [None, "right", "left"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_from_keras_initial_state(keras, variant, mask_kind):
    rng = rng_for("init", variant, mask_kind)
    k = keras_layer(keras, variant, return_sequences=True, return_state=True)
    k.build((None, None, I))
    randomize_keras(k, rng)
    ours = from_keras(k)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    s0 = [(0.5 * rng.standard_normal((B, U))).astype(np.float32) for _ in range(n_states(variant))]
    mask = make_mask(mask_kind)
    assert_same(ours(x, mask=mask, initial_state=s0),
                keras_call(keras, k, x, mask, initial_state=s0))


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("mask_kind", ["right", "left"])
def test_zero_output_for_mask_comes_from_the_source(keras, mask_kind, return_sequences):
    rng = rng_for("zofm", mask_kind, return_sequences)
    k = keras.layers.GRU(U, return_sequences=return_sequences, zero_output_for_mask=True)
    k.build((None, None, I))
    randomize_keras(k, rng)
    ours = from_keras(k)
    assert ours.zero_output_for_mask
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    assert_same(ours(x, mask=make_mask(mask_kind)), keras_call(keras, k, x, make_mask(mask_kind)))


def test_from_keras_float64(keras):
    """A float64 Keras layer converts to a float64 gatedrnn layer. Compared without a mask:
    Keras 3's unmasked LSTM runs torch.matmul in float64, but its generic (masked) loop goes
    through keras.ops.matmul, whose type promotion turns float64 into float32
    (dtypes.result_type("float64", "float64") == "float32" in Keras 3.15), so masked float64
    Keras layers are only float32-accurate."""
    rng = rng_for("f64")
    k = keras.layers.LSTM(U, return_sequences=True, return_state=True, dtype="float64")
    k.build((None, None, I))
    randomize_keras(k, rng)
    ours = from_keras(k)
    assert ours.dtype == np.float64
    x = rng.standard_normal((B, T, I))
    assert_same(ours(x), keras_call(keras, k, x), dtype=np.float64)


def test_from_keras_rnn_wrapper_with_a_cell(keras):
    rng = rng_for("rnn-cell")
    k = keras.layers.RNN(keras.layers.GRUCell(U, reset_after=False), return_sequences=True)
    k.build((None, None, I))
    randomize_keras(k, rng)
    ours = from_keras(k)
    assert isinstance(ours, gr.layers.GRU) and not ours.reset_after
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    assert_same(ours(x, mask=make_mask("right")), keras_call(keras, k, x, make_mask("right")))


def test_from_keras_stateful_copies_the_states(keras):
    rng = rng_for("stateful")
    k = keras.layers.GRU(U, stateful=True, return_sequences=True)
    k.build((B, None, I))
    randomize_keras(k, rng)
    x1, x2 = (rng.standard_normal((B, T, I)).astype(np.float32) for _ in range(2))
    keras_call(keras, k, x1)                   # Keras now carries a state
    ours = from_keras(k)
    assert ours.stateful
    assert_same(ours(x2), keras_call(keras, k, x2))
    assert_same(ours(x1), keras_call(keras, k, x1))


def test_from_keras_unbuilt_layer_keeps_the_options(keras):
    ours = from_keras(keras.layers.GRU(U, reset_after=False, go_backwards=True,
                                       return_sequences=True, dropout=0.25))
    assert not ours.built
    assert (ours.units, ours.reset_after, ours.go_backwards, ours.return_sequences,
            ours.dropout) == (U, False, True, True, 0.25)


# --------------------------------------------------------------------------------------------
# Bidirectional
# --------------------------------------------------------------------------------------------

MERGE_MODES = ["concat", "sum", "mul", "ave", None]


@pytest.mark.parametrize("mask_kind", [None, "right", "left"])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("merge_mode", MERGE_MODES, ids=str)
@pytest.mark.parametrize("variant", ["lstm", "gru_reset_before"])
def test_from_keras_bidirectional(keras, variant, merge_mode, return_sequences, mask_kind):
    rng = rng_for("bi", variant, merge_mode, return_sequences, mask_kind)
    return_state = merge_mode in ("concat", None)
    k = keras.layers.Bidirectional(
        keras_layer(keras, variant, return_sequences=return_sequences, return_state=return_state),
        merge_mode=merge_mode)
    k.build((None, None, I))
    randomize_keras(k, rng)
    ours = from_keras(k)
    assert ours.merge_mode == merge_mode
    assert ours.forward_layer.zero_output_for_mask == return_sequences
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    mask = make_mask(mask_kind)
    assert_same(ours(x, mask=mask), keras_call(keras, k, x, mask))


@pytest.mark.parametrize("mask_kind", [None, "right", "left"])
@pytest.mark.parametrize("merge_mode", ["concat", None], ids=str)
def test_from_keras_bidirectional_go_backwards(keras, merge_mode, mask_kind):
    """Keras needs an explicit backward_layer when the wrapped layer has go_backwards=True;
    both outputs then come out in reversed time order."""
    rng = rng_for("bi-back", merge_mode, mask_kind)
    k = keras.layers.Bidirectional(
        keras.layers.LSTM(U, return_sequences=True, go_backwards=True),
        backward_layer=keras.layers.LSTM(U, return_sequences=True),
        merge_mode=merge_mode)
    k.build((None, None, I))
    randomize_keras(k, rng)
    ours = from_keras(k)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    mask = make_mask(mask_kind)
    assert_same(ours(x, mask=mask), keras_call(keras, k, x, mask))


def test_from_keras_bidirectional_other_backward_layer(keras):
    rng = rng_for("bi-other")
    k = keras.layers.Bidirectional(
        keras.layers.GRU(U, return_sequences=True, return_state=True),
        backward_layer=keras.layers.GRU(U, return_sequences=True, return_state=True,
                                        go_backwards=True, reset_after=False))
    k.build((None, None, I))
    randomize_keras(k, rng)
    ours = from_keras(k)
    assert ours.backward_layer.reset_after is False
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    assert_same(ours(x, mask=make_mask("left")), keras_call(keras, k, x, make_mask("left")))


@pytest.mark.parametrize("mask_kind", [None, "left"])
def test_from_keras_bidirectional_initial_state(keras, mask_kind):
    rng = rng_for("bi-init", mask_kind)
    k = keras.layers.Bidirectional(keras.layers.LSTM(U, return_sequences=True,
                                                     return_state=True))
    k.build((None, None, I))
    randomize_keras(k, rng)
    ours = from_keras(k)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    s0 = [(0.5 * rng.standard_normal((B, U))).astype(np.float32) for _ in range(4)]
    mask = make_mask(mask_kind)
    assert_same(ours(x, mask=mask, initial_state=s0),
                keras_call(keras, k, x, mask, initial_state=s0))


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------

VOCAB = 20


def token_batch(rng, padding):
    """Integer sequences of lengths 7, 4, 1, 0 padded with 0 (keras.utils.pad_sequences)."""
    from keras.utils import pad_sequences
    seqs = [list(rng.integers(1, VOCAB, size=n)) for n in (7, 4, 1, 0)]
    return pad_sequences(seqs, maxlen=T, padding=padding)


def stacked_keras_model(keras, rng, functional=False):
    layers = [keras.layers.Embedding(VOCAB, 8, mask_zero=True),
              keras.layers.Bidirectional(keras.layers.LSTM(U, return_sequences=True)),
              keras.layers.GRU(U, return_sequences=True),
              keras.layers.Dropout(0.3),
              keras.layers.GRU(U, reset_after=False),
              keras.layers.Dense(3, activation="softmax")]
    if functional:
        inp = keras.Input((T,), dtype="int32")
        y = inp
        for layer in layers:
            y = layer(y)
        model = keras.Model(inp, y)
    else:
        model = keras.Sequential([keras.Input((T,), dtype="int32")] + layers)
    for layer in layers:
        randomize_keras(layer, rng)
    return model


@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
@pytest.mark.parametrize("padding", ["pre", "post"], ids=["left_padded", "right_padded"])
def test_from_keras_stacked_model(keras, padding, functional):
    rng = rng_for("stack", padding, functional)
    model = stacked_keras_model(keras, rng, functional)
    ours = from_keras(model)
    assert isinstance(ours, gr.Sequential)
    assert [type(l).__name__ for l in ours.layers] == [
        "Embedding", "Bidirectional", "GRU", "Dropout", "GRU", "Dense"]
    x = token_batch(rng, padding)
    assert_same(ours.predict(x), numpy_list(keras, model(x)))


@pytest.mark.parametrize("padding", ["pre", "post"], ids=["left_padded", "right_padded"])
def test_from_keras_masking_model(keras, padding):
    """Masking on float input, RepeatVector and Activation."""
    rng = rng_for("masking", padding)
    layers = [keras.layers.Masking(mask_value=0.0),
              keras.layers.LSTM(U, return_sequences=True),
              keras.layers.SimpleRNN(U, activation="relu"),
              keras.layers.RepeatVector(3),
              keras.layers.GRU(U, return_sequences=True),
              keras.layers.Dense(2),
              keras.layers.Activation("tanh")]
    model = keras.Sequential([keras.Input((T, I))] + layers)
    for layer in layers:
        randomize_keras(layer, rng)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    x[~make_mask("left" if padding == "pre" else "right")] = 0.0
    ours = from_keras(model)
    assert_same(ours(x), numpy_list(keras, model(x)))


def test_go_backwards_mask_passed_to_the_next_layer(keras):
    rng = rng_for("back-mask")
    layers = [keras.layers.Masking(),
              keras.layers.LSTM(U, return_sequences=True, go_backwards=True),
              keras.layers.GRU(U)]
    model = keras.Sequential([keras.Input((T, I))] + layers)
    for layer in layers:
        randomize_keras(layer, rng)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    x[~make_mask("right")] = 0.0
    assert_same(from_keras(model)(x), numpy_list(keras, model(x)))


# --------------------------------------------------------------------------------------------
# gatedrnn -> Keras
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mask_kind", [None, "right", "left"])
@pytest.mark.parametrize("options", ["last", "seq_state_backwards"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_to_keras_layer(keras, variant, options, mask_kind):
    rng = rng_for("to", variant, options, mask_kind)
    ours = ours_layer(variant, **OPTIONS[options])
    ours.build((None, None, I))
    randomize_ours(ours, rng)                  # bias_ih and bias_hh both non-zero
    k = to_keras(ours)
    assert type(k).__name__ == type(ours).__name__ and k.built
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    mask = make_mask(mask_kind)
    s0 = [(0.5 * rng.standard_normal((B, U))).astype(np.float32) for _ in range(n_states(variant))]
    assert_same(keras_call(keras, k, x, mask, initial_state=s0),
                ours(x, mask=mask, initial_state=s0))


@pytest.mark.parametrize("mask_kind", [None, "left"])
@pytest.mark.parametrize("merge_mode", MERGE_MODES, ids=str)
def test_to_keras_bidirectional(keras, merge_mode, mask_kind):
    rng = rng_for("to-bi", merge_mode, mask_kind)
    ours = gr.layers.Bidirectional(gr.layers.GRU(U, return_sequences=True, return_state=True),
                                   merge_mode=merge_mode)
    ours.build((None, None, I))
    randomize_ours(ours, rng)
    k = to_keras(ours)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    mask = make_mask(mask_kind)
    assert_same(keras_call(keras, k, x, mask), ours(x, mask=mask))


def test_to_keras_bidirectional_mixed_layers(keras):
    """A backward layer of another kind (and go_backwards on the forward one)."""
    rng = rng_for("to-bi-mixed")
    ours = gr.layers.Bidirectional(
        gr.layers.LSTM(U, return_sequences=True, go_backwards=True),
        backward_layer=gr.layers.SimpleRNN(U, activation="relu", return_sequences=True))
    ours.build((None, None, I))
    randomize_ours(ours, rng)
    k = to_keras(ours)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    for mask in (None, make_mask("right"), make_mask("left")):
        assert_same(keras_call(keras, k, x, mask), ours(x, mask=mask))


@pytest.mark.parametrize("padding", ["pre", "post"], ids=["left_padded", "right_padded"])
def test_to_keras_stacked_model(keras, padding):
    rng = rng_for("to-stack", padding)
    ours = gr.Sequential([
        gr.Input((T,), dtype="int64"),
        gr.layers.Embedding(VOCAB, 8, mask_zero=True),
        gr.layers.Bidirectional(gr.layers.LSTM(U, return_sequences=True), merge_mode="sum"),
        gr.layers.SimpleRNN(U, activation="relu", return_sequences=True),
        gr.layers.GRU(U, reset_after=False),
        gr.layers.Dense(3, activation="softmax")])
    for layer in ours.layers:
        randomize_ours(layer, rng)
    k = to_keras(ours)
    assert isinstance(k, keras.Sequential)
    x = token_batch(rng, padding)
    assert_same(numpy_list(keras, k(x)), ours(x))
    # and back again: the same model
    again = from_keras(k)
    assert_same(again(x), ours(x))


def test_to_keras_stateful_layer(keras):
    rng = rng_for("to-stateful")
    ours = gr.layers.LSTM(U, stateful=True, return_sequences=True)
    ours.build((None, None, I))
    randomize_ours(ours, rng)
    x1, x2 = (rng.standard_normal((B, T, I)).astype(np.float32) for _ in range(2))
    ours(x1)
    k = to_keras(ours)                          # the carried states go along
    assert_same(keras_call(keras, k, x2), ours(x2))


# --------------------------------------------------------------------------------------------
# plain weight lists
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_weight_lists_round_trip_exactly(keras, variant, bidirectional):
    rng = rng_for("lists", variant, bidirectional)
    k = keras_layer(keras, variant)
    if bidirectional:
        k = keras.layers.Bidirectional(k)
    k.build((None, None, I))
    randomize_keras(k, rng)
    kw = k.get_weights()
    kind = VARIANTS[variant][0]
    reset_after = VARIANTS[variant][1].get("reset_after", True)
    canonical = from_keras_weights(kind, kw, bidirectional=bidirectional)
    ours = ours_layer(variant)
    if bidirectional:
        ours = gr.layers.Bidirectional(ours)
    ours.build((None, None, I))
    ours.set_weights(canonical)                # the canonical list fits gatedrnn's layer as is
    back = to_keras_weights(kind, canonical, reset_after=reset_after,
                            bidirectional=bidirectional)
    assert len(back) == len(kw)
    for a, b in zip(back, kw):
        np.testing.assert_array_equal(a, b)     # Keras -> canonical -> Keras is exact


def test_weight_lists_gru_gate_order_and_biases():
    """Keras GRU [z | r | h] -> [r | z | n]; reset-after bias rows -> bias_ih, bias_hh."""
    units, inp = 2, 3
    kernel = np.arange(inp * 3 * units, dtype=np.float32).reshape(inp, 3 * units)
    rec = np.arange(units * 3 * units, dtype=np.float32).reshape(units, 3 * units)
    bias = np.arange(2 * 3 * units, dtype=np.float32).reshape(2, 3 * units)
    w_ih, w_hh, b_ih, b_hh = from_keras_weights("gru", [kernel, rec, bias])
    z, r, h = np.split(kernel.T, 3)
    np.testing.assert_array_equal(w_ih, np.concatenate([r, z, h]))
    np.testing.assert_array_equal(b_ih, np.concatenate([bias[0, 2:4], bias[0, :2], bias[0, 4:]]))
    np.testing.assert_array_equal(b_hh, np.concatenate([bias[1, 2:4], bias[1, :2], bias[1, 4:]]))
    # reset-before: one bias -> bias_ih, zeros in bias_hh; back again: the sum
    w = from_keras_weights("gru", [kernel, rec, bias[0]], reset_after=False)
    np.testing.assert_array_equal(w[3], 0)
    w[3] = np.ones_like(w[3])
    np.testing.assert_array_equal(to_keras_weights("gru", w, reset_after=False)[2], bias[0] + 1)
    # no biases: two arrays
    assert len(from_keras_weights("GRU", [kernel, rec])) == 2


def test_weight_list_errors():
    k = np.zeros((3, 8), np.float32)
    r = np.zeros((2, 8), np.float32)
    with pytest.raises(ValueError, match=r"kind: expected one of .*got 'conv1d'"):
        from_keras_weights("conv1d", [k, r])
    with pytest.raises(ValueError, match=r"recurrent_kernel\): expected shape \(U, 3\*U\)"):
        from_keras_weights("gru", [k, r])
    with pytest.raises(ValueError, match=r"bias\): expected shape \(8,\), got \(7,\)"):
        from_keras_weights("lstm", [k, r, np.zeros(7, np.float32)])
    with pytest.raises(ValueError, match=r"expected 6 arrays .* got 3"):
        from_keras_weights("lstm", [k, r, np.zeros(8, np.float32)], bidirectional=True)
    with pytest.raises(ValueError, match=r"reset_after: .*means reset_after=True, got "
                                         r"reset_after=False"):
        from_keras_weights("gru", [np.zeros((3, 6)), np.zeros((2, 6)), np.zeros((2, 6))],
                           reset_after=False)
    with pytest.raises(ValueError, match=r"units: the recurrent kernel has U = 2, got units=3"):
        from_keras_weights("lstm", [k, r], units=3)
    with pytest.raises(ValueError, match=r"weight_ih\): expected shape \(8, I\)"):
        to_keras_weights("lstm", [np.zeros((6, 3)), np.zeros((8, 2)), np.zeros(8), np.zeros(8)])
    with pytest.raises(TypeError, match=r"expected a float array, got dtype int64"):
        from_keras_weights("lstm", [np.zeros((3, 8), np.int64), r])


# --------------------------------------------------------------------------------------------
# errors and warnings
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", ["GRU", "LSTM"])
def test_hard_sigmoid_is_an_error_naming_the_argument(keras, cls):
    k = getattr(keras.layers, cls)(U, recurrent_activation="hard_sigmoid")
    k.build((None, None, I))
    with pytest.raises(ValueError, match=r"recurrent_activation: .*'sigmoid', got "
                                         r"'hard_sigmoid'"):
        from_keras(k)


def test_relu_lstm_is_an_error_naming_the_argument(keras):
    k = keras.layers.LSTM(U, activation="relu")
    with pytest.raises(ValueError, match=r"activation: gatedrnn computes LSTM with 'tanh', "
                                         r"got 'relu'"):
        from_keras(k)


def test_unsupported_simple_rnn_activation(keras):
    with pytest.raises(ValueError, match=r"activation: .*'tanh' or 'relu', got 'linear'"):
        from_keras(keras.layers.SimpleRNN(U, activation=None))


def test_unsupported_dtype_policy(keras):
    k = keras.layers.GRU(U, dtype="mixed_float16")
    with pytest.raises(ValueError, match=r"dtype: .*float32 or float64.*mixed_float16"):
        from_keras(k)


def test_unsupported_layer_and_non_chain_model(keras):
    with pytest.raises(TypeError, match=r"from_keras: .*got Conv1D"):
        from_keras(keras.layers.Conv1D(2, 3))
    with pytest.raises(TypeError, match=r"not a Keras object"):
        from_keras(object())
    inp = keras.Input((T, I))
    a = keras.layers.LSTM(U)(inp)
    b = keras.layers.GRU(U)(inp)
    branchy = keras.Model(inp, keras.layers.Add()([a, b]))
    with pytest.raises(ValueError, match=r"plain chain"):
        from_keras(branchy)
    with pytest.raises(TypeError, match=r"to_keras: expected a gatedrnn"):
        to_keras(gr.layers.LSTMCell(U))


def test_mask_with_holes_is_rejected(keras):
    k = keras.layers.LSTM(U, return_sequences=True)
    k.build((None, None, I))
    ours = from_keras(k)
    x = np.zeros((2, T, I), np.float32)
    mask = np.ones((2, T), bool)
    mask[1, 3] = False                         # a hole: valid steps on both sides
    with pytest.raises(ValueError, match=r"one contiguous run of valid steps"):
        ours(x, mask=mask)


def test_regularizers_warn(keras):
    k = keras.layers.GRU(U, kernel_regularizer="l2", bias_constraint="non_neg")
    k.build((None, None, I))
    with pytest.warns(KerasConversionWarning, match=r"kernel_regularizer, bias_constraint act "
                                                    r"only while training"):
        ours = from_keras(k)
    assert ours.built
    with warnings.catch_warnings():
        warnings.simplefilter("error", KerasConversionWarning)
        from_keras(keras.layers.GRU(U, unroll=True))      # unroll: same results, no warning
