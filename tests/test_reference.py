"""Tests that prove the oracle `gatedrnn.reference` right.

1. Finite differences (float64): every gradient the reference backward returns matches the
   numerical derivative of its own forward, for every cell and option.
2. dh_seq: dL/dh_t is checked against an independent derivation (dy_t plus the numerical
   gradient of the rest of the sequence with respect to its initial state h_t).
3. Semantics without peers: lengths/reverse against running each sequence alone.
4. Parity with PyTorch (nn.RNN / nn.GRU / nn.LSTM, packed sequences, the reverse half of a
   bidirectional layer), and a small hand-written torch loop for what PyTorch has no layer for
   (GRU reset_after=False, recurrent_mask, len = 0). torch comes from the `torch` fixture of
   conftest.py: it skips without torch, and fails instead when GATEDRNN_REQUIRE_PEERS=1 (CI).
5. Empty sizes (T = 0, B = 0, I = 0), dtypes, and the little argument checking the oracle does.
"""

import numpy as np
import pytest

from conftest import numerical_gradient
from gatedrnn import reference as R


# ---------------------------------------------------------------------------------------------
# Problem construction
# ---------------------------------------------------------------------------------------------

class Cell:
    def __init__(self, name, forward, backward, gates, options, is_lstm=False):
        self.name, self.forward, self.backward = name, forward, backward
        self.gates, self.options, self.is_lstm = gates, options, is_lstm


CELLS = {
    "rnn_tanh": Cell("rnn_tanh", R.rnn, R.rnn_backward, 1, {"nonlinearity": "tanh"}),
    "rnn_relu": Cell("rnn_relu", R.rnn, R.rnn_backward, 1, {"nonlinearity": "relu"}),
    "gru": Cell("gru", R.gru, R.gru_backward, 3, {"reset_after": True}),
    "gru_reset_before": Cell("gru_reset_before", R.gru, R.gru_backward, 3,
                             {"reset_after": False}),
    "lstm": Cell("lstm", R.lstm, R.lstm_backward, 4, {}, is_lstm=True),
}
CELL_NAMES = list(CELLS)

GRAD_NAME = {"x": "dx", "h0": "dh0", "c0": "dc0", "weight_ih": "dweight_ih",
             "weight_hh": "dweight_hh", "bias_ih": "dbias_ih", "bias_hh": "dbias_hh"}


class Problem:
    """Inputs of one forward call plus the cotangents dy, dh_n, dc_n (None = not given)."""

    def __init__(self, cell, arrays, options, dy, dh_n, dc_n):
        self.cell, self.arrays, self.options = cell, arrays, options
        self.dy, self.dh_n, self.dc_n = dy, dh_n, dc_n

    def forward(self, training=False, **override):
        kwargs = dict(self.arrays, **self.options)
        kwargs.update(override)
        return self.cell.forward(**kwargs, training=training)

    def backward(self, ctx, **kw):
        extra = {"dc_n": self.dc_n} if self.cell.is_lstm else {}
        return self.cell.backward(ctx, dy=self.dy, dh_n=self.dh_n, **extra, **kw)

    def loss(self, **override):
        """L = sum(dy * y) + sum(dh_n * h_n) + sum(dc_n * c_n), missing cotangents = 0."""
        out = self.forward(**override)
        total = 0.0
        if self.dy is not None:
            total += np.sum(self.dy * out.y)
        if self.dh_n is not None:
            total += np.sum(self.dh_n * out.h_n)
        if self.cell.is_lstm and self.dc_n is not None:
            total += np.sum(self.dc_n * out.c_n)
        return float(total)


