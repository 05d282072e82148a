"""Recurrent layers (SimpleRNN, GRU, LSTM) and Bidirectional, Keras-style, on the core.

Each layer keeps the canonical weights (``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``,
``bias_ih``, ``bias_hh``) and calls :mod:`gatedrnn.functional` once per batch for the whole
sequence, forward and backward. Masks become lengths (see ``_sequence.py``), ``dropout`` is one
input mask per sequence, ``recurrent_dropout`` the core's ``recurrent_mask`` (both variational,
as Keras). For inference the weights are packed once and packed again only after they change
(an optimizer step or ``set_weights``), never per call.
"""

import copy

import numpy as np

from .. import config
from .. import functional as F
from .. import initializers as _init
from ._sequence import SequencePlan, core_layout, from_core_layout, mask_runs
from .base import Layer
from .core import _check_units

__all__ = ["SimpleRNN", "GRU", "LSTM", "RNN", "Bidirectional"]

_FORWARD = {"rnn": F.rnn, "gru": F.gru, "lstm": F.lstm}
_BACKWARD = {"rnn": F.rnn_backward, "gru": F.gru_backward, "lstm": F.lstm_backward}
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
_WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _rate(value, what):
    v = float(value)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{what}: expected a float in [0, 1), got {value}")
    return v


