"""PyTorch interop: StackedRNN against nn.RNN/nn.GRU/nn.LSTM, from_torch / to_torch /
from_torch_state_dict in both directions, gradients against torch autograd, and the errors.

Tolerances. float64: 1e-12 relative and absolute for outputs (both sides compute the same sums
in a different order; values are O(1), so differences are a few 1e-16), 1e-10 for gradients
(BPTT through 2 layers and both directions adds more terms). float32: rtol=1e-5, atol=1e-6.
Both sides round in float32 (eps 1.2e-7); every output is a sum of at most I + D*H = 19 products
per step, carried over T = 6 steps and up to 3 layers by contractive recurrences (torch's init
U(-1/sqrt(H), 1/sqrt(H)) keeps every value O(1), relu included), so measured differences are a
few eps (<= ~5e-7). atol 1e-6 covers that with room, while any semantic error (gate order,
direction, layer wiring, a dropped bias) is >= 1e-2. Round trips of weights are exact (==).
"""

import itertools
import warnings

import numpy as np
import pytest

import gatedrnn as gr
from gatedrnn import optim
from gatedrnn.models import Sequential
from gatedrnn.interop.torch import from_torch, from_torch_state_dict, to_torch
from gatedrnn.layers.stacked import StackedRNN

pytestmark = pytest.mark.peers

T, B, I, H = 6, 4, 5, 7
CELLS = ["rnn_tanh", "rnn_relu", "gru", "lstm"]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}
GRAD_TOL = dict(rtol=1e-10, atol=1e-10)


def tdtype(torch, dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


def torch_module(torch, cell, dtype=np.float32, seed=0, **kw):
    """A torch recurrent module with seeded default-initialised weights."""
    torch.manual_seed(seed)
    kw.setdefault("input_size", I)
    kw.setdefault("hidden_size", H)
    if cell.startswith("rnn"):
        return torch.nn.RNN(nonlinearity=cell[4:], dtype=tdtype(torch, dtype), **kw)
    cls = torch.nn.GRU if cell == "gru" else torch.nn.LSTM
    return cls(dtype=tdtype(torch, dtype), **kw)


def x_of(rng, dtype, batch_first, Bn=B):
    return rng.standard_normal((Bn, T, I) if batch_first else (T, Bn, I)).astype(dtype)


def initial(rng, cell, L, D, dtype, Bn=B):
    h0 = (0.5 * rng.standard_normal((L * D, Bn, H))).astype(dtype)
    c0 = (0.5 * rng.standard_normal((L * D, Bn, H))).astype(dtype) if cell == "lstm" else None
    return h0, c0


def torch_hx(torch, h0, c0):
    if h0 is None:
        return None
    h = torch.from_numpy(h0)
    return (h, torch.from_numpy(c0)) if c0 is not None else h


def split_states(cell, states):
    """(h_n, c_n or None) from either side's states (arrays or tensors)."""
    h, c = states if cell == "lstm" else (states, None)
    as_np = lambda a: None if a is None else (a.detach().numpy() if hasattr(a, "detach") else a)  # noqa: E731
    return as_np(h), as_np(c)


def assert_same_outputs(cell, ours, theirs, dtype, y_pick=lambda y: y):
    y, states = ours
    yt, states_t = theirs
    np.testing.assert_allclose(y, y_pick(yt.detach().numpy()), **TOL[dtype], err_msg="y")
    for name, a, b in zip(("h_n", "c_n"), split_states(cell, states),
                          split_states(cell, states_t)):
        if b is not None:
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=name)


# --------------------------------------------------------------------------------------------
# torch -> gatedrnn: outputs
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_from_torch_matches_module(torch, cell, num_layers, bidirectional, batch_first, bias,
                                   dtype):
    m = torch_module(torch, cell, dtype, num_layers=num_layers, bidirectional=bidirectional,
                     batch_first=batch_first, bias=bias, dropout=0.3 if num_layers > 1 else 0.0)
    m.eval()
    layer = from_torch(m)
    assert isinstance(layer, StackedRNN) and layer.dtype == dtype
    x = x_of(np.random.default_rng(num_layers), dtype, batch_first)
    with torch.no_grad():
        theirs = m(torch.from_numpy(x))
    ours = layer(x)
    assert_same_outputs(cell, ours, theirs, dtype)
    D = 2 if bidirectional else 1
    assert ours[0].shape == ((B, T, D * H) if batch_first else (T, B, D * H))


