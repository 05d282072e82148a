"""Plain NumPy reference implementation of RNN, GRU and LSTM: the executable specification.

This module is the oracle the tests compare the C++ core against, and the "plain NumPy" column of
the benchmark. It is written to be read: one function per cell step and one per step of its
backward pass, a plain loop over time, and the equations of DESIGN.md section 2 next to the code
that computes them. It has the same signatures and results as `gatedrnn.functional`,
but checks its arguments only lightly.

Legend: T time steps, B batch, I input size, H hidden size, G gates (RNN 1, GRU 3, LSTM 4).
Weights use the canonical (PyTorch) layout: weight_ih (G*H, I), weight_hh (G*H, H),
bias_ih (G*H,), bias_hh (G*H,), rows blocked by gate: LSTM i, f, g, o; GRU r, z, n.

In the code the rows of a matrix are batch entries, so the equations' `W x` is written
`x @ W.T`, and `m` is the recurrent mask (ones when none was given): only `m * h_{t-1}` feeds W_hh.

How lengths and reverse work (the same for every cell):
    Sequence b has valid steps 0 .. len[b]-1. Going forward, step t is processed for the rows
    with t < len[b]; going in reverse, t runs from T-1 down to 0 and again only rows with
    t < len[b] take part, so each sequence starts at its own last valid step len[b]-1. The other
    rows keep their state unchanged and get y = 0. Hence h_n is the state after each sequence's
    last valid step (h0 if len[b] = 0), and y[t] is always the state after processing step t.

Backward (BPTT) walks the same steps in the opposite order, carrying dL/dh (and dL/dc) of the
state; at each step the carried gradient plus dy_t is the total gradient dL/dh_t.
"""

import collections
import functools

import numpy as np

__all__ = [
    "rnn", "gru", "lstm", "rnn_backward", "gru_backward", "lstm_backward",
    "RNNOutput", "RNNTrainOutput", "LSTMOutput", "LSTMTrainOutput",
    "RNNGradients", "RNNGradientsWithSeq", "LSTMGradients", "LSTMGradientsWithSeq",
]

from ._checks import check_bool  # noqa: E402
# Result types: the same named tuples gatedrnn.functional returns.
from .results import (  # noqa: E402
    LSTMGradients, LSTMGradientsWithSeq, LSTMOutput, LSTMTrainOutput, RNNGradients,
    RNNGradientsWithSeq, RNNOutput, RNNTrainOutput,
)

# Weights of one layer, with missing biases already replaced by zeros.
Params = collections.namedtuple("Params", ["weight_ih", "weight_hh", "bias_ih", "bias_hh"])


class Context:
    """What a forward call with training=True saves for the backward pass.

    cell        "rnn", "gru" or "lstm"; options: nonlinearity (rnn), reset_after (gru)
    x           (T, B, I) time-major copy of the input
    params      Params, biases filled with zeros where none was given
    has_bias_ih, has_bias_hh   whether the caller gave the bias (else its gradient is None)
    state0      [h0] or [h0, c0], each (B, H)
    lengths     (B,) int;  reverse, batch_first: bool;  mask: (B, H)
    steps       list over t of (rows, saved): the batch rows that processed step t and the
                values of that step that the gradient formulas need (each (len(rows), ...))
    """

    def __init__(self, **fields):
        self.__dict__.update(fields)


# ---------------------------------------------------------------------------------------------
# Activations.
# ---------------------------------------------------------------------------------------------

def sigmoid(a):
    """sigma(a) = 1 / (1 + exp(-a)), written so that exp never overflows."""
    e = np.exp(-np.abs(a))  # in (0, 1]
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


def _rows_by_gate(w, gates):
    """weight (G*H, K) or bias (G*H,) -> list of G blocks, (H, K) or (H,), in gate order."""
    return np.split(w, gates, axis=0)


def _cols_by_gate(a, gates):
    """pre-activations (rows, G*H) -> list of G blocks (rows, H), in gate order."""
    return np.split(a, gates, axis=1)


# ---------------------------------------------------------------------------------------------
# Cell steps. Each forward step maps (x_t, state_{t-1}) of some batch rows to state_t and returns
# the values its backward step needs. Each backward step gets dL/d(state_t) for those rows and
# returns dL/dx_t, dL/d(state_{t-1}) and this step's contribution to the weight gradients
# (dweight_ih, dweight_hh, dbias_ih, dbias_hh).
# ---------------------------------------------------------------------------------------------

