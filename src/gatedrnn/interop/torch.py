"""Converters between gatedrnn and PyTorch, in both directions, with exactly the same weights.

- :func:`from_torch`: ``nn.RNN`` (tanh or relu), ``nn.GRU``, ``nn.LSTM`` (any ``num_layers``,
  ``bidirectional``, ``batch_first``, ``bias``, ``dropout``) -> :class:`StackedRNN`;
  ``nn.RNNCell`` / ``nn.GRUCell`` / ``nn.LSTMCell`` -> the gatedrnn streaming cell.
- :func:`from_torch_state_dict`: the same from a ``state_dict`` (tensors or NumPy arrays) and
  the module's constructor arguments, without the module.
- :func:`to_torch`: a :class:`StackedRNN` or a cell -> the native torch module; a gatedrnn
  ``SimpleRNN`` / ``GRU`` / ``LSTM`` layer or ``Bidirectional`` of one -> the native module when
  its first output is the layer's output, else a small wrapper module defined here that
  reproduces the layer's (Keras) output exactly; a ``Sequential`` model of such layers (with
  ``Dense``, ``Embedding``, ``Dropout``, ``Activation``, ``RepeatVector``) -> an
  ``nn.Sequential`` computing the same function.

Both formats keep two biases per gate block in the same order (gatedrnn's canonical layout is
PyTorch's), so every conversion is an exact copy of the arrays. float32 stays float32 and
float64 stays float64; float16/bfloat16 torch weights are converted to float32 (exactly: every
half value is a float32 value), since the core computes in float32 and float64 only.

What cannot be converted raises a ValueError that says why: LSTM projections
(``proj_size > 0``; the core has none), a reset-before GRU (``reset_after=False``; torch has
none), and models that carry a time mask (``Embedding(mask_zero=True)``, ``Masking``; masks
are not converted to torch).

PyTorch is imported on first use; without it these functions raise an ImportError saying how to
install it.
"""

import warnings

import numpy as np

from ..layers.stacked import StackedRNN

__all__ = ["from_torch", "from_torch_state_dict", "to_torch"]

#: torch's RNNBase.mode -> (our cell, nonlinearity)
_MODES = {"RNN_TANH": ("rnn", "tanh"), "RNN_RELU": ("rnn", "relu"), "GRU": ("gru", "tanh"),
          "LSTM": ("lstm", "tanh")}
_WRAPPER_NAMES = ("KerasStyleRNN", "KerasStyleBidirectional", "SequenceOutput", "RepeatVector")
_classes = None


def _require_torch():
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            "gatedrnn.interop.torch needs PyTorch, which is not installed: pip install torch "
            "(or pip install 'gatedrnn[peers]', which pins a CPU-sized torch)") from exc
    return torch


# --------------------------------------------------------------------------------------------
# arrays and dtypes
# --------------------------------------------------------------------------------------------

