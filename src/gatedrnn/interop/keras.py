"""Move layers and models between Keras and gatedrnn, with identical weights and results.

    >>> from gatedrnn.interop.keras import from_keras, to_keras
    >>> model = from_keras(keras_model)        # a keras layer or Sequential -> gatedrnn
    >>> keras_model = to_keras(model)          # and back: a built keras layer / Sequential
    >>> w = from_keras_weights("gru", keras_layer.get_weights())    # plain weight lists

A converted layer, called on the same input (same layout, same mask, same ``initial_state``),
returns what the source returns (the full sequence or the last step, as the source was
configured) and the same final states, up to float rounding.

**Supported.** Keras ``SimpleRNN``, ``GRU`` (``reset_after`` True and False), ``LSTM``, ``RNN``
wrapping one ``SimpleRNNCell`` / ``GRUCell`` / ``LSTMCell``, ``Bidirectional`` (every
``merge_mode``, a ``backward_layer``, ``go_backwards``), ``Dense``, ``Embedding`` (``mask_zero``),
``Masking``, ``Dropout``, ``RepeatVector``, ``Activation``, ``keras.Sequential`` and a functional
``keras.Model`` that is a plain chain (one input, each layer called once on the previous
layer's output). ``to_keras`` converts the same set the other way (and gatedrnn's
``Sequential``). Tested against Keras 3; tf.keras 2 stores the same weights and configs and is
read by the same code, but is not tested.

**Options.** ``units``, ``activation``, ``recurrent_activation``, ``use_bias``,
``return_sequences``, ``return_state``, ``go_backwards``, ``stateful`` (the current states are
copied too), ``dropout``, ``recurrent_dropout``, ``reset_after``, ``unit_forget_bias``,
``zero_output_for_mask``, ``time_major`` (tf.keras 2 only), ``trainable``, ``name`` and the dtype
(float32 or float64) carry over. The recurrent layers compute ``tanh`` (SimpleRNN: ``tanh`` or
``relu``) with ``sigmoid`` gates, exactly: anything else (``hard_sigmoid``, a ``relu`` LSTM, a
custom function) is a ``ValueError`` naming the argument, the supported values and the given
one, as is a dtype policy other than float32/float64 (``mixed_float16``) or a quantized layer.

**Ignored, because the result does not depend on them:** ``unroll``, ``implementation``,
``use_cudnn`` (implementation choices), ``seed`` (gatedrnn draws dropout masks from
:func:`gatedrnn.config.rng`). Initializers are mapped to gatedrnn's of the same name when there
is one (they only matter if the layer is re-initialized; the weights themselves are copied).

**Warned about** (a :class:`KerasConversionWarning`, the layer still converts): regularizers
(``kernel_regularizer``, ..., ``activity_regularizer``) and constraints, which act only while
training in Keras and are not applied by gatedrnn; and any configuration key this module does
not know (a newer Keras), with its value, so it can be checked.

**Masks.** gatedrnn's layers implement Keras's masked semantics: a masked step carries the
state over unchanged; its output (``return_sequences``) repeats the last valid output, or is
zero with ``zero_output_for_mask`` (which ``Bidirectional`` sets to ``return_sequences`` on its
two layers, in both systems); the last output is the last processing step's. Right- and
left-padded sequences (``keras.utils.pad_sequences`` pads on the left by default) and
``go_backwards`` are all exact. **A mask with holes** (a masked step between valid ones) is
rejected by gatedrnn's recurrent layers with a ``ValueError``; Keras would skip those steps.

**Weights.** Keras stores ``x @ kernel`` (in, out); gatedrnn stores PyTorch's (out, in)
layout, gate blocks LSTM ``i, f, g, o`` (Keras ``i, f, c, o``: the same order) and GRU
``r, z, n`` (Keras ``z, r, h``: the first two blocks swap). Keras -> gatedrnn is exact
(transposes, a permutation, zeros): ``weight_ih = kernel.T``, ``weight_hh =
recurrent_kernel.T``, ``bias_ih = bias``, ``bias_hh = 0``; a reset-after GRU's bias ``(2, 3U)``
gives ``bias_ih = bias[0]``, ``bias_hh = bias[1]``. gatedrnn -> Keras sums the two biases where
Keras has one (LSTM, SimpleRNN, and the reset-before GRU, whose ``b_hn`` sits outside the
reset gate: ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)``, Keras's
``tanh(x W_h + b_h + (r * h) U_h)``): the math is exact, the sum is rounded once to the weights'
dtype (at most half an ulp of the bias), so outputs agree to float rounding. A reset-after
GRU keeps both biases (exact).
"""

from __future__ import annotations

import inspect
import re
import warnings

import numpy as np

__all__ = ["from_keras", "to_keras", "from_keras_weights", "to_keras_weights",
           "KerasConversionWarning"]


class KerasConversionWarning(UserWarning):
    """Something of the source layer that the converted layer does not reproduce (training-only
    settings such as regularizers, or a configuration key this module does not know)."""


# --------------------------------------------------------------------------------------------
# Plain weight lists
# --------------------------------------------------------------------------------------------