def make_problem(cell_name, seed=0, T=4, B=3, I=3, H=3, dtype=np.float64, bias="both",
                 init=True, mask=False, lengths=None, reverse=False, batch_first=False,
                 source="both"):
    cell = CELLS[cell_name]
    rng = np.random.default_rng(seed)
    G = cell.gates

    def rand(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(dtype)

    arrays = {
        "x": rand(*((B, T, I) if batch_first else (T, B, I))),
        "weight_ih": rand(G * H, I, scale=0.6),
        "weight_hh": rand(G * H, H, scale=0.6),
    }
    if bias in ("both", "ih"):
        arrays["bias_ih"] = rand(G * H, scale=0.5)
    if bias in ("both", "hh"):
        arrays["bias_hh"] = rand(G * H, scale=0.5)
    if init:
        arrays["h0"] = rand(B, H, scale=0.5)
        if cell.is_lstm:
            arrays["c0"] = rand(B, H, scale=0.5)
    if mask:
        m = rng.uniform(0.5, 1.5, (B, H))
        m[0, 0] = 0.0  # a dropped unit
        arrays["recurrent_mask"] = m.astype(dtype)
    options = dict(cell.options, reverse=reverse, batch_first=batch_first)
    if lengths is not None:
        options["lengths"] = np.asarray(lengths)
    y_shape = (B, T, H) if batch_first else (T, B, H)
    dy = rand(*y_shape) if source in ("both", "dy") else None
    dh_n = rand(B, H) if source in ("both", "dh_n") else None
    dc_n = rand(B, H) if (cell.is_lstm and source in ("both", "dh_n")) else None
    return Problem(cell, arrays, options, dy, dh_n, dc_n)




# Tolerances of the finite-difference checks (float64, eps = 1e-6, central differences):
# truncation error ~ eps^2 |L'''| / 6 ~ 1e-13; rounding error ~ u |L| / eps ~ 2e-16 * 10 / 1e-6
# ~ 2e-9 (|L| stays below ~10 at these sizes). So atol = 1e-8 leaves a 5x margin over the noise,
# and rtol = 1e-6 covers the larger gradients, while any real mistake in a formula shows up as
# an error of order 1e-3 or more.
FD_RTOL, FD_ATOL = 1e-6, 1e-8


def assert_close(actual, expected, rtol, atol, what):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


# ---------------------------------------------------------------------------------------------
# 1. Finite-difference gradient checks
# ---------------------------------------------------------------------------------------------

FD_CASES = {
    "plain": {},
    "lengths": dict(lengths=[3, 0, 4]),
    "lengths_uint8": dict(lengths=np.array([2, 4, 0], dtype=np.uint8)),
    "reverse": dict(reverse=True),
    "lengths_reverse": dict(lengths=[3, 0, 4], reverse=True),
    "batch_first": dict(batch_first=True),
    "batch_first_lengths": dict(batch_first=True, lengths=[1, 4, 0]),
    "batch_first_lengths_reverse": dict(batch_first=True, lengths=[0, 2, 4], reverse=True),
    "no_bias": dict(bias=None),
    "bias_ih_only": dict(bias="ih"),
    "bias_hh_only": dict(bias="hh"),
    "no_initial_state": dict(init=False),
    "mask": dict(mask=True),
    "mask_lengths_reverse": dict(mask=True, lengths=[4, 1, 0], reverse=True),
    "dy_only": dict(source="dy"),
    "dh_n_only": dict(source="dh_n"),
    "dh_n_only_lengths": dict(source="dh_n", lengths=[2, 0, 3]),
    "I0": dict(I=0, lengths=[2, 0, 4]),
    "everything": dict(lengths=[2, 4, 0], reverse=True, batch_first=True, mask=True,
                       bias=None, init=False),
}


@pytest.mark.parametrize("case", list(FD_CASES))
@pytest.mark.parametrize("cell_name", CELL_NAMES)
def test_gradients_match_finite_differences(cell_name, case):
    prob = make_problem(cell_name, seed=len(case), **FD_CASES[case])
    out = prob.forward(training=True)
    grads = prob.backward(out.ctx)

    # Missing biases have no gradient; the states' gradients are always arrays.
    for b in ("bias_ih", "bias_hh"):
        if b not in prob.arrays:
            assert getattr(grads, GRAD_NAME[b]) is None
    # Missing initial states are zeros: check dh0/dc0 by differentiating at explicit zeros.
    B, H = out.h_n.shape
    for s in (["h0", "c0"] if prob.cell.is_lstm else ["h0"]):
        prob.arrays.setdefault(s, np.zeros((B, H)))

    for name, a in prob.arrays.items():
        if name == "recurrent_mask":
            continue  # a constant: no gradient
        expected = numerical_gradient(prob.loss, a)
        actual = getattr(grads, GRAD_NAME[name])
        assert actual.shape == a.shape and actual.dtype == a.dtype
        assert_close(actual, expected, FD_RTOL, FD_ATOL, f"{cell_name}/{case}: {name}")


@pytest.mark.parametrize("cell_name", CELL_NAMES)
def test_padding_gets_zero_dx_and_dy_there_is_ignored(cell_name):
    prob = make_problem(cell_name, lengths=[3, 0, 4], reverse=True)
    out = prob.forward(training=True)
    grads = prob.backward(out.ctx)
    lengths = prob.options["lengths"]
    T = prob.arrays["x"].shape[0]
    pad = np.arange(T)[:, None] >= lengths[None, :]  # (T, B)
    assert np.all(out.y[pad] == 0)
    assert np.all(grads.dx[pad] == 0)
    prob.dy = np.where(pad[:, :, None], 1e3, prob.dy)  # huge dy where the sequence has ended
    grads2 = prob.backward(out.ctx)
    for a, b in zip(grads, grads2):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# 2. dh_seq = dL/dh_t, derived independently
# ---------------------------------------------------------------------------------------------

DH_SEQ_CASES = {
    "plain": {},
    "lengths_reverse": dict(lengths=[3, 0, 4], reverse=True),
    "batch_first_lengths_mask": dict(batch_first=True, lengths=[2, 4, 1], mask=True),
    "dy_only": dict(source="dy", lengths=[4, 2, 0]),
}


@pytest.mark.parametrize("case", list(DH_SEQ_CASES))
@pytest.mark.parametrize("cell_name", CELL_NAMES)
def test_dh_seq_is_total_gradient_wrt_h_t(cell_name, case):
    """dL/dh_t = dy_t + d(loss of the rest of the sequence)/d(its initial state h_t).

    The rest of the sequence is the reference run from the state after step t (c_t held fixed
    for the LSTM) over the steps still to come; its gradient is taken by finite differences, so
    the check does not rely on the backward code at all.
    """
    spec = DH_SEQ_CASES[case]
    prob = make_problem(cell_name, seed=7, **spec)
    cell, opts = prob.cell, prob.options
    out = prob.forward(training=True)
    grads = prob.backward(out.ctx, return_dh_seq=True)
    expected_type = R.LSTMGradientsWithSeq if cell.is_lstm else R.RNNGradientsWithSeq
    assert type(grads) is expected_type
    assert grads.dh_seq.shape == out.y.shape

    def tm(a):  # to time-major
        return np.swapaxes(a, 0, 1) if opts["batch_first"] else a

    x, y, dh_seq = tm(prob.arrays["x"]), tm(out.y), tm(grads.dh_seq)
    dy = tm(prob.dy) if prob.dy is not None else np.zeros_like(y)
    T, B, H = y.shape
    lengths = np.asarray(opts.get("lengths", np.full(B, T)), dtype=np.int64)
    base = {k: v for k, v in prob.arrays.items() if k != "x"}
    base.update(cell.options)

    def run(xs, lens, h0, c0=None):
        kw = dict(base, h0=h0, lengths=lens, reverse=opts["reverse"])
        if cell.is_lstm:
            kw["c0"] = c0
        return cell.forward(xs, **kw)

    h0 = prob.arrays["h0"]
    c0 = prob.arrays.get("c0")
    for t in range(T):
        active = t < lengths
        if not opts["reverse"]:
            done, todo = slice(0, t + 1), slice(t + 1, T)
            done_len, todo_len = np.minimum(lengths, t + 1), np.maximum(lengths - t - 1, 0)
        else:  # processed: positions len-1 .. t; still to come: t-1 .. 0
            done, todo = slice(t, T), slice(0, t)
            done_len, todo_len = np.maximum(lengths - t, 0), np.where(active, t, 0)
        after_t = run(x[done], done_len, h0, c0)
        np.testing.assert_allclose(after_t.h_n[active], y[t][active], rtol=1e-12, atol=0)
        h_t = after_t.h_n.copy()
        c_t = after_t.c_n if cell.is_lstm else None

        def rest_loss():
            rest = run(x[todo], todo_len, h_t, c_t)
            total = np.sum(dy[todo] * rest.y)
            if prob.dh_n is not None:
                total += np.sum(prob.dh_n * rest.h_n)
            if prob.dc_n is not None:
                total += np.sum(prob.dc_n * rest.c_n)
            return float(total)

        expected = np.where(active[:, None], dy[t] + numerical_gradient(rest_loss, h_t), 0.0)
        assert_close(dh_seq[t], expected, FD_RTOL, FD_ATOL, f"dh_seq[{t}]")


# ---------------------------------------------------------------------------------------------
# 3. Lengths and reverse, against running each sequence alone
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell_name", CELL_NAMES)
def test_lengths_and_reverse_match_single_sequences(cell_name, reverse):
    prob = make_problem(cell_name, seed=3, T=5, B=4, lengths=[3, 0, 5, 1], reverse=reverse,
                        mask=True)
    out = prob.forward()
    x, lengths = prob.arrays["x"], prob.options["lengths"]
    for b, n in enumerate(lengths):
        single = {k: v[b:b + 1] for k, v in prob.arrays.items()
                  if k in ("h0", "c0", "recurrent_mask")}
        xb = x[:n, b:b + 1]
        if reverse:  # reverse = the forward pass over the time-flipped sequence
            xb = xb[::-1]
        alone = prob.cell.forward(xb, prob.arrays["weight_ih"], prob.arrays["weight_hh"],
                                  prob.arrays["bias_ih"], prob.arrays["bias_hh"],
                                  **single, **prob.cell.options)
        yb = alone.y[::-1] if reverse else alone.y
        np.testing.assert_allclose(out.y[:n, b], yb[:, 0], rtol=1e-13, atol=1e-15)
        assert np.all(out.y[n:, b] == 0)
        np.testing.assert_allclose(out.h_n[b], alone.h_n[0], rtol=1e-13, atol=1e-15)
        if n == 0:
            np.testing.assert_array_equal(out.h_n[b], prob.arrays["h0"][b])
        if prob.cell.is_lstm:
            np.testing.assert_allclose(out.c_n[b], alone.c_n[0], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("cell_name", CELL_NAMES)
def test_batch_first_is_a_transpose(cell_name):
    prob = make_problem(cell_name, seed=4, lengths=[2, 0, 4], reverse=True)
    out = prob.forward(training=True)
    grads = prob.backward(out.ctx, return_dh_seq=True)
    bf = make_problem(cell_name, seed=4, lengths=[2, 0, 4], reverse=True)
    bf.arrays["x"] = np.ascontiguousarray(prob.arrays["x"].transpose(1, 0, 2))
    bf.dy = np.ascontiguousarray(prob.dy.transpose(1, 0, 2))
    bf.options["batch_first"] = True
    out_bf = bf.forward(training=True)
    grads_bf = bf.backward(out_bf.ctx, return_dh_seq=True)
    np.testing.assert_array_equal(out_bf.y, out.y.transpose(1, 0, 2))
    np.testing.assert_array_equal(out_bf.h_n, out.h_n)
    np.testing.assert_array_equal(grads_bf.dx, grads.dx.transpose(1, 0, 2))
    np.testing.assert_array_equal(grads_bf.dh_seq, grads.dh_seq.transpose(1, 0, 2))
    np.testing.assert_array_equal(grads_bf.dweight_hh, grads.dweight_hh)


# ---------------------------------------------------------------------------------------------
# 4. Parity with PyTorch
# ---------------------------------------------------------------------------------------------

TORCH_TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}

TORCH_CASES = {
    "plain": {},
    "no_initial_state": dict(init=False),
    "no_bias": dict(bias=None),
    "lengths": dict(lengths=[3, 1, 5, 2]),
    "reverse": dict(reverse=True),
    "lengths_reverse": dict(lengths=[3, 1, 5, 2], reverse=True),
    "batch_first_lengths_reverse": dict(batch_first=True, lengths=[5, 2, 1, 4], reverse=True),
    "dh_n_only": dict(source="dh_n", lengths=[2, 5, 3, 1]),
}


def torch_layer(torch, prob, dtype):
    """An nn.RNN/GRU/LSTM holding the problem's weights (in the reverse half when reverse)."""
    a, cell = prob.arrays, prob.cell
    I, H = a["weight_ih"].shape[1], a["weight_hh"].shape[1]
    kw = dict(bias="bias_ih" in a, batch_first=prob.options["batch_first"],
              bidirectional=prob.options["reverse"], dtype=dtype)
    if cell.name.startswith("rnn"):
        layer = torch.nn.RNN(I, H, nonlinearity=cell.options["nonlinearity"], **kw)
    elif cell.name == "gru":
        layer = torch.nn.GRU(I, H, **kw)
    else:
        layer = torch.nn.LSTM(I, H, **kw)
    suffix = "_l0_reverse" if prob.options["reverse"] else "_l0"
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            if name in a:
                getattr(layer, name + suffix).copy_(torch.from_numpy(a[name]))
    return layer, suffix


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", list(TORCH_CASES))
@pytest.mark.parametrize("cell_name", ["rnn_tanh", "rnn_relu", "gru", "lstm"])
def test_parity_with_torch(torch, cell_name, case, dtype):
    prob = make_problem(cell_name, seed=11, T=5, B=4, I=3, H=4, dtype=dtype,
                        **TORCH_CASES[case])
    out = prob.forward(training=True)
    grads = prob.backward(out.ctx)
    for v in list(out[:-1]) + [g for g in grads if g is not None]:
        assert v.dtype == dtype

    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    layer, suffix = torch_layer(torch, prob, tdtype)
    bf, reverse = prob.options["batch_first"], prob.options["reverse"]
    D = 2 if reverse else 1
    B, H = out.h_n.shape
    x = torch.tensor(prob.arrays["x"], requires_grad=True)
    states = []
    for s in (["h0", "c0"] if prob.cell.is_lstm else ["h0"]):
        full = np.zeros((D, B, H), dtype=dtype)
        full[D - 1] = prob.arrays.get(s, 0)
        states.append(torch.tensor(full, requires_grad=True))
    hx = tuple(states) if prob.cell.is_lstm else states[0]
    if "lengths" in prob.options:
        lengths = torch.as_tensor(prob.options["lengths"], dtype=torch.int64)
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=bf,
                                                         enforce_sorted=False)
        packed_y, hn = layer(packed, hx)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(packed_y, batch_first=bf,
                                                      total_length=x.shape[1 if bf else 0])
    else:
        y, hn = layer(x, hx)
    y = y[..., (D - 1) * H:]
    h_n, c_n = (hn[0][D - 1], hn[1][D - 1]) if prob.cell.is_lstm else (hn[D - 1], None)

    loss = 0
    if prob.dy is not None:
        loss = loss + (torch.from_numpy(prob.dy) * y).sum()
    if prob.dh_n is not None:
        loss = loss + (torch.from_numpy(prob.dh_n) * h_n).sum()
    if prob.dc_n is not None:
        loss = loss + (torch.from_numpy(prob.dc_n) * c_n).sum()
    loss.backward()

    tol = TORCH_TOL[dtype]
    assert_close(out.y, y.detach().numpy(), what="y", **tol)
    assert_close(out.h_n, h_n.detach().numpy(), what="h_n", **tol)
    if prob.cell.is_lstm:
        assert_close(out.c_n, c_n.detach().numpy(), what="c_n", **tol)
    assert_close(grads.dx, x.grad.numpy(), what="dx", **tol)
    assert_close(grads.dh0, states[0].grad[D - 1].numpy(), what="dh0", **tol)
    if prob.cell.is_lstm:
        assert_close(grads.dc0, states[1].grad[D - 1].numpy(), what="dc0", **tol)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        if name in prob.arrays:
            expected = getattr(layer, name + suffix).grad.numpy()
            assert_close(getattr(grads, GRAD_NAME[name]), expected, what=name, **tol)


