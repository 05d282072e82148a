"""Process-wide settings of the training API: the default float type and the random seed.

Every random draw of the training API (initial weights, dropout masks, shuffling) comes from one
NumPy generator, so ``set_random_seed(s)`` before building and fitting a model makes the run
repeatable: the same seed and thread count give bit-identical weights and losses.
"""

import numpy as np

__all__ = ["floatx", "set_floatx", "set_random_seed", "rng"]

_FLOAT_TYPES = ("float32", "float64")
_floatx = "float32"
_rng = np.random.default_rng()


def floatx():
    """The dtype name new layers use when they are given none (``"float32"`` unless set)."""
    return _floatx


def set_floatx(value):
    """Set the default layer dtype: ``"float32"`` or ``"float64"``."""
    global _floatx
    name = np.dtype(value).name if not isinstance(value, str) else value
    if name not in _FLOAT_TYPES:
        raise ValueError(f"floatx: expected 'float32' or 'float64', got {value!r}")
    _floatx = name


def set_random_seed(seed):
    """Seed the generator behind every initializer, dropout mask and shuffle of the training API."""
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    _rng = np.random.default_rng(int(seed))


def rng():
    """The generator in use (see :func:`set_random_seed`)."""
    return _rng


def resolve_dtype(dtype, what="dtype"):
    """``None`` -> floatx(); float32/float64 (any spelling) -> that np.dtype; else ValueError."""
    if dtype is None:
        return np.dtype(_floatx)
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{what}: expected 'float32' or 'float64', got {dtype!r}") from None
    if d.name not in _FLOAT_TYPES:
        raise ValueError(f"{what}: expected 'float32' or 'float64', got {d.name}")
    return d
