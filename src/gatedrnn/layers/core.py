"""Non-recurrent layers: Dense, Embedding, Dropout, RepeatVector, Masking, Activation."""

import numpy as np

from .. import _core
from .. import activations as _act
from .. import config
from .. import initializers as _init
from .base import Layer

__all__ = ["Dense", "Embedding", "Dropout", "RepeatVector", "Masking", "Activation"]


def _check_units(units, what="units"):
    if isinstance(units, bool) or not isinstance(units, (int, np.integer)):
        raise TypeError(f"{what}: expected a positive int, got {type(units).__name__}")
    if units < 1:
        raise ValueError(f"{what}: expected a positive int, got {units}")
    return int(units)


class Dense(Layer):
    """``y = activation(x W^T + b)`` on the last axis (applied per time step on 3-D input).

    The products run on the core's GEMM and threads, not NumPy's BLAS: a training step then
    uses one thread pool, instead of two that spin and steal each other's cores.

    ``weight`` is ``(units, in)`` as PyTorch's Linear (the canonical layout); initializers are
    drawn on the Keras-shaped ``(in, units)`` kernel and transposed.
    """
    supports_masking = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = _check_units(units)
        self.activation = _act.get(activation, f"{self.name}: activation")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _init.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = _init.get(bias_initializer, "bias_initializer")

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"{self.name}: expected an input with a known last axis, "
                             f"got shape {input_shape}")
        fan_in = input_shape[-1]
        kernel = self.kernel_initializer((fan_in, self.units), self.dtype, fan=fan_in)
        self.add_weight("weight", (self.units, fan_in), lambda s, d, fan=None: kernel.T)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer, fan=fan_in)
        super().build(input_shape)

    def forward(self, x, training=False, mask=None):
        x = self._float_input(x, ndim=None)
        if x.ndim < 2:
            raise ValueError(f"{self.name}: x expected at least 2 axes, got shape {x.shape}")
        x2 = x.reshape(-1, x.shape[-1])
        z = _core.matmul(x2, self._params["weight"].value, trans_b=True)
        if self.use_bias:
            z += self._params["bias"].value
        z = z.reshape(x.shape[:-1] + (self.units,))
        a = self.activation.forward(z)
        self._cache = (x2, z, a) if training else None
        return a

    input_grad_optional = True

    def backward(self, dy, input_grad=True):
        x2, z, a = self._saved()
        dz = self.activation.backward(z, a, np.asarray(dy, self.dtype))
        dz2 = np.ascontiguousarray(dz).reshape(-1, self.units)
        weight = self._params["weight"]
        _core.matmul(dz2, x2, trans_a=True, out=weight.grad, beta=1.0)      # dW += dz^T x
        if self.use_bias:
            self._params["bias"].grad += dz2.sum(axis=0)
        if not input_grad:
            return None
        return _core.matmul(dz2, weight.value).reshape(z.shape[:-1] + (x2.shape[1],))  # dz W

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation.name,
                "use_bias": self.use_bias,
                "kernel_initializer": _init.serialize(self.kernel_initializer),
                "bias_initializer": _init.serialize(self.bias_initializer)}