class _RecurrentWeights:
    """Weights, packing and the single-direction core call shared by layers and cells."""

    cell = None  # "rnn" | "gru" | "lstm"

    def _init_recurrent(self, units, activation, recurrent_activation, use_bias,
                        kernel_initializer, recurrent_initializer, bias_initializer):
        self.units = _check_units(units)
        allowed = ("tanh", "relu") if self.cell == "rnn" else ("tanh",)
        if activation not in allowed:
            raise ValueError(f"{self.name}: activation: the core computes {type(self).__name__} "
                             f"with {' or '.join(map(repr, allowed))}, got {activation!r}")
        if self.cell != "rnn" and recurrent_activation != "sigmoid":
            raise ValueError(f"{self.name}: recurrent_activation: the core computes the gates "
                             f"with 'sigmoid', got {recurrent_activation!r}")
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _init.get(kernel_initializer, "kernel_initializer")
        self.recurrent_initializer = _init.get(recurrent_initializer, "recurrent_initializer")
        self.bias_initializer = _init.get(bias_initializer, "bias_initializer")
        self._packed = None
        self._packed_versions = None

    @property
    def gates(self):
        return _GATES[self.cell]

    def _cell_options(self):
        if self.cell == "rnn":
            return {"nonlinearity": self.activation}
        if self.cell == "gru":
            return {"reset_after": self.reset_after}
        return {}

    def _build_weights(self, input_size):
        H, GH = self.units, self.gates * self.units
        kernel = self.kernel_initializer((input_size, GH), self.dtype, fan=H)
        recurrent = self.recurrent_initializer((H, GH), self.dtype, fan=H)
        self.add_weight("weight_ih", (GH, input_size), lambda s, d, fan=None: kernel.T)
        self.add_weight("weight_hh", (GH, H), lambda s, d, fan=None: recurrent.T)
        if self.use_bias:
            if self.cell == "lstm" and self.unit_forget_bias:
                b = np.concatenate([self.bias_initializer((H,), self.dtype, fan=H),
                                    np.ones(H, self.dtype),
                                    self.bias_initializer((2 * H,), self.dtype, fan=H)])
                self.add_weight("bias_ih", (GH,), lambda s, d, fan=None: b)
                self.add_weight("bias_hh", (GH,), "zeros")
            elif isinstance(self.bias_initializer, _init.TorchUniform):
                self.add_weight("bias_ih", (GH,), self.bias_initializer, fan=H)
                self.add_weight("bias_hh", (GH,), self.bias_initializer, fan=H)
            else:
                # Keras has one bias (two for reset-after GRUs, the second for the recurrent
                # part); the other of our two starts at zero so the sum is Keras's bias.
                self.add_weight("bias_ih", (GH,), self.bias_initializer, fan=H)
                if self.cell == "gru" and self.reset_after:
                    self.add_weight("bias_hh", (GH,), self.bias_initializer, fan=H)
                else:
                    self.add_weight("bias_hh", (GH,), "zeros")

    def _weight_arrays(self):
        p = self._params
        if self.use_bias:
            return (p["weight_ih"].value, p["weight_hh"].value, p["bias_ih"].value,
                    p["bias_hh"].value)
        return p["weight_ih"].value, p["weight_hh"].value, None, None

    def packed_weights(self):
        """The packed handle of the current weights (packed again only after they changed)."""
        versions = tuple(p.version for p in self._params.values())
        if self._packed is None or versions != self._packed_versions:
            self._packed = F.pack_weights(self.cell, *self._weight_arrays(), **self._cell_options())
            self._packed_versions = versions
        return self._packed

    def _accumulate(self, g, direction=None):
        p = self._params
        pick = (lambda a: a) if direction is None else (lambda a: a[direction])
        p["weight_ih"].grad += pick(g.dweight_ih)
        p["weight_hh"].grad += pick(g.dweight_hh)
        if self.use_bias:
            p["bias_ih"].grad += pick(g.dbias_ih)
            p["bias_hh"].grad += pick(g.dbias_hh)

    def _recurrent_config(self):
        cfg = {"units": self.units, "use_bias": self.use_bias,
               "kernel_initializer": _init.serialize(self.kernel_initializer),
               "recurrent_initializer": _init.serialize(self.recurrent_initializer),
               "bias_initializer": _init.serialize(self.bias_initializer)}
        if self.cell == "rnn":
            cfg["activation"] = self.activation
        if self.cell == "gru":
            cfg["reset_after"] = self.reset_after
        if self.cell == "lstm":
            cfg["unit_forget_bias"] = self.unit_forget_bias
        return cfg

    def _n_states(self):
        return 2 if self.cell == "lstm" else 1

    def _check_states(self, states, B, what="initial_state"):
        """A list of (B, H) arrays of this layer's dtype, one per state (h, and c for LSTM)."""
        n = self._n_states()
        if isinstance(states, np.ndarray) and n == 1:
            states = [states]
        if not isinstance(states, (list, tuple)) or len(states) != n:
            raise ValueError(f"{self.name}: {what} expected a list of {n} array(s) "
                             f"({'h, c' if n == 2 else 'h'}), got {type(states).__name__}"
                             + (f" of length {len(states)}" if isinstance(states, (list, tuple)) else ""))
        out = []
        for name, s in zip(("h", "c"), states):
            s = np.asarray(s)
            if s.shape != (B, self.units):
                raise ValueError(f"{self.name}: {what} ({name}) expected shape {(B, self.units)}, "
                                 f"got {s.shape}")
            if s.dtype.kind != "f":
                raise TypeError(f"{self.name}: {what} ({name}) expected a float array, got "
                                f"dtype {s.dtype}")
            out.append(s.astype(self.dtype, copy=False))
        return out


