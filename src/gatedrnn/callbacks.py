"""Training callbacks with Keras 3's hooks and behaviour.

``fit`` wraps the user's callbacks in a :class:`CallbackList` (which adds :class:`History` and,
unless ``verbose=0``, a :class:`ProgressBar`) and calls its hooks:

- ``on_train_begin/end(logs)``, ``on_epoch_begin/end(epoch, logs)`` (``epoch`` 0-based),
  ``on_train_batch_begin/end(batch, logs)``;
- ``on_test_begin/end(logs)``, ``on_test_batch_begin/end(batch, logs)`` (validation and
  ``evaluate``), ``on_predict_begin/end(logs)``, ``on_predict_batch_begin/end(batch, logs)``.

The model a callback talks to (``self.model``) needs only: ``stop_training`` (a bool
attribute), ``get_weights()`` / ``set_weights(list)``, ``save(path)``, ``save_weights(path)``,
``optimizer`` (with a settable ``learning_rate``) and, optionally, ``metrics`` (objects with
``name`` and ``direction`` = ``"up"``/``"down"``, used by ``mode="auto"``).
``self.params`` holds ``verbose``, ``epochs`` and ``steps`` (batches per epoch, or None).

Epoch logs are a dict of Python floats: ``loss``, each metric, ``val_loss`` and ``val_<metric>``
when there is validation data.  The same dict object goes to every callback in order, so a
callback may add entries (LearningRateScheduler adds ``learning_rate``) that later ones see.
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
import sys
import time
import warnings

import numpy as np

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "EarlyStopping",
    "ModelCheckpoint",
    "LearningRateScheduler",
    "LambdaCallback",
    "ProgressBar",
]

_HOOKS = (
    "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
    "on_train_batch_begin", "on_train_batch_end",
    "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
    "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end",
)


class Callback:
    """Base class: every hook does nothing.  Override the ones you need.

    ``on_train_batch_begin/end`` call ``on_batch_begin/end`` by default (Keras' backward
    compatible names).
    """

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = dict(params)

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass


class CallbackList(Callback):
    """Calls each hook on every callback, in order.

    Args:
        callbacks: Callback instances (None: none).
        add_history: append a :class:`History` unless one is among ``callbacks``.
        add_progbar: append a :class:`ProgressBar` with ``params["verbose"]`` unless one is
            among ``callbacks`` or ``verbose`` is 0.
        model: set on every callback when given.
        **params: ``verbose``, ``epochs``, ``steps`` ...: set on every callback.
    """

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None,
                 **params):
        super().__init__()
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback):
            raise TypeError("callbacks: expected a list of Callback, got a single Callback "
                            "(wrap it in a list)")
        self.callbacks = list(callbacks)
        for i, cb in enumerate(self.callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks[{i}]: expected a gatedrnn.callbacks.Callback, "
                                f"got {type(cb).__name__}")
        self.history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        self.progbar = next((cb for cb in self.callbacks if isinstance(cb, ProgressBar)), None)
        if add_history and self.history is None:
            self.history = History()
            self.callbacks.append(self.history)
        verbose = params.get("verbose", 1)
        if add_progbar and self.progbar is None and verbose:
            self.progbar = ProgressBar(verbose=verbose)
            self.callbacks.append(self.progbar)
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)

    def append(self, callback):
        if not isinstance(callback, Callback):
            raise TypeError(f"callback: expected a gatedrnn.callbacks.Callback, "
                            f"got {type(callback).__name__}")
        self.callbacks.append(callback)
        if self.model is not None:
            callback.set_model(self.model)
        if self.params:
            callback.set_params(self.params)

    def set_model(self, model):
        super().set_model(model)
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for cb in self.callbacks:
            cb.set_params(params)

    def _call(self, hook, *args, logs=None):
        logs = {} if logs is None else logs
        for cb in self.callbacks:
            getattr(cb, hook)(*args, logs=logs)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs=logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs=logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs=logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs=logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs=logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs=logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs=logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs=logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs=logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs=logs)


class History(Callback):
    """Records the epoch logs: ``history["loss"][i]`` is the loss of the i-th epoch run,
    ``epoch`` the (0-based) epoch indices.  ``fit`` returns it; it also sets
    ``model.history`` to itself, as Keras."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            try:
                self.model.history = self
            except AttributeError:  # a model with __slots__ or a read-only attribute
                pass


# --------------------------------------------------------------------------------------------
# Monitoring a logged quantity
# --------------------------------------------------------------------------------------------

_LOWER_IS_BETTER = ("loss", "mae", "mse", "mean_absolute_error", "mean_squared_error")


