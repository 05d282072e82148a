"""Losses with their gradient, in plain NumPy (Keras 3 semantics).

Every loss maps ``(y_true, y_pred, mask=None)`` to a scalar and, through
:meth:`Loss.forward_backward`, also to ``dL/dy_pred``: the model's backward pass starts there.
There is no autograd: each loss states its own derivative.

Conventions (those of Keras 3):

- Reduction is ``"sum_over_batch_size"``: a per-position value is computed for every sample
  (and every time step when ``y_pred`` is ``(B, T, C)``), then averaged over all positions.
  For :class:`MeanSquaredError` and :class:`BinaryCrossentropy` the per-position value is the
  mean over the last axis; for the categorical losses it is the cross-entropy of the
  distribution along the last axis.  A 1-D ``y_pred`` of shape ``(B,)`` is treated as ``(B, 1)``
  by the first two (one value per sample) and as a single distribution by the categorical ones.
- ``mask`` (boolean, shape ``y_pred.shape[:-1]``, e.g. ``(B, T)`` for ``(B, T, C)``; for a 1-D
  ``y_pred`` under MSE/BCE, shape ``(B,)``) selects the positions that count: the loss is
  ``sum(loss * mask) / sum(mask)``.  When nothing is selected (or the batch is empty) the loss
  is 0 and the gradient is all zeros, never NaN.
- ``from_logits=False``: predictions are probabilities, clipped to ``[1e-7, 1 - 1e-7]``; the
  gradient through the clip is zero where the prediction lies outside that interval (as
  ``clip_by_value`` differentiates).  The categorical losses first divide ``y_pred`` by its sum
  over the last axis, as Keras does, and differentiate through that too.
- ``from_logits=True``: stable formulations (log-sigmoid through softplus, log-softmax with the
  max subtracted), so large logits give finite losses and exact gradients.
- Everything is computed in the dtype of ``y_pred`` (float32 or float64); ``y_true`` is cast to
  it (class indices excepted).  The returned gradient has ``y_pred``'s shape and dtype.

Use :func:`get` to resolve a name (``"mse"``, ``"binary_crossentropy"``, ...) or a serialized
``{"class_name": ..., "config": ...}`` dict (see :func:`serialize`).
"""

from __future__ import annotations

import numpy as np

from ._checks import check_bool
from ._registry import Configurable, deserialize_from

__all__ = [
    "Loss",
    "MeanSquaredError",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "EPSILON",
    "get",
    "serialize",
    "deserialize",
]

#: Keras' ``backend.epsilon()``: probabilities are clipped to ``[EPSILON, 1 - EPSILON]``.
EPSILON = 1e-7

_REDUCTIONS = ("sum_over_batch_size",)


# --------------------------------------------------------------------------------------------
# Input checking shared with gatedrnn.metrics
# --------------------------------------------------------------------------------------------

def _as_prediction(y_pred):
    """``y_pred`` as a float32/float64 ndarray with at least one axis."""
    arr = np.asarray(y_pred)
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"y_pred: expected a float32 or float64 array, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError("y_pred: expected an array with at least one axis, got a scalar "
                         "(shape ())")
    return arr


def _as_numeric(value, what):
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{what}: expected a numeric (bool, int or float) array, "
                        f"got dtype {arr.dtype}")
    return arr


def _as_targets(y_true, y_pred):
    """Dense targets with ``y_pred``'s shape and dtype.

    ``y_true`` may lack a trailing axis of size 1 that ``y_pred`` has (``(B,)`` labels for a
    ``(B, 1)`` output), as Keras' squeeze_or_expand_to_same_rank allows.
    """
    arr = _as_numeric(y_true, "y_true")
    if arr.shape != y_pred.shape:
        if y_pred.ndim >= 1 and y_pred.shape[-1] == 1 and arr.shape == y_pred.shape[:-1]:
            arr = arr[..., np.newaxis]
        else:
            raise ValueError(f"y_true and y_pred: shapes do not match: y_true has shape "
                             f"{arr.shape}, y_pred has shape {y_pred.shape}")
    return arr.astype(y_pred.dtype, copy=False)


