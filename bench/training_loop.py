"""Does the training loop eat the kernels' lead? One epoch of two examples' models, trained by
gatedrnn's ``fit`` and by a minimal PyTorch loop, and the per-batch cost of ``fit`` itself.

    python bench/training_loop.py [--quick] [--repeats 3] [--threads N]
        [--tasks digits char_lm overhead] [--char-batches 200] [--json out.json]

With the defaults it takes about 5 minutes on 2 idle cores (mostly the char_lm epochs).

Tasks (the first two are the models of ``examples/digits.py`` and ``examples/char_lm.py`` with
their default settings, built by the examples' own functions):

- ``digits``: bidirectional GRU(64) + Dense(10) on scikit-learn's 8x8 digits read row by row
  (the example's training split, 1212 sequences of 8 steps x 8 features), batch 32.
- ``char_lm``: Embedding(V, 32) -> LSTM(256, return_sequences) -> Dense(V) on a fixed slice of
  the standard library's sources: ``--char-batches`` batches (default 200) of 32 windows of 100
  characters, sparse categorical cross-entropy on logits.

- ``overhead``: Dense(1) regression on 2 features, 100 batches of 32: almost no arithmetic,
  so the epoch time is the fixed cost per batch of each training loop, and gatedrnn's
  fit-minus-steps difference is not lost in the noise of long batches.

All use Adam (lr as in the example) with the gradient's global norm clipped to 1.0.

Implementations, timed per epoch (every batch once, shuffled):

- ``gatedrnn fit``: ``model.fit(x, y, batch_size, epochs=1, verbose=0)``.
- ``gatedrnn steps``: the same model's work without ``fit``: for pre-sliced batches, zero the
  gradients, ``model.forward(training=True)``, ``loss.forward_backward``,
  ``model.backward(dy, input_grad=False)`` (as ``fit`` calls it), ``optimizer.apply`` (and
  ``mark_updated``). The difference to ``fit``, per batch, is ``fit``'s
  own overhead (shuffling gathers, callbacks, logs); it is reported as seconds per batch and as
  a fraction of ``fit``'s time per batch.
- ``PyTorch``: ``torch.nn.GRU(bidirectional=True)`` + ``nn.Linear`` / ``nn.Embedding`` +
  ``nn.LSTM(batch_first=True)`` + ``nn.Linear``, started from the same weights (the first
  batch's loss is checked to agree), the same batch size and shuffling, ``torch.optim.Adam``
  with the same learning rate, ``clip_grad_norm_(params, 1.0)``, ``loss.item()`` per batch (as
  fit logs the loss): the loop people write by hand.

Threads: the same count everywhere (gatedrnn, ``torch.set_num_threads``, NumPy's BLAS), through
``gatedrnn.bench.ThreadSettings``. Repeats are interleaved (each repeat runs every
implementation once, in a rotating order) and the median is reported; ``busy`` is the largest
share of the CPUs other processes used during a measurement (above ~10 % the times are not
trustworthy). ``speed-up`` = PyTorch's time / gatedrnn fit's time (>= 1 means gatedrnn is at
least as fast).
"""

import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import time

import numpy as np

import gatedrnn as gr
from gatedrnn import bench as harness

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(HERE), "examples")
TASKS = ("digits", "char_lm", "overhead")
IMPLS = ("gatedrnn_fit", "gatedrnn_steps", "torch")
LABELS = {"gatedrnn_fit": "gatedrnn fit", "gatedrnn_steps": "gatedrnn steps",
          "torch": "PyTorch"}
CLIPNORM = 1.0


def load_example(name):
    """The example module ``examples/<name>.py`` (the examples are scripts, not a package)."""
    mod_name = f"gatedrnn_example_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, os.path.join(EXAMPLES, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------------------------------------
# The two tasks: data, the gatedrnn model, the same model in PyTorch
# ---------------------------------------------------------------------------------------------

