"""gatedrnn.interop.onnx_export (to_onnx) and OnnxModel.recurrent_layers.

The oracle of every export test is the gatedrnn layer or model itself (its semantics are tested
against the NumPy reference, PyTorch and Keras elsewhere): the exported graph runs in ONNX
Runtime on the same inputs and must give the same outputs. Inputs exercise each option: lengths
of 0, 1, T and in between in one batch, masks padded on the right, on the left and on both sides,
initial states.

Tolerance (float32): ``|ort - ours| <= 2 * (1e-5 * |ours| + 16 * sqrt(K) * eps32 * scale)``
(conftest's ``assert_close`` with factor 2), K = I + H the length of the sums behind each
pre-activation, scale = max |ours| of that output. Both sides round in float32 with different
GEMM summation orders and activation approximations, each off by a random walk of about
sqrt(K) * eps32 * scale per step; with PyTorch/Keras-style initialisation the recurrences are
contractive over the T <= 9 steps used here, so the error stays at that level (measured:
below 3e-7 for outputs of size ~1). The bound is ~1e-5 for K ~ 20, while a wrong gate order, a
missed reversal, a wrong fill of a masked step or a wrong length is an error of 1e-2 .. 1.
Integer-valued and exactly copied results (Embedding, zeros at masked steps) fall well inside.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gatedrnn as gr
from conftest import assert_close, seed_of
from conftest import randomize_weights as randomize
from gatedrnn.interop.onnx_export import MIN_OPSET, to_onnx

from onnx_cases import (B, CELLS, F32, H, I, L, LENGTHS, T, data, mask_of, padded_tokens,
                        masked_stack, readme_model, runs_anywhere)

pytestmark = pytest.mark.peers



# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _onnx_installed(onnx):
    """Every test here exports or builds a model, which needs the onnx package."""


def ort_run(ort, proto, feeds):
    """Run ``proto`` in ONNX Runtime; also check the graph outputs' declared dtype and shape
    (fixed sizes equal, named sizes consistent: "batch" is the same number everywhere)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    outs = sess.run(None, feeds)
    named = {}
    for vi in list(proto.graph.input) + list(proto.graph.output):
        if not vi.type.HasField("tensor_type"):  # an untyped output (hand-made test models)
            continue
        value = feeds[vi.name] if vi.name in feeds else \
            outs[[o.name for o in proto.graph.output].index(vi.name)]
        dims = vi.type.tensor_type.shape.dim
        assert len(dims) == np.ndim(value), f"{vi.name}: rank {len(dims)} != {np.shape(value)}"
        for d, n in zip(dims, np.shape(value)):
            if d.dim_param:
                assert named.setdefault(d.dim_param, n) == n, f"{vi.name}: {d.dim_param} != {n}"
            else:
                assert d.dim_value == n, f"{vi.name}: declared {d.dim_value}, got {n}"
    return outs


def as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def check(got, want, K=I + H, what=""):
    got, want = as_list(got), as_list(want)
    assert len(got) == len(want), f"{what}: {len(got)} outputs, expected {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        assert_close(np.asarray(g), np.asarray(w), dtype=F32, K=K, factor=2.0,
                     name=f"{what} output {k}")


# --------------------------------------------------------------------------------------------
# SimpleRNN / GRU / LSTM
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("lengths", [None, "lengths"])
def test_recurrent_layer(onnxruntime, cell, return_sequences, go_backwards, lengths):
    rng = np.random.default_rng(seed_of(cell, return_sequences, go_backwards, lengths))
    layer = CELLS[cell](H, return_sequences=return_sequences, go_backwards=go_backwards,
                        return_state=True)
    x = data(rng, B, T, I)
    layer(x)
    randomize(layer, rng)
    if lengths is None:
        want = layer(x)
        got = ort_run(onnxruntime, to_onnx(layer), {"x": x})
    else:
        want = layer(x, mask=mask_of(LENGTHS))
        got = ort_run(onnxruntime, to_onnx(layer, with_lengths=True),
                      {"x": x, "lengths": LENGTHS})
    check(got, want, what=f"{cell} rs={return_sequences} gb={go_backwards} {lengths}")


