"""Recurrent layers against a step-by-step statement of Keras's semantics, and their gradients
against finite differences (float64, so both checks are tight: 1e-10 and 1e-6 relative)."""

import itertools

import numpy as np
import pytest

import gatedrnn as gr
from conftest import numerical_gradient
from keras_oracle import keras_bidirectional, keras_rnn

L = gr.layers
B, T, I, H = 4, 6, 3, 5

VARIANTS = {
    "rnn_tanh": (L.SimpleRNN, "rnn", {"activation": "tanh"}, {"nonlinearity": "tanh"}),
    "rnn_relu": (L.SimpleRNN, "rnn", {"activation": "relu"}, {"nonlinearity": "relu"}),
    "gru": (L.GRU, "gru", {"reset_after": True}, {"reset_after": True}),
    "gru_reset_before": (L.GRU, "gru", {"reset_after": False}, {"reset_after": False}),
    "lstm": (L.LSTM, "lstm", {}, {}),
}


def masks(rng):
    """None, right-padded, left-padded, a run in the middle, each with an empty sequence."""
    lengths = np.array([T, 3, 0, 1])
    right = np.arange(T)[None, :] < lengths[:, None]
    left = right[:, ::-1].copy()
    middle = np.zeros((B, T), bool)
    middle[0, 1:4] = middle[1, 2:6] = middle[3, 0:2] = True
    return {"none": None, "right": right, "left": left, "middle": middle}


def make_layer(variant, **kw):
    cls, _, layer_kw, _ = VARIANTS[variant]
    gr.config.set_random_seed(7)
    layer = cls(H, dtype="float64", bias_initializer="torch_uniform", **layer_kw, **kw)
    layer.build((None, T, I))
    return layer


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, T, I)), rng


def initial_states(variant, rng):
    n = 2 if VARIANTS[variant][1] == "lstm" else 1
    return [rng.standard_normal((B, H)) * 0.5 for _ in range(n)]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("mask_kind", ["none", "right", "left", "middle"])
@pytest.mark.parametrize("go_backwards,return_sequences,zero_output",
                         list(itertools.product([False, True], [False, True], [False, True])))
