"""Weight initializers, named as in Keras.

Every initializer is called on the Keras-shaped matrix ``(fan_in, fan_out)`` (for recurrent
layers ``(input, G*units)`` and ``(units, G*units)``) and the layer stores its transpose in the
canonical ``(out, in)`` layout, so the distributions are exactly Keras's. ``"torch_uniform"`` is
PyTorch's default for recurrent and linear layers: ``U(-1/sqrt(k), 1/sqrt(k))`` with ``k`` the
hidden size (recurrent layers) or the fan-in (Dense).
"""

import math

import numpy as np

from . import config

__all__ = [
    "Initializer", "Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal",
    "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform", "Orthogonal",
    "TorchUniform", "get",
]


class Initializer:
    """``init(shape, dtype, fan=None) -> ndarray``; ``fan`` is the size TorchUniform scales by."""

    def __call__(self, shape, dtype, fan=None):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, cfg):
        return cls(**cfg)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    def __call__(self, shape, dtype, fan=None):
        return np.zeros(shape, dtype)


class Ones(Initializer):
    def __call__(self, shape, dtype, fan=None):
        return np.ones(shape, dtype)


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = float(value)

    def __call__(self, shape, dtype, fan=None):
        return np.full(shape, self.value, dtype)

    def get_config(self):
        return {"value": self.value}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05):
        if not maxval > minval:
            raise ValueError(f"maxval: expected > minval={minval}, got {maxval}")
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype, fan=None):
        return config.rng().uniform(self.minval, self.maxval, shape).astype(dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05):
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype, fan=None):
        return config.rng().normal(self.mean, self.stddev, shape).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev}


def _fans(shape):
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class _VarianceScaling(Initializer):
    """Keras VarianceScaling: uniform or truncated normal with variance scale / fan."""
    scale, mode, distribution = 1.0, "fan_avg", "uniform"

    def __call__(self, shape, dtype, fan=None):
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        var = self.scale / max(1.0, n)
        rng = config.rng()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * var)
            return rng.uniform(-limit, limit, shape).astype(dtype)
        # truncated normal at two standard deviations; 0.8796... is the std of a unit normal
        # truncated there, as Keras divides by
        std = math.sqrt(var) / 0.87962566103423978
        out = rng.normal(0.0, std, shape)
        bad = np.abs(out) > 2 * std
        while bad.any():
            out[bad] = rng.normal(0.0, std, int(bad.sum()))
            bad = np.abs(out) > 2 * std
        return out.astype(dtype)


class GlorotUniform(_VarianceScaling):
    pass


class GlorotNormal(_VarianceScaling):
    distribution = "truncated_normal"


class HeUniform(_VarianceScaling):
    scale, mode = 2.0, "fan_in"


class HeNormal(_VarianceScaling):
    scale, mode, distribution = 2.0, "fan_in", "truncated_normal"


class LecunUniform(_VarianceScaling):
    mode = "fan_in"


class Orthogonal(Initializer):
    """Keras Orthogonal: QR of a Gaussian matrix, signs fixed by diag(R); rows orthonormal when
    the matrix is wide (the recurrent kernel ``(units, G*units)``)."""

    def __init__(self, gain=1.0):
        self.gain = float(gain)

    def __call__(self, shape, dtype, fan=None):
        if len(shape) < 2:
            raise ValueError(f"shape: the orthogonal initializer needs at least 2 axes, got {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = config.rng().normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(dtype)

    def get_config(self):
        return {"gain": self.gain}


class TorchUniform(Initializer):
    """PyTorch's default: ``U(-1/sqrt(fan), 1/sqrt(fan))``, fan = hidden size or Dense fan-in."""

    def __call__(self, shape, dtype, fan=None):
        k = fan if fan is not None else _fans(shape)[0]
        bound = 1.0 / math.sqrt(max(1, k))
        return config.rng().uniform(-bound, bound, shape).astype(dtype)


_NAMES = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "uniform": RandomUniform,
    "random_uniform": RandomUniform, "normal": RandomNormal, "random_normal": RandomNormal,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_uniform": HeUniform,
    "he_normal": HeNormal, "lecun_uniform": LecunUniform, "orthogonal": Orthogonal,
    "torch_uniform": TorchUniform,
}


def get(identifier, what="initializer"):
    """An Initializer from a name, a ``{"class_name", "config"}`` dict, an instance or a callable
    ``f(shape, dtype) -> array``."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"{what}: unknown initializer {identifier!r}; expected one of "
                             f"{sorted(_NAMES)}")
        return cls()
    if isinstance(identifier, dict) and "class_name" in identifier:
        return serialize_lookup(identifier, what)
    if callable(identifier):
        return _Callable(identifier)
    raise TypeError(f"{what}: expected a name, an Initializer or a callable, "
                    f"got {type(identifier).__name__}")


def serialize(init):
    """The JSON-able form ``{"class_name", "config"}`` of a named initializer."""
    for name, cls in _NAMES.items():
        if type(init) is cls:
            return {"class_name": name, "config": init.get_config()}
    raise ValueError(f"initializer {init!r} is a custom callable and cannot be saved in a config")


def serialize_lookup(d, what):
    cls = _NAMES.get(str(d["class_name"]).lower())
    if cls is None:
        raise ValueError(f"{what}: unknown initializer {d['class_name']!r}")
    return cls.from_config(d.get("config", {}))


class _Callable(Initializer):
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, shape, dtype, fan=None):
        out = np.asarray(self.fn(shape, dtype), dtype=dtype)
        if out.shape != tuple(shape):
            raise ValueError(f"initializer {self.fn!r}: expected shape {tuple(shape)}, "
                             f"got {out.shape}")
        return out
