"""The adding problem: can a recurrent cell carry information across T time steps?

Hochreiter & Schmidhuber (1997) built this task to show that gated cells remember over long
gaps where a plain RNN forgets. Each sequence has T steps of two features: a random value in
[0, 1) and a marker that is 1 at exactly two steps, one in the first half of the sequence and
one in the second half (the form Le, Jaitly & Hinton 2015 use). The target is the sum of the
two marked values. A model that has not learned anything does best by always predicting the
mean, 1.0, whose MSE is the variance of a sum of two U(0, 1) values: 2/12 = 0.167. Solving the
task means remembering the first marked value for up to T steps while ignoring everything else.

For T = 50, 100 and 200 this trains SimpleRNN, GRU and LSTM (each followed by Dense(1)) for the
same wall-clock budget, on fresh random sequences, and records the validation MSE over time.
It prints the table of final MSEs (rows T, columns cell) and, when matplotlib is installed,
saves two figures:

- ``adding_mse.png``: validation MSE against seconds of training, one panel per T;
- ``adding_grad_norm.png``: ||dL/dh_t|| against t for each cell at the longest T, at
  initialisation and after training (log scale), from the core's ``return_dh_seq``: the
  gradient that reaches step t from the loss at the last step, i.e. how strongly the first
  marked value can still steer learning. It shrinks geometrically with the distance T - t
  (the vanishing gradient). A tanh RNN has no way around that; a GRU or LSTM starts with its
  gates half open (so its gradient vanishes too at initialisation) but can learn to hold them
  open (GRU z -> 1, LSTM f -> 1), which gives the gradient a path across the gap. The table
  printed at the end gives ||dL/dh_1|| / ||dL/dh_T|| for the same runs.

Run (from the repository root, gatedrnn installed)::

    python examples/adding_problem.py                 # 9 runs of 20 s: about 3.5 minutes
    python examples/adding_problem.py --quick         # 9 runs of 3 s: about 35 s
    python examples/adding_problem.py --budget 60 --lengths 200 --cells gru lstm

The results depend on the seed, the budget and how fast the machine is (a faster machine takes
more optimizer steps in the same budget). With longer budgets the gated cells also solve longer
sequences; the plain RNN's vanishing gradient does not go away.
"""

import argparse
import os
import sys
import time

import numpy as np

import gatedrnn as gr
from gatedrnn import functional as F

CELLS = {"rnn": gr.layers.SimpleRNN, "gru": gr.layers.GRU, "lstm": gr.layers.LSTM}
LABELS = {"rnn": "SimpleRNN", "gru": "GRU", "lstm": "LSTM"}
#: MSE of always predicting the mean 1.0: Var(U1 + U2) = 2 * (1/12).
BASELINE_MSE = 1.0 / 6.0