def _rnn_step(p, x_t, state, m, nonlinearity):
    """h_t = act(W_ih x_t + b_ih + W_hh (m * h_{t-1}) + b_hh),  act = tanh | relu"""
    (h_prev,) = state
    a = x_t @ p.weight_ih.T + p.bias_ih + (m * h_prev) @ p.weight_hh.T + p.bias_hh
    h = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
    return [h], {"h_prev": h_prev, "h": h}


def _rnn_step_backward(p, x_t, saved, m, dstate, nonlinearity):
    (dh,) = dstate
    h_prev, h = saved["h_prev"], saved["h"]
    # da = dL/da, a the pre-activation:  tanh'(a) = 1 - h^2;  relu'(a) = 1 if a > 0 (i.e. h > 0)
    if nonlinearity == "tanh":
        da = dh * (1 - h * h)
    else:
        da = dh * (h > 0)
    dx_t = da @ p.weight_ih
    dh_prev = (da @ p.weight_hh) * m
    grads = (da.T @ x_t, da.T @ (m * h_prev), da.sum(axis=0), da.sum(axis=0))
    return dx_t, [dh_prev], grads


def _lstm_step(p, x_t, state, m):
    """[i f g o] = W_ih x_t + b_ih + W_hh (m * h_{t-1}) + b_hh
    i, f, o = sigma(.),  g = tanh(.)
    c_t = f * c_{t-1} + i * g ;  h_t = o * tanh(c_t)
    """
    h_prev, c_prev = state
    a = x_t @ p.weight_ih.T + p.bias_ih + (m * h_prev) @ p.weight_hh.T + p.bias_hh
    a_i, a_f, a_g, a_o = _cols_by_gate(a, 4)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    h = o * tanh_c
    saved = {"h_prev": h_prev, "c_prev": c_prev, "i": i, "f": f, "g": g, "o": o, "tanh_c": tanh_c}
    return [h, c], saved


def _lstm_step_backward(p, x_t, saved, m, dstate):
    dh, dc_later = dstate  # dL/dh_t, and dL/dc_t through the later steps (or dc_n)
    h_prev, c_prev = saved["h_prev"], saved["c_prev"]
    i, f, g, o, tanh_c = saved["i"], saved["f"], saved["g"], saved["o"], saved["tanh_c"]
    # h_t = o * tanh(c_t)
    do = dh * tanh_c
    dc = dc_later + dh * o * (1 - tanh_c * tanh_c)
    # c_t = f * c_{t-1} + i * g  (c is carried unmasked)
    di, df, dg = dc * g, dc * c_prev, dc * i
    dc_prev = dc * f
    # through the activations: sigma' = s (1 - s), tanh' = 1 - t^2
    da = np.concatenate(
        [di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)], axis=1)
    dx_t = da @ p.weight_ih
    dh_prev = (da @ p.weight_hh) * m
    grads = (da.T @ x_t, da.T @ (m * h_prev), da.sum(axis=0), da.sum(axis=0))
    return dx_t, [dh_prev, dc_prev], grads


def _gru_step(p, x_t, state, m, reset_after):
    """r = sigma(W_ir x + b_ir + W_hr (m*h) + b_hr),  z = sigma(W_iz x + b_iz + W_hz (m*h) + b_hz)
    reset_after=True:   n = tanh(W_in x + b_in + r * (W_hn (m*h) + b_hn))
    reset_after=False:  n = tanh(W_in x + b_in + W_hn (r * (m*h)) + b_hn)
    h_t = (1 - z) * n + z * h_{t-1}        (h = h_{t-1}; the z * h_{t-1} term is unmasked)
    """
    (h_prev,) = state
    hm = m * h_prev
    W_ir, W_iz, W_in = _rows_by_gate(p.weight_ih, 3)
    W_hr, W_hz, W_hn = _rows_by_gate(p.weight_hh, 3)
    b_ir, b_iz, b_in = _rows_by_gate(p.bias_ih, 3)
    b_hr, b_hz, b_hn = _rows_by_gate(p.bias_hh, 3)
    r = sigmoid(x_t @ W_ir.T + b_ir + hm @ W_hr.T + b_hr)
    z = sigmoid(x_t @ W_iz.T + b_iz + hm @ W_hz.T + b_hz)
    saved = {"h_prev": h_prev, "r": r, "z": z}
    if reset_after:
        hn = hm @ W_hn.T + b_hn
        n = np.tanh(x_t @ W_in.T + b_in + r * hn)
        saved["hn"] = hn
    else:
        n = np.tanh(x_t @ W_in.T + b_in + (r * hm) @ W_hn.T + b_hn)
    h = (1 - z) * n + z * h_prev
    saved["n"] = n
    return [h], saved