class Task:
    """One model and its training data, in gatedrnn and (on demand) in PyTorch."""

    def __init__(self, name, x, y, batch_size, lr, build, loss="sparse_logits"):
        self.name, self.x, self.y, self.batch_size, self.lr = name, x, y, batch_size, lr
        self._build = build
        self._loss = loss
        self.batches = math.ceil(len(x) / batch_size)

    def gatedrnn_model(self, seed=0):
        gr.config.set_random_seed(seed)
        model = self._build()
        model.compile(gr.optim.Adam(self.lr, global_clipnorm=CLIPNORM), self.loss())
        model.forward(self.x[:1])                    # build the layers
        return model

    def loss(self):
        if self._loss == "mse":
            return gr.losses.MeanSquaredError()
        return gr.losses.SparseCategoricalCrossentropy(from_logits=True)

    def describe(self):
        return f"{self.name}: {len(self.x)} samples x {self.x.shape[1:]}, batch " \
               f"{self.batch_size}, {self.batches} batches per epoch"


def digits_task():
    ex = load_example("digits")
    (x, y), _, _ = ex.load_data(seed=0)
    return Task("digits", x, y, batch_size=32, lr=3e-3,
                build=lambda: ex.build_model("gru", 64, bidirectional=True))


def char_lm_task(batches=200, batch_size=32, seq_len=100, units=256, embed_dim=32):
    ex = load_example("char_lm")
    n_chars = batches * batch_size * seq_len + 1
    text, _ = ex.load_corpus(n_chars * 2)      # bytes >= characters; cut to size below
    text = text[:n_chars]
    if len(text) < n_chars:
        raise RuntimeError(f"the standard library has fewer than {n_chars} characters of .py "
                           f"files here")
    vocab = ex.Vocabulary(text)
    x, y = ex.windows(vocab.encode(text), seq_len)
    return Task("char_lm", x[:batches * batch_size], y[:batches * batch_size], batch_size,
                lr=3e-3, build=lambda: ex.build_model(len(vocab), embed_dim, units, seq_len))