def _monitor_direction(monitor, model, owner):
    """"min" or "max" for ``mode="auto"``: Keras 3's rule (``loss`` -> min; a model metric of
    that name -> its ``direction``), then names (``*acc*`` -> max; losses and errors -> min)."""
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name == "loss":
        return "min"
    try:
        metrics = list(getattr(model, "metrics", None) or [])
    except Exception:  # noqa: BLE001 - a model property may fail before compile
        metrics = []
    for m in metrics:
        if getattr(m, "name", None) == name and getattr(m, "direction", None) in ("up", "down"):
            return "max" if m.direction == "up" else "min"
    if name in ("acc", "accuracy") or name.endswith("_acc") or name.endswith("accuracy"):
        return "max"
    if name in _LOWER_IS_BETTER or name.endswith("loss") or name.endswith("crossentropy") \
            or name.endswith("error"):
        return "min"
    raise ValueError(f"{owner}: cannot tell whether monitor={monitor!r} should be maximized or "
                     f"minimized; pass mode='max' or mode='min'")


def _check_mode(mode, owner):
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{owner}: mode {mode!r} is unknown, falling back to 'auto'",
                      stacklevel=3)
        mode = "auto"
    return mode


def _as_scalar(value):
    """A logged value as a float, or None when it is not a scalar number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "iuf":
        return float(value)
    return None


def _copy_weights(weights):
    # Parameters are updated in place: a snapshot must not alias them.
    return [np.array(w, copy=True) for w in weights]


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has stopped improving (Keras 3 semantics).

    Args:
        monitor: the logged quantity (``"val_loss"``, ``"accuracy"`` ...).
        min_delta: an improvement must exceed this (absolute) amount.
        patience: epochs without improvement after which training stops.
        verbose: 1 prints when stopping and when restoring weights.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (from the metric's direction / name).
        baseline: training stops if the quantity does not get better than this within
            ``patience`` epochs (the wait counter restarts only on beating both the baseline
            and the best so far).
        restore_best_weights: at the end of training (however it ends, even when patience was
            not exhausted — Keras 3), set the weights of the best epoch.
        start_from_epoch: epochs to ignore at the start (warm-up).

    After training, ``stopped_epoch`` (0-based; 0 if it never stopped early), ``best``,
    ``best_epoch`` and ``wait`` describe what happened.  A missing monitored quantity gives a
    warning (``warnings.warn``) and that epoch is skipped.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        if not isinstance(monitor, str):
            raise TypeError(f"monitor: expected a str, got {type(monitor).__name__}")
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) \
                or patience < 0:
            raise ValueError(f"patience: expected a non-negative int, got {patience!r}")
        if isinstance(start_from_epoch, bool) or not isinstance(start_from_epoch,
                                                                 numbers.Integral) \
                or start_from_epoch < 0:
            raise ValueError(f"start_from_epoch: expected a non-negative int, "
                             f"got {start_from_epoch!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real):
            raise TypeError(f"min_delta: expected a float, got {type(min_delta).__name__}")
        if baseline is not None and (isinstance(baseline, bool)
                                     or not isinstance(baseline, numbers.Real)):
            raise TypeError(f"baseline: expected a float or None, got {type(baseline).__name__}")
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.verbose = verbose
        self.mode = _check_mode(mode, "EarlyStopping")
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self.monitor_op = None
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        self.best_epoch = 0
        self.best = None

    def _set_monitor_op(self):
        mode = self.mode
        if mode == "auto":
            mode = _monitor_direction(self.monitor, self.model, "EarlyStopping")
        self.monitor_op = np.less if mode == "min" else np.greater
        self._signed_delta = -self.min_delta if mode == "min" else self.min_delta
        self.best = math.inf if mode == "min" else -math.inf

    def _is_improvement(self, value, reference):
        return bool(self.monitor_op(value - self._signed_delta, reference))

    def on_train_begin(self, logs=None):
        # Reusable across fits (Keras 3 keeps `best` from the previous fit; we start afresh).
        self._reset()
        self.monitor_op = None

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"EarlyStopping conditioned on metric {self.monitor!r} which is not "
                          f"available. Available metrics are: {','.join(logs)}", stacklevel=3)
            return None
        scalar = _as_scalar(value)
        if scalar is None:
            warnings.warn(f"EarlyStopping: {self.monitor!r} is not a scalar number "
                          f"({value!r}); epoch skipped", stacklevel=3)
        return scalar

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # Nothing better seen yet: the current weights are the best.
            self.best_weights = _copy_weights(self.model.get_weights())
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = _copy_weights(self.model.get_weights())
            # Restart the wait only when beating both the baseline and the previous best.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (``model.save``) or its weights (``model.save_weights``) during training.

    Args:
        filepath: a path, possibly with ``str.format`` fields filled from ``epoch`` (1-based,
            as Keras), ``batch`` (1-based, when saving every N batches) and the logs, e.g.
            ``"ckpt/{epoch:02d}-{val_loss:.2f}.npz"``.  Missing directories are created.
        monitor: the logged quantity deciding what is "best" (with ``save_best_only``).
        verbose: 1 prints a line for every save decision.
        save_best_only: save only when ``monitor`` improves on the best so far (a missing
            monitor value gives a warning and saves anyway, as Keras).
        save_weights_only: call ``model.save_weights`` instead of ``model.save``.
        mode: ``"min"``, ``"max"`` or ``"auto"``.
        save_freq: ``"epoch"`` or a positive int: save every that many batches.
        initial_value_threshold: the initial "best" value (``save_best_only`` only).

    Unlike Keras, no file suffix is required: the model's own save decides the format.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        try:
            self.filepath = os.fspath(filepath)
        except TypeError:
            raise TypeError(f"filepath: expected a str or os.PathLike, "
                            f"got {type(filepath).__name__}") from None
        if isinstance(self.filepath, bytes):
            self.filepath = os.fsdecode(self.filepath)
        if not isinstance(monitor, str):
            raise TypeError(f"monitor: expected a str, got {type(monitor).__name__}")
        if save_freq != "epoch" and (isinstance(save_freq, bool)
                                     or not isinstance(save_freq, numbers.Integral)
                                     or save_freq < 1):
            raise ValueError(f"save_freq: expected 'epoch' or a positive int, got {save_freq!r}")
        if initial_value_threshold is not None and (
                isinstance(initial_value_threshold, bool)
                or not isinstance(initial_value_threshold, numbers.Real)):
            raise TypeError(f"initial_value_threshold: expected a float or None, "
                            f"got {type(initial_value_threshold).__name__}")
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = _check_mode(mode, "ModelCheckpoint")
        self.save_freq = save_freq
        self.initial_value_threshold = (None if initial_value_threshold is None
                                        else float(initial_value_threshold))
        self.best = self.initial_value_threshold
        self.monitor_op = None
        self._current_epoch = 0
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0

    def _set_monitor_op(self):
        mode = self.mode
        if mode == "auto":
            mode = _monitor_direction(self.monitor, self.model, "ModelCheckpoint")
        self.monitor_op = np.less if mode == "min" else np.greater
        if self.best is None:
            self.best = math.inf if mode == "min" else -math.inf

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    def _should_save_on_batch(self, batch):
        if self.save_freq == "epoch":
            return False
        if batch <= self._last_batch_seen:  # a new epoch started
            add_batches = batch + 1
        else:
            add_batches = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += add_batches
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _file_path(self, epoch, batch, logs):
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as exc:
            raise KeyError(f"ModelCheckpoint: cannot format filepath {self.filepath!r}: no value "
                           f"for {exc.args[0]!r} (available: {sorted(fields)})") from None

    def _should_save(self, epoch, logs, filepath):
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ModelCheckpoint: can save best model only with {self.monitor} "
                          f"available; saving anyway", stacklevel=4)
            return True
        current = _as_scalar(current)
        if current is None:
            warnings.warn(f"ModelCheckpoint: {self.monitor} is not a scalar number; falling "
                          f"back to save_best_only=False", stacklevel=4)
            return True
        if bool(self.monitor_op(current, self.best)):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{current:.5f}, saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
        return False

    def _save_model(self, epoch, batch, logs):
        logs = logs or {}
        filepath = self._file_path(epoch, batch, logs)
        if not self._should_save(epoch, logs, filepath):
            return
        if os.path.isdir(filepath):
            raise IsADirectoryError(f"ModelCheckpoint: filepath {filepath!r} is an existing "
                                    f"directory; give a file path")
        dirname = os.path.dirname(filepath)
        if dirname:
            os.makedirs(dirname, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath)
        else:
            self.model.save(filepath)


def _accepts_two_args(fn):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True  # cannot tell (a builtin): try the Keras 3 form
    try:
        sig.bind(0, 0.0)
        return True
    except TypeError:
        return False


class LearningRateScheduler(Callback):
    """At the start of every epoch, set ``model.optimizer.learning_rate`` to
    ``schedule(epoch, current_lr)`` (``epoch`` 0-based).  A one-argument ``schedule(epoch)``
    (the old Keras form) is accepted too.  The learning rate in force is added to the epoch
    logs as ``learning_rate`` (so History records it), as Keras 3 does."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule: expected a callable(epoch, lr) -> float, "
                            f"got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbose
        self._two_args = _accepts_two_args(schedule)

    def _optimizer(self):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not hasattr(optimizer, "learning_rate"):
            raise ValueError("LearningRateScheduler: the model's optimizer must have a "
                             "'learning_rate' attribute (is the model compiled?)")
        return optimizer

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self._optimizer()
        if self._two_args:
            lr = self.schedule(epoch, float(optimizer.learning_rate))
        else:
            lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, (numbers.Real, np.floating)) \
                or not math.isfinite(float(lr)):
            raise ValueError(f"LearningRateScheduler: schedule returned {lr!r} for epoch "
                             f"{epoch}, expected a finite float")
        optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                  f"{float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self._optimizer().learning_rate)


