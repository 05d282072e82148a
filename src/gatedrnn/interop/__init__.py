"""Converters between gatedrnn and other ecosystems (PyTorch, Keras, ONNX).

Each converter lives in its own submodule and pulls in its (optional) peer library only when it
is used, so ``import gatedrnn.interop`` costs nothing and needs none of them:

- :func:`from_onnx` (:mod:`gatedrnn.interop.onnx`, needs ``onnx``): load an ONNX model and run
  it, its RNN/GRU/LSTM nodes on gatedrnn's core.

A name is resolved from ``_EXPORTS`` on first access; add new converters there.
"""

import importlib

#: public name -> submodule that defines it
_EXPORTS = {
    "from_onnx": ".onnx",
    "OnnxModel": ".onnx",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