_GATES = {"simple_rnn": 1, "gru": 3, "lstm": 4}
_KINDS = {"simple_rnn": "simple_rnn", "simplernn": "simple_rnn", "rnn": "simple_rnn",
          "gru": "gru", "lstm": "lstm", "dense": "dense", "embedding": "embedding"}
_KIND_NAMES = "'simple_rnn', 'gru', 'lstm', 'dense', 'embedding'"


def _kind(kind):
    k = _KINDS.get(str(kind).lower()) if isinstance(kind, str) else None
    if k is None:
        raise ValueError(f"kind: expected one of {_KIND_NAMES} (or the Keras class names "
                         f"'SimpleRNN', 'GRU', 'LSTM', 'Dense', 'Embedding'), got {kind!r}")
    return k


def _swap_gru_blocks(a, axis):
    """Keras GRU blocks [z | r | h] <-> gatedrnn's [r | z | n] (the swap is its own inverse)."""
    z, r, h = np.split(a, 3, axis=axis)
    return np.concatenate([r, z, h], axis=axis)


def _arrays(weights, what):
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
        raise TypeError(f"{what}: expected a list of arrays (get_weights()), got "
                        f"{type(weights).__name__}")
    out = []
    for i, w in enumerate(weights):
        a = np.asarray(w)
        if a.dtype.kind != "f":
            raise TypeError(f"{what}[{i}]: expected a float array, got dtype {a.dtype}")
        out.append(a)
    return out


def _check_shape(a, expected, what):
    if a.shape != tuple(expected):
        raise ValueError(f"{what}: expected shape {tuple(expected)}, got {a.shape}")


def _split_directions(ws, per, per_no_bias, bidirectional, what, layout):
    d = 2 if bidirectional else 1
    if len(ws) not in (d * per, d * per_no_bias):
        raise ValueError(f"{what}: expected {d * per} arrays ({layout}"
                         f"{', per direction, forward first' if bidirectional else ''}; "
                         f"{d * per_no_bias} without biases), got {len(ws)}")
    if bidirectional:
        half = len(ws) // 2
        return [ws[:half], ws[half:]]
    return [ws]


def from_keras_weights(kind, weights, *, units=None, reset_after=None, bidirectional=False):
    """Convert a Keras ``get_weights()`` list to gatedrnn's canonical arrays.

    Args:
        kind: ``"simple_rnn"``, ``"gru"``, ``"lstm"``, ``"dense"`` or ``"embedding"`` (the Keras
            class names ``"SimpleRNN"``, ``"GRU"``, ... work too).
        weights: for a recurrent layer ``[kernel (I, G*U), recurrent_kernel (U, G*U), bias]``
            (``bias`` is ``(G*U,)``, or ``(2, 3U)`` for a reset-after GRU; absent when
            ``use_bias=False``); with ``bidirectional=True`` the forward layer's arrays then the
            backward layer's (``keras.layers.Bidirectional.get_weights()``). Dense:
            ``[kernel (in, units), bias]``; Embedding: ``[embeddings]``.
        units: optional check of U (it is read from ``recurrent_kernel``).
        reset_after: GRU only, optional: it is read from the bias shape; when given it must
            agree (a GRU without biases converts the same either way).
        bidirectional: the list holds two directions.

    Returns:
        The list for gatedrnn's ``layer.set_weights``: per direction ``[weight_ih (G*U, I),
        weight_hh (G*U, U), bias_ih (G*U,), bias_hh (G*U,)]`` (only the first two without
        biases); Dense ``[weight (units, in), bias]``; Embedding ``[embeddings]``. Exact (no
        arithmetic), in the dtype of the given arrays.
    """
    kind = _kind(kind)
    ws = _arrays(weights, "weights")
    if kind == "dense":
        if bidirectional or len(ws) not in (1, 2) or ws[0].ndim != 2:
            raise ValueError(f"weights: expected [kernel (in, units), bias (units,)] for Dense, "
                             f"got shapes {[w.shape for w in ws]}")
        if len(ws) == 2:
            _check_shape(ws[1], (ws[0].shape[1],), "weights[1] (bias)")
        return [np.ascontiguousarray(ws[0].T)] + [w.copy() for w in ws[1:]]
    if kind == "embedding":
        if bidirectional or len(ws) != 1 or ws[0].ndim != 2:
            raise ValueError(f"weights: expected [embeddings (input_dim, output_dim)] for "
                             f"Embedding, got shapes {[w.shape for w in ws]}")
        return [ws[0].copy()]
    G = _GATES[kind]
    out = []
    layout = "kernel, recurrent_kernel, bias"
    for d, dw in enumerate(_split_directions(ws, 3, 2, bidirectional, "weights", layout)):
        base = (3 * d) if len(ws) in (3, 6) else 2 * d
        name = lambda i, n: f"weights[{base + i}] ({n})"          # noqa: E731
        kernel, rec = dw[0], dw[1]
        if rec.ndim != 2 or rec.shape[1] != G * rec.shape[0]:
            raise ValueError(f"{name(1, 'recurrent_kernel')}: expected shape (U, {G}*U) for "
                             f"{kind}, got {rec.shape}")
        U = rec.shape[0]
        if units is not None and U != units:
            raise ValueError(f"units: the recurrent kernel has U = {U}, got units={units}")
        if kernel.ndim != 2 or kernel.shape[1] != G * U:
            raise ValueError(f"{name(0, 'kernel')}: expected shape (I, {G * U}) with U = {U} "
                             f"from recurrent_kernel, got {kernel.shape}")
        w_ih, w_hh = kernel.T, rec.T
        if kind == "gru":
            w_ih, w_hh = _swap_gru_blocks(w_ih, 0), _swap_gru_blocks(w_hh, 0)
        arrays = [np.ascontiguousarray(w_ih), np.ascontiguousarray(w_hh)]
        if len(dw) == 3:
            bias = dw[2]
            if kind == "gru":
                is_after = bias.shape == (2, 3 * U)
                if not is_after:
                    _check_shape(bias, (3 * U,), f"{name(2, 'bias')} (GRU: (2, 3U) for "
                                 f"reset_after=True, (3U,) for reset_after=False)")
                if reset_after is not None and bool(reset_after) != is_after:
                    raise ValueError(f"reset_after: the GRU bias has shape {bias.shape}, which "
                                     f"means reset_after={is_after}, got reset_after="
                                     f"{reset_after}")
                b_ih, b_hh = (bias[0], bias[1]) if is_after else (bias, np.zeros_like(bias))
                b_ih, b_hh = _swap_gru_blocks(b_ih, 0), _swap_gru_blocks(b_hh, 0)
            else:
                _check_shape(bias, (G * U,), name(2, "bias"))
                b_ih, b_hh = bias, np.zeros_like(bias)
            arrays += [np.array(b_ih), np.array(b_hh)]
        out += arrays
    return out


