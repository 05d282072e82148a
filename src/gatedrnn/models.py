"""Sequential models: a stack of layers with compile / fit / evaluate / predict / save, as Keras.

No autograd: ``forward`` runs the layers in order (passing the time mask along, as Keras does),
``backward`` runs their backward passes in reverse, and ``train_on_batch`` is one forward, the
loss and its gradient, one backward and one optimizer step.
"""

import math
import warnings

import numpy as np

from . import callbacks as _callbacks
from . import config
from . import losses as _losses
from . import metrics as _metrics
from . import optim as _optim
from . import saving
from ._checks import check_bool
from .layers import Layer, deserialize, serialize

__all__ = ["Sequential", "Input", "load_model"]

class Input:
    """Declares the input of a Sequential model: ``Input(shape=(time, features))`` (without the
    batch axis; ``None`` for a size that varies, e.g. ``(None, 8)``). ``dtype`` is the dtype of
    the data (``"int64"`` for token indices)."""

    def __init__(self, shape, dtype=None, name=None):
        if not isinstance(shape, (tuple, list)):
            raise TypeError(f"shape: expected a tuple, got {type(shape).__name__}")
        self.shape = (None,) + tuple(None if s is None else int(s) for s in shape)
        self.dtype = dtype
        self.name = name or "input"


def _batch_count(n, batch_size):
    return max(1, math.ceil(n / batch_size)) if n else 0