def overhead_task(batches=100, batch_size=32):
    """Dense(1) regression on 2 features: so little arithmetic that an epoch's time is the
    training loop's fixed cost per batch (fit's bookkeeping, the loss, the optimizer)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batches * batch_size, 2)).astype(np.float32)
    y = (x @ np.array([[0.5], [-1.0]], np.float32) + 0.1).astype(np.float32)
    return Task("overhead", x, y, batch_size, lr=1e-3, loss="mse",
                build=lambda: gr.Sequential([gr.Input((2,)), gr.layers.Dense(1)]))


def make_task(name, char_batches=200):
    if name == "digits":
        return digits_task()
    if name == "char_lm":
        return char_lm_task(batches=char_batches)
    if name == "overhead":
        return overhead_task()
    raise ValueError(f"task: expected one of {TASKS}, got {name!r}")


def torch_model(task, model, torch):
    """The PyTorch twin of ``model`` (gatedrnn's canonical weights are PyTorch's layout), its
    loss function and the inputs as tensors."""
    nn = torch.nn
    layers = model.layers
    if task.name == "digits":
        bidir, dense = layers
        fwd = bidir.forward_layer
        rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}[fwd.cell]

        class Digits(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = rnn_cls(fwd.input_shape[-1], fwd.units, batch_first=True,
                                   bidirectional=True)
                self.out = nn.Linear(2 * fwd.units, dense.units)

            def forward(self, x):
                _, h = self.rnn(x)
                if isinstance(h, tuple):
                    h = h[0]
                return self.out(torch.cat([h[0], h[1]], dim=1))

        tm = Digits()
        w = bidir.get_weights()
        names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
        state = dict(zip(names + [n + "_reverse" for n in names], w))
        state.update({"out.weight": dense.get_weights()[0], "out.bias": dense.get_weights()[1]})
        state = {("rnn." + k if not k.startswith("out.") else k): v for k, v in state.items()}

        def loss_fn(logits, target):
            return torch.nn.functional.cross_entropy(logits, target)
    elif task.name == "overhead":
        (dense,) = layers
        tm = nn.Linear(dense.get_weights()[0].shape[1], dense.units)
        state = {"weight": dense.get_weights()[0], "bias": dense.get_weights()[1]}

        def loss_fn(pred, target):
            return torch.nn.functional.mse_loss(pred, target)
    else:
        emb, lstm, dense = layers

        class CharLM(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Embedding(emb.input_dim, emb.output_dim)
                self.rnn = nn.LSTM(emb.output_dim, lstm.units, batch_first=True)
                self.out = nn.Linear(lstm.units, dense.units)

            def forward(self, x):
                return self.out(self.rnn(self.emb(x))[0])

        tm = CharLM()
        w_ih, w_hh, b_ih, b_hh = lstm.get_weights()
        state = {"emb.weight": emb.get_weights()[0], "rnn.weight_ih_l0": w_ih,
                 "rnn.weight_hh_l0": w_hh, "rnn.bias_ih_l0": b_ih, "rnn.bias_hh_l0": b_hh,
                 "out.weight": dense.get_weights()[0], "out.bias": dense.get_weights()[1]}
        vocab = dense.units

        def loss_fn(logits, target):
            return torch.nn.functional.cross_entropy(logits.reshape(-1, vocab),
                                                     target.reshape(-1))
    tm.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    x = torch.from_numpy(np.ascontiguousarray(task.x))
    y = torch.from_numpy(np.ascontiguousarray(task.y))
    return tm, loss_fn, x, y


# ---------------------------------------------------------------------------------------------
# One epoch, three ways
# ---------------------------------------------------------------------------------------------

class Runners:
    """``epoch[impl]()`` trains one epoch of ``task``; each implementation has its own model
    (all three start from the same weights) that keeps training across calls."""

    def __init__(self, task, torch=None, seed=0):
        self.task, self.torch = task, torch
        self.epoch = {}
        B = task.batch_size

        fit_model = task.gatedrnn_model(seed)
        self.epoch["gatedrnn_fit"] = lambda: fit_model.fit(task.x, task.y, batch_size=B,
                                                           epochs=1, verbose=0)

        step_model = task.gatedrnn_model(seed)
        order = np.random.default_rng(seed).permutation(len(task.x))
        batches = [(task.x[order[i:i + B]], task.y[order[i:i + B]])
                   for i in range(0, len(task.x), B)]
        self.epoch["gatedrnn_steps"] = lambda: bare_steps(step_model, batches)
        self.first_loss = {"gatedrnn": float(step_model.loss(
            task.y[:B], step_model.forward(task.x[:B])[0]))}

        if torch is not None:
            tm, loss_fn, tx, ty = torch_model(task, task.gatedrnn_model(seed), torch)
            opt = torch.optim.Adam(tm.parameters(), lr=task.lr, eps=1e-7)
            gen = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                self.first_loss["torch"] = float(loss_fn(tm(tx[:B]), ty[:B]))
            self.epoch["torch"] = lambda: torch_epoch(torch, tm, opt, loss_fn, tx, ty, B, gen)

    def check_same_model(self, rtol=1e-4):
        """The first batch's loss before training agrees between gatedrnn and PyTorch."""
        if "torch" not in self.first_loss:
            return None
        a, b = self.first_loss["gatedrnn"], self.first_loss["torch"]
        if not math.isclose(a, b, rel_tol=rtol):
            raise AssertionError(f"{self.task.name}: first-batch loss gatedrnn {a:.6f} vs "
                                 f"PyTorch {b:.6f}: not the same model")
        return abs(a - b) / abs(b)


def bare_steps(model, batches):
    """forward + loss + backward + optimizer for each batch: what fit does minus fit."""
    params = model.parameters
    loss_obj, opt = model.loss, model.optimizer
    for xb, yb in batches:
        for p in params:
            p.zero_grad()
        y_pred, _ = model.forward(xb, training=True)
        _, dy = loss_obj.forward_backward(yb, y_pred)
        model.backward(dy, input_grad=False)
        opt.apply(params)
        for p in params:
            p.mark_updated()


def torch_epoch(torch, model, opt, loss_fn, x, y, batch_size, gen):
    """The minimal PyTorch training loop, one epoch; returns the mean loss."""
    model.train()
    n = len(x)
    order = torch.randperm(n, generator=gen)
    total = 0.0
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIPNORM)
        opt.step()
        total += loss.item() * len(idx)
    return total / n


# ---------------------------------------------------------------------------------------------
# Measurement and the table
# ---------------------------------------------------------------------------------------------

def import_torch():
    try:
        import torch
        return torch, None
    except Exception as exc:  # noqa: BLE001 - a broken install counts as missing
        return None, f"{type(exc).__name__}: {exc}"


def timed(fn):
    monitor = harness.ForeignCpu()
    monitor.start()
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    return seconds, monitor.stop()