class LambdaCallback(Callback):
    """A callback from plain functions, e.g.
    ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["loss"]))``.

    Signatures: ``on_epoch_begin/end(epoch, logs)``, ``on_train_begin/end(logs)``,
    ``on_train_batch_begin/end(batch, logs)``; any other hook (``on_test_end=...``) may be
    given as a keyword too.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        for name, fn in kwargs.items():
            if name not in _HOOKS and name not in ("on_batch_begin", "on_batch_end"):
                raise TypeError(f"LambdaCallback: unknown hook {name!r}; expected one of "
                                f"{list(_HOOKS)}")
            hooks[name] = fn
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"{name}: expected a callable, got {type(fn).__name__}")
            setattr(self, name, self._wrap(fn))

    @staticmethod
    def _wrap(fn):
        # Callers pass logs as a keyword; the user's function may name it anything.
        def hook(*args, logs=None):
            return fn(*args, logs)
        return hook


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------

def _format_value(value):
    """Keras' progress-bar number format."""
    scalar = _as_scalar(value)
    if scalar is None:
        return str(value)
    if abs(scalar) > 1e-3 or scalar == 0:
        return f"{scalar:.4f}"
    return f"{scalar:.4e}"


def _format_logs(logs):
    return " - ".join(f"{k}: {_format_value(v)}" for k, v in (logs or {}).items())


