"""Command line: ``python -m gatedrnn info | demo | bench``."""

import argparse
import json
import sys
import time

import numpy as np

import gatedrnn
from gatedrnn import functional as F

# (label, forward function, backward function, gates, keyword options)
CELLS = [
    ("rnn tanh", F.rnn, F.rnn_backward, 1, {"nonlinearity": "tanh"}),
    ("rnn relu", F.rnn, F.rnn_backward, 1, {"nonlinearity": "relu"}),
    ("gru reset_after=True", F.gru, F.gru_backward, 3, {"reset_after": True}),
    ("gru reset_after=False", F.gru, F.gru_backward, 3, {"reset_after": False}),
    ("lstm", F.lstm, F.lstm_backward, 4, {}),
]


def _weights(rng, G, I, H, dtype):
    bound = 1.0 / np.sqrt(H)  # PyTorch's default initialisation
    shapes = [(G * H, I), (G * H, H), (G * H,), (G * H,)]
    return [rng.uniform(-bound, bound, s).astype(dtype) for s in shapes]


def _ms(seconds):
    return f"{seconds * 1e3:8.2f} ms"


# Largest |core - reference| the demo's float64 check accepts. Both sides round in float64 over
# sums of a few terms (I=5, H=4, 6 steps): their differences are ~1e-15 (the tests' float64
# policy is 1e-12 relative), while a wrong gate, order or gradient is off by ~1e-3 or more.
REFERENCE_TOLERANCE = 1e-9


def demo_cells(rng):
    """Times every cell and checks it against the NumPy reference; returns the labels of the
    cells that disagree with it by more than REFERENCE_TOLERANCE."""
    T, B, I, H = 50, 32, 64, 128
    print(f"1. Forward and backward of every cell: T={T} steps, B={B} sequences, I={I} inputs, "
          f"H={H} hidden units, float32, random lengths in [1, {T}], reverse=False")
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T
    # the same check on a tiny problem, against the plain NumPy reference in float64
    xs = rng.standard_normal((6, 3, 5))
    failed = []
    for label, fwd, bwd, G, opts in CELLS:
        w = _weights(rng, G, I, H, np.float32)
        start = time.perf_counter()
        out = fwd(x, *w, lengths=lengths, training=True, **opts)
        mid = time.perf_counter()
        dy = np.ones_like(out.y)  # loss = sum(y)
        grads = bwd(out.ctx, dy=dy)
        end = time.perf_counter()
        gnorm = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads[-4:]))
        w_small = _weights(rng, G, 5, 4, np.float64)
        ref_fwd = getattr(gatedrnn.reference, fwd.__name__)
        ref_bwd = getattr(gatedrnn.reference, bwd.__name__)
        core = fwd(xs, *w_small, lengths=[6, 0, 3], training=True, **opts)
        ref = ref_fwd(xs, *w_small, lengths=[6, 0, 3], training=True, **opts)
        dys = np.cos(np.arange(core.y.size)).reshape(core.y.shape)
        pairs = [(core.y, ref.y)] + list(zip(bwd(core.ctx, dy=dys), ref_bwd(ref.ctx, dy=dys)))
        diff = max(np.abs(a - b).max() for a, b in pairs if a is not None)
        if not diff <= REFERENCE_TOLERANCE:   # (NaN fails too)
            failed.append(label)
        print(f"   {label:22s} forward {_ms(mid - start)}  backward {_ms(end - mid)}  "
              f"y {out.y.shape}  |dW| {gnorm:9.3f}  max |core - reference| (float64) {diff:.1e}")
    return failed


def adding_problem(rng, T, n):
    """The adding problem (Hochreiter & Schmidhuber 1997): each step carries a random value and
    a marker; exactly two steps are marked and the target is the sum of their values."""
    values = rng.uniform(0, 1, (T, n))
    markers = np.zeros((T, n))
    for b in range(n):
        markers[rng.choice(T, 2, replace=False), b] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)  # (T, n, 2)
    return x, (values * markers).sum(axis=0).astype(np.float32)


def demo_training(rng, epochs=40, T=10, H=24, B=32, n_train=1024, lr=0.3, clipnorm=1.0):
    print(f"\n2. Training a GRU (H={H}) + linear read-out of h_n through gatedrnn.functional, plain "
          f"SGD (lr {lr})\n   with the gradient clipped to global norm {clipnorm}, on the adding "
          f"problem with T={T}: sum the two\n   marked values of the sequence; the answer must be "
          f"carried in the state until the last step")
    x_all, target = adding_problem(rng, T, n_train)
    print(f"   always predicting the mean target scores MSE {np.var(target):.3f}")
    params = _weights(rng, 3, 2, H, np.float32)            # weight_ih, weight_hh, bias_ih, bias_hh
    params += [(rng.standard_normal(H) / np.sqrt(H)).astype(np.float32),    # read-out weights
               np.full(1, target.mean(), np.float32)]                          # read-out bias
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n_train)
        total = 0.0
        for i in range(0, n_train, B):
            idx = order[i:i + B]
            out = F.gru(x_all[:, idx], *params[:4], training=True)
            err = out.h_n @ params[4] + params[5] - target[idx]
            total += float(np.sum(err ** 2))
            dpred = (2.0 * err / len(idx)).astype(np.float32)     # d mean(err^2) / d prediction
            grads = F.gru_backward(out.ctx, dh_n=np.outer(dpred, params[4]))
            grads = list(grads[2:]) + [out.h_n.T @ dpred, dpred.sum(keepdims=True)]
            norm = np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
            scale = np.float32(lr * min(1.0, clipnorm / (norm + 1e-12)))
            for p, g in zip(params, grads):
                p -= scale * g
        if epoch == 1 or epoch % 5 == 0:
            print(f"   epoch {epoch:3d}  training MSE {total / n_train:.4f}")
    elapsed = time.perf_counter() - start
    steps = epochs * (n_train // B)
    print(f"   {epochs} epochs ({steps} mini-batches of {B}) in {elapsed:.2f} s: "
          f"{elapsed / steps * 1e3:.2f} ms per forward + backward + update")
    return total / n_train


def demo(args):
    rng = np.random.default_rng(args.seed)
    info = gatedrnn.info()
    print(f"gatedrnn {info['version']}: {info['simd']} kernels, {info['num_threads']} threads, "
          f"OpenMP {'on' if info['openmp'] else 'off'}, {info['compiler']}\n")
    start = time.perf_counter()
    failed = demo_cells(rng)
    demo_training(rng, epochs=args.epochs)
    print(f"\nDone in {time.perf_counter() - start:.1f} s.")
    if failed:
        print(f"FAILED: {', '.join(failed)}: the core differs from gatedrnn.reference by more "
              f"than {REFERENCE_TOLERANCE:g} in float64", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gatedrnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print version, compiler, OpenMP, threads and SIMD path as JSON")
    p_demo = sub.add_parser("demo", help="forward/backward of every cell, then a short training run")
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--epochs", type=int, default=40)
    from gatedrnn import bench
    bench.add_arguments(sub.add_parser(
        "bench", help="time gatedrnn against PyTorch, ONNX Runtime and plain NumPy"))
    args = parser.parse_args(argv)
    if args.command == "info":
        print(json.dumps(gatedrnn.info(), indent=2))
    elif args.command == "demo":
        return demo(args)
    elif args.command == "bench":
        return bench.run_from_args(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