def _as_class_indices(y_true, y_pred):
    """Integer class indices of shape ``y_pred.shape[:-1]`` (a trailing axis of 1 is dropped);
    floats are accepted when they hold whole numbers.  Range-checked against the class count."""
    arr = _as_numeric(y_true, "y_true")
    want = y_pred.shape[:-1]
    if arr.shape == want + (1,):
        arr = arr.reshape(want)
    if arr.shape != want:
        raise ValueError(f"y_true: expected class indices of shape {want} (y_pred.shape[:-1], "
                         f"optionally with a trailing axis of 1) for y_pred of shape "
                         f"{y_pred.shape}, got shape {arr.shape}")
    if arr.dtype.kind == "b":
        raise TypeError("y_true: expected integer class indices, got dtype bool")
    if arr.dtype.kind == "f":
        if arr.size and not (np.all(np.isfinite(arr)) and np.all(arr == np.floor(arr))):
            raise ValueError("y_true: expected integer class indices, got non-integral values")
    num_classes = y_pred.shape[-1]
    if arr.size:
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"y_true: class index {bad!r} is out of range for "
                             f"{num_classes} classes (valid: 0..{num_classes - 1})")
    return arr.astype(np.intp, copy=False)


def _as_mask(mask, shape):
    """Boolean mask of exactly ``shape`` (bool, or 0/1 numbers), or None."""
    if mask is None:
        return None
    arr = np.asarray(mask)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"mask: expected a boolean array, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"mask: expected shape {shape}, got {arr.shape}")
    if arr.dtype.kind != "b":
        if arr.size and not np.all((arr == 0) | (arr == 1)):
            raise ValueError("mask: expected boolean values (or 0/1), got other numbers")
        arr = arr != 0
    return arr


def _position_weights(shape, mask, dtype):
    """Weights ``w`` (shape ``shape``) with ``loss = sum(w * per_position_loss)``.

    Unmasked: ``1 / N``; masked: ``mask / sum(mask)``; no valid position: all zeros.
    """
    if mask is None:
        count = int(np.prod(shape, dtype=np.int64))
        if count == 0:
            return np.zeros(shape, dtype)
        return np.full(shape, 1.0 / count, dtype)
    count = int(np.count_nonzero(mask))
    if count == 0:
        return np.zeros(shape, dtype)
    return mask.astype(dtype) / dtype.type(count)


