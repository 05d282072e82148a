"""``input_grad=False``: backward without dx (a first layer, whose input is data).

The functional ``*_backward`` calls, the layers and ``Sequential`` training skip the product
dx = dG W_ih when nobody needs it. Skipping it must change nothing else: every other gradient
is compared bit for bit against the same backward call with dx, on the paths that compute dx
differently (rows in order or gathered, a single step, two directions at once or in turn).
"""

import numpy as np
import pytest

import gatedrnn
import gatedrnn.functional as F
import gatedrnn.reference as R
from gatedrnn import layers as gl
from conftest import VARIANTS, make_inputs, make_output_grads, variant_params


def _backward(mod, cell, ctx, given, **kw):
    fn = getattr(mod, cell + "_backward")
    if cell != "lstm":
        given = {k: v for k, v in given.items() if k != "dc_n"}
    return fn(ctx, **given, **kw)


def _assert_same_except_dx(with_dx, without):
    assert type(with_dx) is type(without)
    assert without.dx is None
    assert with_dx.dx is not None
    for name in with_dx._fields[1:]:
        a, b = getattr(with_dx, name), getattr(without, name)
        if a is None:
            assert b is None, name
        else:
            np.testing.assert_array_equal(b, a, err_msg=f"{name} changed without dx")


CASES = {
    # T, B, options: rows in order; gathered (lengths, reverse); one step; one step gathered
    "in_order": (7, 5, {}),
    "lengths_reverse_mask": (7, 6, {"lengths": "mixed", "reverse": True, "mask": True}),
    "batch_first": (5, 4, {"batch_first": True, "lengths": "nozero"}),
    "one_step": (1, 9, {}),
    "large_batch": (3, 40, {"lengths": "nozero"}),
}


@variant_params
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_functional_backward_without_dx_changes_nothing_else(variant, case, dtype):
    T, B, opts = CASES[case]
    rng = np.random.default_rng(21)
    reverse = opts.get("reverse", False)
    kw = make_inputs(rng, variant, T, B, 6, 8, dtype, lengths=opts.get("lengths"),
                     batch_first=opts.get("batch_first", False), mask=opts.get("mask", False))
    out = getattr(F, variant.cell)(**kw, **variant.opts, reverse=reverse, training=True)
    given = make_output_grads(rng, variant, out)
    for return_dh_seq in (False, True):
        with_dx = _backward(F, variant.cell, out.ctx, given, return_dh_seq=return_dh_seq)
        without = _backward(F, variant.cell, out.ctx, given, return_dh_seq=return_dh_seq,
                            input_grad=False)
        _assert_same_except_dx(with_dx, without)
    # the reference takes the same argument
    ref = getattr(R, variant.cell)(**kw, **variant.opts, reverse=reverse, training=True)
    r_with = _backward(R, variant.cell, ref.ctx, given)
    r_without = _backward(R, variant.cell, ref.ctx, given, input_grad=False)
    _assert_same_except_dx(r_with, r_without)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("threads", [1, 2])
def test_bidirectional_backward_without_dx(cell, threads):
    """Both directions in one call: the second direction's dx (added in, or computed apart and
    summed) is skipped too, at one thread (in turn) and two (possibly at once)."""
    rng = np.random.default_rng(5)
    G = {"gru": 3, "lstm": 4}[cell]
    T, B, I, H = 6, 16, 12, 32
    w = [rng.uniform(-0.2, 0.2, s).astype(np.float32)
         for s in ((2, G * H, I), (2, G * H, H), (2, G * H), (2, G * H))]
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dy = rng.standard_normal((T, B, 2 * H)).astype(np.float32)
    before = gatedrnn.get_num_threads()
    gatedrnn.set_num_threads(threads)
    try:
        out = getattr(F, cell)(x, *w, bidirectional=True, training=True,
                               lengths=rng.integers(1, T + 1, B))
        fn = getattr(F, cell + "_backward")
        _assert_same_except_dx(fn(out.ctx, dy=dy), fn(out.ctx, dy=dy, input_grad=False))
    finally:
        gatedrnn.set_num_threads(before)


@pytest.mark.parametrize("mod", [F, R], ids=["functional", "reference"])
@pytest.mark.parametrize("bad", [1, "no", None])
def test_input_grad_must_be_true_or_false(mod, bad):
    rng = np.random.default_rng(0)
    variant = VARIANTS[-1]
    kw = make_inputs(rng, variant, 3, 2, 4, 5, np.float64)
    ctx = getattr(mod, "lstm")(**kw, training=True).ctx
    with pytest.raises(TypeError, match=f"^input_grad: expected True or False, got "
                                        f"{type(bad).__name__}$"):
        mod.lstm_backward(ctx, dh_n=np.ones((2, 5)), input_grad=bad)


# --------------------------------------------------------------------------------------------
# Layers and models
# --------------------------------------------------------------------------------------------

def _layer_grads(layer):
    return {p.name: p.grad.copy() for p in layer.parameters}


