"""Stateless NumPy functions: forward and backward (BPTT) of RNN, GRU and LSTM layers.

Legend: T time steps, B batch, I input size, H hidden size, G gates (RNN 1, GRU 3, LSTM 4).

Weights use the canonical (PyTorch) layout: ``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``,
``bias_ih (G*H,)``, ``bias_hh (G*H,)``, rows blocked by gate, LSTM order ``i, f, g, o``, GRU order
``r, z, n``. ``x`` is ``(T, B, I)``, or ``(B, T, I)`` with ``batch_first=True`` (then ``y``,
``dy``, ``dx`` and ``dh_seq`` are batch-first too; the core reads both layouts without a copy).
States ``h0``, ``c0``, ``h_n``, ``c_n`` are always ``(B, H)``.

Options shared by every cell:

- ``lengths`` (B,) integers in [0, T], any order: steps at or past a sequence's length do not
  touch its state, its outputs there are zero, and ``h_n``/``c_n`` hold the state after its last
  valid step (``h0``/``c0`` when the length is 0).
- ``reverse=True`` runs each sequence from its own last valid step back to step 0 and writes the
  outputs at their original positions.
- ``recurrent_mask`` (B, H), constant over time: ``h_{t-1} * mask`` is what feeds ``W_hh`` (the
  carried state, LSTM's ``c`` and GRU's ``z * h_{t-1}`` term stay unmasked). This is variational
  recurrent dropout; the mask gets no gradient.
- ``training=True`` returns one more value, ``ctx``, that ``<cell>_backward`` takes.
- ``bidirectional=True`` runs both directions in one call. Every weight argument then has a
  leading axis of 2 (forward, reverse): ``weight_ih (2, G*H, I)``, ``weight_hh (2, G*H, H)``,
  biases ``(2, G*H)``; ``h0``, ``c0``, ``recurrent_mask``, ``h_n``, ``c_n`` are ``(2, B, H)``; ``y`` is
  ``(T, B, 2H)`` with ``[forward | reverse]`` on the last axis, each direction running within
  each sequence's own length.

Weights can be packed once with :func:`pack_weights` and the handle passed as ``weight_ih`` (the
other three left out): a call given raw arrays packs them for that call only. Streaming (one
T=1 call per time step, carrying the state) should use a handle.

Dtypes: float32 and float64 are computed natively; every floating argument must have the dtype
of ``x`` (anything else is a TypeError). Arrays that are not C-contiguous or not native-endian are
copied once; all others are used in place and never modified. NaN and Inf propagate.
Changing ``x`` or the weights in place between a forward call and its backward is undefined.
"""

from . import _core
from .results import (
    LSTMGradients, LSTMGradientsWithSeq, LSTMOutput, LSTMTrainOutput, RNNGradients,
    RNNGradientsWithSeq, RNNOutput, RNNTrainOutput,
)

__all__ = [
    "rnn", "gru", "lstm", "rnn_backward", "gru_backward", "lstm_backward", "pack_weights",
    "workspace_size", "Context", "PackedWeights",
]

#: The opaque type of ``ctx``.
Context = _core.Context
#: The immutable handle :func:`pack_weights` returns.
PackedWeights = _core.PackedWeights


# The forward results are built as the namedtuples' own __new__ builds them, without its Python
# frame (a streaming step makes one per call). The core checks every flag argument: True, False
# or a NumPy bool, else a TypeError that names it.
_new = tuple.__new__


def rnn(x, weight_ih, weight_hh=None, bias_ih=None, bias_hh=None, h0=None, lengths=None,
        reverse=False, batch_first=False, nonlinearity=None, training=False,
        recurrent_mask=None, bidirectional=None):
    """Elman RNN: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, act = tanh | relu.

    ``nonlinearity`` is ``"tanh"`` (the default) or ``"relu"``; with a :class:`PackedWeights`
    handle it defaults to the handle's. Returns ``RNNOutput(y, h_n)``, or
    ``RNNTrainOutput(y, h_n, ctx)`` with ``training=True``.
    """
    if nonlinearity is not None and not isinstance(nonlinearity, str):
        raise TypeError(f"nonlinearity: expected 'tanh' or 'relu', got {type(nonlinearity).__name__}")
    y, h_n, _, ctx = _core.forward(
        "rnn", x, weight_ih, weight_hh, bias_ih, bias_hh, h0, None, lengths, recurrent_mask,
        reverse, batch_first, training, nonlinearity, None, bidirectional)
    return _new(RNNOutput, (y, h_n)) if ctx is None else _new(RNNTrainOutput, (y, h_n, ctx))


def gru(x, weight_ih, weight_hh=None, bias_ih=None, bias_hh=None, h0=None, lengths=None,
        reverse=False, batch_first=False, reset_after=None, training=False,
        recurrent_mask=None, bidirectional=None):
    """GRU, gates ``r, z, n``; ``h_t = (1 - z) * n + z * h_{t-1}``.

    ``reset_after=True`` (PyTorch, cuDNN, Keras default, ONNX linear_before_reset=1):
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``.
    ``reset_after=False`` (Cho et al. 2014, Keras reset_after=False, ONNX default):
    ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)``.
    ``reset_after`` defaults to True, or to the handle's with a :class:`PackedWeights` handle.

    Returns ``RNNOutput(y, h_n)``, or ``RNNTrainOutput(y, h_n, ctx)`` with ``training=True``.
    """
    y, h_n, _, ctx = _core.forward(
        "gru", x, weight_ih, weight_hh, bias_ih, bias_hh, h0, None, lengths, recurrent_mask,
        reverse, batch_first, training, None, reset_after, bidirectional)
    return _new(RNNOutput, (y, h_n)) if ctx is None else _new(RNNTrainOutput, (y, h_n, ctx))