def _softplus(x):
    """log(1 + exp(x)) without overflow."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x):
    """1 / (1 + exp(-x)) without overflow (exp of a non-positive number only)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _log_softmax(x):
    shifted = x - np.max(x, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def _clip_probabilities(p):
    """Keras' clip to [eps, 1 - eps] and the 0/1 pass-through of its gradient."""
    lo, hi = EPSILON, 1.0 - EPSILON
    inside = (p >= p.dtype.type(lo)) & (p <= p.dtype.type(hi))
    return np.clip(p, p.dtype.type(lo), p.dtype.type(hi)), inside


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------

class Loss(Configurable):
    """Base class: a scalar loss of ``(y_true, y_pred, mask)`` and its gradient.

    Subclasses implement ``_per_position(y_true, y_pred) -> (values, d_values)`` on already
    checked inputs, where ``values`` has the per-position shape and ``d_values[..., k]`` is the
    derivative of the value at a position with respect to ``y_pred[..., k]`` at that position
    (each position's value depends only on its own row along the last axis).
    """

    #: Default name (Keras' function name), also used in logs.
    default_name = "loss"

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        if name is None:
            name = self.default_name
        if not isinstance(name, str):
            raise TypeError(f"name: expected a str, got {type(name).__name__}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction: expected one of {list(_REDUCTIONS)}, got {reduction!r}")
        self.name = name
        self.reduction = reduction

    # -- public API ---------------------------------------------------------------------------

    def __call__(self, y_true, y_pred, mask=None):
        """The mean loss as a Python float."""
        return self._evaluate(y_true, y_pred, mask, need_grad=False)[0]

    def forward_backward(self, y_true, y_pred, mask=None):
        """``(loss, d_y_pred)``: the mean loss (a Python float) and its gradient with respect to
        ``y_pred`` (same shape and dtype as ``y_pred``)."""
        return self._evaluate(y_true, y_pred, mask, need_grad=True)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # -- machinery ----------------------------------------------------------------------------

    #: True for losses whose 1-D y_pred is one value per sample (MSE, BCE).
    _elementwise = True
    _sparse = False

    def _evaluate(self, y_true, y_pred, mask, need_grad):
        y_pred = _as_prediction(y_pred)
        squeeze_back = False
        if self._sparse:
            targets = _as_class_indices(y_true, y_pred)
            work = y_pred
        else:
            targets = _as_targets(y_true, y_pred)
            work = y_pred
            if self._elementwise and y_pred.ndim == 1:
                work, targets, squeeze_back = y_pred[:, None], targets[:, None], True
        position_shape = work.shape[:-1]
        mask = _as_mask(mask, position_shape)
        weights = _position_weights(position_shape, mask, y_pred.dtype)
        values, d_values = self._per_position(targets, work, need_grad)
        # Masked-out positions may hold anything (NaN padding included): select, don't multiply.
        if mask is not None:
            values = np.where(mask, values, 0)
        loss = float(np.sum(values * weights, dtype=y_pred.dtype))
        if not need_grad:
            return loss, None
        grad = d_values * weights[..., np.newaxis]
        if mask is not None:
            grad[~mask] = 0
        grad = grad.astype(y_pred.dtype, copy=False)
        if squeeze_back:
            grad = grad[:, 0]
        return loss, np.ascontiguousarray(grad)

    def _per_position(self, y_true, y_pred, need_grad):  # pragma: no cover - abstract
        raise NotImplementedError


class MeanSquaredError(Loss):
    """``mean((y_true - y_pred) ** 2)`` over the last axis, averaged over positions."""

    default_name = "mean_squared_error"

    def _per_position(self, y_true, y_pred, need_grad):
        diff = y_pred - y_true
        n = y_pred.dtype.type(y_pred.shape[-1])
        values = np.mean(diff * diff, axis=-1)
        d_values = (2 * diff / n) if need_grad else None
        return values, d_values


class _FromLogitsMixin:
    def _init_logits(self, from_logits):
        self.from_logits = check_bool(from_logits, "from_logits")

    def get_config(self):
        config = super().get_config()
        config["from_logits"] = self.from_logits
        return config


class BinaryCrossentropy(_FromLogitsMixin, Loss):
    """Binary cross-entropy, mean over the last axis (Keras 3).

    ``from_logits=False``: ``-(y log p + (1 - y) log(1 - p))`` with ``p`` clipped to
    ``[1e-7, 1 - 1e-7]``.  ``from_logits=True``: ``softplus(x) - y x`` (stable), whose
    derivative is ``sigmoid(x) - y``.
    """

    default_name = "binary_crossentropy"

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        self._init_logits(from_logits)

    def _per_position(self, y_true, y_pred, need_grad):
        n = y_pred.dtype.type(y_pred.shape[-1])
        if self.from_logits:
            elem = _softplus(y_pred) - y_true * y_pred
            d_elem = (_sigmoid(y_pred) - y_true) if need_grad else None
        else:
            p, inside = _clip_probabilities(y_pred)
            elem = -(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))
            d_elem = (np.where(inside, (1 - y_true) / (1 - p) - y_true / p, 0)
                      if need_grad else None)
        values = np.mean(elem, axis=-1)
        return values, (d_elem / n if need_grad else None)


class _CategoricalBase(_FromLogitsMixin, Loss):
    _elementwise = False

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        self._init_logits(from_logits)

    def _crossentropy(self, weights_fn, y_pred, need_grad):
        """Cross-entropy ``-sum_c t_c log q_c`` where ``t`` comes from ``weights_fn(log_q)``.

        ``weights_fn`` returns ``(values, t)`` given the log-probabilities (the sparse loss picks
        one entry instead of building a one-hot ``t``); the gradient needs ``t`` only through
        ``sum_c t_c`` and ``t`` itself.
        """
        if self.from_logits:
            log_q = _log_softmax(y_pred)
            values, t = weights_fn(log_q)
            if not need_grad:
                return values, None
            softmax = np.exp(log_q)
            # d/dx_j [-sum_c t_c (x_c - lse(x))] = -t_j + (sum_c t_c) softmax_j
            return values, softmax * np.sum(t, axis=-1, keepdims=True) - t
        total = np.sum(y_pred, axis=-1, keepdims=True)
        r = y_pred / total
        q, inside = _clip_probabilities(r)
        values, t = weights_fn(np.log(q))
        if not need_grad:
            return values, None
        # dL/dr_c = -t_c / q_c inside the clip; r = p / S, so
        # dL/dp_j = (dL/dr_j - sum_c dL/dr_c r_c) / S.
        g = np.where(inside, -t / q, 0)
        return values, (g - np.sum(g * r, axis=-1, keepdims=True)) / total