def to_keras_weights(kind, weights, *, reset_after=True, bidirectional=False):
    """Convert gatedrnn's canonical arrays (``layer.get_weights()``) to a Keras weight list.

    Args:
        kind: as :func:`from_keras_weights`.
        weights: per direction ``[weight_ih (G*H, I), weight_hh (G*H, H), bias_ih, bias_hh]``
            (or the first two, without biases), forward first when ``bidirectional``; Dense
            ``[weight (units, in), bias]``; Embedding ``[embeddings]``.
        reset_after: GRU only: the Keras layer's ``reset_after`` (it cannot be read from the
            arrays). ``True`` gives the bias ``(2, 3H)`` = ``[bias_ih; bias_hh]`` (exact);
            ``False`` gives ``(3H,)`` = ``bias_ih + bias_hh``.
        bidirectional: the list holds two directions.

    Returns:
        The list for the Keras layer's ``set_weights``: ``[kernel, recurrent_kernel, bias]`` per
        direction, Dense ``[kernel, bias]``, Embedding ``[embeddings]``. LSTM, SimpleRNN and the
        reset-before GRU have one bias in Keras: it is ``bias_ih + bias_hh`` (exact math, the
        sum rounded once to the arrays' dtype).
    """
    kind = _kind(kind)
    ws = _arrays(weights, "weights")
    if kind == "dense":
        if bidirectional or len(ws) not in (1, 2) or ws[0].ndim != 2:
            raise ValueError(f"weights: expected [weight (units, in), bias (units,)] for Dense, "
                             f"got shapes {[w.shape for w in ws]}")
        if len(ws) == 2:
            _check_shape(ws[1], (ws[0].shape[0],), "weights[1] (bias)")
        return [np.ascontiguousarray(ws[0].T)] + [w.copy() for w in ws[1:]]
    if kind == "embedding":
        return from_keras_weights(kind, ws)
    G = _GATES[kind]
    out = []
    layout = "weight_ih, weight_hh, bias_ih, bias_hh"
    dirs = _split_directions(ws, 4, 2, bidirectional, "weights", layout)
    for d, dw in enumerate(dirs):
        base = len(dirs[0]) * d
        w_ih, w_hh = dw[0], dw[1]
        if w_hh.ndim != 2 or w_hh.shape[0] != G * w_hh.shape[1]:
            raise ValueError(f"weights[{base + 1}] (weight_hh): expected shape ({G}*H, H) for "
                             f"{kind}, got {w_hh.shape}")
        H = w_hh.shape[1]
        if w_ih.ndim != 2 or w_ih.shape[0] != G * H:
            raise ValueError(f"weights[{base}] (weight_ih): expected shape ({G * H}, I) with "
                             f"H = {H} from weight_hh, got {w_ih.shape}")
        if kind == "gru":
            w_ih, w_hh = _swap_gru_blocks(w_ih, 0), _swap_gru_blocks(w_hh, 0)
        arrays = [np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T)]
        if len(dw) == 4:
            b_ih, b_hh = dw[2], dw[3]
            _check_shape(b_ih, (G * H,), f"weights[{base + 2}] (bias_ih)")
            _check_shape(b_hh, (G * H,), f"weights[{base + 3}] (bias_hh)")
            if kind == "gru":
                b_ih, b_hh = _swap_gru_blocks(b_ih, 0), _swap_gru_blocks(b_hh, 0)
            if kind == "gru" and reset_after:
                arrays.append(np.stack([b_ih, b_hh]))
            else:
                arrays.append(np.add(b_ih, b_hh, dtype=np.result_type(b_ih, b_hh)))
        out += arrays
    return out


