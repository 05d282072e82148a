"""Argument checks shared by the Python modules, worded as the core's (cpp/bindings/arrays.h)."""

import numpy as np

__all__ = ["check_bool"]


def check_bool(value, what):
    """``value`` as a bool: a Python or NumPy bool, else a TypeError naming ``what``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what}: expected True or False, got {type(value).__name__}")
    return bool(value)