def _gru_step_backward(p, x_t, saved, m, dstate, reset_after):
    (dh,) = dstate
    h_prev, r, z, n = saved["h_prev"], saved["r"], saved["z"], saved["n"]
    hm = m * h_prev
    W_hr, W_hz, W_hn = _rows_by_gate(p.weight_hh, 3)
    # h_t = (1 - z) * n + z * h_{t-1}
    dn = dh * (1 - z)
    dz = dh * (h_prev - n)
    dh_prev = dh * z  # the direct, unmasked path
    da_n = dn * (1 - n * n)  # dL/d(pre-activation of n)
    if reset_after:
        # n = tanh(W_in x + b_in + r * hn),  hn = W_hn (m*h) + b_hn
        hn = saved["hn"]
        dr = da_n * hn
        da_r, da_z = dr * r * (1 - r), dz * z * (1 - z)
        # The input side sees da_n, the recurrent side (hn) sees r * da_n.
        da_ih = np.concatenate([da_r, da_z, da_n], axis=1)
        da_hh = np.concatenate([da_r, da_z, r * da_n], axis=1)
        dweight_hh = da_hh.T @ hm
        dhm = da_hh @ p.weight_hh
    else:
        # n = tanh(W_in x + b_in + W_hn (r * hm) + b_hn)
        d_rhm = da_n @ W_hn  # dL/d(r * hm)
        dr = d_rhm * hm
        da_r, da_z = dr * r * (1 - r), dz * z * (1 - z)
        da_ih = np.concatenate([da_r, da_z, da_n], axis=1)
        da_hh = da_ih  # b_hn is added outside the reset, like b_in
        dweight_hh = np.concatenate([da_r.T @ hm, da_z.T @ hm, da_n.T @ (r * hm)], axis=0)
        dhm = da_r @ W_hr + da_z @ W_hz + r * d_rhm
    dh_prev = dh_prev + dhm * m
    dx_t = da_ih @ p.weight_ih
    grads = (da_ih.T @ x_t, dweight_hh, da_ih.sum(axis=0), da_hh.sum(axis=0))
    return dx_t, [dh_prev], grads


# ---------------------------------------------------------------------------------------------
# Sequence drivers: layout, lengths, direction, the time loop. They know nothing about cells.
# ---------------------------------------------------------------------------------------------

def _time_order(T, reverse):
    """The order in which the time steps are processed."""
    return range(T - 1, -1, -1) if reverse else range(T)


def _forward(step, x, params, state0, lengths, reverse, mask, keep_steps):
    """Run `step` over time. x: (T, B, I) time-major; state0: list of (B, H).

    Returns y (T, B, H), the final state (list of (B, H)) and, if keep_steps, the per-step
    (rows, saved) list.
    """
    T, B = x.shape[0], x.shape[1]
    H = state0[0].shape[1]
    y = np.zeros((T, B, H), dtype=x.dtype)
    state = [s.copy() for s in state0]
    steps = [None] * T
    for t in _time_order(T, reverse):
        rows = np.flatnonzero(t < lengths)  # the sequences for which step t is a valid step
        new_state, saved = step(params, x[t, rows], [s[rows] for s in state], mask[rows])
        for s, s_new in zip(state, new_state):
            s[rows] = s_new  # the other rows keep their state
        y[t, rows] = new_state[0]  # and their y stays 0
        if keep_steps:
            steps[t] = (rows, saved)
    return y, state, steps