def torch_loop(torch, prob):
    """The cells written again as a per-sequence loop of torch ops (autograd does the rest).

    Covers what no torch layer does: GRU reset_after=False, recurrent_mask, len = 0. Each
    sequence b runs alone over its valid steps (flipped when reverse), in vector form.
    """
    a, cell, opts = prob.arrays, prob.cell, prob.options
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in a.items()
              if k != "recurrent_mask"}
    x = leaves["x"].transpose(0, 1) if opts["batch_first"] else leaves["x"]  # (T, B, I)
    T, B, _ = x.shape
    G, H = cell.gates, a["weight_hh"].shape[1]
    zeros_gh = torch.zeros(G * H, dtype=x.dtype)
    W_ih, W_hh = leaves["weight_ih"], leaves["weight_hh"]
    b_ih, b_hh = leaves.get("bias_ih", zeros_gh), leaves.get("bias_hh", zeros_gh)
    mask = torch.tensor(a.get("recurrent_mask", np.ones((B, H))), dtype=x.dtype)
    lengths = opts.get("lengths", [T] * B)
    zero_state = torch.zeros(B, H, dtype=x.dtype)
    h0, c0 = leaves.get("h0", zero_state), leaves.get("c0", zero_state)

    ys, hs, cs = [], [], []
    for b in range(B):
        h, c, m = h0[b], c0[b], mask[b]
        y_b = [torch.zeros(H, dtype=x.dtype)] * T
        steps = range(int(lengths[b]))
        for t in (reversed(steps) if opts["reverse"] else steps):
            gx = W_ih @ x[t, b] + b_ih
            if cell.name.startswith("rnn"):
                pre = gx + W_hh @ (m * h) + b_hh
                h = torch.tanh(pre) if cell.options["nonlinearity"] == "tanh" else torch.relu(pre)
            elif cell.is_lstm:
                gi, gf, gg, go = (gx + W_hh @ (m * h) + b_hh).split(H)
                c = torch.sigmoid(gf) * c + torch.sigmoid(gi) * torch.tanh(gg)
                h = torch.sigmoid(go) * torch.tanh(c)
            else:
                xr, xz, xn = gx.split(H)
                Wr, Wz, Wn = W_hh.split(H)
                br, bz, bn = b_hh.split(H)
                r = torch.sigmoid(xr + Wr @ (m * h) + br)
                z = torch.sigmoid(xz + Wz @ (m * h) + bz)
                if cell.options["reset_after"]:
                    n = torch.tanh(xn + r * (Wn @ (m * h) + bn))
                else:
                    n = torch.tanh(xn + Wn @ (r * (m * h)) + bn)
                h = (1 - z) * n + z * h
            y_b[t] = h
        ys.append(torch.stack(y_b) if T else torch.zeros(0, H, dtype=x.dtype))
        hs.append(h)
        cs.append(c)
    y = torch.stack(ys, dim=1)
    if opts["batch_first"]:
        y = y.transpose(0, 1)
    return leaves, y, torch.stack(hs), torch.stack(cs)


