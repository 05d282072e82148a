"""Streaming metrics (Keras 3 semantics): accumulate over batches, read with ``result()``.

A metric is updated once per batch with ``update_state(y_true, y_pred, mask=None)`` and keeps
running totals; ``result()`` is the value over everything seen since the last
``reset_state()`` (a Python float).

How values are averaged (as Keras' ``MeanMetricWrapper``/``Mean``):

- Each metric function gives one value per position: per sample for ``(B, C)`` predictions,
  per sample and time step for ``(B, T, C)``.  Element-wise metrics (``accuracy``,
  ``binary_accuracy``, ``mae``, ``mse``) average over the last axis to get there; a 1-D
  ``(B,)`` prediction has one value per sample.
- Without a mask, every sample counts once, with the mean of its positions.
- With a mask (boolean, shape ``y_pred.shape[:-1]`` — ``(B, T)`` for ``(B, T, C)``), only
  selected positions count: a batch adds ``sum(value * mask) / P`` to the total and
  ``sum(mask) / P`` to the count, with ``P`` the number of positions per sample (so a single
  batch gives exactly ``sum(value * mask) / sum(mask)``).

``get("accuracy", loss=...)`` picks the accuracy that fits the loss (see :func:`get`).
"""

from __future__ import annotations

import numpy as np

from ._registry import Configurable, deserialize_from

from . import losses as _losses
from .losses import _as_class_indices, _as_mask, _as_numeric, _as_prediction, _as_targets

__all__ = [
    "Metric",
    "Mean",
    "MeanMetricWrapper",
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "SparseCategoricalAccuracy",
    "AutoAccuracy",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "get",
    "serialize",
    "deserialize",
]


class Metric(Configurable):
    """Base class of all metrics.

    Attributes:
        name: the key the value is logged under (``"accuracy"``, ``"val_accuracy"`` ...).
        direction: ``"up"`` when larger is better (accuracies), ``"down"`` otherwise; callbacks
            in ``mode="auto"`` read it.
    """

    direction = "down"
    default_name = "metric"

    def __init__(self, name=None):
        if name is None:
            name = self.default_name
        if not isinstance(name, str) or not name:
            raise TypeError(f"name: expected a non-empty str, got {name!r}")
        self.name = name
        self.reset_state()

    def update_state(self, y_true, y_pred, mask=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def result(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def reset_state(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name}

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, result={self.result()!r})"


class Mean(Metric):
    """Weighted mean of the values given to ``update_state(values, sample_weight=None)``.

    This is the metric ``fit`` tracks the loss with: call ``update_state(batch_loss,
    sample_weight=batch_size)`` once per batch (as Keras 3 does) and ``result()`` is the
    epoch's loss.  Array values are reduced as in Keras: a mean over all axes but the first
    gives one value per sample, each counting with its weight (1 by default).
    """

    default_name = "mean"

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None):
        values = np.asarray(_as_numeric(values, "values"), dtype=np.float64)
        if values.ndim > 1:
            values = values.reshape(values.shape[0], -1).mean(axis=1)
        if sample_weight is None:
            self.total += float(np.sum(values))
            self.count += float(values.shape[0]) if values.ndim else 1.0
            return
        weight = np.asarray(_as_numeric(sample_weight, "sample_weight"), dtype=np.float64)
        if weight.ndim == 0:
            weight = np.broadcast_to(weight, values.shape)
        if weight.shape != values.shape:
            raise ValueError(f"sample_weight: expected a scalar or shape {values.shape} "
                             f"(one weight per sample), got {weight.shape}")
        if np.any(weight < 0):
            raise ValueError("sample_weight: expected non-negative weights")
        self.total += float(np.sum(values * weight))
        self.count += float(np.sum(weight))

    def result(self):
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Metric):
    """A metric function ``fn(y_true, y_pred) -> per-position values``, averaged as described
    in the module docstring (Keras' ``MeanMetricWrapper``)."""

    def __init__(self, fn, name=None, direction="down"):
        if not callable(fn):
            raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
        if direction not in ("up", "down"):
            raise ValueError(f"direction: expected 'up' or 'down', got {direction!r}")
        self._fn = fn
        self.direction = direction
        super().__init__(name=name or getattr(fn, "__name__", None) or "metric")

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, y_true, y_pred, mask=None):
        y_pred = _as_prediction(y_pred)
        values = np.asarray(self._fn(y_true, y_pred), dtype=np.float64)
        self._accumulate(values, y_pred, mask)

    def _accumulate(self, values, y_pred, mask):
        position_shape = values.shape
        mask = _as_mask(mask, position_shape)
        if values.ndim == 0:  # a single sample (1-D categorical prediction)
            values = values.reshape(1)
            mask = None if mask is None else mask.reshape(1)
        if mask is None:
            per_sample = values.reshape(values.shape[0], -1).mean(axis=1) if values.size else values
            self.total += float(np.sum(per_sample))
            self.count += float(values.shape[0])
            return
        positions = int(np.prod(values.shape[1:], dtype=np.int64))
        if positions == 0:
            return
        self.total += float(np.sum(np.where(mask, values, 0.0))) / positions
        self.count += float(np.count_nonzero(mask)) / positions

    def result(self):
        return self.total / self.count if self.count else 0.0

    def get_config(self):
        return {"name": self.name}


