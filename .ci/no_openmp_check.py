"""CI: the extension module built without OpenMP (GATEDRNN_OPENMP=OFF) imports, says so, and
computes every cell forward and backward like the reference. Run from a directory holding a
copy of src/gatedrnn with that build's _core module in it."""

import numpy as np

import gatedrnn
from gatedrnn import functional as F
from gatedrnn import reference as R

info = gatedrnn.info()
assert info["openmp"] is False and info["num_threads"] == 1, info
rng = np.random.default_rng(0)
T, B, I, H = 6, 5, 7, 33
x = rng.standard_normal((T, B, I))
lengths = np.array([6, 0, 3, 6, 2])
for cell, G, opts in [("rnn", 1, {"nonlinearity": "relu"}), ("gru", 3, {"reset_after": True}),
                      ("gru", 3, {"reset_after": False}), ("lstm", 4, {})]:
    w = [rng.uniform(-0.4, 0.4, s) for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]
    got = getattr(F, cell)(x, *w, lengths=lengths, training=True, **opts)
    want = getattr(R, cell)(x, *w, lengths=lengths, training=True, **opts)
    dy = rng.standard_normal(got.y.shape)
    pairs = [(got.y, want.y)] + list(zip(getattr(F, cell + "_backward")(got.ctx, dy=dy),
                                         getattr(R, cell + "_backward")(want.ctx, dy=dy)))
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
print(f"no-OpenMP build ({info['simd']} kernels): every cell matches the reference")