LOOP_CASES = {
    "plain": {},
    "mask_lengths_with_zero": dict(mask=True, lengths=[3, 0, 4]),
    "mask_lengths_reverse_batch_first": dict(mask=True, lengths=[0, 4, 2], reverse=True,
                                             batch_first=True, init=False),
    "no_bias_reverse": dict(bias=None, reverse=True),
}


@pytest.mark.parametrize("case", list(LOOP_CASES))
@pytest.mark.parametrize("cell_name", CELL_NAMES)
def test_parity_with_torch_loop(torch, cell_name, case):
    prob = make_problem(cell_name, seed=5, **LOOP_CASES[case])
    out = prob.forward(training=True)
    grads = prob.backward(out.ctx)
    leaves, y, h_n, c_n = torch_loop(torch, prob)
    loss = (torch.from_numpy(prob.dy) * y).sum() + (torch.from_numpy(prob.dh_n) * h_n).sum()
    if prob.cell.is_lstm:
        loss = loss + (torch.from_numpy(prob.dc_n) * c_n).sum()
    loss.backward()
    tol = TORCH_TOL[np.float64]
    assert_close(out.y, y.detach().numpy(), what="y", **tol)
    assert_close(out.h_n, h_n.detach().numpy(), what="h_n", **tol)
    if prob.cell.is_lstm:
        assert_close(out.c_n, c_n.detach().numpy(), what="c_n", **tol)
    for name, leaf in leaves.items():
        assert_close(getattr(grads, GRAD_NAME[name]), leaf.grad.numpy(), what=name, **tol)