def _per_position_mean(elementwise, y_pred):
    """Mean over the last axis of an element-wise value, except for 1-D predictions."""
    return elementwise if y_pred.ndim == 1 else np.mean(elementwise, axis=-1)


# -- metric functions --------------------------------------------------------------------------

def accuracy(y_true, y_pred):
    """Exact equality ``y_true == y_pred`` (Keras' ``Accuracy``)."""
    y_pred = _as_prediction(y_pred)
    y_true = _as_targets(y_true, y_pred)
    return _per_position_mean((y_true == y_pred).astype(np.float64), y_pred)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """``(y_pred > threshold) == y_true``; with logits use ``threshold=0``."""
    y_pred = _as_prediction(y_pred)
    y_true = _as_targets(y_true, y_pred)
    hits = (y_pred > y_pred.dtype.type(threshold)).astype(y_pred.dtype) == y_true
    return _per_position_mean(hits.astype(np.float64), y_pred)


def categorical_accuracy(y_true, y_pred):
    """``argmax(y_true) == argmax(y_pred)`` along the last axis (first maximum on ties)."""
    y_pred = _as_prediction(y_pred)
    y_true = _as_targets(y_true, y_pred)
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred):
    """``argmax(y_pred) == y_true`` for integer labels of shape ``y_pred.shape[:-1]``."""
    y_pred = _as_prediction(y_pred)
    labels = _as_class_indices(y_true, y_pred)
    return (np.argmax(y_pred, axis=-1) == labels).astype(np.float64)


def mean_absolute_error(y_true, y_pred):
    y_pred = _as_prediction(y_pred)
    y_true = _as_targets(y_true, y_pred)
    return _per_position_mean(np.abs(y_true - y_pred).astype(np.float64), y_pred)


def mean_squared_error(y_true, y_pred):
    y_pred = _as_prediction(y_pred)
    y_true = _as_targets(y_true, y_pred)
    diff = (y_true - y_pred).astype(np.float64)
    return _per_position_mean(diff * diff, y_pred)


# -- metric classes ----------------------------------------------------------------------------

class Accuracy(MeanMetricWrapper):
    """Fraction of predictions exactly equal to the targets."""

    default_name = "accuracy"

    def __init__(self, name=None):
        super().__init__(accuracy, name=name or self.default_name, direction="up")


class BinaryAccuracy(MeanMetricWrapper):
    """Fraction of ``(y_pred > threshold) == y_true``.  Use ``threshold=0.0`` for logits."""

    default_name = "binary_accuracy"

    def __init__(self, name=None, threshold=0.5):
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)):
            raise TypeError(f"threshold: expected a float, got {type(threshold).__name__}")
        self.threshold = float(threshold)
        super().__init__(lambda t, p: binary_accuracy(t, p, self.threshold),
                         name=name or self.default_name, direction="up")

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}


class CategoricalAccuracy(MeanMetricWrapper):
    default_name = "categorical_accuracy"

    def __init__(self, name=None):
        super().__init__(categorical_accuracy, name=name or self.default_name, direction="up")


class SparseCategoricalAccuracy(MeanMetricWrapper):
    default_name = "sparse_categorical_accuracy"

    def __init__(self, name=None):
        super().__init__(sparse_categorical_accuracy, name=name or self.default_name,
                         direction="up")


class MeanAbsoluteError(MeanMetricWrapper):
    default_name = "mean_absolute_error"

    def __init__(self, name=None):
        super().__init__(mean_absolute_error, name=name or self.default_name, direction="down")


class MeanSquaredError(MeanMetricWrapper):
    default_name = "mean_squared_error"

    def __init__(self, name=None):
        super().__init__(mean_squared_error, name=name or self.default_name, direction="down")