def _to_numpy(torch, value, what):
    """A NumPy copy of a tensor (any device, grad or not; half types become float32) or array."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.to(torch.float32)
        if t.is_complex():
            raise TypeError(f"{what}: expected a real floating tensor, got {t.dtype}")
        return t.numpy().copy()
    a = np.asarray(value)
    if a.dtype == np.float16:
        a = a.astype(np.float32)
    return a


def _numpy_dtype_name(torch, tdtype, what):
    if tdtype == torch.float64:
        return "float64"
    if tdtype in (torch.float32, torch.float16, torch.bfloat16):
        return "float32"
    raise TypeError(f"{what}: expected float32 or float64 weights (float16/bfloat16 are read "
                    f"as float32), got {tdtype}")


def _torch_dtype(torch, np_dtype):
    return torch.float64 if np.dtype(np_dtype) == np.float64 else torch.float32


def _tensor(torch, array):
    return torch.from_numpy(np.array(array, copy=True))


# --------------------------------------------------------------------------------------------
# torch -> gatedrnn
# --------------------------------------------------------------------------------------------

def from_torch(module, *, name=None, return_state=True):
    """A gatedrnn layer with the same configuration and weights as the torch ``module``.

    - ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` -> :class:`~gatedrnn.layers.stacked.StackedRNN` with
      the module's ``input_size``, ``hidden_size``, ``num_layers``, ``nonlinearity``, ``bias``,
      ``batch_first``, ``dropout`` and ``bidirectional``. Called like the module
      (``layer(x, hx)``, plus ``lengths=`` for what a packed sequence would carry) it returns
      the same ``(output, h_n)`` / ``(output, (h_n, c_n))`` as NumPy arrays.
      ``return_state=False`` makes it return the output alone (for use in a Sequential).
    - ``nn.RNNCell`` / ``nn.GRUCell`` / ``nn.LSTMCell`` -> ``SimpleRNNCell`` / ``GRUCell`` /
      ``LSTMCell`` (built, ``cell.step(x_t, state)``).

    float64 modules give float64 layers, everything else float32. ``proj_size > 0`` is a
    ValueError (not supported by the core). The module is not changed; the layer holds copies.
    """
    torch = _require_torch()
    nn = torch.nn
    if isinstance(module, nn.RNNBase):
        if module.mode not in _MODES:
            raise ValueError(f"module: unknown recurrent mode {module.mode!r}; expected one of "
                             f"{sorted(_MODES)}")
        if getattr(module, "proj_size", 0):
            raise ValueError(f"module: proj_size = {module.proj_size}: LSTM projections are not "
                             f"supported by gatedrnn's core; expected proj_size=0")
        cell, nonlinearity = _MODES[module.mode]
        dtype = _numpy_dtype_name(torch, module.weight_ih_l0.dtype, "module")
        layer = StackedRNN(cell, module.input_size, module.hidden_size,
                           num_layers=module.num_layers, bias=module.bias,
                           batch_first=module.batch_first, dropout=float(module.dropout),
                           bidirectional=module.bidirectional, nonlinearity=nonlinearity,
                           return_state=return_state, dtype=dtype, name=name)
        layer.load_state_dict({k: _to_numpy(torch, v, f"module.{k}")
                               for k, v in module.state_dict().items()})
        return layer
    if isinstance(module, nn.RNNCellBase):
        return _cell_from_torch(torch, module, name)
    raise TypeError(f"module: expected a torch nn.RNN, nn.GRU, nn.LSTM, nn.RNNCell, nn.GRUCell "
                    f"or nn.LSTMCell, got {type(module).__module__}.{type(module).__qualname__}")


def _cell_from_torch(torch, module, name):
    from ..layers.cells import GRUCell, LSTMCell, SimpleRNNCell
    nn = torch.nn
    dtype = _numpy_dtype_name(torch, module.weight_ih.dtype, "module")
    common = dict(use_bias=module.bias, dtype=dtype, name=name,
                  kernel_initializer="torch_uniform", recurrent_initializer="torch_uniform",
                  bias_initializer="torch_uniform")
    if isinstance(module, nn.LSTMCell):
        cell = LSTMCell(module.hidden_size, unit_forget_bias=False, **common)
    elif isinstance(module, nn.GRUCell):
        cell = GRUCell(module.hidden_size, reset_after=True, **common)
    elif isinstance(module, nn.RNNCell):
        cell = SimpleRNNCell(module.hidden_size, activation=module.nonlinearity, **common)
    else:
        raise TypeError(f"module: expected nn.RNNCell, nn.GRUCell or nn.LSTMCell, got "
                        f"{type(module).__qualname__}")
    cell.build((None, module.input_size))
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if module.bias else [])
    cell.set_weights([_to_numpy(torch, getattr(module, n), f"module.{n}") for n in names])
    return cell


def from_torch_state_dict(state_dict, cell, input_size, hidden_size, num_layers=1,
                          bidirectional=False, bias=True, batch_first=False, nonlinearity="tanh",
                          dropout=0.0, *, reset_after=True, prefix="", dtype=None, name=None,
                          return_state=True):
    """A :class:`StackedRNN` built from a torch recurrent module's ``state_dict``.

    The arguments after ``state_dict`` are those the torch module was constructed with:

    - ``cell``: ``"rnn"`` (nn.RNN; give ``nonlinearity`` ``"tanh"`` or ``"relu"``), ``"gru"``
      (nn.GRU) or ``"lstm"`` (nn.LSTM).
    - ``input_size``, ``hidden_size``, ``num_layers``, ``bidirectional``, ``bias``,
      ``batch_first``, ``dropout``: as torch's.
    - ``reset_after``: keep True for a torch GRU (False reads the same arrays into a
      reset-before GRU, which torch does not have).
    - ``prefix``: the keys' prefix when the state_dict is a whole model's (e.g.
      ``"encoder.rnn."``); keys without it are ignored.
    - ``dtype``: ``"float32"`` or ``"float64"``; None takes float64 when every weight is
      float64, float32 otherwise.

    ``state_dict`` maps torch's keys (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...) to torch
    tensors or NumPy arrays. Every missing, unexpected (``weight_hr_*`` of a ``proj_size``
    module included) or wrong-shaped key is listed in one ValueError.
    """
    if not hasattr(state_dict, "items"):
        raise TypeError(f"state_dict: expected a mapping of names to tensors or arrays, got "
                        f"{type(state_dict).__name__}")
    if cell not in ("rnn", "gru", "lstm"):
        raise ValueError(f"cell: expected 'rnn', 'gru' or 'lstm', got {cell!r}")
    if not isinstance(prefix, str):
        raise TypeError(f"prefix: expected a str, got {type(prefix).__name__}")
    torch = _torch_if_tensors(state_dict)
    arrays = {}
    for k, v in state_dict.items():
        if isinstance(k, str) and k.startswith(prefix):
            arrays[k] = _to_numpy(torch, v, f"state_dict[{k!r}]") if torch is not None \
                else np.asarray(v)
    if dtype is None:
        floats = [a.dtype for a in arrays.values() if a.dtype.kind == "f"]
        dtype = "float64" if floats and all(d == np.float64 for d in floats) else "float32"
    layer = StackedRNN(cell, input_size, hidden_size, num_layers=num_layers, bias=bias,
                       batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
                       nonlinearity=nonlinearity, reset_after=reset_after,
                       return_state=return_state, dtype=dtype, name=name)
    layer.load_state_dict(arrays, prefix=prefix)
    return layer


def _torch_if_tensors(state_dict):
    """torch, when some value of ``state_dict`` is a torch tensor (torch already imported)."""
    import sys
    torch = sys.modules.get("torch")
    if torch is not None and any(isinstance(v, torch.Tensor) for v in state_dict.values()):
        return torch
    return None


# --------------------------------------------------------------------------------------------
# gatedrnn -> torch: the wrapper modules (created on first use, so torch is imported lazily)
# --------------------------------------------------------------------------------------------

def _build_wrapper_classes(torch):
    nn = torch.nn

    class KerasStyleRNN(nn.Module):
        """A gatedrnn ``SimpleRNN`` / ``GRU`` / ``LSTM`` layer's output (Keras semantics) from a
        native one-layer, one-direction torch module ``rnn``.

        ``forward(x, initial_state=None)``: ``x`` is ``(B, T, I)`` (``(T, B, I)`` when
        ``time_major``); ``initial_state`` a list ``[h]`` or ``[h, c]`` of ``(B, H)``. Returns
        the sequence output (``return_sequences``; in processing order with ``go_backwards``,
        as Keras) or the last output ``(B, H)``, and with ``return_state`` the list
        ``[output, h_n, (c_n)]``, each state ``(B, H)``.
        """

        def __init__(self, rnn, return_sequences=False, return_state=False, go_backwards=False,
                     time_major=False):
            super().__init__()
            self.rnn = rnn
            self.return_sequences = bool(return_sequences)
            self.return_state = bool(return_state)
            self.go_backwards = bool(go_backwards)
            self.time_major = bool(time_major)

        def forward(self, x, initial_state=None):
            if self.go_backwards:
                x = x.flip(0 if self.time_major else 1)
            hx = None
            if initial_state is not None:
                states = [s.unsqueeze(0) for s in initial_state]
                hx = tuple(states) if isinstance(self.rnn, nn.LSTM) else states[0]
            y, h = self.rnn(x, hx)
            states = [h[0][0], h[1][0]] if isinstance(self.rnn, nn.LSTM) else [h[0]]
            out = y if self.return_sequences else states[0]
            return [out] + states if self.return_state else out

        def extra_repr(self):
            return (f"return_sequences={self.return_sequences}, return_state={self.return_state}"
                    f", go_backwards={self.go_backwards}, time_major={self.time_major}")

    class KerasStyleBidirectional(nn.Module):
        """A gatedrnn ``Bidirectional`` layer's output (Keras semantics).

        Either ``rnn``, one native bidirectional torch module (when both directions have the
        same configuration), or ``forward_rnn`` / ``backward_rnn``, two :class:`KerasStyleRNN`
        returning their states (the backward one with ``go_backwards=True``).
        ``forward(x, initial_state=None)``; ``initial_state`` is the list of forward states then
        backward states. Returns the merged output (``merge_mode`` ``"concat"``, ``"sum"``,
        ``"mul"``, ``"ave"``; None gives the list of both), followed by
        ``h_fwd, (c_fwd,) h_bwd, (c_bwd)`` with ``return_state``.
        """

        def __init__(self, merge_mode="concat", return_sequences=False, return_state=False,
                     time_major=False, rnn=None, forward_rnn=None, backward_rnn=None):
            super().__init__()
            self.merge_mode = merge_mode
            self.return_sequences = bool(return_sequences)
            self.return_state = bool(return_state)
            self.time_major = bool(time_major)
            self.rnn = rnn
            self.forward_rnn = forward_rnn
            self.backward_rnn = backward_rnn

        def forward(self, x, initial_state=None):
            if self.rnn is not None:
                y_f, y_b, s_f, s_b = self._fused(x, initial_state)
            else:
                n = len(initial_state) // 2 if initial_state is not None else 0
                init_f = initial_state[:n] if initial_state is not None else None
                init_b = initial_state[n:] if initial_state is not None else None
                y_f, *s_f = self.forward_rnn(x, init_f)
                y_b, *s_b = self.backward_rnn(x, init_b)
                if self.return_sequences:
                    y_b = y_b.flip(0 if self.time_major else 1)
            m = self.merge_mode
            if m == "concat":
                y = [torch.cat([y_f, y_b], dim=-1)]
            elif m == "sum":
                y = [y_f + y_b]
            elif m == "mul":
                y = [y_f * y_b]
            elif m == "ave":
                y = [(y_f + y_b) / 2]
            else:
                y = [y_f, y_b]
            if self.return_state:
                return y + list(s_f) + list(s_b)
            return y[0] if m is not None else y

        def _fused(self, x, initial_state):
            lstm = isinstance(self.rnn, nn.LSTM)
            hx = None
            if initial_state is not None:
                n = 2 if lstm else 1
                pairs = [torch.stack([initial_state[i], initial_state[n + i]]) for i in range(n)]
                hx = tuple(pairs) if lstm else pairs[0]
            y, h = self.rnn(x, hx)
            states = [h[0], h[1]] if lstm else [h]
            if self.return_sequences:
                H = self.rnn.hidden_size
                y_f, y_b = y[..., :H], y[..., H:]
            else:
                y_f, y_b = states[0][0], states[0][1]
            return y_f, y_b, [s[0] for s in states], [s[1] for s in states]

        def extra_repr(self):
            return (f"merge_mode={self.merge_mode!r}, return_sequences={self.return_sequences}"
                    f", return_state={self.return_state}, time_major={self.time_major}")

    class SequenceOutput(nn.Module):
        """The first output of a native recurrent module (its output sequence), for use in an
        ``nn.Sequential``: a :class:`StackedRNN` with ``return_state=False``."""

        def __init__(self, rnn):
            super().__init__()
            self.rnn = rnn

        def forward(self, x):
            return self.rnn(x)[0]

    class RepeatVector(nn.Module):
        """``(B, F) -> (B, n, F)``, as gatedrnn's (and Keras's) RepeatVector."""

        def __init__(self, n):
            super().__init__()
            self.n = int(n)

        def forward(self, x):
            return x.unsqueeze(1).expand(-1, self.n, -1)

        def extra_repr(self):
            return f"n={self.n}"

    return {"KerasStyleRNN": KerasStyleRNN, "KerasStyleBidirectional": KerasStyleBidirectional,
            "SequenceOutput": SequenceOutput, "RepeatVector": RepeatVector}


def _wrappers():
    """The wrapper classes, created once; published as module attributes (with this module's
    name) so that pickling a converted module (torch.save) finds them."""
    global _classes
    if _classes is None:
        classes = _build_wrapper_classes(_require_torch())
        for cls_name, cls in classes.items():
            cls.__module__ = __name__
            cls.__qualname__ = cls_name
            globals()[cls_name] = cls
        _classes = classes
    return _classes


def __getattr__(name):
    if name in _WRAPPER_NAMES:
        return _wrappers()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------
# gatedrnn -> torch
# --------------------------------------------------------------------------------------------

def _native_rnn(torch, cell, nonlinearity, reset_after, input_size, hidden_size, num_layers,
                bias, batch_first, dropout, bidirectional, dtype, who):
    if cell == "gru" and not reset_after:
        raise ValueError(f"{who}: reset_after=False: torch has no reset-before GRU (its nn.GRU "
                         f"is reset_after=True), so this GRU cannot be converted to torch")
    common = dict(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                  bias=bias, batch_first=batch_first, dropout=dropout,
                  bidirectional=bidirectional, dtype=_torch_dtype(torch, dtype))
    with warnings.catch_warnings():
        # torch warns that dropout does nothing with one layer: the conversion is still exact
        warnings.filterwarnings("ignore", message=".*dropout.*", category=UserWarning)
        if cell == "rnn":
            return torch.nn.RNN(nonlinearity=nonlinearity, **common)
        if cell == "gru":
            return torch.nn.GRU(**common)
        return torch.nn.LSTM(**common)


def _load(torch, module, arrays):
    """Copy ``{name: array}`` into ``module``'s parameters (strict: every key must match)."""
    module.load_state_dict({k: _tensor(torch, v) for k, v in arrays.items()}, strict=True)
    return module


def _require_built(layer):
    if not getattr(layer, "built", False):
        raise ValueError(f"{layer.name}: to_torch needs the layer built (call it on an input or "
                         f"call build(input_shape) first)")


def _stacked_to_torch(torch, layer):
    module = _native_rnn(torch, layer.cell, layer.nonlinearity, layer.reset_after,
                         layer.input_size, layer.hidden_size, layer.num_layers, layer.bias,
                         layer.batch_first, layer.dropout, layer.bidirectional, layer.dtype,
                         layer.name)
    return _load(torch, module, layer.state_dict())


def _cell_to_torch(torch, cell):
    _require_built(cell)
    if cell.cell == "gru" and not cell.reset_after:
        raise ValueError(f"{cell.name}: reset_after=False: torch has no reset-before GRU (its "
                         f"nn.GRUCell is reset_after=True), so this cell cannot be converted")
    common = dict(input_size=int(cell.input_shape[-1]), hidden_size=cell.units,
                  bias=cell.use_bias, dtype=_torch_dtype(torch, cell.dtype))
    if cell.cell == "rnn":
        module = torch.nn.RNNCell(nonlinearity=cell.activation, **common)
    elif cell.cell == "gru":
        module = torch.nn.GRUCell(**common)
    else:
        module = torch.nn.LSTMCell(**common)
    return _load(torch, module, {k: p.value for k, p in cell._params.items()})


def _recurrent_native(torch, layer, bidirectional_with=None):
    """The native one-layer torch module of a gatedrnn recurrent layer (bidirectional, with
    the weights of ``bidirectional_with`` as the reverse direction, when given)."""
    _require_built(layer)
    module = _native_rnn(torch, layer.cell, layer.activation,
                         getattr(layer, "reset_after", True), int(layer.input_shape[-1]),
                         layer.units, 1, layer.use_bias, not layer.time_major, 0.0,
                         bidirectional_with is not None, layer.dtype, layer.name)
    arrays = {f"{k}_l0": p.value for k, p in layer._params.items()}
    if bidirectional_with is not None:
        arrays.update({f"{k}_l0_reverse": p.value
                       for k, p in bidirectional_with._params.items()})
    return _load(torch, module, arrays)


def _warn_training_only(layer):
    lost = [f"{a}={getattr(layer, a)}" for a in ("dropout", "recurrent_dropout")
            if getattr(layer, a, 0)]
    if getattr(layer, "stateful", False):
        lost.append("stateful=True (the torch module starts from zeros or the initial_state "
                    "it is given on every call)")
    if lost:
        warnings.warn(f"{layer.name}: {', '.join(lost)} not carried over to torch: the "
                      f"converted module computes the layer's inference output", stacklevel=4)


def _keras_rnn_to_torch(torch, layer, native_ok):
    _warn_training_only(layer)
    if native_ok and layer.return_sequences and not layer.return_state \
            and not layer.go_backwards:
        return _recurrent_native(torch, layer)
    return _wrappers()["KerasStyleRNN"](
        _recurrent_native(torch, layer), return_sequences=layer.return_sequences,
        return_state=layer.return_state, go_backwards=layer.go_backwards,
        time_major=layer.time_major)


def _same_config(f, b):
    return (type(f) is type(b) and f.units == b.units and f.use_bias == b.use_bias
            and f.activation == b.activation and f.time_major == b.time_major
            and getattr(f, "reset_after", True) == getattr(b, "reset_after", True)
            and f.input_shape[-1] == b.input_shape[-1])


def _bidirectional_to_torch(torch, layer, native_ok):
    f, b = layer.forward_layer, layer.backward_layer
    _require_built(f)
    _require_built(b)
    _warn_training_only(f)
    if b is not f:
        _warn_training_only(b)
    fusable = _same_config(f, b) and not f.go_backwards and b.go_backwards
    W = _wrappers()
    if fusable:
        native = _recurrent_native(torch, f, bidirectional_with=b)
        if native_ok and layer.merge_mode == "concat" and layer.return_sequences \
                and not layer.return_state:
            return native
        return W["KerasStyleBidirectional"](
            layer.merge_mode, layer.return_sequences, layer.return_state, layer.time_major,
            rnn=native)
    # The directions differ (a backward_layer of another kind, or a go_backwards forward
    # layer): each runs as its own Keras-style layer, returning its states.
    sub = [W["KerasStyleRNN"](_recurrent_native(torch, s), return_sequences=s.return_sequences,
                              return_state=True, go_backwards=s.go_backwards,
                              time_major=s.time_major) for s in (f, b)]
    return W["KerasStyleBidirectional"](
        layer.merge_mode, layer.return_sequences, layer.return_state, layer.time_major,
        forward_rnn=sub[0], backward_rnn=sub[1])


_ACTIVATIONS = {"linear": None, "relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid",
                "softmax": "Softmax", "softplus": "Softplus", "elu": "ELU"}


def _activation_to_torch(torch, name, who):
    if name not in _ACTIVATIONS:
        raise ValueError(f"{who}: activation {name!r} has no torch counterpart here; expected "
                         f"one of {sorted(_ACTIVATIONS)}")
    cls = _ACTIVATIONS[name]
    if cls is None:
        return None
    return torch.nn.Softmax(dim=-1) if cls == "Softmax" else getattr(torch.nn, cls)()


def _sequential_to_torch(torch, model):
    from ..layers.core import Activation, Dense, Dropout, Embedding, Masking, RepeatVector
    from ..layers.recurrent import Bidirectional, _Recurrent
    nn = torch.nn
    layers = model.layers
    if not model.built:
        raise ValueError(f"{model.name}: to_torch needs the model built (call it on a batch, or "
                         f"give it an Input / input_shape)")
    masked = [l.name for l in layers if isinstance(l, Masking)
              or (isinstance(l, Embedding) and l.mask_zero)]
    if masked:
        raise ValueError(f"{model.name}: layers {masked} produce a time mask (Masking, "
                         f"Embedding(mask_zero=True)); masks are not converted to torch, so the "
                         f"converted model would compute something else. Remove the mask (e.g. "
                         f"give lengths to a StackedRNN) or run the model in gatedrnn")
    modules = []
    for l in layers:
        dtype = _torch_dtype(torch, l.dtype)
        if isinstance(l, Dense):
            lin = nn.Linear(int(l._params["weight"].shape[1]), l.units, bias=l.use_bias,
                            dtype=dtype)
            _load(torch, lin, {k: p.value for k, p in l._params.items()})
            act = _activation_to_torch(torch, l.activation.name, l.name)
            modules.append(lin if act is None else nn.Sequential(lin, act))
        elif isinstance(l, Embedding):
            emb = nn.Embedding(l.input_dim, l.output_dim, dtype=dtype)
            _load(torch, emb, {"weight": l._params["embeddings"].value})
            modules.append(emb)
        elif isinstance(l, Dropout):
            if l.noise_shape is not None:
                warnings.warn(f"{l.name}: noise_shape={l.noise_shape} is not carried over: the "
                              f"torch Dropout draws one mask element per value while "
                              f"training (inference is the same)", stacklevel=3)
            modules.append(nn.Dropout(l.rate))
        elif isinstance(l, Activation):
            act = _activation_to_torch(torch, l.activation.name, l.name)
            modules.append(nn.Identity() if act is None else act)
        elif isinstance(l, RepeatVector):
            modules.append(_wrappers()["RepeatVector"](l.n))
        elif isinstance(l, _Recurrent):
            modules.append(_keras_rnn_to_torch(torch, l, native_ok=False))
        elif isinstance(l, Bidirectional):
            modules.append(_bidirectional_to_torch(torch, l, native_ok=False))
        elif isinstance(l, StackedRNN):
            native = _stacked_to_torch(torch, l)
            modules.append(_wrappers()["SequenceOutput"](native))
        else:
            raise TypeError(f"{model.name}: layer {l.name!r} ({type(l).__name__}) has no torch "
                            f"conversion; supported: Dense, Embedding, Dropout, Activation, "
                            f"RepeatVector, SimpleRNN, GRU, LSTM, Bidirectional, StackedRNN")
    return nn.Sequential(*modules)


def to_torch(obj):
    """The torch module that computes what the gatedrnn ``obj`` computes, with its weights.

    - :class:`StackedRNN` -> ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` with the same configuration
      (``dropout`` included) and state_dict.
    - ``SimpleRNNCell`` / ``GRUCell`` / ``LSTMCell`` -> ``nn.RNNCell`` / ``nn.GRUCell`` /
      ``nn.LSTMCell``.
    - ``SimpleRNN`` / ``GRU`` / ``LSTM`` layer -> a one-layer native module with
      ``batch_first=True`` (our layers are batch-major; ``batch_first=False`` for
      ``time_major``) when the layer returns its whole output sequence
      (``return_sequences=True``, no ``return_state``, no ``go_backwards``): the layer's output
      is then the module's ``output`` (its first return value). Otherwise a
      :class:`KerasStyleRNN` around that module, returning exactly what the layer returns
      (the last output, the Keras-ordered ``go_backwards`` sequence, ``[y, h, (c)]`` states).
    - ``Bidirectional`` -> a native bidirectional module when it concatenates whole output
      sequences (and both directions share one configuration), else a
      :class:`KerasStyleBidirectional` reproducing the layer's output.
    - ``Sequential`` model -> ``nn.Sequential`` of the converted layers (Dense -> Linear and its
      activation, Embedding, Dropout, Activation, RepeatVector; recurrent layers as the wrapper
      modules, which return one tensor). Models with a time mask are a ValueError.

    The returned module is in eval mode (as a gatedrnn call without ``training=True``); call
    ``.train()`` to train it. Training-only options that torch lacks (Keras-style ``dropout``
    and ``recurrent_dropout`` of a recurrent layer, ``stateful``) are not carried over, with a
    warning. A reset-before GRU (``reset_after=False``) is a ValueError: torch has none.
    """
    torch = _require_torch()
    from ..layers.cells import _Cell
    from ..layers.recurrent import Bidirectional, _Recurrent
    if isinstance(obj, StackedRNN):
        module = _stacked_to_torch(torch, obj)
    elif isinstance(obj, _Cell):
        module = _cell_to_torch(torch, obj)
    elif isinstance(obj, _Recurrent):
        module = _keras_rnn_to_torch(torch, obj, native_ok=True)
    elif isinstance(obj, Bidirectional):
        module = _bidirectional_to_torch(torch, obj, native_ok=True)
    elif _is_sequential(obj):
        module = _sequential_to_torch(torch, obj)
    else:
        raise TypeError(f"obj: expected a StackedRNN, a SimpleRNN/GRU/LSTM layer or cell, a "
                        f"Bidirectional layer or a Sequential model, got "
                        f"{type(obj).__module__}.{type(obj).__qualname__}")
    return module.eval()


def _is_sequential(obj):
    try:
        from ..models import Sequential
    except ImportError:     # the training API is optional for this converter
        return False
    return isinstance(obj, Sequential)