def _backward(step_backward, ctx, dy, dstate_n, return_dh_seq):
    """Backpropagation through time over ctx.steps, in the opposite order of the forward pass.

    dy: (T, B, H) time-major or None; dstate_n: list of (B, H) arrays or Nones (dh_n[, dc_n]).
    Returns dx (T, B, I), dstate0 (list of (B, H)), the four weight gradients, dh_seq (T, B, H).
    """
    x, p = ctx.x, ctx.params
    T, B = x.shape[0], x.shape[1]
    H = ctx.state0[0].shape[1]
    dtype = x.dtype
    if dy is None:
        dy = np.zeros((T, B, H), dtype=dtype)
    # dstate: dL/d(state) after the step being undone; at the start that is the final state's.
    dstate = [np.zeros((B, H), dtype=dtype) if d is None else np.array(d, dtype=dtype)
              for d in dstate_n]
    dx = np.zeros_like(x)
    dh_seq = np.zeros((T, B, H), dtype=dtype)
    grads = [np.zeros_like(p.weight_ih), np.zeros_like(p.weight_hh),
             np.zeros_like(p.bias_ih), np.zeros_like(p.bias_hh)]
    for t in reversed(_time_order(T, ctx.reverse)):
        rows, saved = ctx.steps[t]
        # Total gradient w.r.t. h_t: from the output y_t plus from everything after step t.
        dh_t = dstate[0][rows] + dy[t, rows]
        dh_seq[t, rows] = dh_t
        dx_t, dstate_prev, step_grads = step_backward(
            p, x[t, rows], saved, ctx.mask[rows], [dh_t] + [d[rows] for d in dstate[1:]])
        dx[t, rows] = dx_t  # rows past their length keep dx = 0 and ignore dy
        for d, d_prev in zip(dstate, dstate_prev):
            d[rows] = d_prev
        for g, g_step in zip(grads, step_grads):
            g += g_step
    return dx, dstate, grads, (dh_seq if return_dh_seq else None)


# ---------------------------------------------------------------------------------------------
# Argument handling shared by the public functions.
# ---------------------------------------------------------------------------------------------

def _time_major(a, batch_first):
    """(B, T, ...) -> (T, B, ...) view when batch_first, else a unchanged."""
    return np.swapaxes(a, 0, 1) if batch_first else a


def _user_layout(a, batch_first):
    """(T, B, ...) -> the caller's layout, as a contiguous array."""
    return np.ascontiguousarray(np.swapaxes(a, 0, 1) if batch_first else a)


def _prepare(cell, gates, x, weight_ih, weight_hh, bias_ih, bias_hh, states0, lengths,
             reverse, batch_first, recurrent_mask):
    """Convert the arguments to arrays of x's dtype, fill in the defaults; light checks only."""
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
    x = np.asarray(x, dtype=dtype)
    if x.ndim != 3:
        raise ValueError(f"x: expected 3 dimensions, got shape {x.shape}")
    x = _time_major(x, batch_first)  # (T, B, I)
    T, B, I = x.shape
    weight_ih = np.asarray(weight_ih, dtype=dtype)
    weight_hh = np.asarray(weight_hh, dtype=dtype)
    if weight_hh.ndim != 2 or weight_hh.shape[1] == 0:
        raise ValueError(f"weight_hh: expected shape ({gates}*H, H) with H >= 1, "
                         f"got {weight_hh.shape}")
    H = weight_hh.shape[1]
    if weight_hh.shape != (gates * H, H) or weight_ih.shape != (gates * H, I):
        raise ValueError(f"{cell}: expected weight_ih {(gates * H, I)} and weight_hh "
                         f"{(gates * H, H)}, got {weight_ih.shape} and {weight_hh.shape}")

    def bias(b):
        return np.zeros(gates * H, dtype=dtype) if b is None else np.asarray(b, dtype=dtype)

    params = Params(weight_ih, weight_hh, bias(bias_ih), bias(bias_hh))
    state0 = [np.zeros((B, H), dtype=dtype) if s is None else np.asarray(s, dtype=dtype)
              for s in states0]
    if lengths is None:
        lengths = np.full(B, T, dtype=np.int64)
    else:
        lengths = np.asarray(lengths)
        if not np.issubdtype(lengths.dtype, np.integer):
            raise TypeError(f"lengths: expected an integer array, got dtype {lengths.dtype}")
        lengths = lengths.astype(np.int64)
        if lengths.shape != (B,) or np.any(lengths < 0) or np.any(lengths > T):
            raise ValueError(f"lengths: expected shape ({B},) with values in [0, {T}]")
    if recurrent_mask is None:
        mask = np.ones((B, H), dtype=dtype)
    else:
        mask = np.asarray(recurrent_mask, dtype=dtype)
    return Context(cell=cell, x=np.array(x), params=params,
                   has_bias_ih=bias_ih is not None, has_bias_hh=bias_hh is not None,
                   state0=state0, lengths=lengths, reverse=bool(reverse),
                   batch_first=bool(batch_first), mask=mask, steps=None)