def lstm(x, weight_ih, weight_hh=None, bias_ih=None, bias_hh=None, h0=None, c0=None,
         lengths=None, reverse=False, batch_first=False, training=False, recurrent_mask=None,
         bidirectional=None):
    """LSTM, gates ``i, f, g, o``; ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``.

    Returns ``LSTMOutput(y, h_n, c_n)``, or ``LSTMTrainOutput(y, h_n, c_n, ctx)`` with
    ``training=True``.
    """
    y, h_n, c_n, ctx = _core.forward(
        "lstm", x, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0, lengths, recurrent_mask,
        reverse, batch_first, training, None, None, bidirectional)
    if ctx is None:
        return _new(LSTMOutput, (y, h_n, c_n))
    return _new(LSTMTrainOutput, (y, h_n, c_n, ctx))


def _rnn_family_backward(cell, ctx, dy, dh_n, return_dh_seq, input_grad):
    dx, dh0, _, dw_ih, dw_hh, db_ih, db_hh, dh_seq = _core.backward(
        ctx, cell, dy, dh_n, None, return_dh_seq, input_grad)
    if dh_seq is not None:
        return RNNGradientsWithSeq(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dh_seq)
    return RNNGradients(dx, dh0, dw_ih, dw_hh, db_ih, db_hh)


def rnn_backward(ctx, dy=None, dh_n=None, return_dh_seq=False, input_grad=True):
    """Backpropagation through time for :func:`rnn`.

    ``dy`` (shape of y) and ``dh_n`` (B, H) are the gradients of the loss with respect to the
    outputs; either or both may be None (zero). ``dy`` at steps past a length is ignored.
    Returns ``RNNGradients(dx, dh0, dweight_ih, dweight_hh, dbias_ih, dbias_hh)``, each with the
    shape and dtype of what it is the gradient of (dbias_* are None where the biases were None;
    dh0 is an array even when h0 was None). With ``return_dh_seq=True`` the result also holds
    ``dh_seq``, dL/dh_t for every step in the layout of y (zero past a length), the quantity
    that shows a gradient vanishing or exploding over time.

    ``input_grad=False`` skips dx (it comes back as None): the product dx = dG W_ih, a quarter
    of the backward pass's multiply-adds when I = H, is work thrown away when x is data (the
    layer is a model's first), as in a framework where the input does not require a gradient.
    The other gradients are the same, bit for bit.
    """
    return _rnn_family_backward("rnn", ctx, dy, dh_n, return_dh_seq, input_grad)


def gru_backward(ctx, dy=None, dh_n=None, return_dh_seq=False, input_grad=True):
    """Backpropagation through time for :func:`gru` (see :func:`rnn_backward`)."""
    return _rnn_family_backward("gru", ctx, dy, dh_n, return_dh_seq, input_grad)


def lstm_backward(ctx, dy=None, dh_n=None, dc_n=None, return_dh_seq=False, input_grad=True):
    """Backpropagation through time for :func:`lstm` (see :func:`rnn_backward`).

    Returns ``LSTMGradients(dx, dh0, dc0, dweight_ih, dweight_hh, dbias_ih, dbias_hh)``
    (``LSTMGradientsWithSeq`` with ``dh_seq`` last when ``return_dh_seq=True``).
    """
    dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dh_seq = _core.backward(
        ctx, "lstm", dy, dh_n, dc_n, return_dh_seq, input_grad)
    if dh_seq is not None:
        return LSTMGradientsWithSeq(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dh_seq)
    return LSTMGradients(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh)


def pack_weights(cell, weight_ih, weight_hh, bias_ih=None, bias_hh=None, *, nonlinearity="tanh",
                 reset_after=True, bidirectional=False):
    """Pack one layer's weights once; returns an immutable :class:`PackedWeights` handle.

    ``cell`` is ``"rnn"``, ``"gru"`` or ``"lstm"``; the arrays are as for that function (with a
    leading axis of 2 when ``bidirectional``). The handle holds its own read-only copies, so
    later in-place changes to the arrays (an optimizer step) do not reach it: pack again after
    updating weights. Pass it as ``weight_ih`` and leave the other three out::

        packed = pack_weights("lstm", w_ih, w_hh, b_ih, b_hh)
        for x_t in stream:                          # x_t: (1, B, I)
            y, h, c = lstm(x_t, packed, h0=h, c0=c)
    """
    if not isinstance(cell, str):
        raise TypeError(f"cell: expected 'rnn', 'gru' or 'lstm', got {type(cell).__name__}")
    if not isinstance(nonlinearity, str):
        raise TypeError(f"nonlinearity: expected 'tanh' or 'relu', got {type(nonlinearity).__name__}")
    return _core.pack_weights(cell, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity,
                              reset_after, bidirectional)


def workspace_size(cell, T, B, I, H, nonlinearity="tanh", reset_after=True):
    """Elements of the training workspace a forward call with ``training=True`` allocates
    (one array of x's dtype, owned by ``ctx``): ``T*B*H*(G + 1 + extra)`` with extra planes
    LSTM 2, GRU 1, RNN 0."""
    return _core.workspace_size(cell, int(T), int(B), int(I), int(H), nonlinearity, reset_after)