@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", CELLS)
def test_initial_states_and_packed_lengths(torch, cell, bidirectional, batch_first):
    pack = torch.nn.utils.rnn.pack_padded_sequence
    pad = torch.nn.utils.rnn.pad_packed_sequence
    L, D = 2, (2 if bidirectional else 1)
    m = torch_module(torch, cell, np.float64, num_layers=L, bidirectional=bidirectional,
                     batch_first=batch_first).eval()
    layer = from_torch(m)
    rng = np.random.default_rng(1)
    x = x_of(rng, np.float64, batch_first)
    h0, c0 = initial(rng, cell, L, D, np.float64)
    lengths = np.array([3, T, 1, 5])          # unsorted, >= 1 (torch refuses to pack 0)
    with torch.no_grad():
        # the initial states alone
        assert_same_outputs(cell, layer(x, h0, c0), m(torch.from_numpy(x), torch_hx(torch, h0, c0)),
                            np.float64)
        # and with the lengths of a packed sequence
        packed = pack(torch.from_numpy(x), torch.from_numpy(lengths), batch_first=batch_first,
                      enforce_sorted=False)
        out, states = m(packed, torch_hx(torch, h0, c0))
        y_t, _ = pad(out, batch_first=batch_first, total_length=T)
    ours = layer(x, (h0, c0) if cell == "lstm" else h0, lengths=lengths)   # torch-style hx
    assert_same_outputs(cell, ours, (y_t, states), np.float64)
    # a right-padded mask (Layer contract) is the same as the lengths
    mask = np.arange(T)[None, :] < lengths[:, None]
    y_mask, _ = layer.forward(x, mask=mask, h0=h0, c0=c0)
    np.testing.assert_array_equal(y_mask, ours[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("cell", CELLS)
def test_cells(torch, cell, bias, dtype):
    torch.manual_seed(3)
    tdt = tdtype(torch, dtype)
    if cell.startswith("rnn"):
        m = torch.nn.RNNCell(I, H, bias=bias, nonlinearity=cell[4:], dtype=tdt)
    else:
        m = (torch.nn.GRUCell if cell == "gru" else torch.nn.LSTMCell)(I, H, bias=bias, dtype=tdt)
    ours = from_torch(m)
    assert type(ours).__name__ == {"rnn": "SimpleRNNCell", "gru": "GRUCell",
                                   "lstm": "LSTMCell"}[cell[:4].rstrip("_")]
    rng = np.random.default_rng(4)
    x = rng.standard_normal((B, I)).astype(dtype)
    h = (0.5 * rng.standard_normal((B, H))).astype(dtype)
    c = (0.5 * rng.standard_normal((B, H))).astype(dtype)
    with torch.no_grad():
        if cell == "lstm":
            h_t, c_t = m(torch.from_numpy(x), (torch.from_numpy(h), torch.from_numpy(c)))
            h_o, (_, c_o) = ours.step(x, (h, c))
            np.testing.assert_allclose(c_o, c_t.numpy(), **TOL[dtype])
        else:
            h_t = m(torch.from_numpy(x), torch.from_numpy(h))
            h_o, _ = ours.step(x, h)
    np.testing.assert_allclose(h_o, h_t.numpy(), **TOL[dtype])
    back = to_torch(ours)
    assert type(back) is type(m)
    assert back.state_dict().keys() == m.state_dict().keys()
    for k, v in m.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k


def test_half_precision_module_reads_as_float32(torch):
    m = torch_module(torch, "gru", np.float32).to(torch.float16)
    layer = from_torch(m)
    assert layer.dtype == np.float32
    np.testing.assert_array_equal(layer.state_dict()["weight_hh_l0"],
                                  m.weight_hh_l0.detach().float().numpy())


# --------------------------------------------------------------------------------------------
# state dicts and round trips
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_round_trip_is_exact(torch, cell, num_layers, bidirectional, bias):
    m = torch_module(torch, cell, np.float32, num_layers=num_layers, bidirectional=bidirectional,
                     bias=bias, batch_first=True, dropout=0.25 if num_layers > 1 else 0.0)
    back = to_torch(from_torch(m))
    assert type(back) is type(m) and back.mode == m.mode
    for attr in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
                 "bidirectional", "proj_size"):
        assert getattr(back, attr) == getattr(m, attr), attr
    assert list(back.state_dict()) == list(m.state_dict())
    for k, v in m.state_dict().items():
        assert back.state_dict()[k].dtype == v.dtype and torch.equal(back.state_dict()[k], v), k
    # parameter order = torch's parameters() order, and get/set_weights use it
    layer = from_torch(m)
    assert [p.name.split("/")[-1] for p in layer.parameters] == [n for n, _ in
                                                                 m.named_parameters()]
    fresh = StackedRNN(layer.cell, I, H, num_layers=num_layers, bidirectional=bidirectional,
                       bias=bias, nonlinearity=layer.nonlinearity)
    fresh.set_weights([p.detach().numpy() for p in m.parameters()])
    for a, b in zip(fresh.get_weights(), layer.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("as_numpy", [False, True], ids=["tensors", "numpy"])
@pytest.mark.parametrize("cell", CELLS)
def test_from_torch_state_dict(torch, cell, as_numpy):
    m = torch_module(torch, cell, np.float64, num_layers=2, bidirectional=True).eval()
    sd = {"encoder.rnn." + k: (v.numpy() if as_numpy else v) for k, v in m.state_dict().items()}
    sd["decoder.weight"] = np.zeros(3)        # outside the prefix: ignored
    layer = from_torch_state_dict(sd, cell[:4].rstrip("_"), I, H, num_layers=2,
                                  bidirectional=True, nonlinearity=cell[4:] or "tanh",
                                  prefix="encoder.rnn.")
    assert layer.dtype == np.float64          # inferred from the arrays
    x = x_of(np.random.default_rng(5), np.float64, False)
    with torch.no_grad():
        assert_same_outputs(cell, layer(x), m(torch.from_numpy(x)), np.float64)


def test_state_dict_errors_list_every_bad_key(torch):
    m = torch_module(torch, "lstm", num_layers=2)
    sd = dict(m.state_dict())
    del sd["bias_hh_l1"]
    sd["weight_ih_l0"] = sd["weight_ih_l0"][:, :3]
    sd["weight_ih_l2"] = sd["weight_hh_l1"]
    with pytest.raises(ValueError) as e:
        from_torch_state_dict(sd, "lstm", I, H, num_layers=2)
    msg = str(e.value)
    assert "missing keys ['bias_hh_l1']" in msg and "unexpected keys ['weight_ih_l2']" in msg
    assert f"weight_ih_l0: expected shape {(4 * H, I)}, got {(4 * H, 3)}" in msg
    with pytest.raises(ValueError, match="cell: expected 'rnn', 'gru' or 'lstm', got 'LSTMs'"):
        from_torch_state_dict(m.state_dict(), "LSTMs", I, H)
    with pytest.raises(TypeError, match="state_dict: expected a mapping"):
        from_torch_state_dict([1, 2], "lstm", I, H)


# --------------------------------------------------------------------------------------------
# gatedrnn -> torch
# --------------------------------------------------------------------------------------------

def keras_layer(kind, **kw):
    L = gr.layers
    cls, opts = {"rnn_tanh": (L.SimpleRNN, {}), "rnn_relu": (L.SimpleRNN, {"activation": "relu"}),
                 "gru": (L.GRU, {}), "lstm": (L.LSTM, {})}[kind]
    return cls(H, dtype="float64", bias_initializer="torch_uniform", **opts, **kw)


def to_list(out):
    return [o.detach().numpy() for o in out] if isinstance(out, (list, tuple)) \
        else [out.detach().numpy()]


def assert_module_reproduces(torch, layer, module, x, initial_state=None):
    want = layer(x) if initial_state is None else layer(x, initial_state=initial_state)
    with torch.no_grad():
        args = (torch.from_numpy(x),)
        if initial_state is not None:
            args += ([torch.from_numpy(s) for s in initial_state],)
        got = module(*args)
    want, got = (want if isinstance(want, list) else [want]), to_list(got)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, **TOL[np.float64])


@pytest.mark.parametrize("options", list(itertools.product([False, True], repeat=4)),
                         ids=lambda o: "seq%d-state%d-back%d-tmajor%d" % o)
@pytest.mark.parametrize("kind", CELLS)
def test_to_torch_of_recurrent_layers(torch, kind, options):
    return_sequences, return_state, go_backwards, time_major = options
    gr.config.set_random_seed(11)
    layer = keras_layer(kind, return_sequences=return_sequences, return_state=return_state,
                        go_backwards=go_backwards, time_major=time_major)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((T, B, I) if time_major else (B, T, I))
    layer(x)
    module = to_torch(layer)
    native = return_sequences and not return_state and not go_backwards
    assert isinstance(module, torch.nn.RNNBase) == native
    if native:      # the layer's output is the native module's first output
        assert module.batch_first == (not time_major)
        with torch.no_grad():
            np.testing.assert_allclose(module(torch.from_numpy(x))[0].numpy(), layer(x),
                                       **TOL[np.float64])
    else:
        n = 2 if kind == "lstm" else 1
        states = [0.5 * rng.standard_normal((B, H)) for _ in range(n)]
        assert_module_reproduces(torch, layer, module, x)
        assert_module_reproduces(torch, layer, module, x, states)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences,return_state",
                         [(True, False), (False, False), (True, True)])