def adding_problem(n, T, rng, dtype=np.float32):
    """``n`` sequences of the adding problem: ``x`` (n, T, 2) = [value, marker], ``y`` (n, 1)."""
    if T < 2:
        raise ValueError(f"T: the adding problem needs at least 2 steps, got {T}")
    values = rng.random((n, T)).astype(dtype)
    first = rng.integers(0, T // 2, size=n)
    second = rng.integers(T // 2, T, size=n)
    markers = np.zeros((n, T), dtype)
    rows = np.arange(n)
    markers[rows, first] = 1
    markers[rows, second] = 1
    x = np.stack([values, markers], axis=-1)
    y = (values[rows, first] + values[rows, second])[:, None]
    return x, y


class TimeBudget(gr.callbacks.Callback):
    """Stops training once ``seconds`` of wall time have passed since the first batch (or,
    when ``max_batches`` is given, after that many batches, whichever comes first), checked
    after every batch, across several ``fit`` calls; records ``(seconds, val_loss)`` at the end
    of every epoch that has a validation loss, and counts the batches."""

    def __init__(self, seconds, max_batches=None):
        super().__init__()
        self.seconds = float(seconds)
        self.max_batches = max_batches
        self.start = None
        self.curve = []
        self.batches = 0

    def elapsed(self):
        return 0.0 if self.start is None else time.perf_counter() - self.start

    @property
    def spent(self):
        if self.max_batches is not None and self.batches >= self.max_batches:
            return True
        return self.start is not None and self.elapsed() >= self.seconds

    def on_train_batch_begin(self, batch, logs=None):
        if self.start is None:
            self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.spent:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if logs and "val_loss" in logs:
            self.curve.append((self.elapsed(), float(logs["val_loss"])))
        if self.spent:
            self.model.stop_training = True


def build_model(cell, T, units):
    return gr.Sequential([gr.Input((T, 2)), CELLS[cell](units), gr.layers.Dense(1)],
                         name=f"adding_{cell}_{T}")


def train(cell, T, args, seed):
    """Train one model for ``args.budget`` seconds; returns (model, initial weights, curve,
    final validation MSE, optimizer steps)."""
    gr.config.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x_val, y_val = adding_problem(args.val_size, T, np.random.default_rng(seed + 1))
    model = build_model(cell, T, args.units)
    model.compile(gr.optim.Adam(args.lr, global_clipnorm=1.0), "mse")
    initial = model.get_weights()
    budget = TimeBudget(args.budget, args.max_steps)
    budget.curve.append((0.0, model.evaluate(x_val, y_val, batch_size=len(x_val), verbose=0)))
    while not budget.spent:
        # fresh sequences for every chunk: the task's distribution, not a fixed training set
        chunk = args.eval_every
        if args.max_steps is not None:
            chunk = min(chunk, args.max_steps - budget.batches)
        x, y = adding_problem(args.batch_size * chunk, T, rng)
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0,
                  validation_data=(x_val, y_val), callbacks=[budget])
    final = model.evaluate(x_val, y_val, batch_size=len(x_val), verbose=0)
    return model, initial, budget.curve, float(final), budget.batches


def hidden_grad_norms(model, weights, x, y):
    """||dL/dh_t|| for t = 1..T (norm over the batch and units) of the MSE loss of ``model``'s
    architecture with ``weights`` on (x, y), from the core's ``return_dh_seq``. Computed in
    float64: a vanishing gradient falls below float32's smallest number within 200 steps."""
    rnn_layer, dense = model.layers
    cfg = rnn_layer.get_config()
    cell = next(name for name, cls in CELLS.items() if isinstance(rnn_layer, cls))
    x, y = x.astype(np.float64), y.astype(np.float64)
    w_ih, w_hh, b_ih, b_hh, w_out, b_out = (w.astype(np.float64) for w in weights)
    opts = {"rnn": {"nonlinearity": cfg.get("activation", "tanh")},
            "gru": {"reset_after": cfg.get("reset_after", True)}, "lstm": {}}[cell]
    forward = {"rnn": F.rnn, "gru": F.gru, "lstm": F.lstm}[cell]
    backward = {"rnn": F.rnn_backward, "gru": F.gru_backward, "lstm": F.lstm_backward}[cell]
    out = forward(x, w_ih, w_hh, b_ih, b_hh, batch_first=True, training=True, **opts)
    pred = out.h_n @ w_out.T + b_out
    dpred = 2.0 * (pred - y) / pred.size            # d mean((pred - y)^2) / d pred
    grads = backward(out.ctx, dh_n=dpred @ w_out, return_dh_seq=True)
    return np.linalg.norm(grads.dh_seq, axis=(0, 2))   # dh_seq is (B, T, H): batch_first


def plot_mse(curves, lengths, cells, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(lengths), figsize=(4.5 * len(lengths), 3.8), squeeze=False,
                             sharey=True)
    for ax, T in zip(axes[0], lengths):
        for cell in cells:
            t, mse = zip(*curves[T][cell])
            ax.plot(t, mse, label=LABELS[cell])
        ax.axhline(BASELINE_MSE, color="gray", ls="--", lw=1, label="predict 1.0")
        ax.set_yscale("log")
        ax.set_title(f"T = {T}")
        ax.set_xlabel("training time (s)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation MSE")
    axes[0][-1].legend()
    fig.suptitle("Adding problem: validation MSE within a fixed time budget")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_grad_norms(norms, T, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    t = np.arange(1, T + 1)
    for i, (cell, d) in enumerate(norms.items()):
        color = f"C{i}"
        ax.semilogy(t, np.maximum(d["init"], 1e-300), color=color, ls="--",
                    label=f"{LABELS[cell]}, at initialisation")
        ax.semilogy(t, np.maximum(d["trained"], 1e-300), color=color,
                    label=f"{LABELS[cell]}, trained")
    ax.set_xlabel("time step t")
    ax.set_ylabel("||dL/dh_t||")
    ax.set_title(f"Adding problem, T = {T}: gradient reaching each step from the loss at t = T")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: What --quick changes (options given explicitly keep their values).
QUICK = dict(budget=3.0)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 200],
                   help="sequence lengths T")
    p.add_argument("--cells", nargs="+", choices=list(CELLS), default=list(CELLS))
    p.add_argument("--budget", type=float, default=20.0,
                   help="seconds of training per (T, cell) run")
    p.add_argument("--max-steps", type=int, default=None,
                   help="also stop a run after this many optimizer steps (a run then does the "
                        "same work on any machine, unless the budget runs out first)")
    p.add_argument("--quick", action="store_true",
                   help="a budget of 3 s per run (about 35 s in all)")
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate")
    p.add_argument("--eval-every", type=int, default=50,
                   help="batches between validation points (each chunk is fresh data)")
    p.add_argument("--val-size", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="gatedrnn threads (default: the library's)")
    p.add_argument("--out-dir", default=".", help="where the PNGs go")
    p.add_argument("--no-plots", action="store_true", help="do not write the PNGs")
    args, _ = p.parse_known_args(argv)
    if args.quick:                  # --quick changes the defaults; explicit options still win
        p.set_defaults(**QUICK)
    args = p.parse_args(argv)
    if min(args.lengths) < 2:
        p.error("--lengths: every T must be at least 2")
    return args