class _Recurrent(_RecurrentWeights, Layer):
    """Shared body of SimpleRNN, GRU and LSTM: one direction over a whole batch of sequences."""

    supports_masking = True

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, time_major=False, dropout=0.0,
                 recurrent_dropout=0.0, zero_output_for_mask=False, unroll=False, **kwargs):
        Layer.__init__(self, **kwargs)
        self._init_recurrent(units, activation, recurrent_activation, use_bias,
                             kernel_initializer, recurrent_initializer, bias_initializer)
        if unroll:
            raise ValueError(f"{self.name}: unroll=True is not supported: the core always runs "
                             f"the whole sequence in one call")
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.time_major = bool(time_major)
        self.dropout = _rate(dropout, "dropout")
        self.recurrent_dropout = _rate(recurrent_dropout, "recurrent_dropout")
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.states = None
        self.initial_state_grads = None

    # --- build ------------------------------------------------------------------------------
    def build(self, input_shape):
        if self.built:
            return
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"{self.name}: expected input of shape (batch, time, features)"
                             f"{' (time-major: (time, batch, features))' if self.time_major else ''}"
                             f", got {tuple(input_shape)}")
        self._build_weights(int(input_shape[-1]))
        Layer.build(self, input_shape)

    def _ensure_built(self, x):
        if not self.built:
            self.build(tuple(np.shape(x)))

    # --- forward ----------------------------------------------------------------------------
    def forward(self, x, training=False, mask=None, initial_state=None):
        x = self._float_input(x, "x", ndim=3)
        xb = x.swapaxes(0, 1) if self.time_major else x
        B, T = xb.shape[:2]
        start = length = None
        if mask is not None:
            start, length = mask_runs(mask, B, T, self.name)
        plan = SequencePlan(B, T, start, length, self.go_backwards)

        if initial_state is not None:
            states = self._check_states(initial_state, B)
        elif self.stateful and self.states is not None:
            if self.states[0].shape[0] != B:
                raise ValueError(f"{self.name}: a stateful layer keeps batch size "
                                 f"{self.states[0].shape[0]} until reset_states(), got {B}")
            states = self.states
        else:
            states = [None] * self._n_states()

        in_mask = rec_mask = None
        rng = config.rng()
        if training and self.dropout > 0:
            keep = rng.random((B, xb.shape[2])) >= self.dropout
            in_mask = (keep / (1 - self.dropout)).astype(self.dtype)
            xb = xb * in_mask[:, None, :]
        if training and self.recurrent_dropout > 0:
            keep = rng.random((B, self.units)) >= self.recurrent_dropout
            rec_mask = (keep / (1 - self.recurrent_dropout)).astype(self.dtype)

        core_x, batch_first = core_layout(plan.core_input(xb))
        weights = self._weight_arrays() if training else (self.packed_weights(), None, None, None)
        kwargs = dict(h0=states[0], lengths=plan.lengths, reverse=plan.reverse,
                      batch_first=batch_first, training=bool(training), recurrent_mask=rec_mask)
        if self.cell == "lstm":
            kwargs["c0"] = states[1]
        if training:
            kwargs.update(self._cell_options())
        out = _FORWARD[self.cell](core_x, *weights, **kwargs)
        final = [out.h_n, out.c_n] if self.cell == "lstm" else [out.h_n]
        if self.stateful:
            self.states = [s.copy() for s in final]

        if self.return_sequences:
            yp = plan.to_processing(from_core_layout(out.y, batch_first))
            if not self.zero_output_for_mask:
                yp = plan.fill_after(yp)
            y = yp.swapaxes(0, 1) if self.time_major else yp
        else:
            y = plan.last_output(out.h_n, self.zero_output_for_mask)
        self._cache = ((plan, out.ctx, batch_first, in_mask, initial_state is not None)
                       if training else None)
        return [y] + final if self.return_state else y

    # --- backward ---------------------------------------------------------------------------
    input_grad_optional = True

    def backward(self, dy, state_grads=None, input_grad=True):
        """Gradients of the loss w.r.t. this layer's output ``dy`` (and, with return_state, a
        list ``[dy, dh, (dc)]`` or ``state_grads=[dh, (dc)]``) -> dx; adds the weight
        gradients. The gradients w.r.t. ``initial_state`` are left in ``initial_state_grads``.
        ``input_grad=False`` skips dx (returns None; see the functional ``*_backward``)."""
        plan, ctx, batch_first, in_mask, had_initial = self._saved()
        if isinstance(dy, (list, tuple)):
            dy, state_grads = dy[0], list(dy[1:])
        n = self._n_states()
        sg = list(state_grads) if state_grads is not None else []
        sg = [None if g is None else np.asarray(g, self.dtype) for g in sg] + [None] * (n - len(sg))
        dh_n = sg[0]
        if self.return_sequences:
            dyb = np.asarray(dy, self.dtype)
            dyb = dyb.swapaxes(0, 1) if self.time_major else dyb
            if not self.zero_output_for_mask:
                dyb = plan.fill_after_backward(dyb)
            dy_core = plan.dy_to_core(dyb)
            dy_core = dy_core if batch_first else dy_core.swapaxes(0, 1)
        else:
            dlast = plan.last_output_backward(np.asarray(dy, self.dtype), self.zero_output_for_mask)
            dh_n = dlast if dh_n is None else dh_n + dlast
            dy_core = None
        if self.cell == "lstm":
            g = F.lstm_backward(ctx, dy=dy_core, dh_n=dh_n, dc_n=sg[1], input_grad=input_grad)
            self.initial_state_grads = [g.dh0, g.dc0] if had_initial else None
        else:
            g = _BACKWARD[self.cell](ctx, dy=dy_core, dh_n=dh_n, input_grad=input_grad)
            self.initial_state_grads = [g.dh0] if had_initial else None
        self._accumulate(g)
        if not input_grad:
            return None
        dx = plan.dx_from_core(from_core_layout(g.dx, batch_first))
        if in_mask is not None:
            dx = dx * in_mask[:, None, :]
        return dx.swapaxes(0, 1) if self.time_major else dx

    # --- the rest ---------------------------------------------------------------------------
    def reset_states(self, states=None):
        """Forget the carried state of a stateful layer (or set it: a list of (B, H) arrays)."""
        if not self.stateful:
            raise ValueError(f"{self.name}: reset_states() needs stateful=True")
        if states is None:
            self.states = None
        else:
            self.states = [s.copy() for s in self._check_states(states, np.shape(
                states[0] if isinstance(states, (list, tuple)) else states)[0], "states")]

    def compute_mask(self, x, mask):
        # Keras passes the input mask on unchanged, go_backwards included (its outputs are then
        # in processing order while the mask is not): a stacked model matches Keras only so.
        if mask is None or not self.return_sequences:
            return None
        return np.asarray(mask)

    def compute_output_shape(self, input_shape):
        batch = input_shape[1] if self.time_major else input_shape[0]
        if self.return_sequences:
            out = tuple(input_shape[:2]) + (self.units,)
        else:
            out = (batch, self.units)
        if self.return_state:
            return [out] + [(batch, self.units)] * self._n_states()
        return out

    def get_config(self):
        return {**Layer.get_config(self), **self._recurrent_config(),
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "stateful": self.stateful,
                "time_major": self.time_major, "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout,
                "zero_output_for_mask": self.zero_output_for_mask}

    def get_cell(self):
        """A streaming cell sharing this layer's parameters (train the layer, then step it)."""
        from .cells import cell_class
        self._require_built("get_cell")
        cell = cell_class(self.cell)(**{**self._recurrent_config(), "dtype": self.dtype.name,
                                        "name": self.name + "_cell"})
        cell._params = self._params
        cell.input_shape = (None, self.input_shape[-1])
        cell.built = True
        return cell