# --------------------------------------------------------------------------------------------
# Recognising Keras objects (by class, without importing keras ourselves)
# --------------------------------------------------------------------------------------------

_KNOWN_CLASSES = ("Sequential", "Functional", "InputLayer", "Bidirectional", "SimpleRNN", "GRU",
                  "LSTM", "RNN", "Dense", "Embedding", "Masking", "Dropout", "RepeatVector",
                  "Activation", "Model", "Layer")
_SUPPORTED = ("SimpleRNN, GRU, LSTM, RNN (one SimpleRNNCell/GRUCell/LSTMCell), Bidirectional, "
              "Dense, Embedding, Masking, Dropout, RepeatVector, Activation, Sequential, or a "
              "functional Model that is a plain chain of these")


def _is_keras_class(cls):
    mod = cls.__module__ or ""
    return mod.split(".")[0] in ("keras", "tf_keras", "tensorflow")


def _keras_class(obj):
    """The name of the first Keras class we know in ``type(obj).__mro__`` (None if it is not a
    Keras object)."""
    for cls in type(obj).__mro__:
        if cls.__name__ in _KNOWN_CLASSES and _is_keras_class(cls):
            return cls.__name__
    return None


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _dtype_of(layer):
    """float32 / float64 from the layer's dtype policy (compute and variable dtype agree)."""
    policy = getattr(layer, "dtype_policy", None)
    compute = getattr(policy, "compute_dtype", None) or getattr(layer, "compute_dtype", None)
    variable = getattr(policy, "variable_dtype", None) or getattr(layer, "dtype", None)
    compute = str(compute or variable)
    variable = str(variable or compute)
    if compute != variable or compute not in ("float32", "float64"):
        name = getattr(policy, "name", compute)
        raise ValueError(f"{layer.name}: dtype: gatedrnn computes in float32 or float64 "
                         f"(compute and variable dtype the same), got the policy {name!r} "
                         f"(compute {compute}, variables {variable})")
    return compute


def _activation_name(value):
    """Keras config activations are names (strings); anything else is a custom function."""
    if value is None:
        return "linear"
    if isinstance(value, str):
        return value
    if isinstance(value, dict):      # a serialized custom/registered function
        return value.get("config", value.get("class_name", repr(value)))
    return getattr(value, "__name__", repr(value))


def _initializer(value):
    """gatedrnn's initializer of the same name as a Keras one, else None (use the default)."""
    from .. import initializers as _init
    if isinstance(value, str):
        name, cfg = value, {}
    elif isinstance(value, dict) and "class_name" in value:
        name, cfg = _snake(str(value["class_name"])), dict(value.get("config") or {})
    else:
        return None
    cls = _init._NAMES.get(name.lower())
    if cls is None:
        return None
    params = inspect.signature(cls.__init__).parameters
    cfg = {k: v for k, v in cfg.items() if k in params and v is not None}
    try:
        return cls(**cfg)
    except Exception:  # noqa: BLE001 - an initializer we cannot rebuild: keep the default
        return None


_TRAINING_ONLY = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                  "activity_regularizer", "embeddings_regularizer", "kernel_constraint",
                  "recurrent_constraint", "bias_constraint", "embeddings_constraint")
_IGNORED = ("name", "trainable", "dtype", "unroll", "implementation", "seed", "use_cudnn",
            "input_length", "batch_input_shape", "batch_shape", "input_shape",
            "registered_name", "module")
_INITIALIZERS = ("kernel_initializer", "recurrent_initializer", "bias_initializer",
                 "embeddings_initializer")
_MUST_BE_UNSET = ("quantization_config", "lora_rank")


def _warn(msg):
    warnings.warn(msg, KerasConversionWarning, stacklevel=4)


class _Options:
    """Walks a Keras config: each key is taken, ignored, warned about, or an error."""

    def __init__(self, layer, cfg):
        self.layer, self.cfg, self.taken = layer, dict(cfg), set()
        self.name = cfg.get("name", getattr(layer, "name", "?"))

    def take(self, key, default=None):
        self.taken.add(key)
        return self.cfg.get(key, default)

    def finish(self, kwargs):
        """Check every key not taken; put mapped initializers into ``kwargs``."""
        unknown, training = [], []
        for key, value in self.cfg.items():
            if key in self.taken or key in _IGNORED:
                continue
            if key in _INITIALIZERS:
                init = _initializer(value)
                if init is not None:
                    kwargs[key] = init
            elif key in _TRAINING_ONLY:
                if value is not None:
                    training.append(key)
            elif key in _MUST_BE_UNSET:
                if value not in (None, 0):
                    raise ValueError(f"{self.name}: {key}: gatedrnn runs the float weights "
                                     f"only, expected None, got {value!r}")
            else:
                unknown.append(f"{key}={value!r}")
        if training:
            _warn(f"{self.name}: {', '.join(training)} act only while training in Keras; "
                  f"the converted gatedrnn layer does not apply them")
        if unknown:
            _warn(f"{self.name}: configuration keys gatedrnn's converter does not know, "
                  f"ignored: {', '.join(unknown)}; check the converted layer's outputs")
        return kwargs