@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_to_torch_of_bidirectional(torch, kind, merge_mode, return_sequences, return_state):
    gr.config.set_random_seed(12)
    layer = gr.layers.Bidirectional(keras_layer(kind, return_sequences=return_sequences,
                                                return_state=return_state),
                                    merge_mode=merge_mode)
    x = np.random.default_rng(7).standard_normal((B, T, I))
    layer(x)
    module = to_torch(layer)
    native = merge_mode == "concat" and return_sequences and not return_state
    assert isinstance(module, torch.nn.RNNBase) == native
    if native:
        assert module.bidirectional and module.batch_first
        with torch.no_grad():
            np.testing.assert_allclose(module(torch.from_numpy(x))[0].numpy(), layer(x),
                                       **TOL[np.float64])
    else:
        assert_module_reproduces(torch, layer, module, x)


def test_to_torch_of_bidirectional_with_other_backward_layer(torch):
    gr.config.set_random_seed(13)
    layer = gr.layers.Bidirectional(
        keras_layer("lstm", return_sequences=True),
        backward_layer=keras_layer("rnn_relu", return_sequences=True, go_backwards=True),
        merge_mode="concat")
    x = np.random.default_rng(8).standard_normal((B, T, I))
    layer(x)
    module = to_torch(layer)
    assert type(module).__name__ == "KerasStyleBidirectional" and module.rnn is None
    assert_module_reproduces(torch, layer, module, x)