# ---------------------------------------------------------------------------------------------
# 5. Empty sizes, dtypes, small behaviours, errors
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("cell_name", CELL_NAMES)
def test_zero_time_steps(cell_name, batch_first):
    prob = make_problem(cell_name, T=0, B=3, I=2, H=3, batch_first=batch_first)
    out = prob.forward(training=True)
    assert out.y.shape == ((3, 0, 3) if batch_first else (0, 3, 3))
    np.testing.assert_array_equal(out.h_n, prob.arrays["h0"])
    assert out.h_n is not prob.arrays["h0"] and not np.shares_memory(out.h_n, prob.arrays["h0"])
    if prob.cell.is_lstm:
        np.testing.assert_array_equal(out.c_n, prob.arrays["c0"])
    grads = prob.backward(out.ctx, return_dh_seq=True)
    assert grads.dx.shape == prob.arrays["x"].shape
    assert grads.dh_seq.shape == out.y.shape
    np.testing.assert_array_equal(grads.dh0, prob.dh_n)
    if prob.cell.is_lstm:
        np.testing.assert_array_equal(grads.dc0, prob.dc_n)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        g = getattr(grads, GRAD_NAME[name])
        assert g.shape == prob.arrays[name].shape and not np.any(g)


@pytest.mark.parametrize("cell_name", CELL_NAMES)
def test_zero_batch(cell_name):
    prob = make_problem(cell_name, T=3, B=0, I=2, H=3, lengths=np.zeros(0, dtype=np.int64))
    out = prob.forward(training=True)
    assert out.y.shape == (3, 0, 3) and out.h_n.shape == (0, 3)
    grads = prob.backward(out.ctx, return_dh_seq=True)
    assert grads.dx.shape == (3, 0, 2) and grads.dh0.shape == (0, 3)
    assert grads.dh_seq.shape == (3, 0, 3)
    assert grads.dweight_ih.shape == prob.arrays["weight_ih"].shape and not np.any(grads.dweight_ih)
    assert grads.dweight_hh.shape == prob.arrays["weight_hh"].shape and not np.any(grads.dweight_hh)