def _format_seconds(seconds):
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m {rest:02d}s"


class ProgressBar(Callback):
    """Training progress: a tqdm bar per epoch, or one plain line per epoch.

    With ``verbose=1``, when ``tqdm`` is importable and the stream is a terminal
    (``isatty()``), each epoch gets a tqdm bar over its batches showing the running loss and
    metrics.  Otherwise (``verbose=2``, no tqdm, output redirected to a file or captured) it
    prints one line at the end of each epoch::

        Epoch 3/10 - 0.8s - loss: 0.1234 - accuracy: 0.9100 - val_loss: 0.2345

    ``evaluate`` outside ``fit`` prints one line of the results.  ``stream`` defaults to
    ``sys.stdout`` as it is at the time of printing.  ``fit(verbose=0)`` adds no ProgressBar.
    """

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        if verbose not in (1, 2) or isinstance(verbose, bool):
            raise ValueError(f"verbose: expected 1 (bar) or 2 (one line per epoch), "
                             f"got {verbose!r}")
        self.verbose = verbose
        self._stream = stream
        self._bar = None
        self._use_tqdm = False
        self._in_fit = False
        self._epoch_start = None
        self._test_start = None

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stdout

    def _choose_tqdm(self):
        if self.verbose != 1:
            return False
        isatty = getattr(self.stream, "isatty", None)
        try:
            if not (callable(isatty) and isatty()):
                return False
        except (ValueError, OSError):  # a closed stream
            return False
        try:
            import tqdm  # noqa: F401
        except ImportError:
            return False
        return True

    def _write(self, line):
        stream = self.stream
        stream.write(line + "\n")
        stream.flush()

    def on_train_begin(self, logs=None):
        self._in_fit = True
        self._use_tqdm = self._choose_tqdm()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        if self._use_tqdm:
            from tqdm import tqdm
            epochs = self.params.get("epochs")
            desc = f"Epoch {epoch + 1}/{epochs}" if epochs else f"Epoch {epoch + 1}"
            self._bar = tqdm(total=self.params.get("steps"), desc=desc, file=self.stream,
                             unit="batch", leave=True, dynamic_ncols=True)

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is not None:
            self._bar.update(1)
            if logs:
                self._bar.set_postfix_str(_format_logs(logs), refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - (self._epoch_start or time.perf_counter())
        if self._bar is not None:
            self._bar.set_postfix_str(_format_logs(logs), refresh=False)
            self._bar.close()
            self._bar = None
            return
        epochs = self.params.get("epochs")
        head = f"Epoch {epoch + 1}/{epochs}" if epochs else f"Epoch {epoch + 1}"
        parts = [head, _format_seconds(elapsed)]
        if logs:
            parts.append(_format_logs(logs))
        self._write(" - ".join(parts))

    def on_train_end(self, logs=None):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._in_fit = False

    def on_test_begin(self, logs=None):
        self._test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        if self._in_fit:  # validation inside fit: reported with the epoch line
            return
        elapsed = time.perf_counter() - (self._test_start or time.perf_counter())
        parts = [_format_seconds(elapsed)]
        if logs:
            parts.append(_format_logs(logs))
        self._write(" - ".join(parts))
