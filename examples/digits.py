"""Sequence classification on real data: handwritten digits read row by row.

scikit-learn ships the UCI "optical recognition of handwritten digits" set: 1797 images of
8x8 pixels with intensities 0..16. Read top to bottom, each image is a sequence of 8 time steps
with 8 features (one pixel row per step, scaled to [0, 1]), and a recurrent network has to
recognise the digit from the sequence alone. This trains a bidirectional GRU followed by
Dense(10) (logits) with Adam, clipping the gradient norm, and early stopping on a validation
split, then reports the accuracy on a stratified test split (25 % of the images) that training
never sees. Chance is 10 %. With matplotlib installed it saves the learning curves as
``digits_training.png``.

Run (from the repository root, gatedrnn and scikit-learn installed)::

    python examples/digits.py              # up to 100 epochs with early stopping: < 1 minute
    python examples/digits.py --quick      # 15 epochs: about 10 s
    python examples/digits.py --cell lstm --no-bidirectional --units 128 --seed 3
"""

import argparse
import os
import sys
import time

import numpy as np

import gatedrnn as gr

CELLS = {"gru": gr.layers.GRU, "lstm": gr.layers.LSTM, "rnn": gr.layers.SimpleRNN}


def load_data(seed, test_size=0.25, val_size=0.1):
    """``(x_train, y_train), (x_val, y_val), (x_test, y_test)``: images as (n, 8, 8) float32
    sequences of pixel rows in [0, 1], labels int64; stratified, seeded splits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)          # (1797, 8, 8): 8 steps of 8 pixels
    y = digits.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=test_size, stratify=y,
                                                      random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=val_size,
                                                      stratify=y_rest, random_state=seed)
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


def build_model(cell="gru", units=64, bidirectional=True, steps=8, features=8, classes=10):
    rnn = CELLS[cell](units)
    return gr.Sequential([
        gr.Input((steps, features)),
        gr.layers.Bidirectional(rnn) if bidirectional else rnn,
        gr.layers.Dense(classes),                           # logits
    ], name="digits")


def compile_model(model, lr=3e-3):
    model.compile(optimizer=gr.optim.Adam(lr, global_clipnorm=1.0),
                  loss=gr.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


#: What --quick changes (options given explicitly keep their values).
QUICK = dict(epochs=15)


def plot_history(history, test_accuracy, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    h = history.history
    epochs = np.arange(1, len(h["loss"]) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    ax1.plot(epochs, h["loss"], label="training")
    ax1.plot(epochs, h["val_loss"], label="validation")
    ax1.set_yscale("log")
    ax1.set_ylabel("cross-entropy")
    ax2.plot(epochs, 100 * np.array(h["accuracy"]), label="training")
    ax2.plot(epochs, 100 * np.array(h["val_accuracy"]), label="validation")
    ax2.axhline(100 * test_accuracy, color="gray", ls="--",
                label=f"test (best epoch's weights): {100 * test_accuracy:.1f} %")
    ax2.set_ylabel("accuracy (%)")
    ax2.set_ylim(80, 100.5)
    for ax in (ax1, ax2):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Digits read row by row (8 steps x 8 pixels)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cell", choices=list(CELLS), default="gru")
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--no-bidirectional", dest="bidirectional", action="store_false",
                   help="one direction only (top to bottom)")
    p.add_argument("--epochs", type=int, default=100, help="at most this many epochs")
    p.add_argument("--patience", type=int, default=10,
                   help="early stopping: epochs without a better validation loss")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate")
    p.add_argument("--quick", action="store_true", help="at most 15 epochs (about 10 s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="gatedrnn threads (default: the library's)")
    p.add_argument("--out-dir", default=".", help="where digits_training.png goes")
    p.add_argument("--no-plots", action="store_true", help="do not write the PNG")
    p.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2),
                   help="fit's verbosity: 0 silent, 1 progress bar, 2 one line per epoch")
    args, _ = p.parse_known_args(argv)
    if args.quick:                  # --quick changes the defaults; explicit options still win
        p.set_defaults(**QUICK)
    args = p.parse_args(argv)
    return args


def main(argv=None):
    """Trains and evaluates; returns a dict with ``test_accuracy``, ``test_loss``, ``epochs``
    (run), ``best_epoch`` (1-based, whose weights were kept), ``seconds``, ``history`` and
    ``pngs`` (paths written)."""
    args = parse_args(argv)
    if args.threads is not None:
        gr.set_num_threads(args.threads)
    gr.config.set_random_seed(args.seed)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = load_data(args.seed)
    print(f"Digits: {len(x_train)} train / {len(x_val)} validation / {len(x_test)} test "
          f"sequences of 8 steps x 8 features; "
          f"{'bidirectional ' if args.bidirectional else ''}{args.cell.upper()}({args.units}) "
          f"+ Dense(10), {gr.get_num_threads()} threads")
    model = compile_model(build_model(args.cell, args.units, args.bidirectional), args.lr)
    stop = gr.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience,
                                      restore_best_weights=True)
    t0 = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                        validation_data=(x_val, y_val), callbacks=[stop], verbose=args.verbose)
    seconds = time.perf_counter() - t0
    test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    epochs = len(history.history["loss"])
    print(f"\nTrained {epochs} epochs in {seconds:.1f} s (kept the weights of epoch "
          f"{stop.best_epoch + 1}, the best validation loss)")
    print(f"Test accuracy: {100 * test_acc:.2f} %  ({int(round(test_acc * len(x_test)))} of "
          f"{len(x_test)}; chance 10 %), test loss {test_loss:.4f}")
    pngs = []
    if not args.no_plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("matplotlib is not installed: no PNG (pip install matplotlib)")
        else:
            os.makedirs(args.out_dir, exist_ok=True)
            path = os.path.join(args.out_dir, "digits_training.png")
            plot_history(history, test_acc, path)
            pngs.append(path)
            print(f"Wrote {path}")
    return {"test_accuracy": float(test_acc), "test_loss": float(test_loss), "epochs": epochs,
            "best_epoch": stop.best_epoch + 1, "seconds": seconds,
            "history": history.history, "pngs": pngs}


if __name__ == "__main__":
    main(sys.argv[1:])