def summarize(task_name, batches, times, busy, first_loss_diff=None):
    """The row of one task from the per-implementation lists of epoch times."""
    med = {k: statistics.median(v) for k, v in times.items() if v}
    row = {"task": task_name, "batches": batches, "median_s": med,
           "repeats": {k: len(v) for k, v in times.items()},
           "busy": max((b for b in busy if b is not None), default=None),
           "first_loss_rel_diff": first_loss_diff}
    fit, steps = med.get("gatedrnn_fit"), med.get("gatedrnn_steps")
    row["speedup_vs_torch"] = med["torch"] / fit if fit and med.get("torch") else None
    if fit and steps is not None:
        per_batch = fit / batches
        row["fit_batch_s"] = per_batch
        row["fit_overhead_per_batch_s"] = (fit - steps) / batches
        row["fit_overhead_fraction"] = (fit - steps) / fit
    return row


def measure_task(task, torch, repeats=3, warmup=1, seed=0):
    """Interleaved repeats of one epoch per implementation; the task's row."""
    runners = Runners(task, torch, seed)
    diff = runners.check_same_model()
    impls = [i for i in IMPLS if i in runners.epoch]
    for _ in range(warmup):
        for impl in impls:
            runners.epoch[impl]()
    times = {i: [] for i in impls}
    busy = []
    for r in range(repeats):
        for impl in impls[r % len(impls):] + impls[:r % len(impls)]:
            s, b = timed(runners.epoch[impl])
            times[impl].append(s)
            busy.append(b)
    return summarize(task.name, task.batches, times, busy, diff)


def _fmt_s(s):
    if s is None:
        return "-"
    return f"{s:.3f} s" if s >= 0.1 else f"{s * 1e3:.1f} ms"


def format_table(rows, threads, notes=()):
    lines = [f"One training epoch, gatedrnn {gr.__version__} vs PyTorch, {threads} thread(s) "
             f"(median of interleaved repeats)", ""]
    head = (f"{'task':<9s} {'batches':>7s} {'gatedrnn fit':>13s} {'gd steps':>10s} "
            f"{'PyTorch':>10s} {'speed-up':>9s} {'fit overhead/batch':>19s} {'busy':>6s}")
    lines += [head, "-" * len(head)]
    for r in rows:
        m = r["median_s"]
        sp = r.get("speedup_vs_torch")
        ov = r.get("fit_overhead_per_batch_s")
        ov_s = "-" if ov is None else \
            f"{ov * 1e6:7.0f} us ({100 * r['fit_overhead_fraction']:4.1f}%)"
        busy = "-" if r["busy"] is None else f"{100 * r['busy']:.0f}%"
        lines.append(f"{r['task']:<9s} {r['batches']:>7d} {_fmt_s(m.get('gatedrnn_fit')):>13s} "
                     f"{_fmt_s(m.get('gatedrnn_steps')):>10s} {_fmt_s(m.get('torch')):>10s} "
                     f"{'-' if sp is None else f'{sp:.2f}x':>9s} {ov_s:>19s} {busy:>6s}")
    lines += ["", "speed-up = PyTorch / gatedrnn fit (>= 1: gatedrnn at least as fast); fit "
              "overhead = (fit - steps) per batch, and its share of fit's time"]
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    p.add_argument("--repeats", type=int, default=3, help="timed epochs per implementation")
    p.add_argument("--warmup", type=int, default=1, help="untimed epochs per implementation")
    p.add_argument("--char-batches", type=int, default=200,
                   help="batches in the char_lm epoch")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for every implementation (default: gatedrnn's default)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 20 char_lm batches, 1 repeat, no warm-up")
    p.add_argument("--json", help="write the rows to this file")
    args, _ = p.parse_known_args(argv)
    if args.quick:                  # --quick changes the defaults; explicit options still win
        p.set_defaults(char_batches=20, repeats=1, warmup=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch, why = import_torch()
    notes = [] if torch else [f"PyTorch unavailable ({why}): its column is empty"]
    threads = args.threads if args.threads is not None else gr.get_num_threads()
    rows = []
    with harness.ThreadSettings(threads, torch) as ts:
        notes += ts.notes
        for name in args.tasks:
            try:
                task = make_task(name, args.char_batches)
            except ImportError as exc:
                notes.append(f"{name}: skipped ({exc})")
                continue
            print(f"timing {task.describe()} ...", file=sys.stderr, flush=True)
            rows.append(measure_task(task, torch, args.repeats, args.warmup))
    print(format_table(rows, threads, notes))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": threads, "rows": rows, "notes": notes}, fh, indent=1)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