# --------------------------------------------------------------------------------------------
# from_keras
# --------------------------------------------------------------------------------------------

_CELL_KINDS = {"SimpleRNNCell": "simple_rnn", "GRUCell": "gru", "LSTMCell": "lstm"}
_LAYER_KINDS = {"SimpleRNN": "simple_rnn", "GRU": "gru", "LSTM": "lstm"}


def _get_weights(layer):
    return [np.asarray(w) for w in layer.get_weights()]


def _recurrent_kind(layer):
    cls = _keras_class(layer)
    if cls in _LAYER_KINDS:
        return _LAYER_KINDS[cls]
    cell = getattr(layer, "cell", None)
    cell_cls = type(cell).__name__
    if cls == "RNN" and cell_cls in _CELL_KINDS and _is_keras_class(type(cell)):
        return _CELL_KINDS[cell_cls]
    raise ValueError(f"{layer.name}: cell: gatedrnn converts RNN layers wrapping one "
                     f"SimpleRNNCell, GRUCell or LSTMCell, got {cell_cls}")


def _recurrent_from_keras(layer):
    from ..layers import GRU, LSTM, SimpleRNN
    kind = _recurrent_kind(layer)
    cfg = dict(layer.get_config())
    if "cell" in cfg:                 # keras.layers.RNN(cell): the cell holds the cell options
        cfg.pop("cell")
        cfg.update({k: v for k, v in layer.cell.get_config().items()
                    if k not in ("name", "trainable", "dtype")})
    o = _Options(layer, cfg)
    cls_name = {"simple_rnn": "SimpleRNN", "gru": "GRU", "lstm": "LSTM"}[kind]
    activation = _activation_name(o.take("activation", "tanh"))
    allowed = ("tanh", "relu") if kind == "simple_rnn" else ("tanh",)
    if activation not in allowed:
        raise ValueError(f"{o.name}: activation: gatedrnn computes {cls_name} with "
                         f"{' or '.join(map(repr, allowed))}, got {activation!r}")
    kwargs = {"name": o.name, "trainable": bool(o.take("trainable", True)),
              "dtype": _dtype_of(layer), "activation": activation}
    if kind != "simple_rnn":
        rec_act = _activation_name(o.take("recurrent_activation", "sigmoid"))
        if rec_act != "sigmoid":
            raise ValueError(f"{o.name}: recurrent_activation: gatedrnn computes the {cls_name} "
                             f"gates with 'sigmoid', got {rec_act!r}"
                             + (" (Keras 3: relu6(x + 3) / 6; Keras 2: clip(0.2 x + 0.5, 0, 1))"
                                if rec_act == "hard_sigmoid" else ""))
        kwargs["recurrent_activation"] = "sigmoid"
    for key in ("units", "use_bias", "return_sequences", "return_state", "go_backwards",
                "stateful", "dropout", "recurrent_dropout", "zero_output_for_mask",
                "time_major"):
        if key in cfg:
            kwargs[key] = o.take(key)
    if kind == "gru":
        kwargs["reset_after"] = bool(o.take("reset_after", True))
    if kind == "lstm":
        kwargs["unit_forget_bias"] = bool(o.take("unit_forget_bias", True))
    o.finish(kwargs)
    ours = {"simple_rnn": SimpleRNN, "gru": GRU, "lstm": LSTM}[kind](**kwargs)
    if layer.built and layer.get_weights():
        weights = _get_weights(layer)
        ours.build((None, None, weights[0].shape[0]))
        ours.set_weights(from_keras_weights(
            kind, weights, reset_after=ours.reset_after if kind == "gru" else None))
        states = getattr(layer, "states", None)
        if ours.stateful and states is not None and all(s is not None for s in states):
            ours.reset_states([np.asarray(_to_numpy(s), ours.dtype) for s in states])
    return ours


def _to_numpy(v):
    if hasattr(v, "numpy"):
        return v.numpy()
    return np.asarray(v)


def _bidirectional_from_keras(layer):
    from ..layers import Bidirectional
    o = _Options(layer, layer.get_config())
    o.take("layer")
    o.take("backward_layer")
    merge_mode = o.take("merge_mode", "concat")
    if getattr(layer, "stateful", False):
        raise ValueError(f"{o.name}: stateful: gatedrnn's Bidirectional has no stateful mode, "
                         f"expected False, got True")
    fwd = _recurrent_from_keras(layer.forward_layer)
    bwd = _recurrent_from_keras(layer.backward_layer)
    # gatedrnn names the forward copy "forward_" + the wrapped layer's name, as Keras does
    if fwd.name.startswith("forward_"):
        fwd.name = fwd.name[len("forward_"):]
    kwargs = o.finish({"name": o.name, "trainable": bool(o.take("trainable", True)),
                       "dtype": _dtype_of(layer)})
    ours = Bidirectional(fwd, merge_mode=merge_mode, backward_layer=bwd, **kwargs)
    if layer.forward_layer.built and layer.forward_layer.get_weights():
        f_w = from_keras_weights(_recurrent_kind(layer.forward_layer),
                                 _get_weights(layer.forward_layer))
        b_w = from_keras_weights(_recurrent_kind(layer.backward_layer),
                                 _get_weights(layer.backward_layer))
        ours.build((None, None, f_w[0].shape[1]))
        ours.set_weights(f_w + b_w)
    return ours