class SimpleRNN(_Recurrent):
    """Elman RNN layer, ``h_t = activation(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``;
    ``activation`` is ``"tanh"`` (default) or ``"relu"``."""
    cell = "rnn"


class GRU(_Recurrent):
    """GRU layer. ``reset_after=True`` (default; Keras, PyTorch, cuDNN) or ``False`` (Cho et
    al. 2014). Gates r, z, n in the canonical layout."""
    cell = "gru"

    def __init__(self, units, reset_after=True, **kwargs):
        self.reset_after = bool(reset_after)
        super().__init__(units, **kwargs)


class LSTM(_Recurrent):
    """LSTM layer, gates i, f, g, o in the canonical layout. ``unit_forget_bias=True`` starts the
    forget gate's bias at 1 (bias_ih's forget block; bias_hh starts at 0)."""
    cell = "lstm"

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        self.unit_forget_bias = bool(unit_forget_bias)
        super().__init__(units, **kwargs)


def RNN(cell, **kwargs):
    """Keras's RNN wrapper: ``RNN(GRUCell(64), return_sequences=True)`` is the GRU layer sharing
    the cell's weights (an int ``cell`` gives a SimpleRNN of that many units)."""
    from .cells import _Cell
    if isinstance(cell, _Cell):
        cls = {"rnn": SimpleRNN, "gru": GRU, "lstm": LSTM}[cell.cell]
        cfg = {k: v for k, v in cell.get_config().items() if k not in ("name", "trainable")}
        layer = cls(**cfg, **kwargs)
        if cell.built:
            layer._params = cell._params
            layer.input_shape = (None, None, cell.input_shape[-1])
            layer.built = True
        else:
            cell._shared_layer = layer
        return layer
    return SimpleRNN(cell, **kwargs)


