"""StackedRNN: one layer object with the semantics of PyTorch's nn.RNN / nn.GRU / nn.LSTM.

A torch recurrent module is a stack of ``num_layers`` layers, each uni- or bidirectional, with
dropout between layers while training. :class:`StackedRNN` is that module on gatedrnn's core:
the same constructor arguments, the same parameter names (``weight_ih_l0``, ...,
``bias_hh_l1_reverse``) in the same order, the same call convention and output shapes, and
the same numbers. Each layer is one core call (both directions of a bidirectional layer run in
that one call); inference uses packed weight handles, packed again only after a weight changes.

Legend: T time steps, B batch, I input size, H hidden size, L layers, D directions (1 or 2).
"""

import numpy as np

from .. import config
from .. import functional as F
from .. import initializers as _init
from ._sequence import mask_runs
from .base import Layer
from .core import _check_units

__all__ = ["StackedRNN"]

_FORWARD = {"rnn": F.rnn, "gru": F.gru, "lstm": F.lstm}
_BACKWARD = {"rnn": F.rnn_backward, "gru": F.gru_backward, "lstm": F.lstm_backward}
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _as_array(value):
    """A NumPy array from an array-like or a (CPU or not, grad-tracking or not) torch tensor."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


class StackedRNN(Layer):
    """A stack of recurrent layers equivalent to ``torch.nn.RNN`` / ``nn.GRU`` / ``nn.LSTM``.

    Arguments (as torch's, plus the cell):

    - ``cell``: ``"rnn"``, ``"gru"`` or ``"lstm"``.
    - ``input_size`` I, ``hidden_size`` H, ``num_layers`` L (default 1).
    - ``nonlinearity``: ``"tanh"`` (default) or ``"relu"``, for ``cell="rnn"`` only.
    - ``reset_after``: for ``cell="gru"``: True (default) is torch's GRU; False is the
      reset-before GRU of Cho et al. 2014, which torch does not have (such a layer cannot be
      converted to torch).
    - ``bias`` (default True): without it every layer has only ``weight_ih``/``weight_hh``.
    - ``batch_first`` (default False): ``x`` and ``y`` are ``(B, T, .)`` instead of
      ``(T, B, .)``. As in torch, it does not apply to the states.
    - ``dropout`` (default 0): while training, inverted dropout with this rate on the output of
      every layer except the last (torch's rule; nothing happens with one layer).
    - ``bidirectional`` (default False).
    - ``return_state`` (default True): return ``(y, h_n)`` / ``(y, (h_n, c_n))`` as torch does;
      False returns ``y`` alone, which is what a :class:`gatedrnn.models.Sequential` needs
      (there, also give ``batch_first=True``: a Sequential's data is batch-major).
    - ``proj_size``: only 0 is supported (the core has no LSTM projection).
    - ``kernel_initializer``, ``recurrent_initializer``, ``bias_initializer``: default
      ``"torch_uniform"``, torch's ``U(-1/sqrt(H), 1/sqrt(H))`` for every weight and bias.
      Kernels are drawn on the Keras-shaped ``(in, G*H)`` matrix and stored transposed, as in
      the other recurrent layers.
    - ``name``, ``trainable``, ``dtype`` (``"float32"`` or ``"float64"``) as every layer.

    Calling: ``layer(x, h0=None, c0=None, lengths=None, training=False)``, or torch-style
    ``layer(x, hx)`` with ``hx = h0`` (RNN, GRU) or ``(h0, c0)`` (LSTM).

    - ``x``: ``(T, B, I)``, or ``(B, T, I)`` with ``batch_first``.
    - ``h0``, ``c0``: ``(L*D, B, H)``, index ``layer * D + direction`` (torch's order); missing
      means zeros.
    - ``lengths`` (B,) integers in [0, T]: each sequence's valid steps, what a torch
      ``PackedSequence`` carries. Outputs past a length are zero (as ``pad_packed_sequence``
      gives them) and the final states are those after each sequence's last valid step (the
      initial state for a length of 0, which torch refuses to pack). ``mask`` (B, T), a
      Keras-style mask of right-padded sequences, is accepted instead of ``lengths``.
    - Returns ``(y, h_n)`` for rnn/gru and ``(y, (h_n, c_n))`` for lstm: ``y`` is
      ``(T, B, D*H)`` (``(B, T, D*H)`` with ``batch_first``), ``[forward | reverse]`` on the last
      axis for the last layer; ``h_n``, ``c_n`` are ``(L*D, B, H)``. With
      ``return_state=False``, ``y`` only.

    Training: ``forward(x, training=True, ...)`` keeps what :meth:`backward` needs;
    ``backward(dy, dh_n=None, dc_n=None) -> dx`` adds every weight's gradient into its
    ``Parameter.grad`` and leaves the gradients with respect to the initial states in
    ``initial_state_grads`` (``dh0``, or ``(dh0, dc0)`` for lstm; shapes of ``h0``/``c0``, and
    computed even when no initial state was given).

    Weights: the parameters are named as the keys of torch's ``state_dict()`` and
    :meth:`get_weights` / :meth:`set_weights` use the order of torch's ``parameters()``
    (per layer, per direction: ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``), so
    ``layer.set_weights([p.detach().numpy() for p in module.parameters()])`` loads a torch
    module. :meth:`state_dict` / :meth:`load_state_dict` work with the keys.
    :func:`gatedrnn.interop.torch.from_torch` and ``to_torch`` convert whole modules.
    """

    supports_masking = True

    def __init__(self, cell, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, nonlinearity="tanh",
                 reset_after=True, return_state=True, proj_size=0,
                 kernel_initializer="torch_uniform", recurrent_initializer="torch_uniform",
                 bias_initializer="torch_uniform", **kwargs):
        if cell not in _GATES:
            raise ValueError(f"cell: expected 'rnn', 'gru' or 'lstm', got {cell!r}")
        if proj_size is None or isinstance(proj_size, bool) or not isinstance(
                proj_size, (int, np.integer)) or proj_size < 0:
            raise ValueError(f"proj_size: expected 0, got {proj_size!r}")
        if proj_size:
            raise ValueError(f"proj_size: LSTM projections (proj_size > 0) are not supported by "
                             f"gatedrnn's core; expected proj_size=0, got {proj_size}")
        Layer.__init__(self, **kwargs)
        self.cell = cell
        if isinstance(input_size, bool) or not isinstance(input_size, (int, np.integer)) \
                or input_size < 0:
            raise ValueError(f"input_size: expected an int >= 0, got {input_size!r}")
        self.input_size = int(input_size)
        self.hidden_size = _check_units(hidden_size, "hidden_size")
        self.num_layers = _check_units(num_layers, "num_layers")
        if cell == "rnn" and nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity if cell == "rnn" else "tanh"
        self.reset_after = bool(reset_after) if cell == "gru" else True
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.return_state = bool(return_state)
        rate = float(dropout)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout: expected a float in [0, 1), got {dropout!r}")
        self.dropout = rate
        self.kernel_initializer = _init.get(kernel_initializer, "kernel_initializer")
        self.recurrent_initializer = _init.get(recurrent_initializer, "recurrent_initializer")
        self.bias_initializer = _init.get(bias_initializer, "bias_initializer")
        self._packed = [None] * self.num_layers
        self._packed_versions = [None] * self.num_layers
        self._cache = None
        self.initial_state_grads = None
        self.build((None, None, self.input_size))

    # --- structure --------------------------------------------------------------------------
    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def gates(self):
        return _GATES[self.cell]

    def weight_names(self, layer=None):
        """The parameter names of one layer (all layers with None), in torch's order."""
        layers = range(self.num_layers) if layer is None else [layer]
        kinds = _KINDS if self.bias else _KINDS[:2]
        return [f"{kind}_l{k}{sfx}" for k in layers
                for sfx in ("", "_reverse")[:self.num_directions] for kind in kinds]

    def expected_shapes(self):
        """``{name: shape}`` of every parameter, in torch's ``parameters()`` order."""
        H, GH = self.hidden_size, self.gates * self.hidden_size
        shapes = {}
        for k in range(self.num_layers):
            I_k = self.input_size if k == 0 else self.num_directions * H
            for sfx in ("", "_reverse")[:self.num_directions]:
                shapes[f"weight_ih_l{k}{sfx}"] = (GH, I_k)
                shapes[f"weight_hh_l{k}{sfx}"] = (GH, H)
                if self.bias:
                    shapes[f"bias_ih_l{k}{sfx}"] = (GH,)
                    shapes[f"bias_hh_l{k}{sfx}"] = (GH,)
        return shapes

    def build(self, input_shape):
        if self.built:
            return
        if input_shape[-1] is not None and int(input_shape[-1]) != self.input_size:
            raise ValueError(f"{self.name}: expected inputs with input_size = {self.input_size} "
                             f"features, got input shape {tuple(input_shape)}")
        H = self.hidden_size
        for name, shape in self.expected_shapes().items():
            if name.startswith("bias"):
                self.add_weight(name, shape, self.bias_initializer, fan=H)
            else:
                init = self.kernel_initializer if name.startswith("weight_ih") \
                    else self.recurrent_initializer
                keras_shaped = init(shape[::-1], self.dtype, fan=H)
                self.add_weight(name, shape, lambda s, d, fan=None, w=keras_shaped: w.T)
        Layer.build(self, (None, None, self.input_size))

    def _cell_options(self):
        if self.cell == "rnn":
            return {"nonlinearity": self.nonlinearity}
        if self.cell == "gru":
            return {"reset_after": self.reset_after}
        return {}

    def _layer_weights(self, k):
        """One layer's four weight arguments for the core (stacked (2, ...) when bidirectional;
        biases None without bias)."""
        p = self._params
        sfxs = ("", "_reverse")[:self.num_directions]
        out = []
        for kind in _KINDS:
            if kind.startswith("bias") and not self.bias:
                out.append(None)
                continue
            arrays = [p[f"{kind}_l{k}{sfx}"].value for sfx in sfxs]
            out.append(np.stack(arrays) if self.bidirectional else arrays[0])
        return out

    def packed_weights(self, k):
        """The packed handle of layer ``k``'s current weights (packed again only after one of
        them changed: an optimizer step, ``set_weights``, ``Parameter.mark_updated``)."""
        versions = tuple(self._params[n].version for n in self.weight_names(k))
        if self._packed[k] is None or self._packed_versions[k] != versions:
            self._packed[k] = F.pack_weights(self.cell, *self._layer_weights(k),
                                              bidirectional=self.bidirectional,
                                              **self._cell_options())
            self._packed_versions[k] = versions
        return self._packed[k]

    # --- inputs -----------------------------------------------------------------------------
    def _state_input(self, value, what, B):
        shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        if value is None:
            return None
        a = _as_array(value)
        if a.shape != shape:
            raise ValueError(f"{self.name}: {what} expected shape (L*D, B, H) = {shape}, got "
                             f"{a.shape}")
        if a.dtype.kind != "f":
            raise TypeError(f"{self.name}: {what} expected a float array, got dtype {a.dtype}")
        return a.astype(self.dtype, copy=False)

    def _lengths_input(self, lengths, mask, B, T):
        if mask is not None:
            if lengths is not None:
                raise ValueError(f"{self.name}: give lengths or mask, not both")
            start, length = mask_runs(mask, B, T, self.name)
            if np.any((start != 0) & (length > 0)):
                raise ValueError(f"{self.name}: mask expected right-padded sequences (each "
                                 f"sequence's valid steps first), got a sequence starting at "
                                 f"step {int(start[np.argmax(start != 0)])}")
            return None if np.all(length == T) else length
        if lengths is None:
            return None
        a = _as_array(lengths)
        if a.shape != (B,):
            raise ValueError(f"{self.name}: lengths expected shape (B,) = {(B,)}, got {a.shape}")
        if a.dtype.kind not in "iu":
            raise TypeError(f"{self.name}: lengths expected integers, got dtype {a.dtype}")
        if a.size and (a.min() < 0 or a.max() > T):
            raise ValueError(f"{self.name}: lengths expected values in [0, T] = [0, {T}], got "
                             f"values in [{a.min()}, {a.max()}]")
        return a.astype(np.int64, copy=False)

    @staticmethod
    def _split_hx(h0, c0, cell):
        if isinstance(h0, (tuple, list)):
            if cell != "lstm" or len(h0) != 2 or c0 is not None:
                raise ValueError(f"h0: a (h0, c0) pair is the LSTM's initial state; for "
                                 f"cell={cell!r} pass h0 alone"
                                 if cell != "lstm" else
                                 "h0: expected h0 alone with c0=..., or the pair (h0, c0)")
            h0, c0 = h0
        elif c0 is not None and cell != "lstm":
            raise ValueError(f"c0: only an LSTM has a cell state, got c0 for cell={cell!r}")
        return h0, c0

    # --- forward ----------------------------------------------------------------------------
    def __call__(self, x, h0=None, c0=None, lengths=None, training=False, mask=None):
        return self.forward(x, training=training, mask=mask, h0=h0, c0=c0, lengths=lengths)

    def forward(self, x, training=False, mask=None, h0=None, c0=None, lengths=None):
        """See the class docstring. ``mask`` (B, T) is the Layer contract's mask (from an
        Embedding with ``mask_zero`` or a Masking layer); it must mark right-padded sequences."""
        h0, c0 = self._split_hx(h0, c0, self.cell)
        x = self._float_input(_as_array(x), "x", ndim=3)
        T, B = (x.shape[1], x.shape[0]) if self.batch_first else x.shape[:2]
        lengths = self._lengths_input(lengths, mask, B, T)
        h0 = self._state_input(h0, "h0", B)
        c0 = self._state_input(c0, "c0", B)
        D, L = self.num_directions, self.num_layers
        training = bool(training)
        rng = config.rng()

        inp, ctxs, drop_masks, h_n, c_n = x, [], [], [], []
        for k in range(L):
            rows = slice(k * D, (k + 1) * D) if D == 2 else k
            if training:
                weights = self._layer_weights(k)
                opts = self._cell_options()
            else:
                weights, opts = (self.packed_weights(k), None, None, None), {}
            kwargs = dict(h0=None if h0 is None else h0[rows], lengths=lengths,
                          batch_first=self.batch_first, training=training,
                          bidirectional=self.bidirectional, **opts)
            if self.cell == "lstm":
                kwargs["c0"] = None if c0 is None else c0[rows]
            out = _FORWARD[self.cell](inp, *weights, **kwargs)
            y = out.y
            h_n.append(out.h_n if D == 2 else out.h_n[None])
            if self.cell == "lstm":
                c_n.append(out.c_n if D == 2 else out.c_n[None])
            if training:
                ctxs.append(out.ctx)
            if training and self.dropout > 0 and k < L - 1:
                keep = rng.random(y.shape) >= self.dropout
                m = (keep / (1.0 - self.dropout)).astype(self.dtype)
                y = y * m
                drop_masks.append(m)
            else:
                drop_masks.append(None)
            inp = y

        h_n = np.concatenate(h_n)
        states = (h_n, np.concatenate(c_n)) if self.cell == "lstm" else h_n
        if training:
            self._cache = (ctxs, drop_masks, B)
        return (inp, states) if self.return_state else inp

    # --- backward ---------------------------------------------------------------------------
    input_grad_optional = True

    def backward(self, dy, dh_n=None, dc_n=None, input_grad=True):
        """Gradients of the loss with respect to the outputs of the last training forward ->
        ``dx``. ``dy`` has the shape of ``y`` (None: zero); ``dh_n``, ``dc_n`` those of ``h_n``,
        ``c_n``. ``dy`` may also be the structure the forward returned, ``(dy, dh_n)`` or
        ``(dy, (dh_n, dc_n))``. Adds the weight gradients into ``Parameter.grad`` and sets
        ``initial_state_grads``. ``input_grad=False`` skips the first layer's dx (returns
        None)."""
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward needs a forward call with training=True "
                               f"first")
        if isinstance(dy, (tuple, list)):
            if len(dy) != 2 or dh_n is not None or dc_n is not None:
                raise ValueError(f"{self.name}: dy expected an array, or the pair (dy, dh_n) / "
                                 f"(dy, (dh_n, dc_n)) shaped like the forward's output")
            dy, dh_n = dy
            if isinstance(dh_n, (tuple, list)):
                if self.cell != "lstm" or len(dh_n) != 2:
                    raise ValueError(f"{self.name}: dh_n expected an array for cell="
                                     f"{self.cell!r}, got a {type(dh_n).__name__}")
                dh_n, dc_n = dh_n
        if dc_n is not None and self.cell != "lstm":
            raise ValueError(f"{self.name}: dc_n: only an LSTM has a cell state")
        ctxs, drop_masks, B = self._cache
        D, L, H = self.num_directions, self.num_layers, self.hidden_size
        dh_n = self._state_input(dh_n, "dh_n", B)
        dc_n = self._state_input(dc_n, "dc_n", B)
        if dy is not None:
            dy = _as_array(dy)
            if dy.dtype.kind != "f":
                raise TypeError(f"{self.name}: dy expected a float array, got dtype {dy.dtype}")
            dy = dy.astype(self.dtype, copy=False)
        dh0 = np.empty((L * D, B, H), self.dtype)
        dc0 = np.empty((L * D, B, H), self.dtype) if self.cell == "lstm" else None
        sfxs = ("", "_reverse")[:D]
        p = self._params
        g_out = dy
        for k in reversed(range(L)):
            rows = slice(k * D, (k + 1) * D) if D == 2 else k
            kw = dict(dy=g_out, dh_n=None if dh_n is None else dh_n[rows],
                      input_grad=input_grad or k > 0)
            if self.cell == "lstm":
                kw["dc_n"] = None if dc_n is None else dc_n[rows]
            g = _BACKWARD[self.cell](ctxs[k], **kw)
            dh0[rows] = g.dh0
            if dc0 is not None:
                dc0[rows] = g.dc0
            grads = (g.dweight_ih, g.dweight_hh, g.dbias_ih, g.dbias_hh)
            for kind, grad in zip(_KINDS, grads):
                if grad is None:
                    continue
                for d, sfx in enumerate(sfxs):
                    p[f"{kind}_l{k}{sfx}"].grad += grad[d] if D == 2 else grad
            g_out = g.dx
            if k > 0 and drop_masks[k - 1] is not None:
                g_out = g_out * drop_masks[k - 1]
        self.initial_state_grads = (dh0, dc0) if self.cell == "lstm" else dh0
        return g_out

    # --- weights by name --------------------------------------------------------------------
    def state_dict(self):
        """``{name: copy of the array}`` with torch's keys, in torch's order."""
        return {name: p.value.copy() for name, p in self._params.items()}

    def load_state_dict(self, state_dict, prefix=""):
        """Assign every weight from ``state_dict`` (arrays or torch tensors, cast to this
        layer's dtype), keyed as torch's (``prefix`` + ``weight_ih_l0`` ...). Keys not starting
        with ``prefix`` are ignored. Every missing, unexpected or wrong-shaped key is reported
        in one ValueError before anything is assigned."""
        if not hasattr(state_dict, "items"):
            raise TypeError(f"state_dict: expected a mapping of names to arrays, got "
                            f"{type(state_dict).__name__}")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix: expected a str, got {type(prefix).__name__}")
        expected = self.expected_shapes()
        given = {}
        for key, value in state_dict.items():
            if isinstance(key, str) and key.startswith(prefix):
                given[key[len(prefix):]] = value
        problems = []
        proj = sorted(k for k in given if k.startswith("weight_hr_l"))
        if proj:
            problems.append(f"projection weights {[prefix + k for k in proj]} (proj_size > 0 "
                            f"is not supported by gatedrnn's core; expected proj_size=0)")
        missing = [k for k in expected if k not in given]
        unexpected = [k for k in given if k not in expected and k not in proj]
        if missing:
            problems.append(f"missing keys {[prefix + k for k in missing]}")
        if unexpected:
            problems.append(f"unexpected keys {[prefix + k for k in unexpected]}")
        arrays = {}
        bad_shapes = []
        for k, shape in expected.items():
            if k not in given:
                continue
            a = _as_array(given[k])
            if a.dtype.kind not in "fiu":
                bad_shapes.append(f"{prefix + k}: expected a float array, got dtype {a.dtype}")
            elif a.shape != shape:
                bad_shapes.append(f"{prefix + k}: expected shape {shape}, got {a.shape}")
            arrays[k] = a
        if bad_shapes:
            problems.append("wrong arrays: " + "; ".join(bad_shapes))
        if problems:
            raise ValueError(
                f"{self.name}: state_dict does not fit {self.describe()}: "
                + "; ".join(problems))
        for k, a in arrays.items():
            self._params[k].assign(a)

    def describe(self):
        """A one-line summary: ``lstm(input_size=8, hidden_size=16, num_layers=2, ...)``."""
        opts = [f"input_size={self.input_size}", f"hidden_size={self.hidden_size}",
                f"num_layers={self.num_layers}", f"bidirectional={self.bidirectional}",
                f"bias={self.bias}"]
        if self.cell == "rnn":
            opts.append(f"nonlinearity={self.nonlinearity!r}")
        if self.cell == "gru":
            opts.append(f"reset_after={self.reset_after}")
        return f"{self.cell}({', '.join(opts)})"

    # --- the rest ---------------------------------------------------------------------------
    def compute_mask(self, x, mask):
        return mask

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        y = input_shape[:2] + (self.num_directions * self.hidden_size,)
        if not self.return_state:
            return y
        batch = input_shape[0] if self.batch_first else input_shape[1]
        state = (self.num_layers * self.num_directions, batch, self.hidden_size)
        return [y, state, state] if self.cell == "lstm" else [y, state]

    def get_config(self):
        return {**Layer.get_config(self), "cell": self.cell, "input_size": self.input_size,
                "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "bias": self.bias, "batch_first": self.batch_first, "dropout": self.dropout,
                "bidirectional": self.bidirectional, "nonlinearity": self.nonlinearity,
                "reset_after": self.reset_after, "return_state": self.return_state,
                "kernel_initializer": _init.serialize(self.kernel_initializer),
                "recurrent_initializer": _init.serialize(self.recurrent_initializer),
                "bias_initializer": _init.serialize(self.bias_initializer)}

    def __repr__(self):
        return f"<StackedRNN {self.name!r} {self.describe()}>"
