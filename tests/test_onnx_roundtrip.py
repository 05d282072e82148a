"""to_onnx then from_onnx: gatedrnn loads its own exports, masks included, and runs them with
the outputs of the gatedrnn layer or model that was exported.

The oracle is the exported gatedrnn object itself (its semantics are tested against the NumPy
reference, PyTorch and Keras elsewhere). Every kind of export is covered: single recurrent
layers with each option (return_sequences, return_state, go_backwards, zero_output_for_mask,
time_major, with_lengths int64/int32, with_initial_state), Bidirectional with every merge mode
and with a backward layer of another kind, StackedRNN, and Sequential models whose masks come
from Embedding(mask_zero=True) or Masking, exported with padding "any", "right" and "left" and
fed right-padded, left-padded and anywhere-placed runs, always with a row of length 0. These
graphs use the mask ops of :mod:`gatedrnn.interop.onnx_graph` (Not, And, Less, GreaterOrEqual,
Min, Max, ArgMax, ReduceSum, ReduceMax, GatherND, Where, ...) and the activations (Softmax,
Softplus, Elu).

Tolerance (float32): rtol 1e-5, atol 1e-6. Both sides run the recurrences on gatedrnn's own
core in float32; they differ only where the graph computes something in another order (Dense
as MatMul + Add, a merge mode as Add/Mul/Div, Softmax by the interpreter), a few ulp of values
of size <= ~3. A wrong length, fill of a masked step, reversal or moved run is an error of
1e-2 .. 1.
"""

from __future__ import annotations

import numpy as np
import pytest

import gatedrnn as gr
from conftest import seed_of
from conftest import randomize_weights as randomize

from onnx_cases import (B, CELLS, H, I, L, LENGTHS, T, data, mask_of, padded_tokens,
                        masked_stack, readme_model, runs_anywhere)

pytestmark = pytest.mark.peers



@pytest.fixture(autouse=True)
def _onnx_installed(onnx):
    """Every test here exports a model, which needs the onnx package."""


def round_trip(obj, feeds, **kwargs):
    """``obj`` exported with ``kwargs`` and loaded back: the outputs for ``feeds``."""
    from gatedrnn.interop import from_onnx
    from gatedrnn.interop.onnx_export import to_onnx
    return from_onnx(to_onnx(obj, **kwargs)).run(None, feeds)


def check(got, want, what=""):
    want = list(want) if isinstance(want, (list, tuple)) else [want]
    assert len(got) == len(want), f"{what}: {len(got)} outputs, expected {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        w = np.asarray(w)
        assert g.dtype == w.dtype, f"{what} output {k}: dtype {g.dtype} != {w.dtype}"
        assert g.shape == w.shape, f"{what} output {k}: shape {g.shape} != {w.shape}"
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=f"{what} output {k}")


def padded_features(rng, lengths, side, T=T, value=0.0):
    x = data(rng, len(lengths), T, I)
    for b, n in enumerate(lengths):
        if side == "right":
            x[b, n:] = value
        else:
            x[b, :T - n] = value
    return x


# which export paddings are exact for data padded on a side
PADDINGS = [("any", "right"), ("any", "left"), ("right", "right"), ("left", "left")]


# --------------------------------------------------------------------------------------------
# Single recurrent layers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_recurrent_layer(cell, return_sequences, go_backwards):
    """No mask; lengths (int64, int32); lengths with initial states (a length of 0 returns
    the initial state); zero_output_for_mask."""
    rng = np.random.default_rng(seed_of("rt-layer", cell, return_sequences, go_backwards))
    layer = CELLS[cell](H, return_sequences=return_sequences, go_backwards=go_backwards,
                        return_state=True)
    x = data(rng, B, T, I)
    layer(x)
    randomize(layer, rng)
    what = f"{cell} rs={return_sequences} gb={go_backwards}"
    check(round_trip(layer, {"x": x}), layer(x), what)
    mask = mask_of(LENGTHS)
    check(round_trip(layer, {"x": x, "lengths": LENGTHS}, with_lengths=True),
          layer(x, mask=mask), f"{what} lengths")
    check(round_trip(layer, {"x": x, "lengths": LENGTHS.astype(np.int32)},
                     with_lengths="int32"), layer(x, mask=mask), f"{what} int32 lengths")
    states = [data(rng, B, H) for _ in range(2 if cell == "lstm" else 1)]
    feeds = {"x": x, "lengths": LENGTHS, **dict(zip(["h0", "c0"], states))}
    got = round_trip(layer, feeds, with_lengths=True, with_initial_state=True)
    check(got, layer(x, mask=mask, initial_state=states), f"{what} initial state")
    np.testing.assert_array_equal(got[1][0], states[0][0])  # length 0: the initial state

    zero = CELLS[cell](H, return_sequences=return_sequences, go_backwards=go_backwards,
                       zero_output_for_mask=True)
    zero(x)
    zero.set_weights(layer.get_weights())
    check(round_trip(zero, {"x": x, "lengths": LENGTHS}, with_lengths=True),
          zero(x, mask=mask), f"{what} zero_output_for_mask")