def _simple_from_keras(layer, cls):
    from .. import layers as L
    o = _Options(layer, layer.get_config())
    kwargs = {"name": o.name, "trainable": bool(o.take("trainable", True)),
              "dtype": _dtype_of(layer)}
    if cls == "Dense":
        kwargs.update(units=o.take("units"), use_bias=bool(o.take("use_bias", True)),
                      activation=_checked_activation(o, "activation"))
        ours = L.Dense(**o.finish(kwargs))
        if layer.built:
            w = from_keras_weights("dense", _get_weights(layer))
            ours.build((None, w[0].shape[1]))
            ours.set_weights(w)
        return ours
    if cls == "Embedding":
        kwargs.update(input_dim=o.take("input_dim"), output_dim=o.take("output_dim"),
                      mask_zero=bool(o.take("mask_zero", False)))
        ours = L.Embedding(**o.finish(kwargs))
        if layer.built:
            ours.build((None, None))
            ours.set_weights(_get_weights(layer))
        return ours
    if cls == "Masking":
        kwargs["mask_value"] = o.take("mask_value", 0.0)
        return L.Masking(**o.finish(kwargs))
    if cls == "Dropout":
        kwargs.update(rate=o.take("rate"), noise_shape=o.take("noise_shape"))
        return L.Dropout(**o.finish(kwargs))
    if cls == "RepeatVector":
        kwargs["n"] = o.take("n")
        return L.RepeatVector(**o.finish(kwargs))
    if cls == "Activation":
        kwargs["activation"] = _checked_activation(o, "activation")
        return L.Activation(**o.finish(kwargs))
    raise AssertionError(cls)


def _checked_activation(o, key):
    from .. import activations as _act
    name = _activation_name(o.take(key))
    if name not in _act._ALL:
        raise ValueError(f"{o.name}: {key}: gatedrnn has {sorted(_act._ALL)}, got {name!r}")
    return name


def _layer_from_keras(layer):
    cls = _keras_class(layer)
    if cls in ("SimpleRNN", "GRU", "LSTM", "RNN"):
        return _recurrent_from_keras(layer)
    if cls == "Bidirectional":
        return _bidirectional_from_keras(layer)
    if cls in ("Dense", "Embedding", "Masking", "Dropout", "RepeatVector", "Activation"):
        return _simple_from_keras(layer, cls)
    if cls in ("Sequential", "Functional"):
        return _model_from_keras(layer)
    what = type(layer).__name__
    raise TypeError(f"from_keras: gatedrnn converts {_SUPPORTED}; got "
                    f"{what}{'' if cls else ' (not a Keras object)'}"
                    + (" (a subclassed Model has no layer graph to read)" if cls == "Model"
                       else ""))


def _chain_layers(model):
    """The layers of a functional model that is a plain chain, in order (else ValueError)."""
    inputs, outputs = list(model.inputs), list(model.outputs)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"{model.name}: gatedrnn converts functional models with one input "
                         f"and one output (a chain of layers), got {len(inputs)} inputs and "
                         f"{len(outputs)} outputs")
    prev = inputs[0]
    chain = []
    for layer in model.layers:
        if _keras_class(layer) == "InputLayer":
            continue
        nodes = getattr(layer, "_inbound_nodes", None)
        if nodes is not None and len(nodes) != 1:
            raise ValueError(f"{model.name}: layer {layer.name} is called {len(nodes)} times; "
                             f"only a plain chain of layers converts")
        try:
            y = layer.output
        except Exception as exc:  # noqa: BLE001 - a layer with several outputs
            raise ValueError(f"{model.name}: layer {layer.name}: {exc}; only a plain chain of "
                             f"layers converts") from None
        args = getattr(nodes[0], "arguments", None) if nodes else None
        if args is not None:
            # Keras 3 passes the propagated time mask as a `mask` keyword argument
            ok = (len(args.args) == 1 and args.args[0] is prev
                  and set(args.kwargs) <= {"mask", "training"})
        else:                                   # tf.keras 2
            ok = layer.input is prev
        if not ok:
            raise ValueError(f"{model.name}: layer {layer.name} does not take the previous "
                             f"layer's single output as its only input; only a plain chain of "
                             f"layers converts (a Sequential model, or a functional model "
                             f"without branches, extra inputs or initial_state arguments)")
        chain.append(layer)
        prev = y
    if prev is not outputs[0]:
        raise ValueError(f"{model.name}: the model's output is not its last layer's output; "
                         f"only a plain chain of layers converts")
    return chain, inputs[0]