_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _fresh_copy(layer, name):
    """An unbuilt copy of ``layer`` with the same options (its own weights when built)."""
    clone = copy.copy(layer)
    clone.name = name
    clone._params = {}
    clone.built = False
    clone._packed = clone._packed_versions = None
    clone.states = None
    return clone


class Bidirectional(Layer):
    """Runs a recurrent layer over each sequence forwards and backwards and merges the two.

    The backward copy reads each sequence from its own last valid step (Keras's
    ``go_backwards`` with the outputs flipped back), so padding never enters either direction.
    ``merge_mode`` is ``"concat"`` (default), ``"sum"``, ``"mul"``, ``"ave"`` or None (a list of
    the two outputs). With ``return_state`` the output is ``[y, h_fwd(, c_fwd), h_bwd(, c_bwd)]``.
    Both directions run in one core call when they have the same configuration (always, unless a
    ``backward_layer`` with other options or input ``dropout`` is used).
    """

    supports_masking = True

    def __init__(self, layer, merge_mode="concat", backward_layer=None, weights=None, **kwargs):
        if not isinstance(layer, _Recurrent):
            raise TypeError(f"layer: expected a SimpleRNN, GRU or LSTM layer, got "
                            f"{type(layer).__name__}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"merge_mode: expected one of {_MERGE_MODES}, got {merge_mode!r}")
        kwargs.setdefault("dtype", layer.dtype.name)
        kwargs.setdefault("name", "bidirectional_" + layer.name)
        super().__init__(**kwargs)
        if layer.stateful:
            raise ValueError(f"{self.name}: stateful layers are not supported inside "
                             f"Bidirectional")
        self.forward_layer = _fresh_copy(layer, "forward_" + layer.name)
        if backward_layer is None:
            self.backward_layer = _fresh_copy(layer, "backward_" + layer.name)
            self.backward_layer.go_backwards = not layer.go_backwards
        else:
            if not isinstance(backward_layer, _Recurrent):
                raise TypeError(f"backward_layer: expected a SimpleRNN, GRU or LSTM layer, got "
                                f"{type(backward_layer).__name__}")
            for attr in ("return_sequences", "return_state"):
                if getattr(backward_layer, attr) != getattr(layer, attr):
                    raise ValueError(f"backward_layer: {attr} must match the forward layer's "
                                     f"({getattr(layer, attr)}), got {getattr(backward_layer, attr)}")
            if backward_layer.go_backwards == layer.go_backwards:
                raise ValueError("backward_layer: go_backwards must differ from the forward "
                                 "layer's")
            self.backward_layer = backward_layer
        self.merge_mode = merge_mode
        for sub in (self.forward_layer, self.backward_layer):
            sub.zero_output_for_mask = self.return_sequences
        self._initial_weights = weights
        self._merge_cache = None

    @property
    def units(self):
        return self.forward_layer.units

    @property
    def return_sequences(self):
        return self.forward_layer.return_sequences

    @property
    def return_state(self):
        return self.forward_layer.return_state

    @property
    def time_major(self):
        return self.forward_layer.time_major

    def build(self, input_shape):
        # a sub-layer built already (a given backward_layer, converted weights) keeps its weights
        for sub in (self.forward_layer, self.backward_layer):
            if not sub.built:
                sub.build(tuple(input_shape))
        Layer.build(self, input_shape)
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def _ensure_built(self, x):
        if not self.built:
            self.build(tuple(np.shape(x)))

    @property
    def parameters(self):
        return self.forward_layer.parameters + self.backward_layer.parameters

    def _fusable(self, training):
        f, b = self.forward_layer, self.backward_layer
        return (type(f) is type(b) and f.units == b.units and not f.go_backwards
                and b.go_backwards and f._cell_options() == b._cell_options()
                and f.use_bias == b.use_bias and f.time_major == b.time_major
                and f.recurrent_dropout == b.recurrent_dropout
                and not (training and (f.dropout > 0 or b.dropout > 0)))

    # --- forward ----------------------------------------------------------------------------
    def forward(self, x, training=False, mask=None, initial_state=None):
        n_f, n_b = self.forward_layer._n_states(), self.backward_layer._n_states()
        if initial_state is not None:
            if not isinstance(initial_state, (list, tuple)) or len(initial_state) != n_f + n_b:
                got = (f"{len(initial_state)} arrays" if isinstance(initial_state, (list, tuple))
                       else type(initial_state).__name__)
                raise ValueError(f"{self.name}: initial_state expected a list of {n_f + n_b} "
                                 f"arrays (the forward layer's {n_f} states, then the backward "
                                 f"layer's {n_b}), got {got}")
            init_f, init_b = list(initial_state[:n_f]), list(initial_state[n_f:])
        else:
            init_f = init_b = None
        if self._fusable(training):
            y_f, y_b, states_f, states_b = self._forward_fused(x, training, mask, init_f, init_b)
        else:
            y_f, y_b, states_f, states_b = self._forward_pair(x, training, mask, init_f, init_b)
        self._merge_cache = (y_f, y_b) if training else None
        y = self._merge(y_f, y_b)
        if self.return_state:
            return ([y] if self.merge_mode is not None else list(y)) + states_f + states_b
        return y

    def _forward_pair(self, x, training, mask, init_f, init_b):
        self._fused = False
        out_f = self.forward_layer.forward(x, training, mask, initial_state=init_f)
        out_b = self.backward_layer.forward(x, training, mask, initial_state=init_b)
        if self.return_state:
            out_f, states_f = out_f[0], out_f[1:]
            out_b, states_b = out_b[0], out_b[1:]
        else:
            states_f = states_b = []
        if self.return_sequences:
            out_b = out_b[::-1] if self.time_major else out_b[:, ::-1]
        return out_f, out_b, states_f, states_b

    def _forward_fused(self, x, training, mask, init_f, init_b):
        self._fused = True
        f, b = self.forward_layer, self.backward_layer
        x = f._float_input(x, "x", ndim=3)
        xb = x.swapaxes(0, 1) if self.time_major else x
        B, T = xb.shape[:2]
        start = length = None
        if mask is not None:
            start, length = mask_runs(mask, B, T, self.name)
        plan = SequencePlan(B, T, start, length, backwards=False)
        H, n = f.units, f._n_states()
        states = [None] * n
        if init_f is not None:
            sf, sb = f._check_states(init_f, B), b._check_states(init_b, B)
            states = [np.stack([a, c]) for a, c in zip(sf, sb)]
        rec_mask = None
        if training and f.recurrent_dropout > 0:
            keep = config.rng().random((2, B, H)) >= f.recurrent_dropout
            rec_mask = (keep / (1 - f.recurrent_dropout)).astype(self.dtype)
        core_x, batch_first = core_layout(plan.core_input(xb))
        if training:
            wf, wb = f._weight_arrays(), b._weight_arrays()
            weights = [None if a is None else np.stack([a, c]) for a, c in zip(wf, wb)]
            options = f._cell_options()
        else:
            weights, options = [self._packed_pair(), None, None, None], {}
        kwargs = dict(h0=states[0], lengths=plan.lengths, batch_first=batch_first,
                      training=bool(training), recurrent_mask=rec_mask, bidirectional=True,
                      **options)
        if f.cell == "lstm":
            kwargs["c0"] = states[1]
        out = _FORWARD[f.cell](core_x, *weights, **kwargs)
        final = [out.h_n, out.c_n] if f.cell == "lstm" else [out.h_n]
        if self.return_sequences:
            yb = plan.to_processing(from_core_layout(out.y, batch_first))
            if self.time_major:
                yb = yb.swapaxes(0, 1)
            y_f, y_b = yb[..., :H], yb[..., H:]
        else:
            y_f, y_b = plan.last_output(out.h_n[0]), plan.last_output(out.h_n[1])
        self._cache = (plan, out.ctx, batch_first, init_f is not None) if training else None
        states_f = [s[0] for s in final] if self.return_state else []
        states_b = [s[1] for s in final] if self.return_state else []
        return y_f, y_b, states_f, states_b

    def _packed_pair(self):
        """Both directions' weights packed as one bidirectional handle, packed again only after
        either direction's weights changed (inference never packs per call)."""
        f, b = self.forward_layer, self.backward_layer
        versions = tuple(p.version for p in f.parameters + b.parameters)
        if getattr(self, "_packed_versions", None) != versions:
            wf, wb = f._weight_arrays(), b._weight_arrays()
            stacked = [None if a is None else np.stack([a, c]) for a, c in zip(wf, wb)]
            self._packed = F.pack_weights(f.cell, *stacked, bidirectional=True,
                                          **f._cell_options())
            self._packed_versions = versions
        return self._packed

    def _merge(self, y_f, y_b):
        m = self.merge_mode
        if m == "concat":
            return np.concatenate([y_f, y_b], axis=-1)
        if m == "sum":
            return y_f + y_b
        if m == "mul":
            return y_f * y_b
        if m == "ave":
            return (y_f + y_b) / 2
        return [y_f, y_b]

    # --- backward ---------------------------------------------------------------------------
    input_grad_optional = True

    def backward(self, dy, state_grads=None, input_grad=True):
        f = self.forward_layer
        n_f, n_b = f._n_states(), self.backward_layer._n_states()
        if self.return_state:
            if not isinstance(dy, (list, tuple)):
                dy = [dy]
            k = 1 if self.merge_mode is not None else 2
            dy, state_grads = (dy[0] if k == 1 else list(dy[:2])), list(dy[k:])
        sg = list(state_grads) if state_grads is not None else []
        sg = sg + [None] * (n_f + n_b - len(sg))
        sg_f, sg_b = sg[:n_f], sg[n_f:]
        if self._merge_cache is None:
            raise RuntimeError(f"{self.name}: backward needs a forward call with training=True "
                               f"first (the last forward was an inference call, or none)")
        y_f, y_b = self._merge_cache
        m = self.merge_mode
        if m == "concat":
            dy = np.asarray(dy)
            dy_f, dy_b = dy[..., :f.units], dy[..., f.units:]
        elif m == "sum":
            dy_f = dy_b = dy
        elif m == "mul":
            dy_f, dy_b = dy * y_b, dy * y_f
        elif m == "ave":
            dy_f = dy_b = np.asarray(dy) / 2
        else:
            dy_f, dy_b = dy
        if self._fused:
            return self._backward_fused(dy_f, dy_b, sg_f, sg_b, input_grad)
        if self.return_sequences:
            dy_b = dy_b[::-1] if self.time_major else dy_b[:, ::-1]
        dx = self.forward_layer.backward(dy_f, sg_f, input_grad=input_grad)
        dx_b = self.backward_layer.backward(dy_b, sg_b, input_grad=input_grad)
        dx = None if dx is None else dx + dx_b
        if self.forward_layer.initial_state_grads is not None:
            self.initial_state_grads = (self.forward_layer.initial_state_grads
                                        + self.backward_layer.initial_state_grads)
        else:
            self.initial_state_grads = None
        return dx

    def _backward_fused(self, dy_f, dy_b, sg_f, sg_b, input_grad):
        f, b = self.forward_layer, self.backward_layer
        plan, ctx, batch_first, had_initial = self._saved()
        dt = self.dtype

        def stack_states(i):
            a, c = sg_f[i], sg_b[i]
            if a is None and c is None:
                return None
            z = None
            ref = a if a is not None else c
            z = np.zeros_like(np.asarray(ref, dt))
            return np.stack([z if a is None else np.asarray(a, dt),
                             z if c is None else np.asarray(c, dt)])

        dh_n = stack_states(0)
        dc_n = stack_states(1) if f.cell == "lstm" else None
        if self.return_sequences:
            dyb = np.concatenate([np.asarray(dy_f, dt), np.asarray(dy_b, dt)], axis=-1)
            if self.time_major:
                dyb = dyb.swapaxes(0, 1)
            dy_core = plan.dy_to_core(dyb)
            dy_core = dy_core if batch_first else dy_core.swapaxes(0, 1)
        else:
            dlast = np.stack([plan.last_output_backward(np.asarray(dy_f, dt)),
                              plan.last_output_backward(np.asarray(dy_b, dt))])
            dh_n = dlast if dh_n is None else dh_n + dlast
            dy_core = None
        if f.cell == "lstm":
            g = F.lstm_backward(ctx, dy=dy_core, dh_n=dh_n, dc_n=dc_n, input_grad=input_grad)
            init = [g.dh0, g.dc0]
        else:
            g = _BACKWARD[f.cell](ctx, dy=dy_core, dh_n=dh_n, input_grad=input_grad)
            init = [g.dh0]
        f._accumulate(g, 0)
        b._accumulate(g, 1)
        self.initial_state_grads = ([s[0] for s in init] + [s[1] for s in init]
                                    if had_initial else None)
        if not input_grad:
            return None
        dx = plan.dx_from_core(from_core_layout(g.dx, batch_first))
        return dx.swapaxes(0, 1) if self.time_major else dx

    # --- the rest ---------------------------------------------------------------------------
    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def compute_output_shape(self, input_shape):
        out_f = self.forward_layer.compute_output_shape(input_shape)
        out_b = self.backward_layer.compute_output_shape(input_shape)
        states_f = states_b = []
        if self.return_state:
            out_f, states_f = out_f[0], out_f[1:]
            out_b, states_b = out_b[0], out_b[1:]
        if self.merge_mode == "concat":
            outs = [tuple(out_f[:-1]) + (out_f[-1] + out_b[-1],)]
        elif self.merge_mode is None:
            outs = [out_f, out_b]
        else:
            outs = [out_f]
        if self.return_state:
            return outs + list(states_f) + list(states_b)
        return outs[0] if self.merge_mode is not None else outs

    def get_config(self):
        from . import serialize
        cfg = {**Layer.get_config(self), "merge_mode": self.merge_mode,
               "layer": serialize(self.forward_layer)}
        cfg["layer"]["config"]["name"] = self.forward_layer.name[len("forward_"):]
        cfg["backward_layer"] = serialize(self.backward_layer)
        return cfg

    @classmethod
    def from_config(cls, cfg):
        from . import deserialize
        cfg = dict(cfg)
        layer = deserialize(cfg.pop("layer"))
        backward = cfg.pop("backward_layer", None)
        backward = deserialize(backward) if backward is not None else None
        return cls(layer, backward_layer=backward, **cfg)