class AutoAccuracy(Metric):
    """``"accuracy"`` without a loss to go by: the variant is chosen from the shapes of the
    first batch, with Keras 3's rule (``compile_utils.get_metric``): ``y_pred.shape[-1] == 1``
    -> binary; ``y_true`` of lower rank than ``y_pred`` or with a last axis of 1 -> sparse
    categorical; otherwise categorical.  The choice is kept for the metric's lifetime
    (``reset_state`` clears the totals, not the choice): one model's output shapes do not
    change."""

    direction = "up"
    default_name = "accuracy"

    def __init__(self, name=None):
        self._delegate = None
        super().__init__(name=name)

    @property
    def resolved(self):
        """The concrete metric chosen, or None before the first update."""
        return self._delegate

    def update_state(self, y_true, y_pred, mask=None):
        if self._delegate is None:
            y_pred_arr = _as_prediction(y_pred)
            y_true_arr = np.asarray(y_true)
            if y_pred_arr.shape[-1] == 1:
                self._delegate = BinaryAccuracy(name=self.name)
            elif y_true_arr.ndim < y_pred_arr.ndim or (y_true_arr.ndim and
                                                       y_true_arr.shape[-1] == 1):
                self._delegate = SparseCategoricalAccuracy(name=self.name)
            else:
                self._delegate = CategoricalAccuracy(name=self.name)
        self._delegate.update_state(y_true, y_pred, mask)

    def result(self):
        return self._delegate.result() if self._delegate is not None else 0.0

    def reset_state(self):
        if getattr(self, "_delegate", None) is not None:
            self._delegate.reset_state()


# -- lookup --------------------------------------------------------------------------------

_CLASSES = {cls.__name__: cls for cls in (Mean, Accuracy, BinaryAccuracy, CategoricalAccuracy,
                                          SparseCategoricalAccuracy, AutoAccuracy,
                                          MeanAbsoluteError, MeanSquaredError)}
_NAMES = {
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
}


def _accuracy_for_loss(name, loss):
    loss = _losses.get(loss)
    if isinstance(loss, _losses.SparseCategoricalCrossentropy):
        return SparseCategoricalAccuracy(name=name)
    if isinstance(loss, _losses.CategoricalCrossentropy):
        return CategoricalAccuracy(name=name)
    if isinstance(loss, _losses.BinaryCrossentropy):
        return BinaryAccuracy(name=name, threshold=0.0 if loss.from_logits else 0.5)
    if isinstance(loss, _losses.MeanSquaredError):
        return Accuracy(name=name)
    return AutoAccuracy(name=name)


def serialize(metric):
    """``{"class_name": ..., "config": ...}`` of a built-in metric (JSON-serialisable)."""
    if not isinstance(metric, Metric) or type(metric).__name__ not in _CLASSES:
        raise TypeError(f"metric: expected a built-in gatedrnn.metrics.Metric, got {metric!r}")
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(config):
    """Inverse of :func:`serialize`."""
    return deserialize_from(_CLASSES, config, "metric")


def get(identifier, loss=None):
    """Resolve ``identifier`` to a :class:`Metric`.

    - a :class:`Metric` instance is returned as is; a dict from :func:`serialize` is rebuilt;
    - ``"accuracy"`` / ``"acc"`` (any case; the metric keeps the spelling given as its name, so
      logs say ``accuracy`` or ``acc`` as asked) is resolved from ``loss`` (a Loss, a loss
      name or a serialized loss): sparse categorical cross-entropy -> argmax equals the label;
      categorical -> argmax equals argmax; binary -> ``p > 0.5`` equals the label, or
      ``logit > 0`` when the loss has ``from_logits=True``; mean squared error -> exact
      equality.  Without a loss, an :class:`AutoAccuracy` decides from the first batch's
      shapes as Keras 3 does;
    - ``"binary_accuracy"``, ``"categorical_accuracy"``, ``"sparse_categorical_accuracy"``,
      ``"mae"`` / ``"mean_absolute_error"``, ``"mse"`` / ``"mean_squared_error"`` or a class
      name give that metric, named by the string given.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if not isinstance(identifier, str):
        raise TypeError(f"metric: expected a Metric instance, a name or a config dict, "
                        f"got {type(identifier).__name__}")
    if identifier.lower() in ("accuracy", "acc"):
        if loss is None:
            return AutoAccuracy(name=identifier)
        return _accuracy_for_loss(identifier, loss)
    cls = _NAMES.get(identifier)
    if cls is not None:
        return cls(name=identifier)
    cls = _CLASSES.get(identifier)
    if cls is not None:
        return cls()
    raise ValueError(f"metric: unknown name {identifier!r}; expected 'accuracy', 'acc' or one "
                     f"of {sorted(set(_NAMES) | set(_CLASSES))}")