class CategoricalCrossentropy(_CategoricalBase):
    """Cross-entropy against a distribution ``y_true`` (e.g. one-hot) along the last axis.

    ``from_logits=False`` (Keras): ``y_pred`` is divided by its sum over the last axis, clipped
    to ``[1e-7, 1 - 1e-7]``, then ``-sum(y_true * log(.))``.  ``from_logits=True``:
    ``-sum(y_true * log_softmax(y_pred))``.
    """

    default_name = "categorical_crossentropy"

    def _per_position(self, y_true, y_pred, need_grad):
        def weights_fn(log_q):
            return -np.sum(y_true * log_q, axis=-1), y_true
        return self._crossentropy(weights_fn, y_pred, need_grad)


class SparseCategoricalCrossentropy(_CategoricalBase):
    """Cross-entropy against integer class indices ``y_true`` of shape ``y_pred.shape[:-1]``
    (a trailing axis of 1 is accepted, as Keras does).  Labels outside ``[0, C)`` raise
    ValueError.  Probabilities/logits handling as :class:`CategoricalCrossentropy`."""

    default_name = "sparse_categorical_crossentropy"
    _sparse = True

    def _per_position(self, y_true, y_pred, need_grad):
        if self.from_logits:
            # the common case, per time step of a language model: softmax minus the label's
            # one-hot, written in place (no one-hot array; the same numbers as the general path)
            log_q = _log_softmax(y_pred)
            values = -np.take_along_axis(log_q, y_true[..., np.newaxis], axis=-1)[..., 0]
            if not need_grad:
                return values, None
            grad = np.exp(log_q, out=log_q)
            flat = grad.reshape(-1, grad.shape[-1])
            flat[np.arange(flat.shape[0]), y_true.reshape(-1)] -= 1
            return values, grad

        def weights_fn(log_q):
            picked = np.take_along_axis(log_q, y_true[..., np.newaxis], axis=-1)[..., 0]
            if not need_grad:
                return -picked, None
            one_hot = np.zeros_like(log_q)
            np.put_along_axis(one_hot, y_true[..., np.newaxis], 1, axis=-1)
            return -picked, one_hot
        return self._crossentropy(weights_fn, y_pred, need_grad)


# --------------------------------------------------------------------------------------------
# Lookup and serialization
# --------------------------------------------------------------------------------------------

_CLASSES = {cls.__name__: cls for cls in (MeanSquaredError, BinaryCrossentropy,
                                          CategoricalCrossentropy,
                                          SparseCategoricalCrossentropy)}
_ALIASES = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}
_ALIASES.update(_CLASSES)


def serialize(loss):
    """``{"class_name": ..., "config": ...}`` of a built-in loss (JSON-serialisable)."""
    if not isinstance(loss, Loss):
        raise TypeError(f"loss: expected a gatedrnn.losses.Loss, got {type(loss).__name__}")
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config):
    """Inverse of :func:`serialize`."""
    return deserialize_from(_CLASSES, config, "loss")


def get(identifier):
    """Resolve ``identifier`` to a :class:`Loss`.

    Accepts a :class:`Loss` instance (returned as is), a name (``"mse"``,
    ``"mean_squared_error"``, ``"binary_crossentropy"``, ``"categorical_crossentropy"``,
    ``"sparse_categorical_crossentropy"`` or a class name such as ``"MeanSquaredError"``;
    a new instance with default arguments), or a dict from :func:`serialize`.
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier)
        if cls is None:
            raise ValueError(f"loss: unknown name {identifier!r}; expected one of "
                             f"{sorted(_ALIASES)}")
        return cls()
    raise TypeError(f"loss: expected a Loss instance, a name or a config dict, "
                    f"got {type(identifier).__name__}")
