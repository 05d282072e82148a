"""A character-level language model of Python source, trained on the standard library.

The classic first recurrent network predicts "hello" one character at a time; this is the same
idea grown up. The corpus is text every machine with Python has: the standard library's own
``.py`` files (``sysconfig.get_paths()["stdlib"]``, walked in sorted order, the first
``--corpus-bytes`` bytes; the last 10 % is held out for validation, so validation text comes
from files the model never saw). Characters seen fewer than ``--min-count`` times share one
"unknown" id.

The model is Embedding -> LSTM(return_sequences=True) -> Dense(vocabulary), trained with
sparse categorical cross-entropy on logits over windows of ``--seq-len`` characters (each window
predicts every next character; windows start from a zero state). It reports the validation
cross-entropy in bits per character (loss / ln 2) next to the chance level, the entropy of the
corpus's unigram character distribution (what a model that ignores context achieves), then
samples text at temperatures 0.5 and 1.0 with the streaming cell (``layer.get_cell()``: one
step per call, the trained weights shared), starting from the prompt ``"def "``.

Run (from the repository root, gatedrnn installed)::

    python examples/char_lm.py             # 1 MB, LSTM(256), 4 epochs: about 3 minutes
    python examples/char_lm.py --quick     # 300 kB, LSTM(128), 6 epochs: about 30 s
    python examples/char_lm.py --corpus-bytes 2000000 --epochs 10 --units 512

The bits per character and the samples depend on the Python version (its standard library is
the corpus), the seed and the settings.
"""

import argparse
import math
import os
import sys
import sysconfig
import time
from collections import Counter

import numpy as np

import gatedrnn as gr

UNK = "\x00"            # the character that stands for every rare one (id 0)
_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def stdlib_files(root=None):
    """The standard library's ``.py`` files as sorted paths relative to ``root`` (third-party
    packages and the generated ``_sysconfigdata*`` modules left out)."""
    root = root or sysconfig.get_paths()["stdlib"]
    found = []
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x not in _SKIP_DIRS]
        for f in files:
            if f.endswith(".py") and not f.startswith("_sysconfigdata"):
                found.append(os.path.relpath(os.path.join(d, f), root))
    return sorted(found)


