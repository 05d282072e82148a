"""A step-by-step NumPy statement of Keras's recurrent-layer semantics: the oracle for the layers.

It follows keras/src/backend/*/rnn.py literally (one cell step at a time, with the mask applied
to states and outputs after each step) and uses gatedrnn.reference for a single cell step, so it
shares nothing with the layers' mask-to-lengths machinery it checks:

- go_backwards reverses the inputs and the mask; outputs stay in processing order;
- a masked step keeps the states; its output is the previous output (zeros before the first
  step), or zeros when zero_output_for_mask;
- the last output is the output of the last processing step.
"""

import numpy as np

from gatedrnn import reference as R


def cell_step(cell, x_t, weights, states, options, rec_mask=None):
    """One step of ``cell`` on x_t (B, I): returns the new states list."""
    fn = {"rnn": R.rnn, "gru": R.gru, "lstm": R.lstm}[cell]
    kw = dict(options)
    if rec_mask is not None:
        kw["recurrent_mask"] = rec_mask
    if cell == "lstm":
        out = fn(x_t[None], *weights, h0=states[0], c0=states[1], **kw)
        return [out.h_n, out.c_n]
    out = fn(x_t[None], *weights, h0=states[0], **kw)
    return [out.h_n]


def keras_rnn(cell, x, weights, options, mask=None, states=None, go_backwards=False,
              zero_output_for_mask=False, rec_mask=None):
    """x (B, T, I) batch-major. Returns (outputs (B, T, H) in processing order, last_output,
    final states list)."""
    B, T, _ = x.shape
    H = weights[1].shape[1]
    n = 2 if cell == "lstm" else 1
    if states is None:
        states = [np.zeros((B, H), x.dtype) for _ in range(n)]
    if mask is None:
        mask = np.ones((B, T), bool)
    xs, ms = x, np.asarray(mask, bool)
    if go_backwards:
        xs, ms = xs[:, ::-1], ms[:, ::-1]
    prev = np.zeros((B, H), x.dtype)
    outs = []
    for t in range(T):
        new = cell_step(cell, xs[:, t], weights, states, options, rec_mask)
        m = ms[:, t][:, None]
        out = np.where(m, new[0], 0 if zero_output_for_mask else prev)
        states = [np.where(m, s_new, s) for s_new, s in zip(new, states)]
        outs.append(out)
        prev = out
    y = np.stack(outs, axis=1) if outs else np.zeros((B, 0, H), x.dtype)
    last = outs[-1] if outs else np.zeros((B, H), x.dtype)
    return y, last, states


def keras_bidirectional(cell, x, w_fwd, w_bwd, options, mask=None, return_sequences=True,
                        merge_mode="concat", states_f=None, states_b=None):
    """Keras Bidirectional: forward layer + go_backwards copy, zero_output_for_mask =
    return_sequences, backward outputs flipped back, then merged."""
    yf, lf, sf = keras_rnn(cell, x, w_fwd, options, mask, states_f, False, return_sequences)
    yb, lb, sb = keras_rnn(cell, x, w_bwd, options, mask, states_b, True, return_sequences)
    if return_sequences:
        a, b = yf, yb[:, ::-1]
    else:
        a, b = lf, lb
    merged = {"concat": lambda: np.concatenate([a, b], -1), "sum": lambda: a + b,
              "mul": lambda: a * b, "ave": lambda: (a + b) / 2, None: lambda: [a, b]}[merge_mode]()
    return merged, sf, sb
