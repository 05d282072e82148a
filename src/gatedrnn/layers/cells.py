"""Streaming cells: one time step per call, on the core, with the weights packed once.

``cell.step(x_t, state) -> (h_t, state)`` with ``x_t`` of shape ``(B, I)`` and ``state`` the
hidden state ``(B, H)`` (RNN, GRU) or the pair ``(h, c)`` (LSTM); ``state=None`` starts from zeros.
A call costs a few microseconds plus the step's arithmetic: the weights stay packed between
calls and are packed again only after they change (``set_weights``, an optimizer step).
A trained recurrent layer hands out a cell sharing its weights: ``layer.get_cell()``.
"""

import numpy as np

from .. import functional as F
from .base import Layer
from .recurrent import _RecurrentWeights

__all__ = ["RNNCell", "SimpleRNNCell", "GRUCell", "LSTMCell", "cell_class"]


class _Cell(_RecurrentWeights, Layer):

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", **kwargs):
        Layer.__init__(self, **kwargs)
        self._init_recurrent(units, activation, recurrent_activation, use_bias,
                             kernel_initializer, recurrent_initializer, bias_initializer)
        self._shared_layer = None

    @property
    def state_size(self):
        return [self.units] * self._n_states()

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(f"{self.name}: expected input of shape (batch, features), got "
                             f"{tuple(input_shape)}")
        if self._shared_layer is not None and self._shared_layer.built:
            self._params = self._shared_layer._params
        else:
            self._build_weights(int(input_shape[-1]))
            if self._shared_layer is not None:
                self._shared_layer._params = self._params
                self._shared_layer.input_shape = (None, None, int(input_shape[-1]))
                self._shared_layer.built = True
        Layer.build(self, input_shape)

    def _ensure_built(self, x):
        if not self.built:
            self.build(tuple(np.shape(x)))

    def get_initial_state(self, batch_size):
        zeros = [np.zeros((batch_size, self.units), self.dtype) for _ in range(self._n_states())]
        return zeros[0] if len(zeros) == 1 else tuple(zeros)

    def step(self, x_t, state=None):
        """One time step: ``(h_t, new_state)``; ``new_state`` is ``h_t`` or ``(h_t, c_t)``."""
        self._ensure_built(x_t)
        x_t = self._float_input(x_t, "x_t", ndim=2)
        B = x_t.shape[0]
        if state is None:
            states = [None] * self._n_states()
        else:
            states = self._check_states(list(state) if isinstance(state, tuple) else state, B,
                                        "state")
        x3 = x_t[None] if x_t.flags.c_contiguous else np.ascontiguousarray(x_t)[None]
        if self.cell == "lstm":
            _, h, c = F.lstm(x3, self.packed_weights(), h0=states[0], c0=states[1])
            return h, (h, c)
        _, h = (F.rnn if self.cell == "rnn" else F.gru)(x3, self.packed_weights(), h0=states[0])
        return h, h

    def forward(self, x, training=False, mask=None, state=None):
        if training:
            raise ValueError(f"{self.name}: cells are for streaming inference; train the "
                             f"matching layer (e.g. gr.layers.RNN(cell)) instead")
        return self.step(x, state)

    def __call__(self, x, state=None, training=False):
        return self.forward(x, training=training, state=state)

    def get_config(self):
        return {**Layer.get_config(self), **self._recurrent_config()}


class SimpleRNNCell(_Cell):
    """Elman RNN cell (``activation`` "tanh" or "relu")."""
    cell = "rnn"


RNNCell = SimpleRNNCell


class GRUCell(_Cell):
    """GRU cell (``reset_after`` True, the default, or False)."""
    cell = "gru"

    def __init__(self, units, reset_after=True, **kwargs):
        self.reset_after = bool(reset_after)
        super().__init__(units, **kwargs)


class LSTMCell(_Cell):
    """LSTM cell; the state is ``(h, c)``."""
    cell = "lstm"

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        self.unit_forget_bias = bool(unit_forget_bias)
        super().__init__(units, **kwargs)


def cell_class(cell):
    return {"rnn": SimpleRNNCell, "gru": GRUCell, "lstm": LSTMCell}[cell]