@pytest.mark.parametrize("cell", CELLS)
def test_to_torch_of_our_stacked_rnn(torch, cell):
    gr.config.set_random_seed(14)
    layer = StackedRNN(cell[:4].rstrip("_"), I, H, num_layers=2, bidirectional=True,
                       batch_first=True, nonlinearity=cell[4:] or "tanh", dtype="float64",
                       kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal")
    m = to_torch(layer)
    assert not m.training
    rng = np.random.default_rng(9)
    x = x_of(rng, np.float64, True)
    h0, c0 = initial(rng, cell, 2, 2, np.float64)
    with torch.no_grad():
        assert_same_outputs(cell, layer(x, h0, c0), m(torch.from_numpy(x),
                                                      torch_hx(torch, h0, c0)), np.float64)


def test_to_torch_of_sequential_models(torch):
    L = gr.layers
    gr.config.set_random_seed(15)
    model = Sequential([
        L.Embedding(20, I, dtype="float64"),
        L.LSTM(H, return_sequences=True, dtype="float64"),
        L.Dropout(0.5, dtype="float64"),
        L.Bidirectional(L.GRU(H, return_sequences=True, go_backwards=True, dtype="float64"),
                        merge_mode="sum"),
        StackedRNN("rnn", H, H, num_layers=2, batch_first=True, return_state=False,
                   dtype="float64"),
        L.SimpleRNN(H, activation="relu", dtype="float64"),
        L.Dense(3, activation="softmax", dtype="float64"),
    ])
    tokens = np.random.default_rng(10).integers(0, 20, size=(B, T))
    want = model(tokens)
    module = to_torch(model)
    assert isinstance(module, torch.nn.Sequential) and not module.training
    with torch.no_grad():
        got = module(torch.from_numpy(tokens)).numpy()
    np.testing.assert_allclose(got, want, **TOL[np.float64])

    model2 = Sequential([L.Dense(I, activation="tanh", dtype="float64"),
                                   L.RepeatVector(T, dtype="float64"), L.GRU(H, return_sequences=True,
                                                            dtype="float64"),
                                   L.Activation("elu", dtype="float64")])
    x = np.random.default_rng(11).standard_normal((B, 4))
    want = model2(x)
    with torch.no_grad():
        got = to_torch(model2)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, **TOL[np.float64])


