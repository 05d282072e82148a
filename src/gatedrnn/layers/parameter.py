"""A trainable array and the gradient that accumulates into it."""

import numpy as np

__all__ = ["Parameter"]


class Parameter:
    """One weight array of a layer, with its gradient.

    ``value`` is updated in place by optimizers (so views handed out stay valid); ``grad`` has the
    same shape and dtype and accumulates over backward calls until :meth:`zero_grad`.
    ``name`` is unique within a model (``"<layer name>/<weight name>"``). Code that changes
    ``value`` in place other than through an optimizer or :meth:`assign` calls
    :meth:`mark_updated` afterwards.
    """

    __slots__ = ("name", "value", "grad", "trainable", "version")

    def __init__(self, name, value, trainable=True):
        value = np.ascontiguousarray(value)
        self.name = name
        self.value = value
        self.grad = np.zeros_like(value)
        self.trainable = bool(trainable)
        self.version = 0

    def mark_updated(self):
        """Record that ``value`` changed in place (optimizers and :meth:`assign` call this), so
        layers that keep packed copies of their weights for inference pack them again."""
        self.version += 1

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    def zero_grad(self):
        self.grad[...] = 0

    def assign(self, array, what=None):
        """Copy ``array`` into ``value`` in place, checking shape (dtype is cast: float64 weights
        from another system load into a float32 layer)."""
        array = np.asarray(array)
        if array.shape != self.value.shape:
            raise ValueError(f"{what or self.name}: expected shape {self.value.shape}, "
                             f"got {array.shape}")
        if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"{what or self.name}: expected a floating array, got dtype {array.dtype}")
        self.value[...] = array
        self.mark_updated()

    def __repr__(self):
        return f"Parameter({self.name!r}, shape={self.value.shape}, dtype={self.value.dtype})"