def _model_from_keras(model):
    from ..models import Input, Sequential
    cls = _keras_class(model)
    if cls == "Functional":
        layers, inp = _chain_layers(model)
    else:
        layers = [l for l in model.layers if _keras_class(l) != "InputLayer"]
        try:
            inp = model.inputs[0]
        except Exception:  # noqa: BLE001 - an unbuilt Sequential has no inputs
            inp = None
    ours = []
    for layer in layers:
        converted = from_keras(layer)
        ours.extend(converted.layers if isinstance(converted, Sequential) else [converted])
    seq = []
    if inp is not None and getattr(inp, "shape", None) is not None:
        dtype = getattr(inp, "dtype", None)
        seq.append(Input(shape=tuple(inp.shape)[1:], dtype=getattr(dtype, "name", dtype)))
    return Sequential(seq + ours, name=model.name)


def from_keras(layer_or_model):
    """The gatedrnn equivalent of a Keras layer or model, with the same weights and options.

    Args:
        layer_or_model: a Keras ``SimpleRNN``, ``GRU``, ``LSTM``, ``RNN`` (one built-in cell),
            ``Bidirectional``, ``Dense``, ``Embedding``, ``Masking``, ``Dropout``,
            ``RepeatVector`` or ``Activation`` layer, a ``keras.Sequential`` of them, or a
            functional ``keras.Model`` that is a plain chain of them.

    Returns:
        The gatedrnn layer (built with the Keras weights when the Keras layer was built) or a
        :class:`gatedrnn.Sequential` (with the Keras model's input shape when it has one).

    Raises:
        TypeError: an object that is not one of the above.
        ValueError: an option gatedrnn cannot reproduce (the message names the argument, what
            gatedrnn supports and the given value), e.g. ``recurrent_activation='hard_sigmoid'``.

    See the module documentation for what carries over, what is ignored and what warns.
    """
    return _layer_from_keras(layer_or_model)


# --------------------------------------------------------------------------------------------
# to_keras
# --------------------------------------------------------------------------------------------

def _keras():
    # Keras picks its backend at its first import: that choice is the user's (KERAS_BACKEND).
    try:
        import keras
    except Exception as exc:  # noqa: BLE001 - any import failure means keras is unusable
        raise ImportError(f"to_keras needs keras (pip install keras; choose its backend with "
                          f"KERAS_BACKEND before the first import): {exc}") from exc
    return keras


def _keras_major(keras):
    try:
        return int(str(keras.__version__).split(".")[0])
    except ValueError:
        return 3


def _keras_initializer(keras, init):
    """The Keras initializer of the same name as a gatedrnn one (None: keep Keras's default)."""
    from .. import initializers as _init
    try:
        d = _init.serialize(init)
    except ValueError:
        return None
    name = "".join(p.capitalize() for p in d["class_name"].split("_"))
    try:
        return keras.initializers.get({"class_name": name, "config": dict(d["config"])})
    except Exception:  # noqa: BLE001 - no such Keras initializer (torch_uniform)
        return None


def _base_kwargs(layer):
    return {"name": layer.name, "trainable": layer.trainable, "dtype": layer.dtype.name}


def _recurrent_to_keras(keras, layer, batch_size=None):
    from ..layers import GRU, LSTM, SimpleRNN
    kind = {SimpleRNN: "simple_rnn", GRU: "gru", LSTM: "lstm"}.get(type(layer))
    if kind is None:
        raise TypeError(f"to_keras: expected a SimpleRNN, GRU or LSTM layer, got "
                        f"{type(layer).__name__}")
    kwargs = _base_kwargs(layer)
    kwargs.update(units=layer.units, use_bias=layer.use_bias,
                  return_sequences=layer.return_sequences, return_state=layer.return_state,
                  go_backwards=layer.go_backwards, stateful=layer.stateful,
                  dropout=layer.dropout, recurrent_dropout=layer.recurrent_dropout,
                  zero_output_for_mask=layer.zero_output_for_mask)
    if layer.time_major:
        if _keras_major(keras) >= 3:
            raise ValueError(f"{layer.name}: time_major: Keras 3 layers are batch-major only, "
                             f"expected False, got True")
        kwargs["time_major"] = True
    if kind == "simple_rnn":
        kwargs["activation"] = layer.activation
    if kind == "gru":
        kwargs["reset_after"] = layer.reset_after
    if kind == "lstm":
        kwargs["unit_forget_bias"] = layer.unit_forget_bias
    for key in ("kernel_initializer", "recurrent_initializer", "bias_initializer"):
        init = _keras_initializer(keras, getattr(layer, key))
        if init is not None:
            kwargs[key] = init
    cls = {"simple_rnn": keras.layers.SimpleRNN, "gru": keras.layers.GRU,
           "lstm": keras.layers.LSTM}[kind]
    out = cls(**kwargs)
    if layer.built:
        batch = None
        if layer.stateful:
            batch = batch_size
            if layer.states is not None:
                batch = layer.states[0].shape[0]
            if batch is None:
                raise ValueError(f"{layer.name}: stateful: a stateful Keras layer needs a fixed "
                                 f"batch size; pass to_keras(..., batch_size=N)")
        out.build((batch, None, layer.input_shape[-1]))
        out.set_weights(to_keras_weights(kind, layer.get_weights(),
                                         reset_after=getattr(layer, "reset_after", True)))
        if layer.stateful and layer.states is not None:
            for var, s in zip(out.states, layer.states):
                var.assign(s)
    return out