def test_stacked_rnn_trains_inside_sequential():
    L = gr.layers
    gr.config.set_random_seed(16)
    model = Sequential([
        StackedRNN("gru", I, H, num_layers=2, batch_first=True, dropout=0.2, return_state=False),
        L.SimpleRNN(H),
        L.Dense(1)])
    rng = np.random.default_rng(12)
    x = rng.standard_normal((16, T, I)).astype(np.float32)
    y = x.sum(axis=(1, 2))[:, None].astype(np.float32) / 10
    model.compile(optimizer=optim.Adam(1e-2), loss="mse")
    first = model.train_on_batch(x, y)
    for _ in range(20):
        last = model.train_on_batch(x, y)
    assert np.isfinite(last) and last < first


# --------------------------------------------------------------------------------------------
# gradients
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_backward_matches_torch_autograd(torch, cell, batch_first, with_lengths):
    L, D = 2, 2
    m = torch_module(torch, cell, np.float64, num_layers=L, bidirectional=True,
                     batch_first=batch_first)
    layer = from_torch(m)
    rng = np.random.default_rng(13)
    x = x_of(rng, np.float64, batch_first)
    h0, c0 = initial(rng, cell, L, D, np.float64)
    lengths = np.array([T, 2, 5, 1]) if with_lengths else None
    y, states = layer.forward(x, training=True, h0=h0, c0=c0, lengths=lengths)
    h_n, c_n = split_states(cell, states)
    dy = rng.standard_normal(y.shape)
    dh_n = rng.standard_normal(h_n.shape)
    dc_n = rng.standard_normal(c_n.shape) if c_n is not None else None
    dx = layer.backward(dy, dh_n, dc_n)

    x_t = torch.tensor(x, requires_grad=True)
    h0_t = torch.tensor(h0, requires_grad=True)
    c0_t = torch.tensor(c0, requires_grad=True) if c0 is not None else None
    hx = (h0_t, c0_t) if c0_t is not None else h0_t
    if with_lengths:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x_t, torch.from_numpy(lengths), batch_first=batch_first, enforce_sorted=False)
        out, states_t = m(packed, hx)
        y_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first,
                                                        total_length=T)
    else:
        y_t, states_t = m(x_t, hx)
    h_t, c_t = states_t if cell == "lstm" else (states_t, None)
    loss = (y_t * torch.from_numpy(dy)).sum() + (h_t * torch.from_numpy(dh_n)).sum()
    if c_t is not None:
        loss = loss + (c_t * torch.from_numpy(dc_n)).sum()
    loss.backward()

    np.testing.assert_allclose(y, y_t.detach().numpy(), **GRAD_TOL)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), **GRAD_TOL, err_msg="dx")
    grads = layer.initial_state_grads
    dh0, dc0 = grads if cell == "lstm" else (grads, None)
    np.testing.assert_allclose(dh0, h0_t.grad.numpy(), **GRAD_TOL, err_msg="dh0")
    if dc0 is not None:
        np.testing.assert_allclose(dc0, c0_t.grad.numpy(), **GRAD_TOL, err_msg="dc0")
    ours = {p.name.split("/")[-1]: p.grad for p in layer.parameters}
    for name, p in m.named_parameters():
        np.testing.assert_allclose(ours[name], p.grad.numpy(), **GRAD_TOL, err_msg=name)
    # backward accumulates, and takes the forward's output structure as well
    layer.backward((dy, (dh_n, dc_n) if cell == "lstm" else dh_n))
    for name, p in m.named_parameters():
        np.testing.assert_allclose(ours[name], 2 * p.grad.numpy(), **GRAD_TOL, err_msg=name)