def _run(ctx, step, training):
    y, state_n, steps = _forward(step, ctx.x, ctx.params, ctx.state0, ctx.lengths, ctx.reverse,
                                 ctx.mask, keep_steps=training)
    ctx.steps = steps
    return _user_layout(y, ctx.batch_first), state_n


def _check_ctx(ctx, cell):
    if not isinstance(ctx, Context):
        raise TypeError(f"ctx: expected the ctx of a {cell}(..., training=True) call, "
                        f"got {type(ctx).__name__}")
    if ctx.cell != cell:
        raise TypeError(f"ctx: comes from {ctx.cell}(), not {cell}()")


def _run_backward(ctx, step_backward, dy, dstate_n, return_dh_seq, input_grad):
    input_grad = check_bool(input_grad, "input_grad")
    if dy is not None:
        dy = _time_major(np.asarray(dy, dtype=ctx.x.dtype), ctx.batch_first)
    dx, dstate0, grads, dh_seq = _backward(step_backward, ctx, dy, dstate_n, return_dh_seq)
    dweight_ih, dweight_hh, dbias_ih, dbias_hh = grads
    weight_grads = [dweight_ih, dweight_hh,
                    dbias_ih if ctx.has_bias_ih else None,
                    dbias_hh if ctx.has_bias_hh else None]
    if dh_seq is not None:
        dh_seq = _user_layout(dh_seq, ctx.batch_first)
    dx = _user_layout(dx, ctx.batch_first) if input_grad else None
    return dx, dstate0, weight_grads, dh_seq


# ---------------------------------------------------------------------------------------------
# Public API (the same as gatedrnn.functional).
# ---------------------------------------------------------------------------------------------