@pytest.mark.parametrize("cell", ["rnn_tanh", "gru_rb", "lstm"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_zero_output_for_mask(onnxruntime, cell, return_sequences, go_backwards):
    rng = np.random.default_rng(seed_of("zo", cell, return_sequences, go_backwards))
    layer = CELLS[cell](H, return_sequences=return_sequences, go_backwards=go_backwards,
                        zero_output_for_mask=True)
    x = data(rng, B, T, I)
    layer(x)
    randomize(layer, rng)
    want = layer(x, mask=mask_of(LENGTHS))
    got = ort_run(onnxruntime, to_onnx(layer, with_lengths="int32"),
                  {"x": x, "lengths": LENGTHS.astype(np.int32)})
    check(got, want)


@pytest.mark.parametrize("cell", ["rnn_relu", "gru_ra", "lstm"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_initial_state_and_length_zero(onnxruntime, cell, return_sequences, go_backwards):
    """With initial-state inputs a length of 0 must return the initial state (gatedrnn), not
    the zeros ONNX Runtime's node returns: the graph selects it with a Where."""
    rng = np.random.default_rng(seed_of("init", cell, return_sequences, go_backwards))
    layer = CELLS[cell](H, return_sequences=return_sequences, go_backwards=go_backwards,
                        return_state=True)
    x = data(rng, B, T, I)
    layer(x)
    randomize(layer, rng)
    n = 2 if cell == "lstm" else 1
    states = [data(rng, B, H) for _ in range(n)]
    feeds = {"x": x, "lengths": LENGTHS, "h0": states[0]}
    if n == 2:
        feeds["c0"] = states[1]
    want = layer(x, mask=mask_of(LENGTHS), initial_state=states)
    got = ort_run(onnxruntime, to_onnx(layer, with_lengths=True, with_initial_state=True), feeds)
    check(got, want)
    np.testing.assert_array_equal(got[1][0], states[0][0])  # length 0: the initial state
    # without lengths too
    want = layer(x, initial_state=states)
    feeds.pop("lengths")
    got = ort_run(onnxruntime, to_onnx(layer, with_initial_state=True), feeds)
    check(got, want)


@pytest.mark.parametrize("which", ["gru_backwards", "bidirectional"])
def test_time_major(onnxruntime, which):
    rng = np.random.default_rng(seed_of("tm", which))
    if which == "gru_backwards":
        layer = L.GRU(H, return_sequences=True, time_major=True, go_backwards=True)
    else:
        layer = L.Bidirectional(L.LSTM(H, return_sequences=True, time_major=True),
                                merge_mode="ave")
    x = data(rng, T, B, I)
    layer(x)
    randomize(layer, rng)
    proto = to_onnx(layer, with_lengths=True)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["time", "batch", I]
    check(ort_run(onnxruntime, proto, {"x": x, "lengths": LENGTHS}),
          layer(x, mask=mask_of(LENGTHS)))


# --------------------------------------------------------------------------------------------
# Bidirectional
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional(onnxruntime, cell, merge_mode, return_sequences):
    rng = np.random.default_rng(seed_of("bi", cell, merge_mode, return_sequences))
    layer = L.Bidirectional(CELLS[cell](H, return_sequences=return_sequences,
                                        return_state=True), merge_mode=merge_mode)
    x = data(rng, B, T, I)
    layer(x)
    randomize(layer, rng)
    proto = to_onnx(layer, with_lengths=True)
    op = cell.split("_")[0].upper()
    assert [n.op_type for n in proto.graph.node].count(op) == 1  # one bidirectional node
    got = ort_run(onnxruntime, proto, {"x": x, "lengths": LENGTHS})
    check(got, layer(x, mask=mask_of(LENGTHS)), what=f"{cell} {merge_mode}")
    check(ort_run(onnxruntime, to_onnx(layer), {"x": x}), layer(x))


@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_initial_state(onnxruntime, return_sequences):
    rng = np.random.default_rng(seed_of("bi-init", return_sequences))
    layer = L.Bidirectional(L.LSTM(H, return_sequences=return_sequences, return_state=True))
    x = data(rng, B, T, I)
    layer(x)
    randomize(layer, rng)
    states = [data(rng, B, H) for _ in range(4)]
    names = ["h0_fwd", "c0_fwd", "h0_bwd", "c0_bwd"]
    proto = to_onnx(layer, with_lengths=True, with_initial_state=True)
    assert [i.name for i in proto.graph.input] == ["x", "lengths"] + names
    got = ort_run(onnxruntime, proto, {"x": x, "lengths": LENGTHS, **dict(zip(names, states))})
    check(got, layer(x, mask=mask_of(LENGTHS), initial_state=states))


@pytest.mark.parametrize("backward", ["lstm_3_units", "gru"])
def test_bidirectional_with_different_backward_layer(onnxruntime, backward):
    """A backward layer of another size or type: one node per direction."""
    rng = np.random.default_rng(seed_of("bi-pair", backward))
    cls = L.LSTM if backward.startswith("lstm") else L.GRU
    layer = L.Bidirectional(L.LSTM(H, return_sequences=True, return_state=True),
                            backward_layer=cls(3, return_sequences=True, return_state=True,
                                               go_backwards=True))
    x = data(rng, B, T, I)
    layer(x)
    randomize(layer, rng)
    ops = sorted(n.op_type for n in to_onnx(layer).graph.node if n.op_type in ("LSTM", "GRU"))
    assert ops == sorted(["LSTM", cls.__name__])
    if cls is L.GRU:  # (gatedrnn's Bidirectional takes initial states of one cell type only)
        proto = to_onnx(layer, with_lengths=True)
        check(ort_run(onnxruntime, proto, {"x": x, "lengths": LENGTHS}),
              layer(x, mask=mask_of(LENGTHS)))
        return
    proto = to_onnx(layer, with_lengths=True, with_initial_state=True)
    states = [data(rng, B, H), data(rng, B, H), data(rng, B, 3), data(rng, B, 3)]
    names = ["h0_fwd", "c0_fwd", "h0_bwd", "c0_bwd"]
    feeds = {"x": x, "lengths": LENGTHS, **dict(zip(names, states))}
    check(ort_run(onnxruntime, proto, feeds),
          layer(x, mask=mask_of(LENGTHS), initial_state=states))


# --------------------------------------------------------------------------------------------
# StackedRNN
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_stacked(onnxruntime, cell, bidirectional, batch_first):
    rng = np.random.default_rng(seed_of("stacked", cell, bidirectional, batch_first))
    kw = {"nonlinearity": "relu"} if cell == "rnn" else \
        {"reset_after": False} if cell == "gru" and batch_first else {}
    layer = L.StackedRNN(cell, I, H, num_layers=2, bidirectional=bidirectional,
                         batch_first=batch_first, **kw)
    D = 2 if bidirectional else 1
    x = data(rng, B, T, I) if batch_first else data(rng, T, B, I)
    h0 = data(rng, 2 * D, B, H)
    c0 = data(rng, 2 * D, B, H)
    feeds = {"x": x, "lengths": LENGTHS, "h0": h0}
    if cell == "lstm":
        feeds["c0"] = c0
        y, (h_n, c_n) = layer(x, h0, c0, lengths=LENGTHS)
        want = [y, h_n, c_n]
    else:
        want = list(layer(x, h0, lengths=LENGTHS))
    proto = to_onnx(layer, with_lengths=True, with_initial_state=True)
    assert [o.name for o in proto.graph.output] == ["y", "h_n"] + (["c_n"] if cell == "lstm"
                                                                    else [])
    check(ort_run(onnxruntime, proto, feeds), want, K=D * H + H)
    # no lengths, no initial state
    want = layer(x)
    want = [want[0], *want[1]] if cell == "lstm" else list(want)
    check(ort_run(onnxruntime, to_onnx(layer), {"x": x}), want, K=D * H + H)


# --------------------------------------------------------------------------------------------
# Other layers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", [None, "relu", "tanh", "sigmoid", "softmax", "softplus",
                                        "elu"])
@pytest.mark.parametrize("rank", [2, 3])
def test_dense(onnxruntime, activation, rank):
    rng = np.random.default_rng(seed_of("dense", activation, rank))
    layer = L.Dense(6, activation=activation)
    x = 3 * data(rng, *((B, T, I) if rank == 3 else (B, I)))
    layer(x)
    randomize(layer, rng, scale=2.0)
    check(ort_run(onnxruntime, to_onnx(layer), {"x": x}), layer(x), K=I)
    act = L.Activation(activation or "linear")
    act(x)
    check(ort_run(onnxruntime, to_onnx(act), {"x": x}), act(x), K=1)


def test_dense_without_bias_embedding_repeat_dropout(onnxruntime):
    rng = np.random.default_rng(3)
    model = gr.Sequential([gr.Input((T,), dtype="int64"), L.Embedding(11, 4),
                           L.Dropout(0.5), L.Dense(3, use_bias=False)])
    tokens = rng.integers(0, 11, (B, T))
    check(ort_run(onnxruntime, to_onnx(model), {"x": tokens}), model(tokens), K=4)
    rep = gr.Sequential([gr.Input((I,)), L.RepeatVector(T), L.Dense(2)])
    x = data(rng, B, I)
    check(ort_run(onnxruntime, to_onnx(rep), {"x": x}), rep(x), K=I)


# --------------------------------------------------------------------------------------------
# Sequential models and masks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("padding", ["any", "side"])
def test_readme_model_with_mask(onnxruntime, side, padding):
    """Embedding(mask_zero) -> Bidirectional(LSTM(return_sequences)) -> GRU -> Dense(softmax),
    padded tokens including a sequence of length 0."""
    rng = np.random.default_rng(seed_of("readme", side, padding))
    model = readme_model(rng)
    tokens = padded_tokens(rng, [0, 9, 4, 1, 7], side)
    proto = to_onnx(model, padding=side if padding == "side" else "any")
    got = ort_run(onnxruntime, proto, {"x": tokens})
    check(got, model(tokens), K=8 + 12)
    assert np.allclose(got[0].sum(axis=-1), 1, atol=1e-6)


def test_masks_with_runs_anywhere(onnxruntime):
    """padding='any': one contiguous run anywhere in each row (what the layers accept)."""
    rng = np.random.default_rng(4)
    x = runs_anywhere(rng)
    for cell in CELLS:
        for zero_output in (False, True):
            for go_backwards in (False, True):
                model = masked_stack(cell, zero_output, go_backwards)
                for layer in model.layers:
                    randomize(layer, rng)
                got = ort_run(onnxruntime, to_onnx(model), {"x": x})
                check(got, model(x), K=2 * H,
                      what=f"{cell} zero_output={zero_output} go_backwards={go_backwards}")
    # a Bidirectional with a different backward layer: one node per direction
    model = gr.Sequential([
        gr.Input((None, I)), L.Masking(0.0),
        L.SimpleRNN(H, return_sequences=True),
        # last: Bidirectional.compute_output_shape assumes equal units, so nothing may follow
        L.Bidirectional(L.LSTM(H, return_sequences=True),
                        backward_layer=L.GRU(3, return_sequences=True, go_backwards=True))])
    for layer in model.layers:
        randomize(layer, rng)
    check(ort_run(onnxruntime, to_onnx(model), {"x": x}), model(x), K=2 * H)


def test_many_to_many_with_masking(onnxruntime):
    rng = np.random.default_rng(5)
    model = gr.Sequential([gr.Input((T, 3)), L.Masking(-1.0),
                           L.LSTM(H, return_sequences=True),
                           L.Dense(2, activation="softmax")])
    for layer in model.layers:
        randomize(layer, rng)
    x = data(rng, B, T, 3)
    for b, n in enumerate(LENGTHS):
        x[b, n:] = -1.0
    def dims(proto):
        return [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims(to_onnx(model)) == ["batch", "time", 3]  # the time axis stays dynamic...
    proto = to_onnx(model, padding="right", input_shape=(T, 3))
    assert dims(proto) == ["batch", T, 3]  # ... unless input_shape fixes it
    check(ort_run(onnxruntime, proto, {"x": x}), model(x), K=3 + H)


def test_stacked_in_a_model_with_mask(onnxruntime):
    rng = np.random.default_rng(12)
    model = gr.Sequential([gr.Input((None,), dtype="int64"), L.Embedding(20, 4, mask_zero=True),
                           L.StackedRNN("lstm", 4, H, num_layers=2, bidirectional=True,
                                        batch_first=True, return_state=False),
                           L.Dense(2)])
    for layer in model.layers:
        randomize(layer, rng)
    tokens = padded_tokens(rng, [0, 9, 4, 1], "right")
    check(ort_run(onnxruntime, to_onnx(model), {"x": tokens}), model(tokens), K=4 * H)
    with pytest.raises(ValueError, match=r"StackedRNN needs right-padded sequences, but "
                                         r"padding='left' was given"):
        to_onnx(model, padding="left")


def test_unbuilt_model_with_input_shape(onnxruntime):
    model = gr.Sequential([L.LSTM(H, return_sequences=True), L.Dense(2)])
    with pytest.raises(ValueError, match=r"sequential.*not built .* give input_shape"):
        to_onnx(model)
    proto = to_onnx(model, input_shape=(None, I))  # builds it
    x = data(np.random.default_rng(13), B, T, I)
    check(ort_run(onnxruntime, proto, {"x": x}), model(x))


def test_one_to_many(onnxruntime):
    rng = np.random.default_rng(6)
    model = gr.Sequential([gr.Input((3,)), L.RepeatVector(T),
                           L.SimpleRNN(H, return_sequences=True), L.Dense(1)])
    for layer in model.layers:
        randomize(layer, rng)
    x = data(rng, B, 3)
    check(ort_run(onnxruntime, to_onnx(model), {"x": x}), model(x), K=3 + H)


def test_dynamic_batch_and_time(onnxruntime):
    rng = np.random.default_rng(7)
    model = readme_model(rng)
    sess_proto = to_onnx(model)
    for b, t in ((1, 1), (3, 12), (17, 2)):
        tokens = padded_tokens(rng, rng.integers(0, t + 1, b), "right", T=t)
        check(ort_run(onnxruntime, sess_proto, {"x": tokens}), model(tokens), K=20)


@pytest.mark.parametrize("opset", [MIN_OPSET, 18, 21])
def test_opsets(onnxruntime, opset):
    rng = np.random.default_rng(seed_of("opset", opset))
    model = gr.Sequential([gr.Input((None, I)), L.Masking(0.0),
                           L.Bidirectional(L.GRU(H, return_sequences=True), merge_mode="ave"),
                           L.LSTM(H), L.Dense(2, activation="softmax")])
    for layer in model.layers:
        randomize(layer, rng)
    x = data(rng, B, T, I)
    for b, n in enumerate(LENGTHS):
        x[b, :T - n] = 0  # left padding
    proto = to_onnx(model, opset=opset)
    assert proto.opset_import[0].version == opset
    check(ort_run(onnxruntime, proto, {"x": x}), model(x), K=2 * H)


# --------------------------------------------------------------------------------------------
# dtypes, files, round trips
# --------------------------------------------------------------------------------------------


def test_float64_layer(onnxruntime):
    rng = np.random.default_rng(8)
    layer = L.LSTM(H, return_sequences=True, dtype="float64")
    x = rng.standard_normal((B, T, I))
    layer(x)
    with pytest.warns(UserWarning, match=r"float64 weights of \['.*'\] exported as float32"):
        proto = to_onnx(layer)
    got = ort_run(onnxruntime, proto, {"x": x.astype(F32)})
    assert got[0].dtype == F32
    check(got, layer(x).astype(F32))
    # dtype="float64" keeps float64: gatedrnn's from_onnx runs it (ONNX Runtime cannot)
    from gatedrnn.interop import from_onnx
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proto64 = to_onnx(layer, dtype="float64")
    np.testing.assert_allclose(from_onnx(proto64)(x), layer(x), rtol=1e-12, atol=1e-13)


def test_write_to_path(onnx, onnxruntime, tmp_path):
    rng = np.random.default_rng(9)
    layer = L.GRU(H)
    x = data(rng, B, T, I)
    layer(x)
    path = tmp_path / "gru.onnx"
    path.write_bytes(b"old")
    proto = to_onnx(layer, str(path), input_name="input", output_names=["last"])
    loaded = onnx.load(str(path))
    assert loaded.SerializeToString() == proto.SerializeToString()
    assert [p.name for p in tmp_path.iterdir()] == ["gru.onnx"]  # no temporary file left
    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]
    check(sess.run(["last"], {"input": x}), layer(x))


@pytest.mark.parametrize("which", ["lstm_state", "gru_rb_backwards", "bidirectional", "stacked",
                                   "sequential"])
def test_round_trip_through_from_onnx(onnx, which):
    """to_onnx then from_onnx: gatedrnn runs its own export with the layer's outputs."""
    from gatedrnn.interop import from_onnx
    rng = np.random.default_rng(seed_of("rt", which))
    x = data(rng, B, T, I)
    if which == "lstm_state":
        layer = L.LSTM(H, return_sequences=True, return_state=True)
    elif which == "gru_rb_backwards":
        layer = L.GRU(H, reset_after=False, go_backwards=True, return_sequences=True)
    elif which == "bidirectional":
        layer = L.Bidirectional(L.SimpleRNN(H, return_state=True), merge_mode="mul")
    elif which == "stacked":
        layer = L.StackedRNN("lstm", I, H, num_layers=2, bidirectional=True, batch_first=True)
    else:
        layer = gr.Sequential([gr.Input((None, I)), L.GRU(H, return_sequences=True),
                               L.Dense(3, activation="relu")])
    if not isinstance(layer, L.StackedRNN):
        layer(x)
    randomize(layer, rng)
    want = layer(x)
    if which == "stacked":
        want = [want[0], *want[1]]
    got = from_onnx(to_onnx(layer))(x)
    check(got, want, K=2 * H)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class Custom(L.Layer):
    def forward(self, x, training=False, mask=None):
        return x


def built(layer, shape=(B, T, I)):
    layer(np.zeros(shape, F32))
    return layer


@pytest.mark.parametrize("make, kwargs, error, match", [
    (lambda: built(L.GRU(H, stateful=True)), {}, ValueError, r"gru.*stateful=True"),
    (lambda: built(Custom(name="mine")), {}, NotImplementedError,
     r"'mine': layer type Custom cannot be exported"),
    (lambda: built(L.GRU(H)), {"opset": 12}, ValueError, r"opset: expected an int in \[13, "),
    (lambda: built(L.GRU(H)), {"dtype": "float16"}, ValueError,
     r"dtype: expected 'float32' or 'float64', got float16"),
    (lambda: built(L.GRU(H)), {"padding": "pre"}, ValueError,
     r"padding: expected one of \['any', 'right', 'left'\], got 'pre'"),
    (lambda: built(L.Dense(3)), {"with_lengths": True}, ValueError,
     r"with_lengths: applies to a recurrent layer .* got Dense"),
    (lambda: built(L.GRU(H)), {"with_lengths": "int16"}, ValueError,
     r"with_lengths: expected False, True, 'int64' or 'int32', got 'int16'"),
    (lambda: built(L.LSTM(H, return_state=True)), {"output_names": ["y"]}, ValueError,
     r"output_names: 'lstm.*' has 3 output\(s\) \['y', 'h', 'c'\], got 1"),
    (lambda: built(L.GRU(H)), {"output_names": ["x"]}, ValueError,
     r"output_names / input_name: \['x'\] would name both an input and an output"),
    (lambda: built(L.GRU(H)), {"with_lengths": True, "input_name": "lengths"}, ValueError,
     r"would name both an input and an output \(inputs: \['lengths', 'lengths'\]"),
    (lambda: L.GRU(H), {}, ValueError, r"not built .* give input_shape"),
    (lambda: "gru", {}, TypeError, r"layer_or_model: expected a gatedrnn layer or Sequential"),
    (lambda: gr.Sequential([gr.Input((T, I)), L.GRU(H)]), {"with_initial_state": True},
     ValueError, r"with_initial_state: applies to a single recurrent layer"),
])
def test_errors(onnx, make, kwargs, error, match):
    with pytest.raises(error, match=match):
        to_onnx(make(), **kwargs)


def test_error_cases_inside_models(onnx):
    model = gr.Sequential([gr.Input((T, I)), L.GRU(H, return_sequences=True), L.Dense(2)])
    model.layers[0].return_state = True  # Sequential.add refuses it; set it afterwards
    with pytest.raises(ValueError, match=r"gru.*: return_state=True gives 2 outputs, which a "
                                         r"Sequential model cannot pass on"):
        to_onnx(model)

    class Swish(gr.activations.Activation):
        name = "swish"

        def forward(self, z):
            return z / (1 + np.exp(-z))

    dense = built(L.Dense(3, activation=Swish(), name="swishy"))
    with pytest.raises(NotImplementedError, match=r"swishy: activation 'swish' cannot be "
                                                  r"exported; supported: linear, elu, relu"):
        to_onnx(dense)
    bi = built(L.Bidirectional(L.GRU(H, return_sequences=True), merge_mode=None))
    seq = gr.Sequential([L.Dense(2)])
    seq._layers.insert(0, bi)
    with pytest.raises(ValueError, match=r"merge_mode=None gives 2 outputs"):
        to_onnx(seq, input_shape=(T, I))
    stacked = gr.Sequential([gr.Input((T, I)), L.StackedRNN("gru", I, H, return_state=False,
                                                            batch_first=False)])
    with pytest.raises(ValueError, match=r"StackedRNN inside a Sequential needs "
                                         r"batch_first=True"):
        to_onnx(stacked)
    with pytest.raises(ValueError, match=r"was built for inputs of shape \(None, None, 4\), got "
                                         r"input_shape \(7, 5\)"):
        to_onnx(gr.Sequential([gr.Input((None, I)), L.GRU(H)]), input_shape=(T, 5))


# --------------------------------------------------------------------------------------------
# Import: OnnxModel.recurrent_layers
# --------------------------------------------------------------------------------------------


def node_model(onnx, op, direction, layout, rng, with_bias=True, lbr=1, acts=None, H=H):
    from onnx import TensorProto, helper, numpy_helper
    G = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    D = 2 if direction == "bidirectional" else 1
    k = 1 / np.sqrt(H)
    W = rng.uniform(-k, k, (D, G * H, I)).astype(F32)
    R = rng.uniform(-k, k, (D, G * H, H)).astype(F32)
    Bv = rng.uniform(-k, k, (D, 2 * G * H)).astype(F32)
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R")]
    if with_bias:
        inits.append(numpy_helper.from_array(Bv, "B"))
    x_shape = [T, B, I] if layout == 0 else [B, T, I]
    s_shape = [D, B, H] if layout == 0 else [B, D, H]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape),
              helper.make_tensor_value_info("L", TensorProto.INT32, [B]),
              helper.make_tensor_value_info("h0", TensorProto.FLOAT, s_shape)]
    names = ["X", "W", "R", "B" if with_bias else "", "L", "h0"]
    outs = ["Y", "Y_h"]
    if op == "LSTM":
        inputs.append(helper.make_tensor_value_info("c0", TensorProto.FLOAT, s_shape))
        names.append("c0")
        outs.append("Y_c")
    attrs = dict(hidden_size=H, direction=direction)
    if layout:
        attrs["layout"] = 1
    if op == "GRU":
        attrs["linear_before_reset"] = lbr
    if acts:
        attrs["activations"] = acts * D
    node = helper.make_node(op, names, outs, name=f"my_{op.lower()}", **attrs)
    graph = helper.make_graph([node], "g", inputs,
                              [onnx.ValueInfoProto(name=o) for o in outs], initializer=inits)
    opsets = [helper.make_opsetid("", 17)]
    return helper.make_model(graph, opset_imports=opsets,
                             ir_version=helper.find_min_ir_version_for(opsets))