def test_dropout_between_layers(torch):
    layer = from_torch(torch_module(torch, "lstm", np.float64, num_layers=3, dropout=0.5,
                                    bidirectional=True))
    rng = np.random.default_rng(14)
    x = x_of(rng, np.float64, False)
    y_inf, _ = layer(x)
    gr.config.set_random_seed(0)
    y_a, _ = layer(x, training=True)
    gr.config.set_random_seed(0)
    y_b, _ = layer(x, training=True)
    np.testing.assert_array_equal(y_a, y_b)                   # the seed fixes the masks
    assert np.abs(y_a - y_inf).max() > 1e-2                   # and they change the output
    no_drop = from_torch(torch_module(torch, "lstm", np.float64, num_layers=3,
                                      bidirectional=True))
    np.testing.assert_array_equal(no_drop(x, training=True)[0], y_inf)

    # finite differences with the masks fixed by the seed
    dy = rng.standard_normal(y_a.shape)
    dh = rng.standard_normal((6, B, H))

    def loss():
        gr.config.set_random_seed(0)
        y, (h, _) = layer.forward(x, training=True)
        return float((y * dy).sum() + (h * dh).sum())

    layer.zero_grad()
    loss()
    dx = layer.backward(dy, dh)
    eps = 1e-6
    picks = [("x", x, (2, 1, 3))] + [
        (p.name, p.value, tuple(rng.integers(0, s) for s in p.shape))
        for p in layer.parameters[::3]]
    for name, arr, idx in picks:
        old = arr[idx]
        arr[idx] = old + eps
        for p in layer.parameters:
            p.mark_updated()
        up = loss()
        arr[idx] = old - eps
        down = loss()
        arr[idx] = old
        numeric = (up - down) / (2 * eps)
        analytic = dx[idx] if name == "x" else next(
            p.grad for p in layer.parameters if p.name == name)[idx]
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


# --------------------------------------------------------------------------------------------
# the layer's own contract
# --------------------------------------------------------------------------------------------

def test_packed_weights_follow_parameter_versions(torch):
    layer = from_torch(torch_module(torch, "gru", num_layers=2))
    x = x_of(np.random.default_rng(15), np.float32, False)
    y0, _ = layer(x)
    handle = layer.packed_weights(1)
    layer(x)
    assert layer.packed_weights(1) is handle                   # not packed again per call
    w = layer.get_weights()
    w[5] = w[5] * 0.5                                          # weight_hh_l1
    layer.set_weights(w)
    assert layer.packed_weights(1) is not handle
    assert np.abs(layer(x)[0] - y0).max() > 1e-4


def test_config_round_trip_and_return_state(torch):
    layer = StackedRNN("rnn", I, H, num_layers=2, nonlinearity="relu", bidirectional=True,
                       dropout=0.1, batch_first=True, bias=False, dtype="float64")
    cfg = layer.get_config()
    clone = StackedRNN.from_config(cfg)
    assert clone.get_config() == cfg
    clone.set_weights(layer.get_weights())
    x = x_of(np.random.default_rng(16), np.float64, True)
    y, h = layer(x)
    y_only = StackedRNN.from_config({**cfg, "return_state": False, "name": "other"})
    y_only.set_weights(layer.get_weights())
    np.testing.assert_array_equal(y_only(x), y)
    np.testing.assert_array_equal(clone(x)[1], h)
    assert layer.compute_output_shape((B, T, I)) == [(B, T, 2 * H), (4, B, H)]
    assert y_only.compute_output_shape((B, T, I)) == (B, T, 2 * H)


