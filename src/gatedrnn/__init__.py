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
    "set_num_threads", "get_num_threads", "set_memory_cache_limit", "empty_memory_cache",
    "__version__",
]


def __getattr__(name):
    # gatedrnn.reference is imported on first use: programs that never need the oracle don't pay.
    if name == "reference":
        import importlib
        return importlib.import_module(".reference", __name__)
    raise AttributeError(f"module 'gatedrnn' has no attribute {name!r}")


def _int_argument(value, name):
    """``value`` as an int (anything with __index__ except bool), else a TypeError naming it."""
    if not isinstance(value, bool):
        try:
            import operator
            return operator.index(value)
        except TypeError:
            pass
    raise TypeError(f"{name}: expected an int, got {type(value).__name__}")


def set_num_threads(n):
    """Cap the worker threads of every gatedrnn call in this process (all Python threads).

    ``n >= 1`` sets the cap; ``n = 0`` restores the default (OMP_NUM_THREADS, else the CPUs this
    process may use). Only the speed changes: results are bit-identical for any thread count.
    """
    n = _int_argument(n, "n")
    _core.set_num_threads(n)


def set_memory_cache_limit(nbytes):
    """Cap the memory the core keeps for reuse after its large arrays are freed.

    Every call of a training loop allocates the same large arrays (workspace, gradients,
    outputs); the core keeps released blocks of 256 KB and more, up to ``nbytes`` in all, and
    hands them out again instead of asking the operating system for fresh pages, which would be
    faulted in one page at a time. The default is 1 GiB (environment variable
    ``GATEDRNN_MEMORY_CACHE_MB``); ``0`` turns the cache off. Lowering the cap frees the excess at
    once. ``info()`` reports the cap and what is held now.
    """
    nbytes = _int_argument(nbytes, "nbytes")
    _core.set_memory_cache_limit(nbytes)


def empty_memory_cache():
    """Return every block the core keeps for reuse to the operating system (see
    :func:`set_memory_cache_limit`). Arrays still in use are not affected."""
    _core.empty_memory_cache()


def info():
    """Version, compiler, OpenMP on/off, thread count and SIMD path of this build, the block
    cache's cap and contents, and ``team_wake_seconds``: the measured cost of waking the idle
    threads, which decides when a small call runs on the calling thread alone (README, "Cold
    starts"), as a dict."""
    d = {"version": __version__}
    core = _core.info()
    d.update(core)
    return d