def main(argv=None):
    """Runs the experiment; returns a dict with ``mse`` ({T: {cell: final validation MSE}}),
    ``curves`` ({T: {cell: [(seconds, val MSE), ...]}}), ``steps`` ({T: {cell: optimizer
    steps}}), ``grad_norms`` ({cell: {"init", "trained"}: (T,) arrays} at the longest T),
    ``baseline`` and ``pngs`` (paths written)."""
    args = parse_args(argv)
    if args.threads is not None:
        gr.set_num_threads(args.threads)
    lengths, cells = list(dict.fromkeys(args.lengths)), list(dict.fromkeys(args.cells))
    limit = f"{args.budget:g} s" + (f" or {args.max_steps} steps" if args.max_steps else "")
    print(f"Adding problem: T in {lengths}, cells {', '.join(LABELS[c] for c in cells)}, "
          f"{limit} per run, {args.units} units, batch {args.batch_size}, "
          f"Adam lr {args.lr:g}, {gr.get_num_threads()} threads")
    print(f"Baseline (always predict 1.0): MSE = {BASELINE_MSE:.3f}")
    t_start = time.perf_counter()
    results = {"mse": {}, "curves": {}, "steps": {}, "grad_norms": {}, "baseline": BASELINE_MSE,
               "pngs": []}
    T_grad = max(lengths)
    x_g, y_g = adding_problem(256, T_grad, np.random.default_rng(args.seed + 2))
    for T in lengths:
        for cell in cells:
            seed = args.seed * 1000 + T * 10 + list(CELLS).index(cell)   # one seed per run
            model, initial, curve, final, steps = train(cell, T, args, seed)
            results["mse"].setdefault(T, {})[cell] = final
            results["curves"].setdefault(T, {})[cell] = curve
            results["steps"].setdefault(T, {})[cell] = steps
            print(f"  T={T:<4d} {LABELS[cell]:<9s} val MSE {final:.4f} after {steps} steps "
                  f"({curve[-1][0]:.1f} s)", flush=True)
            if T == T_grad:
                results["grad_norms"][cell] = {
                    "init": hidden_grad_norms(model, initial, x_g, y_g),
                    "trained": hidden_grad_norms(model, model.get_weights(), x_g, y_g)}

    print(f"\nFinal validation MSE ({limit} per run; baseline {BASELINE_MSE:.3f}):")
    print(f"{'T':>6s}" + "".join(f"{LABELS[c]:>11s}" for c in cells))
    for T in lengths:
        print(f"{T:>6d}" + "".join(f"{results['mse'][T][c]:>11.4f}" for c in cells))

    print(f"\n||dL/dh_1|| / ||dL/dh_T|| at T = {T_grad} (how much gradient reaches the first "
          f"step):")
    print(f"{'':>13s}" + "".join(f"{LABELS[c]:>11s}" for c in cells))
    for when in ("init", "trained"):
        row = []
        for c in cells:
            n = results["grad_norms"][c][when]
            row.append(f"{n[0] / n[-1]:>11.2e}" if n[-1] > 0 else f"{'n/a':>11s}")
        print(f"{'initial' if when == 'init' else 'trained':>13s}" + "".join(row))

    if not args.no_plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("\nmatplotlib is not installed: no PNGs (pip install matplotlib)")
        else:
            os.makedirs(args.out_dir, exist_ok=True)
            mse_png = os.path.join(args.out_dir, "adding_mse.png")
            grad_png = os.path.join(args.out_dir, "adding_grad_norm.png")
            plot_mse(results["curves"], lengths, cells, mse_png)
            plot_grad_norms(results["grad_norms"], T_grad, grad_png)
            results["pngs"] = [mse_png, grad_png]
            print(f"\nWrote {mse_png} and {grad_png}")
    print(f"Total time {time.perf_counter() - t_start:.0f} s")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