@pytest.mark.parametrize("op, lbr, acts", [("RNN", None, ["Relu"]), ("RNN", None, None),
                                           ("GRU", 1, None), ("GRU", 0, None),
                                           ("LSTM", None, None)])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
def test_recurrent_layers_reproduce_the_node(onnx, onnxruntime, op, lbr, acts, direction,
                                             layout):
    from gatedrnn.interop import from_onnx
    rng = np.random.default_rng(seed_of("import", op, lbr, acts, direction, layout))
    proto = node_model(onnx, op, direction, layout, rng, lbr=lbr, acts=acts,
                       with_bias=not (op == "RNN" and acts is None))
    D = 2 if direction == "bidirectional" else 1
    x = data(rng, *((T, B, I) if layout == 0 else (B, T, I)))
    lengths = np.array([1, 3, T, 2, 5, T], np.int32)  # no 0: ONNX and gatedrnn differ there
    h0 = data(rng, *((D, B, H) if layout == 0 else (B, D, H)))
    c0 = data(rng, *h0.shape)
    feeds = {"X": x, "L": lengths, "h0": h0}
    if op == "LSTM":
        feeds["c0"] = c0
    # the node's outputs: ONNX Runtime for layout 0 (it rejects layout 1), else from_onnx
    want = ort_run(onnxruntime, proto, feeds) if layout == 0 else from_onnx(proto).run(None,
                                                                                      feeds)
    layers = from_onnx(proto).recurrent_layers()
    assert list(layers) == [f"my_{op.lower()}"]
    layer = layers[f"my_{op.lower()}"]
    assert isinstance(layer, L.StackedRNN)
    assert (layer.num_layers, layer.bidirectional, layer.batch_first, layer.hidden_size) == \
        (1, D == 2, layout == 1, H)
    to_states = (lambda s: s) if layout == 0 else (lambda s: s.transpose(1, 0, 2))
    out = layer(x, to_states(h0), to_states(c0) if op == "LSTM" else None, lengths=lengths)
    y, states = out[0], (list(out[1]) if op == "LSTM" else [out[1]])
    Tn, Bn = (T, B) if layout == 0 else (B, T)
    y = y.reshape(Tn, Bn, D, H)
    y = y.transpose(0, 2, 1, 3) if layout == 0 else y
    check([y] + [to_states(s) for s in states], want)