def _bidirectional_to_keras(keras, layer):
    f, b = layer.forward_layer, layer.backward_layer
    fk = _recurrent_to_keras(keras, f)
    bk = _recurrent_to_keras(keras, b)
    out = keras.layers.Bidirectional(fk, merge_mode=layer.merge_mode, backward_layer=bk,
                                     **_base_kwargs(layer))
    if layer.built:
        out.build((None, None, f.input_shape[-1]))
        weights = []
        for sub in (f, b):
            kind = {"rnn": "simple_rnn"}.get(sub.cell, sub.cell)
            weights += to_keras_weights(kind, sub.get_weights(),
                                        reset_after=getattr(sub, "reset_after", True))
        out.set_weights(weights)
    return out


def _simple_to_keras(keras, layer):
    from .. import layers as L
    kw = _base_kwargs(layer)
    t = type(layer)
    if t is L.Dense:
        kw.update(units=layer.units, activation=layer.activation.name, use_bias=layer.use_bias)
        out = keras.layers.Dense(**kw)
        if layer.built:
            out.build((None, layer.input_shape[-1]))
            out.set_weights(to_keras_weights("dense", layer.get_weights()))
        return out
    if t is L.Embedding:
        out = keras.layers.Embedding(layer.input_dim, layer.output_dim,
                                     mask_zero=layer.mask_zero, **kw)
        if layer.built:
            out.build((None, None))
            out.set_weights(layer.get_weights())
        return out
    if t is L.Masking:
        return keras.layers.Masking(mask_value=layer.mask_value, **kw)
    if t is L.Dropout:
        return keras.layers.Dropout(layer.rate, noise_shape=layer.noise_shape, **kw)
    if t is L.RepeatVector:
        return keras.layers.RepeatVector(layer.n, **kw)
    if t is L.Activation:
        return keras.layers.Activation(layer.activation.name, **kw)
    return None


def _layer_to_keras(keras, obj, batch_size=None):
    from .. import layers as L
    from ..models import Sequential
    if isinstance(obj, Sequential):
        return _sequential_to_keras(keras, obj, batch_size)
    if type(obj) in (L.SimpleRNN, L.GRU, L.LSTM):
        return _recurrent_to_keras(keras, obj, batch_size)
    if type(obj) is L.Bidirectional:
        return _bidirectional_to_keras(keras, obj)
    out = _simple_to_keras(keras, obj)
    if out is None:
        raise TypeError(f"to_keras: expected a gatedrnn SimpleRNN, GRU, LSTM, Bidirectional, "
                        f"Dense, Embedding, Masking, Dropout, RepeatVector or Activation layer or "
                        f"a gatedrnn Sequential, got {type(obj).__name__}")
    return out


def _sequential_to_keras(keras, model, batch_size=None):
    from .. import layers as L
    stateful = [l for l in model.layers if getattr(l, "stateful", False)]
    if stateful:
        # Keras builds a stateful model for one fixed batch size: the carried state's
        batch_size = next((l.states[0].shape[0] for l in stateful if l.states is not None),
                          batch_size)
        if batch_size is None:
            raise ValueError(f"{model.name}: stateful layers need a fixed batch size in Keras; "
                             f"pass to_keras(..., batch_size=N)")
    layers = [_layer_to_keras(keras, l, batch_size) for l in model.layers]
    shape = model._input_shape
    head = []
    if shape is not None:
        dtype = "int32" if model.layers and type(model.layers[0]) is L.Embedding else None
        if stateful:
            head = [keras.Input(batch_shape=(batch_size,) + tuple(shape[1:]), dtype=dtype)]
        else:
            head = [keras.Input(shape=tuple(shape[1:]), dtype=dtype)]
    return keras.Sequential(head + layers, name=model.name)


def to_keras(layer_or_model, *, batch_size=None):
    """The Keras equivalent of a gatedrnn layer or Sequential model, built, weights set.

    Args:
        layer_or_model: a gatedrnn ``SimpleRNN``, ``GRU``, ``LSTM``, ``Bidirectional``,
            ``Dense``, ``Embedding``, ``Masking``, ``Dropout``, ``RepeatVector`` or
            ``Activation`` layer, or a :class:`gatedrnn.Sequential` of them.
        batch_size: only for a stateful recurrent layer with no carried state yet: the fixed
            batch size Keras needs to build it (otherwise it is the state's batch size).

    Returns:
        The Keras layer (built with the weights when the gatedrnn layer was built; unbuilt
        otherwise) or a ``keras.Sequential`` (with a ``keras.Input`` when the gatedrnn model
        knows its input shape).

    Keras is imported here; its backend is whatever ``KERAS_BACKEND`` selects (this function
    does not choose one). Where Keras has one bias and gatedrnn two, Keras gets their sum (see
    :func:`to_keras_weights`). ``time_major=True`` has no Keras 3 equivalent (a ValueError).
    """
    keras = _keras()
    return _layer_to_keras(keras, layer_or_model, batch_size)