LAYERS = {
    "lstm": lambda: gl.LSTM(8, return_sequences=True),
    "gru_last": lambda: gl.GRU(8, reset_after=False),
    "rnn_masked": lambda: gl.SimpleRNN(8, return_sequences=True),
    "bidirectional_fused": lambda: gl.Bidirectional(gl.LSTM(8, return_sequences=True)),
    "bidirectional_sum": lambda: gl.Bidirectional(gl.GRU(8), merge_mode="sum"),
    # input dropout in training: the two directions run as two layers
    "bidirectional_pair": lambda: gl.Bidirectional(gl.GRU(8, return_sequences=True,
                                                          dropout=0.25)),
    "dense": lambda: gl.Dense(8, activation="tanh"),
}


@pytest.mark.parametrize("name", list(LAYERS), ids=list(LAYERS))
def test_layer_backward_without_input_grad(name):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 5)).astype(np.float32)
    mask = None
    if name == "rnn_masked":
        mask = np.ones((4, 6), bool)
        mask[1, 4:] = False
    layer = LAYERS[name]()
    assert layer.input_grad_optional
    layer.build((None,) + x.shape[1:])
    y = layer.forward(x, training=True, mask=mask)
    if name.startswith("bidirectional"):
        assert layer._fused == (name != "bidirectional_pair")
    dy = rng.standard_normal(np.shape(y)).astype(np.float32)
    layer.zero_grad()
    dx = layer.backward(dy)
    want = _layer_grads(layer)
    layer.zero_grad()
    assert layer.backward(dy, input_grad=False) is None
    got = _layer_grads(layer)
    assert dx.shape == x.shape and want.keys() == got.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_stacked_layer_skips_only_the_first_layers_dx(cell, monkeypatch):
    """Only layer 0's dx goes; the upper layers still pass their dx down (dropout between
    layers included), so every weight gradient is the same."""
    rng = np.random.default_rng(4)
    layer = gl.StackedRNN(cell, 5, 8, num_layers=3, bidirectional=True, dropout=0.25)
    x = rng.standard_normal((6, 4, 5)).astype(np.float32)
    y, _ = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    layer.zero_grad()
    dx = layer.backward(dy)
    want = _layer_grads(layer)
    import gatedrnn.layers.stacked as st
    seen = []
    original = st._BACKWARD[cell]

    def spy(ctx, **kwargs):
        seen.append(kwargs.get("input_grad", True))
        return original(ctx, **kwargs)
    monkeypatch.setitem(st._BACKWARD, cell, spy)
    layer.zero_grad()
    assert layer.backward(dy, input_grad=False) is None
    assert seen == [True, True, False]
    got = _layer_grads(layer)
    assert dx.shape == x.shape
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def _model(first_trainable=True):
    layers = [gl.Masking(0.0, input_shape=(6, 5))]
    layers.append(gl.LSTM(8, return_sequences=True, trainable=first_trainable))
    layers += [gl.GRU(6), gl.Dense(3)]
    model = gatedrnn.Sequential(layers)
    model.compile("sgd", "mse")
    return model


@pytest.mark.parametrize("first_trainable", [True, False], ids=["all_trainable", "first_frozen"])
def test_model_backward_without_input_grad(monkeypatch, first_trainable):
    """The same parameter gradients as the full backward; the first trainable layer is asked
    for no dx and the layers before it do not run backward."""
    rng = np.random.default_rng(6)
    model = _model(first_trainable)
    x = rng.standard_normal((4, 6, 5)).astype(np.float32)
    y, _ = model.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    for p in model.parameters:
        p.zero_grad()
    dx = model.backward(dy)
    assert dx.shape == x.shape
    want = {p.name: p.grad.copy() for p in model.trainable_parameters}

    calls = []
    for layer in model.layers:
        original = layer.backward

        def spy(*args, _original=original, _name=layer.name, **kwargs):
            calls.append((_name, kwargs.get("input_grad", True)))
            return _original(*args, **kwargs)
        monkeypatch.setattr(layer, "backward", spy)
    for p in model.parameters:
        p.zero_grad()
    assert model.backward(dy, input_grad=False) is None
    got = {p.name: p.grad.copy() for p in model.trainable_parameters}
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    names = [layer.name for layer in model.layers]
    first = 1 if first_trainable else 2       # Masking has no parameters
    expected = [(n, True) for n in reversed(names[first + 1:])] + [(names[first], False)]
    assert calls == expected
    with pytest.raises(TypeError, match="^input_grad: expected True or False, got int$"):
        model.backward(dy, input_grad=0)


def test_training_asks_the_first_layer_for_no_dx(monkeypatch):
    """fit / train_on_batch run backward without the input gradient."""
    seen = []
    original = F.lstm_backward

    def spy(ctx, **kwargs):
        seen.append(kwargs.get("input_grad", True))
        return original(ctx, **kwargs)
    monkeypatch.setattr(F, "lstm_backward", spy)
    import gatedrnn.layers.recurrent as rec
    monkeypatch.setitem(rec._BACKWARD, "lstm", spy)
    rng = np.random.default_rng(8)
    model = gatedrnn.Sequential([gl.LSTM(4, input_shape=(5, 3)), gl.Dense(2)])
    model.compile("sgd", "mse")
    model.train_on_batch(rng.standard_normal((6, 5, 3)).astype(np.float32),
                         rng.standard_normal((6, 2)).astype(np.float32))
    assert seen == [False]