def test_recurrent_layers_unsupported_nodes(onnx):
    from gatedrnn.interop import from_onnx
    rng = np.random.default_rng(10)
    proto = node_model(onnx, "GRU", "reverse", 0, rng)
    model = from_onnx(proto)
    with pytest.raises(NotImplementedError, match=r"GRU node 'my_gru': cannot be turned into a "
                                                  r"gatedrnn layer: direction=\"reverse\""):
        model.recurrent_layers()
    with pytest.warns(UserWarning, match=r"my_gru.*left out"):
        assert model.recurrent_layers(strict=False) == {}
    # weights computed at run time
    from onnx import helper
    proto.graph.node.insert(0, helper.make_node("Identity", ["W0"], ["Wc"]))
    proto.graph.initializer[0].name = "W0"
    proto.graph.node[1].input[1] = "Wc"
    proto.graph.node[1].ClearField("attribute")
    proto.graph.node[1].attribute.extend([helper.make_attribute("hidden_size", H)])
    with pytest.raises(NotImplementedError, match=r"weights \['Wc'\] are computed at run time"):
        from_onnx(proto).recurrent_layers()


def test_export_then_import_layers(onnx):
    """The layers recovered from an export hold exactly the exported weights."""
    from gatedrnn.interop import from_onnx
    rng = np.random.default_rng(11)
    stacked = randomize(L.StackedRNN("gru", I, H, num_layers=2, bidirectional=True,
                                     reset_after=False), rng)
    layers = from_onnx(to_onnx(stacked)).recurrent_layers()
    assert len(layers) == 2
    got = [w for layer in layers.values() for w in layer.get_weights()]
    for g, w in zip(got, stacked.get_weights()):
        np.testing.assert_array_equal(g, w)
