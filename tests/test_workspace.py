"""The training workspace: one allocation, of exactly the size workspace_size states."""

import numpy as np
import pytest

from gatedrnn import functional as F

CELLS = [("rnn", 1, {}), ("gru", 3, {"reset_after": True}), ("gru", 3, {"reset_after": False}),
         ("lstm", 4, {})]


@pytest.mark.parametrize("cell, G, opts", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_workspace_is_one_array_of_the_stated_size(cell, G, opts, dtype):
    rng = np.random.default_rng(0)
    T, B, I, H = 5, 3, 4, 6
    x = rng.standard_normal((T, B, I)).astype(dtype)
    w = [rng.standard_normal(s).astype(dtype) for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]
    out = getattr(F, cell)(x, *w, training=True, **opts)
    ws = out.ctx.workspace
    assert ws.dtype == dtype and ws.ndim == 1
    assert ws.size == F.workspace_size(cell, T, B, I, H, **opts)
    # G gate planes + h_{t-1} + the cell's own planes (LSTM 2, GRU 1, RNN 0), T*B rows of H
    extra = {"rnn": 0, "gru": 1, "lstm": 2}[cell]
    assert ws.size == T * B * H * (G + 1 + extra)
    # bidirectional: one allocation for both directions
    w2 = [np.stack([a, a]) for a in w]
    out2 = getattr(F, cell)(x, *w2, training=True, bidirectional=True, **opts)
    assert out2.ctx.workspace.size == 2 * ws.size


@pytest.mark.parametrize("args, match", [
    (("lstm", 5, 3, 4, 0), "H=0"),
    (("lstm", -1, 3, 4, 6), "T=-1"),
    (("conv", 5, 3, 4, 6), "cell"),
])
def test_workspace_size_rejects_bad_sizes(args, match):
    with pytest.raises(ValueError, match=match):
        F.workspace_size(*args)