class Sequential:
    """A linear stack of layers (see the README's "Layers and models").

    ``Sequential([gr.layers.Embedding(...), gr.layers.LSTM(...), gr.layers.Dense(...)])``; an
    :class:`Input` first (or ``input_shape=`` on the first layer) builds it at once, otherwise
    it is built on the first batch it sees.
    """

    def __init__(self, layers=None, name=None):
        self.name = name or "sequential"
        self._layers = []
        self._input_shape = None
        self.optimizer = self.loss = None
        self.metrics = []
        self.compiled = False
        self.stop_training = False
        self.history = None
        for layer in layers or []:
            self.add(layer)

    # --- structure --------------------------------------------------------------------------
    def add(self, layer):
        if isinstance(layer, Input):
            if self._layers:
                raise ValueError("Input: must come first in a Sequential model")
            self._input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"layers: expected gatedrnn layers, got {type(layer).__name__}")
        if any(l is layer for l in self._layers):
            raise ValueError(f"{layer.name}: this layer object is already in the model")
        if getattr(layer, "return_state", False):
            raise ValueError(f"{layer.name}: return_state=True gives several outputs, which a "
                             f"Sequential model cannot pass on; call the layer directly")
        if getattr(layer, "merge_mode", "concat") is None:
            raise ValueError(f"{layer.name}: merge_mode=None gives two outputs, which a "
                             f"Sequential model cannot pass on")
        if not self._layers and self._input_shape is None and layer.input_shape is not None:
            self._input_shape = layer.input_shape
        self._layers.append(layer)
        if self._input_shape is not None and all(l.built for l in self._layers[:-1]):
            self.build(self._input_shape)

    @property
    def layers(self):
        return list(self._layers)

    @property
    def built(self):
        return bool(self._layers) and all(l.built for l in self._layers)

    def build(self, input_shape):
        """Build every layer for inputs of ``input_shape`` (with the batch axis, may be None)."""
        shape = tuple(input_shape)
        self._input_shape = shape
        for layer in self._layers:
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)

    @property
    def parameters(self):
        return [p for l in self._layers for p in l.parameters]

    @property
    def trainable_parameters(self):
        return [p for p in self.parameters if p.trainable]

    def count_params(self):
        return int(sum(p.value.size for p in self.parameters))

    def get_weights(self):
        return [p.value.copy() for p in self.parameters]

    def set_weights(self, weights):
        params = self.parameters
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(f"{self.name}: set_weights expected {len(params)} arrays, got "
                             f"{len(weights)}")
        for p, w in zip(params, weights):
            p.assign(w)

    def summary(self, print_fn=print):
        rows = [("Layer (type)", "Output shape", "Params")]
        shape = self._input_shape
        for l in self._layers:
            out = l.compute_output_shape(shape) if shape is not None else "?"
            shape = out if shape is not None else None
            n = sum(p.value.size for p in l.parameters) if l.built else "?"
            rows.append((f"{l.name} ({type(l).__name__})", str(out), str(n)))
        w = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
        line = "-" * sum(w)
        print_fn(f'Model: "{self.name}"')
        print_fn(line)
        for i, r in enumerate(rows):
            print_fn("".join(c.ljust(w[k]) for k, c in enumerate(r)))
            if i == 0:
                print_fn(line)
        print_fn(line)
        if self.built:
            print_fn(f"Total params: {self.count_params()}")

    # --- forward / backward -----------------------------------------------------------------
    def forward(self, x, training=False):
        """Run every layer; returns ``(output, mask of the output or None)``."""
        self._ensure_built(x)
        mask = None
        for layer in self._layers:
            y = layer.forward(x, training=training, mask=mask)
            mask = layer.compute_mask(x, mask)
            x = y
        return x, mask

    def _ensure_built(self, x):
        if not self._layers:
            raise ValueError(f"{self.name}: the model has no layers")
        if not self.built:
            shape = (None,) + tuple(np.shape(x)[1:])
            self.build(shape if self._input_shape is None else self._input_shape)

    def backward(self, dy, input_grad=True):
        """Every layer's backward, last to first: adds the parameter gradients and returns the
        gradient with respect to the model's input. ``input_grad=False`` (what training uses)
        returns None and skips the work only that gradient needs: the layers before the first
        with trainable parameters do not run backward, and that layer, where it can
        (``Layer.input_grad_optional``), skips its own dx (for a recurrent layer, the product
        dx = dG W_ih: a sixth of its training multiply-adds when I = H)."""
        input_grad = check_bool(input_grad, "input_grad")
        layers = self._layers
        first = 0
        if not input_grad:
            first = next((i for i, l in enumerate(layers) if l.trainable_parameters), len(layers))
        for i in reversed(range(first, len(layers))):
            layer = layers[i]
            if i == first and not input_grad:
                if layer.input_grad_optional:
                    layer.backward(dy, input_grad=False)
                else:
                    layer.backward(dy)
                break
            dy = layer.backward(dy)
            if dy is None:          # an Embedding: nothing flows into integer inputs
                break
        return dy if input_grad else None

    def __call__(self, x, training=False):
        return self.forward(x, training=training)[0]

    # --- compile and the per-batch steps ----------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Set the optimizer (name or instance, e.g. ``gr.optim.Adam(1e-3, clipnorm=1.0)``),
        the loss (name or instance) and metrics (names or instances)."""
        if loss is None:
            raise ValueError("loss: compile needs a loss, e.g. 'mse' or "
                             "'sparse_categorical_crossentropy'")
        self.optimizer = _optim.get(optimizer)
        self.loss = _losses.get(loss)
        self.metrics = [_metrics.get(m, loss=self.loss) for m in (metrics or [])]
        self.compiled = True

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"{self.name}: {what} needs compile(optimizer, loss) first")

    def _train_step(self, x, y):
        """Forward, loss, backward, optimizer step; returns (loss, prediction, loss mask)."""
        self._ensure_built(x)
        params = self.parameters
        for p in params:
            p.zero_grad()
        y_pred, mask = self.forward(x, training=True)
        lmask = self._loss_mask(y_pred, mask)
        loss, dy = self.loss.forward_backward(y, y_pred, mask=lmask)
        self.backward(dy, input_grad=False)
        self.optimizer.apply(params)            # marks the updated parameters
        return float(loss), y_pred, lmask

    def train_on_batch(self, x, y, return_dict=False):
        """One optimizer step on one batch; returns the loss (or a dict with the metrics of
        this batch)."""
        self._require_compiled("train_on_batch")
        loss, y_pred, lmask = self._train_step(x, y)
        logs = {"loss": loss}
        for m in self.metrics:
            m.reset_state()
            m.update_state(y, y_pred, mask=lmask)
            logs[m.name] = float(m.result())
        return logs if return_dict else logs["loss"]

    @staticmethod
    def _weight_of(x, lmask):
        # Keras's loss tracker: each batch's (masked) mean loss weighted by its batch size
        return float(len(x))

    @staticmethod
    def _loss_mask(y_pred, mask):
        return mask if (mask is not None and np.ndim(y_pred) == 3) else None

    # --- data -------------------------------------------------------------------------------
    def _logs(self, total, weight):
        logs = {"loss": total / weight if weight else 0.0}
        for m in self.metrics:
            logs[m.name] = float(m.result())
        return logs

    @staticmethod
    def _check_data(x, y, what="x"):
        x = np.asarray(x)
        if x.ndim < 1:
            raise ValueError(f"{what}: expected an array with a batch axis, got shape {x.shape}")
        if y is not None:
            y = np.asarray(y)
            if y.shape[:1] != x.shape[:1]:
                raise ValueError(f"y: expected {x.shape[0]} samples (as in x), got shape "
                                 f"{y.shape}")
        return x, y

    @staticmethod
    def _check_batch_size(batch_size):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        return int(batch_size)

    # --- fit / evaluate / predict -----------------------------------------------------------
    def fit(self, x, y, batch_size=32, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0):
        """Train for ``epochs`` passes over (x, y) in mini-batches; returns the History.

        ``validation_split`` holds out the last fraction of the samples (before shuffling, as
        Keras); ``validation_data=(x_val, y_val)`` gives them explicitly. Shuffling uses the
        generator of :func:`gatedrnn.config.set_random_seed`. ``verbose``: 0 silent, 1 a
        progress bar (tqdm, when installed and writing to a terminal), 2 one line per epoch.
        """
        self._require_compiled("fit")
        x, y = self._check_data(x, y)
        batch_size = self._check_batch_size(batch_size)
        if not 0.0 <= float(validation_split) < 1.0:
            raise ValueError(f"validation_split: expected a float in [0, 1), got "
                             f"{validation_split}")
        if validation_data is not None and validation_split:
            raise ValueError("validation_data and validation_split: give one, not both")
        if validation_split:
            n_val = int(len(x) * validation_split)
            if n_val == 0:
                raise ValueError(f"validation_split: {validation_split} of {len(x)} samples "
                                 f"leaves no validation sample")
            x, x_val = x[:-n_val], x[-n_val:]
            y, y_val = y[:-n_val], y[-n_val:]
            validation_data = (x_val, y_val)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data: expected a tuple (x_val, y_val)")
            validation_data = self._check_data(*validation_data, what="validation_data x")
        verbose = 1 if verbose == "auto" else int(verbose)

        n = len(x)
        steps = _batch_count(n, batch_size)
        self.history = _callbacks.History()
        cbs = list(callbacks or [])
        if verbose and not any(isinstance(c, _callbacks.ProgressBar) for c in cbs):
            cbs.append(_callbacks.ProgressBar(verbose=verbose))
        cbs.append(self.history)
        cb = _callbacks.CallbackList(cbs, model=self)
        cb.set_params({"epochs": epochs, "steps": steps, "verbose": verbose,
                       "batch_size": batch_size, "samples": n})
        self.stop_training = False
        rng = config.rng()
        cb.on_train_begin({})
        logs = {}
        for epoch in range(int(initial_epoch), int(epochs)):
            cb.on_epoch_begin(epoch, {})
            order = rng.permutation(n) if shuffle else np.arange(n)
            for m in self.metrics:
                m.reset_state()
            total = weight = 0.0
            for step in range(steps):
                idx = order[step * batch_size:(step + 1) * batch_size]
                cb.on_train_batch_begin(step, {})
                xb, yb = x[idx], y[idx]
                loss, y_pred, lmask = self._train_step(xb, yb)
                w = self._weight_of(xb, lmask)
                total += loss * w
                weight += w
                for m in self.metrics:
                    m.update_state(yb, y_pred, mask=lmask)
                cb.on_train_batch_end(step, self._logs(total, weight))
                if self.stop_training:          # as Keras: stop right after this batch
                    break
            logs = self._logs(total, weight)
            if validation_data is not None:
                val = self.evaluate(*validation_data, batch_size=batch_size, verbose=0,
                                    return_dict=True)
                logs.update({"val_" + k: v for k, v in val.items()})
            cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cb.on_train_end(logs)
        return self.history

    def evaluate(self, x, y, batch_size=32, verbose="auto", return_dict=False, callbacks=None):
        """The loss and metrics over (x, y); a scalar, a list ``[loss, *metrics]``, or a dict."""
        self._require_compiled("evaluate")
        x, y = self._check_data(x, y)
        batch_size = self._check_batch_size(batch_size)
        cb = _callbacks.CallbackList(list(callbacks or []), model=self)
        cb.on_test_begin({})
        for m in self.metrics:
            m.reset_state()
        total, weight = 0.0, 0.0
        for step in range(_batch_count(len(x), batch_size)):
            cb.on_test_batch_begin(step, {})
            xb, yb = x[step * batch_size:(step + 1) * batch_size], \
                y[step * batch_size:(step + 1) * batch_size]
            y_pred, mask = self.forward(xb, training=False)
            lmask = self._loss_mask(y_pred, mask)
            w = self._weight_of(xb, lmask)
            total += float(self.loss(yb, y_pred, mask=lmask)) * w
            weight += w
            for m in self.metrics:
                m.update_state(yb, y_pred, mask=lmask)
            cb.on_test_batch_end(step, self._logs(total, weight))
        logs = self._logs(total, weight)
        cb.on_test_end(logs)
        if return_dict:
            return logs
        return logs["loss"] if not self.metrics else list(logs.values())

    def predict(self, x, batch_size=32, verbose=0, callbacks=None):
        """Outputs for every sample of x, computed batch by batch (inference mode)."""
        x, _ = self._check_data(x, None)
        batch_size = self._check_batch_size(batch_size)
        cb = _callbacks.CallbackList(list(callbacks or []), model=self)
        cb.on_predict_begin({})
        outs = []
        for step in range(_batch_count(len(x), batch_size)):
            cb.on_predict_batch_begin(step, {})
            outs.append(self.forward(x[step * batch_size:(step + 1) * batch_size])[0])
            cb.on_predict_batch_end(step, {})
        cb.on_predict_end({})
        if not outs:
            raise ValueError("x: expected at least one sample, got 0")
        return np.concatenate(outs, axis=0)

    def predict_on_batch(self, x):
        return self.forward(x)[0]

    def test_on_batch(self, x, y, return_dict=False):
        return self.evaluate(x, y, batch_size=max(1, len(x)), verbose=0, return_dict=return_dict)

    # --- config, save, load -----------------------------------------------------------------
    def get_config(self):
        return {"name": self.name,
                "input_shape": None if self._input_shape is None else list(self._input_shape),
                "layers": [serialize(l) for l in self._layers]}

    @classmethod
    def from_config(cls, cfg):
        model = cls(name=cfg.get("name"))
        for d in cfg["layers"]:
            model.add(deserialize(d))
        if cfg.get("input_shape") is not None:
            model.build(tuple(cfg["input_shape"]))
        return model

    def _weight_arrays(self):
        return {f"weights/{i:04d}": p.value for i, p in enumerate(self.parameters)}

    def save(self, path):
        """One file at exactly ``path`` with the architecture, the weights and (when compiled)
        the optimizer's state, written atomically (npz; ``.safetensors`` when that package is
        installed). :func:`load_model` reads it back and training resumes where it stopped."""
        if not self.built:
            raise RuntimeError(f"{self.name}: save needs a built model (call it or fit it first)")
        cfg = {"model": self.get_config(),
               "weight_names": [p.name for p in self.parameters]}
        arrays = self._weight_arrays()
        if self.compiled and self._compile_config_loads():
            cfg["compile"] = {"optimizer": _optim.serialize(self.optimizer),
                              "loss": _losses.serialize(self.loss),
                              "metrics": [_metrics.serialize(m) for m in self.metrics]}
            for k, v in self.optimizer.get_state().items():
                arrays["optimizer/" + k] = v
        saving.write_archive(path, cfg, arrays)

    def _compile_config_loads(self):
        """Whether load_model can rebuild this optimizer, loss and metrics from their configs
        (built-in classes only); if not, save() stores the model without them and warns."""
        try:
            _optim.deserialize(_optim.serialize(self.optimizer))
            _losses.deserialize(_losses.serialize(self.loss))
            for m in self.metrics:
                _metrics.deserialize(_metrics.serialize(m))
        except (ValueError, TypeError) as e:
            warnings.warn(f"{self.name}: save() stores the architecture and weights but not the "
                          f"compile settings, which only built-in optimizers, losses and "
                          f"metrics can be rebuilt from ({e}); compile the loaded model again",
                          stacklevel=3)
            return False
        return True

    def save_weights(self, path):
        """The weights alone (same file format); :meth:`load_weights` reads them."""
        if not self.built:
            raise RuntimeError(f"{self.name}: save_weights needs a built model")
        saving.write_archive(path, {"weights_only": True,
                                    "weight_names": [p.name for p in self.parameters],
                                    "weight_shapes": [list(p.shape) for p in self.parameters]},
                             self._weight_arrays())

    def load_weights(self, path):
        _, arrays = saving.read_archive(path)
        self._assign_saved_weights(arrays, path)

    def _assign_saved_weights(self, arrays, path):
        params = self.parameters
        saved = sorted(k for k in arrays if k.startswith("weights/"))
        if len(saved) != len(params):
            raise ValueError(f"{path}: the file holds {len(saved)} weight arrays, this model has "
                             f"{len(params)}: the architectures differ")
        for key, p in zip(saved, params):
            if arrays[key].shape != p.shape:
                raise ValueError(f"{path}: weight {p.name} expected shape {p.shape}, the file "
                                 f"has {arrays[key].shape}: the architectures differ")
        for key, p in zip(saved, params):
            p.assign(arrays[key])


def load_model(path, compile=True):
    """The model :meth:`Sequential.save` wrote at ``path`` (weights, and the optimizer state
    when it was compiled, so ``fit`` continues exactly)."""
    cfg, arrays = saving.read_archive(path)
    if "model" not in cfg:
        raise ValueError(f"{path}: holds weights only (save_weights); build the model and call "
                         f"load_weights")
    model = Sequential.from_config(cfg["model"])
    if not model.built:
        raise ValueError(f"{path}: the saved model has no input shape")
    model._assign_saved_weights(arrays, path)
    comp = cfg.get("compile")
    if compile and comp:
        optimizer = _optim.deserialize(comp["optimizer"])
        model.compile(optimizer=optimizer, loss=_losses.deserialize(comp["loss"]),
                      metrics=[_metrics.deserialize(m) for m in comp["metrics"]])
        state = {k[len("optimizer/"):]: v for k, v in arrays.items()
                 if k.startswith("optimizer/")}
        if state:
            optimizer.set_state(state, model.parameters)
    return model