@pytest.mark.parametrize("which", ["gru_backwards", "bidirectional"])
def test_time_major(which):
    rng = np.random.default_rng(seed_of("rt-tm", which))
    if which == "gru_backwards":
        layer = L.GRU(H, return_sequences=True, time_major=True, go_backwards=True)
    else:
        layer = L.Bidirectional(L.LSTM(H, return_sequences=True, time_major=True),
                                merge_mode="ave")
    x = data(rng, T, B, I)
    layer(x)
    randomize(layer, rng)
    check(round_trip(layer, {"x": x, "lengths": LENGTHS}, with_lengths=True),
          layer(x, mask=mask_of(LENGTHS)))


# --------------------------------------------------------------------------------------------
# Bidirectional, StackedRNN
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["rnn_tanh", "gru_ra", "lstm"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional(cell, merge_mode, return_sequences):
    rng = np.random.default_rng(seed_of("rt-bi", cell, merge_mode, return_sequences))
    layer = L.Bidirectional(CELLS[cell](H, return_sequences=return_sequences,
                                        return_state=True), merge_mode=merge_mode)
    x = data(rng, B, T, I)
    layer(x)
    randomize(layer, rng)
    what = f"{cell} {merge_mode} rs={return_sequences}"
    check(round_trip(layer, {"x": x}), layer(x), what)
    n = 4 if cell == "lstm" else 2
    states = [data(rng, B, H) for _ in range(n)]
    names = ["h0_fwd", "c0_fwd", "h0_bwd", "c0_bwd"] if n == 4 else ["h0_fwd", "h0_bwd"]
    feeds = {"x": x, "lengths": LENGTHS, **dict(zip(names, states))}
    check(round_trip(layer, feeds, with_lengths=True, with_initial_state=True),
          layer(x, mask=mask_of(LENGTHS), initial_state=states), f"{what} lengths, states")


def test_bidirectional_with_different_backward_layer():
    """One node per direction, on lengths and on a Masking model padded anywhere."""
    rng = np.random.default_rng(seed_of("rt-bi-pair"))
    layer = L.Bidirectional(L.LSTM(H, return_sequences=True, return_state=True),
                            backward_layer=L.GRU(3, return_sequences=True, return_state=True,
                                                 go_backwards=True))
    x = data(rng, B, T, I)
    layer(x)
    randomize(layer, rng)
    check(round_trip(layer, {"x": x, "lengths": LENGTHS}, with_lengths=True),
          layer(x, mask=mask_of(LENGTHS)))
    model = gr.Sequential([
        gr.Input((None, I)), L.Masking(0.0), L.SimpleRNN(H, return_sequences=True),
        L.Bidirectional(L.LSTM(H, return_sequences=True),
                        backward_layer=L.GRU(3, return_sequences=True, go_backwards=True))])
    for sub in model.layers:
        randomize(sub, rng)
    x = padded_features(rng, LENGTHS, "left")
    x[2, 5:] = 0  # a run in the middle: steps 1..4
    check(round_trip(model, {"x": x}), model(x))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_stacked(cell, bidirectional, batch_first):
    rng = np.random.default_rng(seed_of("rt-stacked", cell, bidirectional, batch_first))
    kw = {"nonlinearity": "relu"} if cell == "rnn" else \
        {"reset_after": False} if cell == "gru" and batch_first else {}
    layer = L.StackedRNN(cell, I, H, num_layers=2, bidirectional=bidirectional,
                         batch_first=batch_first, **kw)
    randomize(layer, rng)
    D = 2 if bidirectional else 1
    x = data(rng, B, T, I) if batch_first else data(rng, T, B, I)
    h0, c0 = data(rng, 2 * D, B, H), data(rng, 2 * D, B, H)
    feeds = {"x": x, "lengths": LENGTHS, "h0": h0}
    if cell == "lstm":
        feeds["c0"] = c0
        y, (h_n, c_n) = layer(x, h0, c0, lengths=LENGTHS)
        want = [y, h_n, c_n]
    else:
        want = list(layer(x, h0, lengths=LENGTHS))
    check(round_trip(layer, feeds, with_lengths=True, with_initial_state=True), want)
    want = layer(x)
    check(round_trip(layer, {"x": x}), [want[0], *want[1]] if cell == "lstm" else want)


def test_stacked_in_a_model_with_mask():
    rng = np.random.default_rng(seed_of("rt-stacked-model"))
    model = gr.Sequential([gr.Input((None,), dtype="int64"), L.Embedding(20, 4, mask_zero=True),
                           L.StackedRNN("lstm", 4, H, num_layers=2, bidirectional=True,
                                        batch_first=True, return_state=False),
                           L.Dense(2)])
    for sub in model.layers:
        randomize(sub, rng)
    tokens = padded_tokens(rng, [0, 9, 4, 1], "right")
    for padding in ("any", "right"):
        check(round_trip(model, {"x": tokens}, padding=padding), model(tokens), padding)


# --------------------------------------------------------------------------------------------
# Sequential models with masks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding,side", PADDINGS)
def test_readme_model(padding, side):
    """Embedding(mask_zero) -> Bidirectional(LSTM(return_sequences)) -> GRU -> Dense(softmax)
    on padded tokens with a row of length 0."""
    rng = np.random.default_rng(seed_of("rt-readme", padding, side))
    model = readme_model(rng)
    tokens = padded_tokens(rng, [0, 9, 4, 1, 7], side)
    got = round_trip(model, {"x": tokens}, padding=padding)
    check(got, model(tokens), f"padding={padding} {side}-padded")


@pytest.mark.parametrize("padding,side", PADDINGS)
def test_masking_model(padding, side):
    """Masking -> LSTM(go_backwards, return_sequences) -> SimpleRNN -> RepeatVector ->
    Dense(elu)."""
    rng = np.random.default_rng(seed_of("rt-masking", padding, side))
    model = gr.Sequential([gr.Input((None, I)), L.Masking(0.0),
                           L.LSTM(H, return_sequences=True, go_backwards=True),
                           L.SimpleRNN(H), L.RepeatVector(3), L.Dense(2, activation="elu")])
    for layer in model.layers:
        randomize(layer, rng, scale=1.0)
    x = padded_features(rng, LENGTHS, side)
    check(round_trip(model, {"x": x}, padding=padding), model(x),
          f"padding={padding} {side}-padded")


@pytest.mark.parametrize("activation", [None, "relu", "tanh", "sigmoid", "softmax", "softplus",
                                        "elu"])
def test_dense_activations_after_a_masked_layer(activation):
    rng = np.random.default_rng(seed_of("rt-dense", activation))
    model = gr.Sequential([gr.Input((None, I)), L.Masking(-1.0),
                           L.GRU(H, return_sequences=True), L.Dense(4, activation=activation),
                           L.Activation(activation or "linear")])
    for layer in model.layers:
        randomize(layer, rng, scale=2.0)
    x = 3 * padded_features(rng, LENGTHS, "right", value=-1.0 / 3)
    check(round_trip(model, {"x": x}, padding="right"), model(x), str(activation))


def test_masks_with_runs_anywhere():
    """padding='any': one contiguous run anywhere in each row (what the layers accept)."""
    rng = np.random.default_rng(seed_of("rt-anywhere"))
    x = runs_anywhere(rng)
    for cell in ("rnn_tanh", "gru_rb", "lstm"):
        for zero_output in (False, True):
            for go_backwards in (False, True):
                model = masked_stack(cell, zero_output, go_backwards)
                for layer in model.layers:
                    randomize(layer, rng)
                what = f"{cell} zero_output={zero_output} go_backwards={go_backwards}"
                check(round_trip(model, {"x": x}), model(x), what)
                # sequences read by a Dense: the masked steps' fill is in the graph (steps
                # before / after each run: Less / GreaterOrEqual against the run's ends)
                model = gr.Sequential([
                    gr.Input((None, I)), L.Masking(0.0),
                    CELLS[cell](H, return_sequences=True, go_backwards=go_backwards,
                                zero_output_for_mask=zero_output),
                    L.Dense(2)])
                for layer in model.layers:
                    randomize(layer, rng)
                check(round_trip(model, {"x": x}), model(x), f"{what} then Dense")


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_opsets(opset):
    """ReduceMax takes its axes as an attribute before opset 18 and as an input from 18."""
    rng = np.random.default_rng(seed_of("rt-opset", opset))
    model = gr.Sequential([gr.Input((None, I)), L.Masking(0.0),
                           L.Bidirectional(L.GRU(H, return_sequences=True), merge_mode="ave"),
                           L.LSTM(H), L.Dense(2, activation="softmax")])
    for layer in model.layers:
        randomize(layer, rng)
    x = padded_features(rng, LENGTHS, "left")
    check(round_trip(model, {"x": x}, opset=opset), model(x), f"opset {opset}")


def test_float64_export_of_a_masked_model():
    """dtype='float64': the mask ops run on float64 values (ONNX Runtime cannot run this)."""
    rng = np.random.default_rng(seed_of("rt-float64"))
    model = readme_model(rng, activation="softplus")
    tokens = padded_tokens(rng, [0, 9, 4, 1, 7], "left")
    (got,) = round_trip(model, {"x": tokens}, dtype="float64")
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, model(tokens), rtol=1e-5, atol=1e-6)
