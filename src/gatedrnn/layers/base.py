"""The Layer base class: parameters, build on first call, forward/backward, config."""

import itertools
import re
from collections import defaultdict

import numpy as np

from .. import config
from .. import initializers as _init
from .parameter import Parameter

__all__ = ["Layer"]

_name_counters = defaultdict(itertools.count)


def _snake(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def unique_name(base):
    n = next(_name_counters[base])
    return base if n == 0 else f"{base}_{n}"


class Layer:
    """Base of every layer.

    A layer owns its :class:`Parameter` objects, is built on its first input (``build``), and has
    an explicit pair ``forward(x, training=False, mask=None)`` / ``backward(dy) -> dx``: the
    forward call with ``training=True`` keeps what the backward call needs, and backward adds
    the parameter gradients into ``Parameter.grad``. Calling a layer (``layer(x)``) runs the
    inference forward on a NumPy array and returns NumPy arrays, as Keras does. A layer whose
    class sets ``input_grad_optional`` also takes ``backward(dy, input_grad=False)``: it adds
    the parameter gradients but skips dx (returns None), which a model's first trainable layer
    has no use for.

    Masks are boolean ``(batch, time)`` arrays; ``compute_mask`` says what mask the output carries.
    """

    #: layers that pass a time mask through unchanged set this
    supports_masking = False
    #: layers whose backward takes ``input_grad=False`` (skip dx) set this
    input_grad_optional = False

    def __init__(self, name=None, trainable=True, dtype=None, input_shape=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name: expected a str, got {type(name).__name__}")
        self.name = name or unique_name(_snake(type(self).__name__))
        self.trainable = bool(trainable)
        self.dtype = config.resolve_dtype(dtype)
        self.built = False
        self.input_shape = None if input_shape is None else (None,) + tuple(input_shape)
        self._params = {}
        self._cache = None

    # --- parameters -------------------------------------------------------------------------
    def add_weight(self, name, shape, initializer="zeros", fan=None, trainable=True):
        init = _init.get(initializer, f"{self.name}: {name} initializer")
        value = np.asarray(init(tuple(shape), self.dtype, fan=fan), dtype=self.dtype)
        p = Parameter(f"{self.name}/{name}", value, trainable=trainable and self.trainable)
        self._params[name] = p
        return p

    @property
    def parameters(self):
        """Every Parameter of this layer (and its sublayers), in get_weights() order."""
        return list(self._params.values())

    @property
    def trainable_parameters(self):
        return [p for p in self.parameters if p.trainable]

    def zero_grad(self):
        for p in self.parameters:
            p.zero_grad()

    def count_params(self):
        self._require_built("count_params")
        return int(sum(p.value.size for p in self.parameters))

    def get_weights(self):
        """Copies of the weight arrays, in the canonical layout (per direction: weight_ih,
        weight_hh, bias_ih, bias_hh for recurrent layers)."""
        return [p.value.copy() for p in self.parameters]

    def set_weights(self, weights):
        self._require_built("set_weights")
        params = self.parameters
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(f"{self.name}: set_weights expected {len(params)} arrays "
                             f"({', '.join(p.name for p in params)}), got {len(weights)}")
        arrays = [np.asarray(w) for w in weights]
        for p, w in zip(params, arrays):             # check them all before changing any
            if w.shape != p.shape:
                raise ValueError(f"{self.name}: set_weights: {p.name} expected shape {p.shape}, "
                                 f"got {w.shape}")
        for p, w in zip(params, arrays):
            p.assign(w)

    def _saved(self):
        """What the last forward with training=True kept for backward (a clear error if none)."""
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward needs a forward call with training=True "
                               f"first (the last forward was an inference call, or none)")
        return self._cache

    # --- building and calling ---------------------------------------------------------------
    def build(self, input_shape):
        self.input_shape = tuple(input_shape)
        self.built = True

    def _require_built(self, what):
        if not self.built:
            raise RuntimeError(f"{self.name}: {what} needs the layer built; call it on an input "
                               f"or call build(input_shape) first")

    def _ensure_built(self, x):
        if not self.built:
            self.build((None,) + tuple(np.shape(x)[1:]))

    def forward(self, x, training=False, mask=None):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def compute_mask(self, x, mask):
        return mask if self.supports_masking else None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def __call__(self, x, training=False, mask=None, **kwargs):
        self._ensure_built(x)
        return self.forward(x, training=training, mask=mask, **kwargs)

    # --- config -----------------------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype.name}

    @classmethod
    def from_config(cls, cfg):
        return cls(**cfg)

    def _float_input(self, x, what="x", ndim=None):
        """``x`` as an array of this layer's float dtype, with ``ndim`` axes and the feature size
        the layer was built for (a clear ValueError otherwise)."""
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}: {what} expected a numeric array, got dtype {x.dtype}")
        if ndim is not None and x.ndim not in (ndim if isinstance(ndim, tuple) else (ndim,)):
            raise ValueError(f"{self.name}: {what} expected {ndim} axes, got shape {x.shape}")
        if self.input_shape is not None and self.input_shape[-1] is not None and x.ndim:
            if x.shape[-1] != self.input_shape[-1]:
                raise ValueError(f"{self.name}: {what} expected {self.input_shape[-1]} features "
                                 f"on the last axis (the layer was built for input shape "
                                 f"{self.input_shape}), got shape {x.shape}")
        return x.astype(self.dtype, copy=False)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"