@pytest.mark.parametrize("cell_name", CELL_NAMES)
def test_zero_input_size_is_a_bias_only_projection(cell_name):
    prob = make_problem(cell_name, T=3, B=2, I=0, H=3, lengths=[3, 1])
    out = prob.forward(training=True)
    grads = prob.backward(out.ctx)
    assert grads.dx.shape == (3, 2, 0)
    assert grads.dweight_ih.shape == (prob.cell.gates * 3, 0)
    # The same as one input feature that is always zero.
    x1 = np.zeros((3, 2, 1))
    w1 = np.ones((prob.cell.gates * 3, 1))
    out1 = prob.forward(x=x1, weight_ih=w1)
    np.testing.assert_array_equal(out.y, out1.y)
    np.testing.assert_array_equal(out.h_n, out1.h_n)


@pytest.mark.parametrize("cell_name", CELL_NAMES)
def test_float32_stays_float32(cell_name):
    prob = make_problem(cell_name, dtype=np.float32, lengths=[3, 0, 4], mask=True)
    out = prob.forward(training=True)
    grads = prob.backward(out.ctx, return_dh_seq=True)
    for v in list(out[:-1]) + list(grads):
        assert v.dtype == np.float32
    ref64 = make_problem(cell_name, dtype=np.float64, lengths=[3, 0, 4], mask=True)
    ref64.arrays = {k: v.astype(np.float64) for k, v in prob.arrays.items()}
    np.testing.assert_allclose(out.y, ref64.forward().y, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell_name", CELL_NAMES)
def test_defaults_are_zeros_and_no_gradient_gives_zeros(cell_name):
    prob = make_problem(cell_name, bias=None, init=False, lengths=[2, 0, 4])
    out = prob.forward(training=True)
    B, H = out.h_n.shape
    G = prob.cell.gates
    explicit = dict(bias_ih=np.zeros(G * H), bias_hh=np.zeros(G * H), h0=np.zeros((B, H)))
    if prob.cell.is_lstm:
        explicit["c0"] = np.zeros((B, H))
    out_explicit = prob.forward(**explicit)
    np.testing.assert_array_equal(out.y, out_explicit.y)
    grads = prob.cell.backward(out.ctx)
    assert grads.dbias_ih is None and grads.dbias_hh is None
    for g in grads:
        assert g is None or not np.any(g)
    assert grads.dh0.shape == (B, H)


@pytest.mark.parametrize("cell_name", CELL_NAMES)
def test_ctx_is_reusable_and_inputs_untouched(cell_name):
    prob = make_problem(cell_name, lengths=[3, 0, 4], reverse=True)
    snapshot = {k: v.copy() for k, v in prob.arrays.items()}
    dy, dh_n = prob.dy.copy(), prob.dh_n.copy()
    out = prob.forward(training=True)
    first = prob.backward(out.ctx, return_dh_seq=True)
    second = prob.backward(out.ctx, return_dh_seq=True)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    for k, v in snapshot.items():
        np.testing.assert_array_equal(prob.arrays[k], v)
    np.testing.assert_array_equal(prob.dy, dy)
    np.testing.assert_array_equal(prob.dh_n, dh_n)


def test_result_types():
    prob = make_problem("gru")
    assert type(prob.forward()) is R.RNNOutput
    out = prob.forward(training=True)
    assert type(out) is R.RNNTrainOutput and out._fields == ("y", "h_n", "ctx")
    assert type(prob.backward(out.ctx)) is R.RNNGradients
    assert R.RNNGradients._fields == ("dx", "dh0", "dweight_ih", "dweight_hh", "dbias_ih",
                                      "dbias_hh")
    assert R.RNNGradientsWithSeq._fields == R.RNNGradients._fields + ("dh_seq",)
    prob = make_problem("lstm")
    assert type(prob.forward()) is R.LSTMOutput
    out = prob.forward(training=True)
    assert type(out) is R.LSTMTrainOutput and out._fields == ("y", "h_n", "c_n", "ctx")
    assert R.LSTMGradients._fields == ("dx", "dh0", "dc0", "dweight_ih", "dweight_hh",
                                       "dbias_ih", "dbias_hh")
    assert R.LSTMGradientsWithSeq._fields == R.LSTMGradients._fields + ("dh_seq",)


def test_errors():
    prob = make_problem("rnn_tanh")
    with pytest.raises(ValueError, match="nonlinearity"):
        prob.forward(nonlinearity="sigmoid")
    with pytest.raises(ValueError):
        R.gru(np.zeros((2, 1, 3)), np.zeros((0, 3)), np.zeros((0, 0)))  # H = 0
    with pytest.raises(ValueError, match="lengths"):
        prob.forward(lengths=[1, 5, 0])  # 5 > T
    with pytest.raises(TypeError, match="lengths"):
        prob.forward(lengths=np.array([1.0, 2.0, 0.0]))
    out = prob.forward(training=True)
    with pytest.raises(TypeError):
        R.gru_backward(out.ctx)  # ctx of another cell