def test_reset_before_gru_runs_but_does_not_convert(torch):
    layer = StackedRNN("gru", I, H, reset_after=False, dtype="float64")
    y, h = layer(x_of(np.random.default_rng(17), np.float64, False))
    np.testing.assert_array_equal(y[-1], h[0])
    with pytest.raises(ValueError, match="torch has no reset-before GRU"):
        to_torch(layer)
    keras = gr.layers.GRU(H, reset_after=False)
    keras.build((None, T, I))
    with pytest.raises(ValueError, match="reset_after=False: torch has no reset-before GRU"):
        to_torch(keras)
    with pytest.raises(ValueError, match="torch has no reset-before GRU"):
        to_torch(_built_bidir_reset_before())
    cell = gr.layers.GRUCell(H, reset_after=False)
    cell.build((None, I))
    with pytest.raises(ValueError, match="torch has no reset-before GRU"):
        to_torch(cell)


def _built_bidir_reset_before():
    layer = gr.layers.Bidirectional(gr.layers.GRU(H, reset_after=False))
    layer.build((None, T, I))
    return layer


def test_errors(torch):
    with pytest.raises(ValueError, match="proj_size = 3: LSTM projections are not supported"):
        from_torch(torch.nn.LSTM(I, H, proj_size=3))
    with pytest.raises(ValueError, match="proj_size"):
        StackedRNN("lstm", I, H, proj_size=2)
    sd = dict(torch.nn.LSTM(I, H, proj_size=3).state_dict())
    with pytest.raises(ValueError, match="proj_size > 0 is not supported"):
        from_torch_state_dict(sd, "lstm", I, H)
    with pytest.raises(TypeError, match="module: expected a torch nn.RNN"):
        from_torch(torch.nn.Linear(2, 3))
    with pytest.raises(TypeError, match="obj: expected a StackedRNN"):
        to_torch(gr.layers.Dense(3))
    masked = Sequential([gr.layers.Embedding(10, I, mask_zero=True),
                                   gr.layers.LSTM(H)])
    masked(np.ones((B, T), np.int64))
    with pytest.raises(ValueError, match="masks are not converted to torch"):
        to_torch(masked)
    layer = StackedRNN("lstm", I, H, num_layers=2)
    x = x_of(np.random.default_rng(18), np.float32, False)
    with pytest.raises(ValueError, match=r"h0 expected shape \(L\*D, B, H\) = \(2, 4, 7\), "
                                         r"got \(1, 4, 7\)"):
        layer(x, np.zeros((1, B, H), np.float32))
    with pytest.raises(ValueError, match=r"lengths expected values in \[0, T\]"):
        layer(x, lengths=np.array([1, 2, 3, T + 1]))
    with pytest.raises(ValueError, match="c0: only an LSTM has a cell state"):
        StackedRNN("gru", I, H)(x, c0=np.zeros((1, B, H), np.float32))
    with pytest.raises(ValueError, match="expected 5 features"):
        layer(np.zeros((T, B, I + 1), np.float32))
    with pytest.raises(RuntimeError, match="backward needs a forward call with training=True"):
        StackedRNN("gru", I, H).backward(np.zeros((T, B, H), np.float32))
    with pytest.raises(ValueError, match="mask expected right-padded sequences"):
        layer.forward(x, mask=np.arange(T)[None, :] >= np.array([0, 1, 0, 0])[:, None])


def test_training_only_options_warn(torch):
    layer = gr.layers.LSTM(H, dropout=0.2, recurrent_dropout=0.1, return_sequences=True)
    layer.build((None, T, I))
    with pytest.warns(UserWarning, match=r"dropout=0.2, recurrent_dropout=0.1 not carried over"):
        module = to_torch(layer)
    x = np.random.default_rng(19).standard_normal((B, T, I)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(x))[0].numpy(), layer(x),
                                   **TOL[np.float32])
