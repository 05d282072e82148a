"""Converters between gatedrnn and other ecosystems (PyTorch, Keras, ONNX).

Each converter lives in its own submodule and pulls in its (optional) peer library only when it
is used, so ``import gatedrnn.interop`` costs nothing and needs none of them:

- :func:`from_torch`, :func:`to_torch`, :func:`from_torch_state_dict`
  (:mod:`gatedrnn.interop.torch`, needs ``torch``): nn.RNN/GRU/LSTM modules and cells both ways.
- :func:`from_keras`, :func:`to_keras`, :func:`from_keras_weights`, :func:`to_keras_weights`
  (:mod:`gatedrnn.interop.keras`, needs ``keras`` 3): Keras layers and Sequential models.
- :func:`from_onnx` (:mod:`gatedrnn.interop.onnx`, needs ``onnx``): load an ONNX model and run
  it, its RNN/GRU/LSTM nodes on gatedrnn's core.
- :func:`to_onnx` (:mod:`gatedrnn.interop.onnx_export`, needs ``onnx``): export layers and
  Sequential models to an ONNX graph that ONNX Runtime runs with the same outputs.

A name is resolved from ``_EXPORTS`` on first access; add new converters there.
"""

import importlib

#: public name -> submodule that defines it
_EXPORTS = {
    "from_torch": ".torch",
    "to_torch": ".torch",
    "from_torch_state_dict": ".torch",
    "from_keras": ".keras",
    "to_keras": ".keras",
    "from_keras_weights": ".keras",
    "to_keras_weights": ".keras",
    "KerasConversionWarning": ".keras",
    "from_onnx": ".onnx",
    "to_onnx": ".onnx_export",
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