def load_corpus(n_bytes, root=None):
    """The first ``n_bytes`` bytes of the standard library's sources, files in sorted order
    separated by a blank line, decoded as UTF-8; ``(text, number of files read)``."""
    root = root or sysconfig.get_paths()["stdlib"]
    chunks, total = [], 0
    for rel in stdlib_files(root):
        if total >= n_bytes:
            break
        try:
            with open(os.path.join(root, rel), "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        chunks.append(data.rstrip(b"\n") + b"\n\n")
        total += len(chunks[-1])
    if not chunks:
        raise RuntimeError(f"no .py files found under {root}")
    text = b"".join(chunks)[:n_bytes].decode("utf-8", errors="ignore")
    return text, len(chunks)


class Vocabulary:
    """Characters seen at least ``min_count`` times in ``text`` get their own id (sorted, from
    1); every other character maps to id 0, :data:`UNK`."""

    def __init__(self, text, min_count=5):
        counts = Counter(text)
        self.chars = [UNK] + sorted(c for c, n in counts.items() if n >= min_count and c != UNK)
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        lookup = self.index
        return np.fromiter((lookup.get(c, 0) for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


def windows(ids, seq_len):
    """Non-overlapping windows: inputs ``ids[k*L : (k+1)*L]``, targets shifted by one."""
    n = (len(ids) - 1) // seq_len
    if n < 1:
        raise ValueError(f"the text has {len(ids)} characters, fewer than one window of "
                         f"{seq_len} + 1")
    x = ids[:n * seq_len].reshape(n, seq_len)
    y = ids[1:n * seq_len + 1].reshape(n, seq_len)
    return x, y


def unigram_entropy_bits(ids, vocab_size):
    """Entropy (bits per character) of the character distribution of ``ids``."""
    p = np.bincount(ids, minlength=vocab_size) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def build_model(vocab_size, embed_dim=32, units=256, seq_len=None):
    return gr.Sequential([
        gr.Input((seq_len,), dtype="int64"),
        gr.layers.Embedding(vocab_size, embed_dim),
        gr.layers.LSTM(units, return_sequences=True),
        gr.layers.Dense(vocab_size),                 # logits of the next character
    ], name="char_lm")


def compile_model(model, lr=3e-3):
    model.compile(optimizer=gr.optim.Adam(lr, global_clipnorm=1.0),
                  loss=gr.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def sample(model, vocab, prompt, length, temperature, rng):
    """``prompt`` followed by ``length`` sampled characters, one streaming-cell step per
    character, from ``softmax(logits / temperature)`` (the unknown id is never drawn)."""
    embedding, lstm, dense = model.layers
    table = embedding.get_weights()[0]
    w_out, b_out = dense.get_weights()
    cell = lstm.get_cell()
    ids = [i for i in vocab.encode(prompt)] or [vocab.index.get("\n", 0)]
    state = None
    for i in ids[:-1]:                                # read the prompt
        _, state = cell.step(table[[i]], state)
    out, current = [], ids[-1]
    for _ in range(length):
        h, state = cell.step(table[[current]], state)
        logits = (h[0] @ w_out.T + b_out).astype(np.float64) / temperature
        logits[0] = -np.inf                           # never emit the unknown character
        p = np.exp(logits - logits.max())
        current = int(rng.choice(len(p), p=p / p.sum()))
        out.append(current)
    return prompt + vocab.decode(out)


def plot_history(history, unigram_bits, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    h = history.history
    epochs = np.arange(1, len(h["loss"]) + 1)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(epochs, np.array(h["loss"]) / math.log(2), "o-", label="training")
    ax.plot(epochs, np.array(h["val_loss"]) / math.log(2), "o-", label="validation")
    ax.axhline(unigram_bits, color="gray", ls="--", label="unigram entropy (chance)")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("bits per character")
    ax.set_title("Character LM on the Python standard library")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: What --quick changes (options given explicitly keep their values).
QUICK = dict(corpus_bytes=300_000, units=128, epochs=6)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--corpus-bytes", type=int, default=1_000_000)
    p.add_argument("--min-count", type=int, default=5,
                   help="rarer characters share the unknown id")
    p.add_argument("--seq-len", type=int, default=100, help="characters per training window")
    p.add_argument("--units", type=int, default=256)
    p.add_argument("--embed-dim", type=int, default=32)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate")
    p.add_argument("--sample-length", type=int, default=300)
    p.add_argument("--temperatures", type=float, nargs="*", default=[0.5, 1.0])
    p.add_argument("--prompt", default="def ")
    p.add_argument("--quick", action="store_true",
                   help="300 kB of text, 128 units, 6 epochs (about 30 s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="gatedrnn threads (default: the library's)")
    p.add_argument("--out-dir", default=".", help="where char_lm.png goes")
    p.add_argument("--no-plots", action="store_true", help="do not write the PNG")
    p.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2),
                   help="fit's verbosity: 0 silent, 1 progress bar, 2 one line per epoch")
    args, _ = p.parse_known_args(argv)
    if args.quick:                  # --quick changes the defaults; explicit options still win
        p.set_defaults(**QUICK)
    args = p.parse_args(argv)
    if any(t <= 0 for t in args.temperatures):
        p.error("--temperatures: each must be positive")
    return args


def main(argv=None):
    """Trains, evaluates and samples; returns a dict with ``val_bits_per_char``,
    ``train_bits_per_char`` (last epoch), ``unigram_bits`` (chance), ``vocab_size``,
    ``corpus_chars``, ``files``, ``seconds``, ``samples`` ({temperature: text}), ``history``
    and ``pngs``."""
    args = parse_args(argv)
    if args.threads is not None:
        gr.set_num_threads(args.threads)
    gr.config.set_random_seed(args.seed)
    text, n_files = load_corpus(args.corpus_bytes)
    split = int(len(text) * 0.9)
    vocab = Vocabulary(text[:split], args.min_count)
    ids = vocab.encode(text)
    x_train, y_train = windows(ids[:split], args.seq_len)
    x_val, y_val = windows(ids[split:], args.seq_len)
    unigram = unigram_entropy_bits(ids[:split], len(vocab))
    print(f"Corpus: {len(text):,} characters from {n_files} standard-library files, "
          f"vocabulary {len(vocab)} (ids; rare characters share one), "
          f"{len(x_train)} training / {len(x_val)} validation windows of {args.seq_len}")
    print(f"Model: Embedding({len(vocab)}, {args.embed_dim}) -> LSTM({args.units}) -> "
          f"Dense({len(vocab)}), batch {args.batch_size}, {gr.get_num_threads()} threads")
    print(f"Chance level (unigram entropy of the training text): {unigram:.3f} bits/char")

    model = compile_model(build_model(len(vocab), args.embed_dim, args.units, args.seq_len),
                          args.lr)
    t0 = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                        validation_data=(x_val, y_val), verbose=args.verbose)
    seconds = time.perf_counter() - t0
    val_bits = history.history["val_loss"][-1] / math.log(2)
    train_bits = history.history["loss"][-1] / math.log(2)
    print(f"\nTrained {args.epochs} epoch(s) in {seconds:.0f} s")
    print(f"Validation: {val_bits:.3f} bits/char (training {train_bits:.3f}); chance "
          f"{unigram:.3f} bits/char")

    rng = np.random.default_rng(args.seed)
    samples = {}
    for t in args.temperatures:
        samples[t] = sample(model, vocab, args.prompt, args.sample_length, t, rng)
        print(f"\n--- sample, temperature {t:g} ---\n{samples[t]}\n---")

    pngs = []
    if not args.no_plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("matplotlib is not installed: no PNG (pip install matplotlib)")
        else:
            os.makedirs(args.out_dir, exist_ok=True)
            path = os.path.join(args.out_dir, "char_lm.png")
            plot_history(history, unigram, path)
            pngs.append(path)
            print(f"Wrote {path}")
    return {"val_bits_per_char": val_bits, "train_bits_per_char": train_bits,
            "unigram_bits": unigram, "vocab_size": len(vocab), "corpus_chars": len(text),
            "files": n_files, "seconds": seconds, "samples": samples,
            "history": history.history, "pngs": pngs}


if __name__ == "__main__":
    main(sys.argv[1:])