def rnn(x, weight_ih, weight_hh, bias_ih=None, bias_hh=None, h0=None, lengths=None,
        reverse=False, batch_first=False, nonlinearity="tanh", training=False,
        recurrent_mask=None):
    """Vanilla RNN layer:  h_t = act(W_ih x_t + b_ih + W_hh (m * h_{t-1}) + b_hh).

    x (T, B, I) or (B, T, I) with batch_first; weight_ih (H, I); weight_hh (H, H); biases (H,);
    h0 (B, H); lengths (B,); recurrent_mask m (B, H); nonlinearity "tanh" | "relu".
    Returns RNNOutput(y, h_n), or RNNTrainOutput(y, h_n, ctx) with training=True.
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    ctx = _prepare("rnn", 1, x, weight_ih, weight_hh, bias_ih, bias_hh, [h0], lengths,
                   reverse, batch_first, recurrent_mask)
    ctx.nonlinearity = nonlinearity
    y, (h_n,) = _run(ctx, functools.partial(_rnn_step, nonlinearity=nonlinearity), training)
    return RNNTrainOutput(y, h_n, ctx) if training else RNNOutput(y, h_n)


def gru(x, weight_ih, weight_hh, bias_ih=None, bias_hh=None, h0=None, lengths=None,
        reverse=False, batch_first=False, reset_after=True, training=False,
        recurrent_mask=None):
    """GRU layer (gate order r, z, n); see _gru_step for the equations of both variants.

    x (T, B, I) or (B, T, I) with batch_first; weight_ih (3H, I); weight_hh (3H, H);
    biases (3H,); h0 (B, H); lengths (B,); recurrent_mask (B, H).
    Returns RNNOutput(y, h_n), or RNNTrainOutput(y, h_n, ctx) with training=True.
    """
    ctx = _prepare("gru", 3, x, weight_ih, weight_hh, bias_ih, bias_hh, [h0], lengths,
                   reverse, batch_first, recurrent_mask)
    ctx.reset_after = bool(reset_after)
    y, (h_n,) = _run(ctx, functools.partial(_gru_step, reset_after=ctx.reset_after), training)
    return RNNTrainOutput(y, h_n, ctx) if training else RNNOutput(y, h_n)


def lstm(x, weight_ih, weight_hh, bias_ih=None, bias_hh=None, h0=None, c0=None, lengths=None,
         reverse=False, batch_first=False, training=False, recurrent_mask=None):
    """LSTM layer (gate order i, f, g, o); see _lstm_step for the equations.

    x (T, B, I) or (B, T, I) with batch_first; weight_ih (4H, I); weight_hh (4H, H);
    biases (4H,); h0, c0 (B, H); lengths (B,); recurrent_mask (B, H).
    Returns LSTMOutput(y, h_n, c_n), or LSTMTrainOutput(y, h_n, c_n, ctx) with training=True.
    """
    ctx = _prepare("lstm", 4, x, weight_ih, weight_hh, bias_ih, bias_hh, [h0, c0], lengths,
                   reverse, batch_first, recurrent_mask)
    y, (h_n, c_n) = _run(ctx, _lstm_step, training)
    return LSTMTrainOutput(y, h_n, c_n, ctx) if training else LSTMOutput(y, h_n, c_n)


def _hidden_state_backward(ctx, step_backward, dy, dh_n, return_dh_seq, input_grad):
    """BPTT for the cells whose only state is h (RNN, GRU): the gradients as named tuples."""
    dx, (dh0,), weight_grads, dh_seq = _run_backward(ctx, step_backward, dy, [dh_n],
                                                     return_dh_seq, input_grad)
    if return_dh_seq:
        return RNNGradientsWithSeq(dx, dh0, *weight_grads, dh_seq)
    return RNNGradients(dx, dh0, *weight_grads)


def rnn_backward(ctx, dy=None, dh_n=None, return_dh_seq=False, input_grad=True):
    """Gradients of a loss L given dy = dL/dy (y's layout) and dh_n = dL/dh_n (B, H).

    Returns RNNGradients(dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh), or
    RNNGradientsWithSeq(..., dh_seq) with return_dh_seq=True (dh_seq[t] = dL/dh_t); dx is None
    with input_grad=False.
    """
    _check_ctx(ctx, "rnn")
    step_backward = functools.partial(_rnn_step_backward, nonlinearity=ctx.nonlinearity)
    return _hidden_state_backward(ctx, step_backward, dy, dh_n, return_dh_seq, input_grad)


def gru_backward(ctx, dy=None, dh_n=None, return_dh_seq=False, input_grad=True):
    """Gradients of a loss L given dy = dL/dy (y's layout) and dh_n = dL/dh_n (B, H).

    Returns RNNGradients(dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh), or
    RNNGradientsWithSeq(..., dh_seq) with return_dh_seq=True (dh_seq[t] = dL/dh_t); dx is None
    with input_grad=False.
    """
    _check_ctx(ctx, "gru")
    step_backward = functools.partial(_gru_step_backward, reset_after=ctx.reset_after)
    return _hidden_state_backward(ctx, step_backward, dy, dh_n, return_dh_seq, input_grad)


def lstm_backward(ctx, dy=None, dh_n=None, dc_n=None, return_dh_seq=False, input_grad=True):
    """Gradients of a loss L given dy = dL/dy (y's layout), dh_n = dL/dh_n and dc_n = dL/dc_n.

    Returns LSTMGradients(dx, dh0, dc0, dweight_ih, dweight_hh, dbias_ih, dbias_hh), or
    LSTMGradientsWithSeq(..., dh_seq) with return_dh_seq=True (dh_seq[t] = dL/dh_t); dx is None
    with input_grad=False.
    """
    _check_ctx(ctx, "lstm")
    dx, (dh0, dc0), weight_grads, dh_seq = _run_backward(ctx, _lstm_step_backward, dy,
                                                         [dh_n, dc_n], return_dh_seq, input_grad)
    if return_dh_seq:
        return LSTMGradientsWithSeq(dx, dh0, dc0, *weight_grads, dh_seq)
    return LSTMGradients(dx, dh0, dc0, *weight_grads)
