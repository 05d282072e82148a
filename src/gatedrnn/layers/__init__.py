"""Layers of the Keras-like training API (see the README's "Layers and models")."""

from .base import Layer
from .cells import GRUCell, LSTMCell, RNNCell, SimpleRNNCell
from .core import Activation, Dense, Dropout, Embedding, Masking, RepeatVector
from .parameter import Parameter
from .recurrent import GRU, LSTM, RNN, Bidirectional, SimpleRNN
from .stacked import StackedRNN

__all__ = [
    "Layer", "Parameter", "SimpleRNN", "RNN", "GRU", "LSTM", "Bidirectional", "SimpleRNNCell",
    "RNNCell", "GRUCell", "LSTMCell", "Dense", "Embedding", "Dropout", "RepeatVector", "Masking",
    "Activation", "StackedRNN", "serialize", "deserialize",
]

_CLASSES = {cls.__name__: cls for cls in (
    SimpleRNN, GRU, LSTM, Bidirectional, SimpleRNNCell, GRUCell, LSTMCell, Dense, Embedding,
    Dropout, RepeatVector, Masking, Activation, StackedRNN)}


def serialize(layer):
    """``{"class_name", "config"}``: what a saved model stores per layer."""
    name = type(layer).__name__
    if _CLASSES.get(name) is not type(layer):
        raise ValueError(f"{layer!r}: only the built-in layers can be saved in a model config, "
                         f"got {type(layer).__qualname__}")
    return {"class_name": name, "config": layer.get_config()}


def deserialize(d):
    if not isinstance(d, dict) or "class_name" not in d:
        raise ValueError(f"layer config: expected {{'class_name', 'config'}}, got {d!r}")
    cls = _CLASSES.get(d["class_name"])
    if cls is None:
        raise ValueError(f"layer config: unknown layer class {d['class_name']!r}")
    return cls.from_config(dict(d.get("config", {})))
