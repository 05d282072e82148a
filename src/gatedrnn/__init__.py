"""gatedrnn: fast, exact CPU forward and backward passes for RNN, GRU and LSTM layers.

The C++ core (``gatedrnn._core``) is reached through :mod:`gatedrnn.functional`;
:mod:`gatedrnn.reference` is the plain NumPy specification of the same functions.
"""

from importlib.metadata import PackageNotFoundError, version as _version

from . import _core, functional
from . import activations, callbacks, config, initializers, interop, layers, losses, metrics, optim
from .models import Input, Sequential, load_model
from ._core import get_num_threads

try:
    __version__ = _version("gatedrnn")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = [
    "functional", "reference", "layers", "Sequential", "Input", "load_model", "losses",
    "metrics", "optim", "callbacks", "interop", "config", "initializers", "activations", "info",
    "set_num_threads", "get_num_threads", "__version__",
]


def __getattr__(name):
    # gatedrnn.reference is imported on first use: programs that never need the oracle don't pay.
    if name == "reference":
        import importlib
        return importlib.import_module(".reference", __name__)
    raise AttributeError(f"module 'gatedrnn' has no attribute {name!r}")


def set_num_threads(n):
    """Cap the worker threads of every gatedrnn call in this process (all Python threads).

    ``n >= 1`` sets the cap; ``n = 0`` restores the default (OMP_NUM_THREADS, else the CPUs this
    process may use).
    """
    if isinstance(n, bool) or not isinstance(n, int):
        try:
            import operator
            n = operator.index(n)
        except TypeError:
            raise TypeError(f"n: expected an int, got {type(n).__name__}") from None
    _core.set_num_threads(n)


def info():
    """Version, compiler, OpenMP on/off, thread count and SIMD path of this build, as a dict."""
    d = {"version": __version__}
    core = _core.info()
    d.update(core)
    return d
