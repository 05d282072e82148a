"""Shared inputs of the ONNX export tests (test_onnx_export.py, test_onnx_roundtrip.py): the
layers under test, their sizes, and the padded data and model both sets of tests feed them."""

import numpy as np

import gatedrnn as gr
from conftest import randomize_weights

L = gr.layers
F32 = np.float32
CELLS = {
    "rnn_tanh": lambda u, **kw: L.SimpleRNN(u, **kw),
    "rnn_relu": lambda u, **kw: L.SimpleRNN(u, activation="relu", **kw),
    "gru_ra": lambda u, **kw: L.GRU(u, **kw),
    "gru_rb": lambda u, **kw: L.GRU(u, reset_after=False, **kw),
    "lstm": lambda u, **kw: L.LSTM(u, **kw),
}
B, T, I, H = 6, 7, 4, 5
LENGTHS = np.array([0, 3, T, 1, 5, T], np.int64)  # 0, 1, T and in between, in a mixed order


def mask_of(lengths, T=T):
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def data(rng, *shape):
    return rng.standard_normal(shape).astype(F32)


def padded_tokens(rng, lengths, side, vocab=20, T=9):
    """Tokens 1..vocab-1, padded with 0 on the given side to each entry's length."""
    tokens = rng.integers(1, vocab, (len(lengths), T))
    for b, n in enumerate(lengths):
        if side == "right":
            tokens[b, n:] = 0
        else:
            tokens[b, :T - n] = 0
    return tokens


def readme_model(rng, activation="softmax", vocab=20):
    """The README's model: Embedding(mask_zero) -> BiLSTM -> GRU -> Dense, random weights."""
    model = gr.Sequential([
        gr.Input((None,), dtype="int64"),
        L.Embedding(vocab, 8, mask_zero=True),
        L.Bidirectional(L.LSTM(6, return_sequences=True)),
        L.GRU(5),
        L.Dense(3, activation=activation),
    ])
    model.build((None, None))
    for layer in model.layers:
        randomize_weights(layer, rng, scale=1.0)
    return model


# (first step, length) of each entry's one run of unmasked steps: empty, whole, at either end,
# in the middle
RUNS = [(0, 0), (0, 8), (0, 3), (5, 3), (2, 4), (7, 1), (1, 1)]


def runs_anywhere(rng, T=8):
    """Features that are zero (masked by Masking(0.0)) outside each entry's run of RUNS."""
    x = data(rng, len(RUNS), T, I)
    for b, (s, n) in enumerate(RUNS):
        x[b, :s] = 0
        x[b, s + n:] = 0
    return x


def masked_stack(cell, zero_output, go_backwards):
    """Masking -> cell (sequences) -> Bidirectional(cell, sum) -> cell (last output)."""
    return gr.Sequential([
        gr.Input((None, I)), L.Masking(0.0),
        CELLS[cell](H, return_sequences=True, go_backwards=go_backwards,
                    zero_output_for_mask=zero_output),
        L.Bidirectional(CELLS[cell](H, return_sequences=True), merge_mode="sum"),
        CELLS[cell](H, zero_output_for_mask=zero_output, go_backwards=go_backwards),
    ])
