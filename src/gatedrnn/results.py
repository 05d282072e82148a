"""Named tuples returned by gatedrnn.functional and gatedrnn.reference (same types in both)."""

from collections import namedtuple

__all__ = [
    "RNNOutput", "RNNTrainOutput", "LSTMOutput", "LSTMTrainOutput",
    "RNNGradients", "RNNGradientsWithSeq", "LSTMGradients", "LSTMGradientsWithSeq",
]

#: rnn / gru forward: y (T, B, H) or (B, T, H); h_n (B, H)
RNNOutput = namedtuple("RNNOutput", "y h_n")
#: rnn / gru forward with training=True; ctx is what *_backward needs
RNNTrainOutput = namedtuple("RNNTrainOutput", "y h_n ctx")
#: lstm forward
LSTMOutput = namedtuple("LSTMOutput", "y h_n c_n")
LSTMTrainOutput = namedtuple("LSTMTrainOutput", "y h_n c_n ctx")

#: rnn_backward / gru_backward
RNNGradients = namedtuple("RNNGradients", "dx dh0 dweight_ih dweight_hh dbias_ih dbias_hh")
RNNGradientsWithSeq = namedtuple(
    "RNNGradientsWithSeq", "dx dh0 dweight_ih dweight_hh dbias_ih dbias_hh dh_seq")
#: lstm_backward
LSTMGradients = namedtuple("LSTMGradients", "dx dh0 dc0 dweight_ih dweight_hh dbias_ih dbias_hh")
LSTMGradientsWithSeq = namedtuple(
    "LSTMGradientsWithSeq", "dx dh0 dc0 dweight_ih dweight_hh dbias_ih dbias_hh dh_seq")
