"""Activations for Dense and Activation layers: each is a forward and the backward from the
saved input/output (no autograd)."""

import numpy as np

__all__ = ["get", "Activation"]


class Activation:
    """``forward(z) -> a``; ``backward(z, a, da) -> dz``."""
    name = None

    def forward(self, z):
        raise NotImplementedError

    def backward(self, z, a, da):
        raise NotImplementedError


class Linear(Activation):
    name = "linear"

    def forward(self, z):
        return z

    def backward(self, z, a, da):
        return da


class Relu(Activation):
    name = "relu"

    def forward(self, z):
        return np.maximum(z, 0)

    def backward(self, z, a, da):
        return da * (z > 0)


class Tanh(Activation):
    name = "tanh"

    def forward(self, z):
        return np.tanh(z)

    def backward(self, z, a, da):
        return da * (1 - a * a)


class Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, z):
        # exp of a non-positive number only: no overflow warning for large |z|
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)

    def backward(self, z, a, da):
        return da * a * (1 - a)


class Softmax(Activation):
    name = "softmax"

    def forward(self, z):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def backward(self, z, a, da):
        return a * (da - (da * a).sum(axis=-1, keepdims=True))


class Softplus(Activation):
    name = "softplus"

    def forward(self, z):
        return np.logaddexp(0, z).astype(z.dtype, copy=False)

    def backward(self, z, a, da):
        return da * Sigmoid().forward(z)


class Elu(Activation):
    name = "elu"

    def forward(self, z):
        return np.where(z > 0, z, np.expm1(np.minimum(z, 0))).astype(z.dtype, copy=False)

    def backward(self, z, a, da):
        return da * np.where(z > 0, 1, a + 1)


_ALL = {cls.name: cls for cls in (Linear, Relu, Tanh, Sigmoid, Softmax, Softplus, Elu)}


def get(identifier, what="activation"):
    if identifier is None:
        return Linear()
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str) and identifier in _ALL:
        return _ALL[identifier]()
    raise ValueError(f"{what}: expected one of {sorted(_ALL)} or None, got {identifier!r}")