class Embedding(Layer):
    """Integer indices ``(B, T)`` -> vectors ``(B, T, output_dim)``.

    ``mask_zero=True`` makes index 0 padding: the output carries the mask ``x != 0``, which the
    recurrent layers turn into sequence lengths (so ``input_dim`` must count the padding index).
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", mask_zero=False,
                 **kwargs):
        kwargs.pop("input_length", None)       # Keras 2 argument, no meaning here
        super().__init__(**kwargs)
        self.input_dim = _check_units(input_dim, "input_dim")
        self.output_dim = _check_units(output_dim, "output_dim")
        self.embeddings_initializer = _init.get(embeddings_initializer, "embeddings_initializer")
        self.mask_zero = bool(mask_zero)

    def build(self, input_shape):
        self.add_weight("embeddings", (self.input_dim, self.output_dim),
                        self.embeddings_initializer)
        self.built = True
        self.input_shape = tuple(input_shape)

    def _indices(self, x):
        x = np.asarray(x)
        if x.dtype.kind == "f":
            if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
                raise ValueError(f"{self.name}: x expected integer indices, got non-integer floats")
            x = x.astype(np.int64)
        elif x.dtype.kind not in "iu":
            raise TypeError(f"{self.name}: x expected integer indices, got dtype {x.dtype}")
        if x.size and (x.min() < 0 or x.max() >= self.input_dim):
            raise ValueError(f"{self.name}: x expected indices in [0, {self.input_dim}), got "
                             f"values in [{x.min()}, {x.max()}]")
        return x

    def forward(self, x, training=False, mask=None):
        x = self._indices(x)
        self._cache = x if training else None
        return self._params["embeddings"].value[x]

    def backward(self, dy):
        x = self._saved()
        g = self._params["embeddings"].grad
        np.add.at(g, x.reshape(-1), dy.reshape(-1, self.output_dim))
        return None

    def compute_mask(self, x, mask):
        if not self.mask_zero:
            return None
        return np.asarray(x) != 0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim,
                "output_dim": self.output_dim, "mask_zero": self.mask_zero,
                "embeddings_initializer": _init.serialize(self.embeddings_initializer)}


class Dropout(Layer):
    """Inverted dropout while training: zero each element with probability ``rate`` and scale the
    rest by ``1/(1-rate)``; the identity at inference. ``noise_shape`` as Keras (None axes take
    the input's size, e.g. ``(None, 1, None)`` for one mask per sequence)."""
    supports_masking = True

    def __init__(self, rate, noise_shape=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= float(rate) < 1:
            raise ValueError(f"rate: expected a float in [0, 1), got {rate}")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)

    def forward(self, x, training=False, mask=None):
        x = self._float_input(x)
        if not training or self.rate == 0:
            self._mask = None
            return x
        shape = x.shape if self.noise_shape is None else tuple(
            s if n is None else n for s, n in zip(x.shape, self.noise_shape))
        keep = config.rng().random(shape) >= self.rate
        self._mask = keep.astype(x.dtype) / (1 - self.rate)
        return x * self._mask

    def backward(self, dy):
        return dy if self._mask is None else dy * self._mask

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape}


class RepeatVector(Layer):
    """``(B, F)`` -> ``(B, n, F)``: one input fed to every step (the one-to-many set-up)."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = _check_units(n, "n")

    def forward(self, x, training=False, mask=None):
        x = self._float_input(x, ndim=2)
        return np.repeat(x[:, None, :], self.n, axis=1)

    def backward(self, dy):
        return dy.sum(axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n) + tuple(input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class Masking(Layer):
    """Marks time steps whose features all equal ``mask_value`` as padding (output: the input with
    those steps zeroed, and the mask ``any(x != mask_value, axis=-1)``)."""

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def _mask(self, x):
        return np.any(x != self.mask_value, axis=-1)

    def forward(self, x, training=False, mask=None):
        given = x
        x = self._float_input(x, ndim=3)
        keep = self._mask(x)
        self._keep = keep[..., None].astype(x.dtype)
        self._last = (given, keep)              # compute_mask reads it for the same input
        return x * self._keep

    def backward(self, dy):
        return dy * self._keep

    def compute_mask(self, x, mask):
        last = getattr(self, "_last", None)
        if last is not None and last[0] is x:
            return last[1]
        return self._mask(np.asarray(x))

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


class Activation(Layer):
    """An activation on its own (e.g. ``Activation("softmax")`` after a Dense)."""
    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = _act.get(activation, f"{self.name}: activation")

    def forward(self, x, training=False, mask=None):
        x = self._float_input(x)
        a = self.activation.forward(x)
        self._cache = (x, a) if training else None
        return a

    def backward(self, dy):
        x, a = self._saved()
        return self.activation.backward(x, a, dy)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation.name}