def test_layer_matches_keras_semantics(variant, mask_kind, go_backwards, return_sequences,
                                       zero_output):
    x, rng = inputs()
    mask = masks(rng)[mask_kind]
    layer = make_layer(variant, go_backwards=go_backwards, return_sequences=return_sequences,
                       zero_output_for_mask=zero_output, return_state=True)
    s0 = initial_states(variant, rng)
    y, *states = layer(x, mask=mask, initial_state=s0)
    _, cell, _, opts = VARIANTS[variant]
    ys, last, states_ref = keras_rnn(cell, x, layer.get_weights(), opts, mask, s0, go_backwards,
                                     zero_output)
    np.testing.assert_allclose(y, ys if return_sequences else last, rtol=1e-10, atol=1e-12)
    for s, r in zip(states, states_ref):
        np.testing.assert_allclose(s, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("variant", ["gru", "lstm"])
@pytest.mark.parametrize("mask_kind", ["none", "right", "left"])
def test_time_major_is_the_transpose(variant, mask_kind):
    x, rng = inputs(1)
    mask = masks(rng)[mask_kind]
    a = make_layer(variant, return_sequences=True)
    b = make_layer(variant, return_sequences=True, time_major=True)
    b.set_weights(a.get_weights())
    np.testing.assert_allclose(b(x.swapaxes(0, 1).copy(), mask=mask).swapaxes(0, 1),
                               a(x, mask=mask), rtol=1e-12, atol=1e-14)


def _loss_and_grads(layer, x, mask, s0, probes, training_out=None):
    """L = sum(probe_i * output_i) over [y, h(, c)]."""
    out = layer.forward(x, training=False, mask=mask, initial_state=s0)
    return sum(float(np.sum(p * o)) for p, o in zip(probes, out))




def check_gradients(layer, x, mask, s0, rng):
    out = layer.forward(x, training=True, mask=mask, initial_state=s0)
    out = out if isinstance(out, list) else [out]
    probes = [rng.standard_normal(o.shape) for o in out]
    layer.zero_grad()
    dx = layer.backward(probes if len(probes) > 1 else probes[0])

    def loss():
        o = layer.forward(x, training=False, mask=mask, initial_state=s0)
        o = o if isinstance(o, list) else [o]
        return sum(float(np.sum(p * a)) for p, a in zip(probes, o))

    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    for p in layer.parameters:
        def loss_p(p=p):
            p.mark_updated()             # the inference path packs the weights: repack
            return loss()
        np.testing.assert_allclose(p.grad, numerical_gradient(loss_p, p.value), rtol=1e-6, atol=1e-8,
                                   err_msg=p.name)
        p.mark_updated()
    if s0 is not None:
        for g, s in zip(layer.initial_state_grads, s0):
            np.testing.assert_allclose(g, numerical_gradient(loss, s), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("mask_kind", ["none", "right", "left", "middle"])
@pytest.mark.parametrize("go_backwards,return_sequences", [(False, True), (True, True),
                                                            (False, False), (True, False)])
def test_layer_gradients(variant, mask_kind, go_backwards, return_sequences):
    x, rng = inputs(2)
    mask = masks(rng)[mask_kind]
    layer = make_layer(variant, go_backwards=go_backwards, return_sequences=return_sequences,
                       return_state=True)
    check_gradients(layer, x, mask, initial_states(variant, rng), rng)


@pytest.mark.parametrize("variant", ["rnn_tanh", "gru", "lstm"])
def test_dropout_gradients_with_fixed_masks(variant):
    """With a fixed seed the dropout masks repeat, so finite differences of the training
    forward check the gradient through both dropout kinds."""
    x, rng = inputs(3)
    layer = make_layer(variant, return_sequences=True, dropout=0.3, recurrent_dropout=0.4)

    def train_out(seed):
        gr.config.set_random_seed(seed)
        return layer.forward(x, training=True)

    y = train_out(11)
    probe = rng.standard_normal(y.shape)
    layer.zero_grad()
    dx = layer.backward(probe)
    loss = lambda: float(np.sum(probe * train_out(11)))  # noqa: E731
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    for p in layer.parameters:
        np.testing.assert_allclose(p.grad, numerical_gradient(loss, p.value), rtol=1e-6, atol=1e-8)
    # and the masks are really there: inference differs from training
    assert not np.allclose(layer(x), train_out(11))


def test_recurrent_dropout_is_one_mask_per_sequence():
    """Keras's variational dropout: a unit dropped from h is dropped at every step, so the
    training output equals the oracle run with that fixed (B, H) mask on h_{t-1}."""
    x, rng = inputs(4)
    layer = make_layer("gru", return_sequences=True, recurrent_dropout=0.5)
    gr.config.set_random_seed(5)
    y = layer.forward(x, training=True)
    gr.config.set_random_seed(5)
    keep = gr.config.rng().random((B, H)) >= 0.5
    ys, _, _ = keras_rnn("gru", x, layer.get_weights(), {"reset_after": True},
                         rec_mask=keep / 0.5)
    np.testing.assert_allclose(y, ys, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("variant", ["rnn_tanh", "gru", "gru_reset_before", "lstm"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("mask_kind", ["none", "right", "left"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_matches_keras(variant, merge_mode, mask_kind, return_sequences):
    x, rng = inputs(5)
    mask = masks(rng)[mask_kind]
    cls, cell, kw, opts = VARIANTS[variant]
    gr.config.set_random_seed(3)
    bi = L.Bidirectional(cls(H, dtype="float64", return_sequences=return_sequences,
                             return_state=True, **kw), merge_mode=merge_mode)
    out = bi(x, mask=mask)
    w = bi.get_weights()
    k = len(w) // 2
    ref, sf, sb = keras_bidirectional(cell, x, w[:k], w[k:], opts, mask, return_sequences,
                                      merge_mode)
    n = 2 if cell == "lstm" else 1
    ys = out[:2] if merge_mode is None else out[:1]
    states = out[len(ys):]
    for a, r in zip(ys, ref if merge_mode is None else [ref]):
        np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-12)
    for a, r in zip(states, sf + sb):
        np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-12)
    assert len(states) == 2 * n


@pytest.mark.parametrize("variant", ["gru", "lstm", "rnn_relu"])
@pytest.mark.parametrize("merge_mode", ["concat", "mul", "ave"])
@pytest.mark.parametrize("mask_kind", ["none", "right", "left"])
def test_bidirectional_fused_equals_two_layers_and_gradients(variant, merge_mode, mask_kind):
    x, rng = inputs(6)
    mask = masks(rng)[mask_kind]
    cls, _, kw, _ = VARIANTS[variant]
    gr.config.set_random_seed(4)
    bi = L.Bidirectional(cls(H, dtype="float64", return_sequences=True, **kw),
                         merge_mode=merge_mode)
    bi.build((None, T, I))
    assert bi._fusable(training=True)
    y_fused = bi(x, mask=mask)
    # the same layer forced onto the two-call path
    bi._fusable = lambda training: False
    np.testing.assert_allclose(bi(x, mask=mask), y_fused, rtol=1e-12, atol=1e-14)
    del bi._fusable
    check_gradients(bi, x, mask, None, rng)


def test_bidirectional_initial_state_gradients():
    x, rng = inputs(7)
    gr.config.set_random_seed(4)
    bi = L.Bidirectional(L.LSTM(H, dtype="float64", return_sequences=True, return_state=True),
                         merge_mode="sum")
    bi.build((None, T, I))
    s0 = [rng.standard_normal((B, H)) for _ in range(4)]
    check_gradients(bi, x, masks(rng)["right"], s0, rng)


def test_stateful_carries_state_without_gradient_across_batches():
    x, rng = inputs(8)
    layer = make_layer("lstm", stateful=True, return_sequences=True)
    whole = make_layer("lstm", return_sequences=True)
    whole.set_weights(layer.get_weights())
    y1 = layer(x[:, :3].copy())
    y2 = layer(x[:, 3:].copy())
    np.testing.assert_allclose(np.concatenate([y1, y2], 1), whole(x), rtol=1e-12, atol=1e-14)
    layer.reset_states()
    np.testing.assert_allclose(layer(x[:, :3].copy()), y1, rtol=0, atol=0)
    with pytest.raises(ValueError, match="batch size 4"):
        layer(x[:2, :3].copy())


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cell_step_matches_layer(variant):
    x, rng = inputs(9)
    layer = make_layer(variant, return_sequences=True, return_state=True)
    y, *states = layer(x)
    cell = layer.get_cell()
    state = None
    for t in range(T):
        h, state = cell.step(x[:, t], state)
        np.testing.assert_allclose(h, y[:, t], rtol=1e-12, atol=1e-14)
    last = state if isinstance(state, tuple) else (state,)
    for a, r in zip(last, states):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-14)


def test_cell_repacks_after_set_weights_and_rnn_wrapper_shares_weights():
    rng = np.random.default_rng(0)
    cell = L.GRUCell(H, dtype="float64")
    x = rng.standard_normal((B, I))
    h1, _ = cell.step(x)
    w = [a * 0.5 for a in cell.get_weights()]
    cell.set_weights(w)
    h2, _ = cell.step(x)
    assert not np.allclose(h1, h2)
    layer = L.RNN(cell, return_sequences=True)
    assert layer.parameters[0] is cell.parameters[0]
    np.testing.assert_allclose(layer(x[:, None, :])[:, 0], h2, rtol=1e-12)


def test_unit_forget_bias_and_keras_initializer_shapes():
    gr.config.set_random_seed(0)
    lstm = L.LSTM(H)
    lstm.build((None, T, I))
    w_ih, w_hh, b_ih, b_hh = lstm.get_weights()
    assert w_ih.shape == (4 * H, I) and w_hh.shape == (4 * H, H) and w_ih.dtype == np.float32
    np.testing.assert_array_equal(b_ih[H:2 * H], 1)
    np.testing.assert_array_equal(np.delete(b_ih, np.s_[H:2 * H]), 0)
    np.testing.assert_array_equal(b_hh, 0)
    # orthogonal on the Keras-shaped (H, 4H) recurrent kernel: its rows are orthonormal
    np.testing.assert_allclose(w_hh.T @ w_hh, np.eye(H), atol=1e-5)
    # glorot_uniform on (I, 4H): limit sqrt(6 / (I + 4H))
    assert np.abs(w_ih).max() <= np.sqrt(6 / (I + 4 * H))


@pytest.mark.parametrize("kwargs,match", [
    ({"activation": "relu"}, "activation"),
    ({"recurrent_activation": "hard_sigmoid"}, "recurrent_activation"),
    ({"dropout": 1.0}, "dropout"),
    ({"unroll": True}, "unroll"),
])
def test_unsupported_options_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L.GRU(4, **kwargs)


def test_bad_inputs_name_the_problem():
    layer = make_layer("gru")
    x, rng = inputs()
    with pytest.raises(ValueError, match="3 features"):
        layer(np.zeros((B, T, I + 1)))
    with pytest.raises(ValueError, match="3 axes"):
        layer(np.zeros((B, I)))
    holes = np.ones((B, T), bool)
    holes[0, 2] = False
    with pytest.raises(ValueError, match="contiguous run"):
        layer(x, mask=holes)
    with pytest.raises(ValueError, match=r"mask expected shape"):
        layer(x, mask=np.ones((B, T + 1), bool))
    with pytest.raises(ValueError, match="initial_state"):
        layer(x, initial_state=[np.zeros((B, H + 1))])
    with pytest.raises(TypeError, match="numeric"):
        layer(np.array([["a"]]))


def test_bidirectional_with_a_different_backward_layer():
    """An LSTM forwards and a GRU of another size backwards: shapes, initial states (the
    forward layer's two, then the backward layer's one) and gradients."""
    x, rng = inputs(10)
    gr.config.set_random_seed(6)
    bi = L.Bidirectional(L.LSTM(5, return_sequences=True, return_state=True, dtype="float64"),
                         backward_layer=L.GRU(3, return_sequences=True, return_state=True,
                                              go_backwards=True, dtype="float64"))
    bi.build((None, T, I))
    assert not bi._fusable(training=True)
    s0 = [rng.standard_normal((B, 5)), rng.standard_normal((B, 5)), rng.standard_normal((B, 3))]
    y, h_f, c_f, h_b = bi(x, initial_state=s0)
    assert y.shape == (B, T, 8) and h_b.shape == (B, 3)
    assert bi.compute_output_shape((None, T, I)) == [(None, T, 8), (None, 5), (None, 5), (None, 3)]
    check_gradients(bi, x, masks(rng)["right"], s0, rng)
    with pytest.raises(ValueError, match="expected a list of 3 arrays"):
        bi(x, initial_state=s0[:2])
    model = gr.Sequential([gr.Input((T, I)), L.Bidirectional(
        L.LSTM(5, return_sequences=True),
        backward_layer=L.GRU(3, return_sequences=True, go_backwards=True)), L.Dense(2)])
    assert model(x.astype(np.float32)).shape == (B, T, 2)
