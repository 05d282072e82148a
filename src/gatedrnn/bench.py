"""Benchmark harness: gatedrnn against PyTorch, ONNX Runtime and plain NumPy, in one run.

Run it as ``python -m gatedrnn bench`` (``--help`` lists the options); ``bench/`` in the source
tree runs the same cases through pytest-benchmark. Only NumPy is required: torch, onnxruntime
and onnx are imported lazily, and a missing one turns its column into "n/a" with a printed note.

Legend: T time steps, B batch, I input size, H hidden size, G gates (RNN 1, GRU 3, LSTM 4),
L layers, D directions.

What is compared (the same float32 weights, inputs and initial states for every implementation;
each case starts with a parity check of every output, and in training of every gradient,
against gatedrnn's):

- ``gatedrnn``: ``gatedrnn.functional``. Forward = one call with ``training=False`` (weights
  packed once with ``pack_weights`` when it exists, as a deployed model would; ONNX Runtime and
  PyTorch also prepare their weights once). Training = forward with ``training=True`` plus the
  backward with ``dy = ones`` (the loss ``sum(y)``), from raw arrays (weights change every step).
  Training without dx ("train-nodx") passes ``input_grad=False`` to the first layer's backward.
- ``PyTorch``: ``torch.nn.RNN/GRU/LSTM`` (``*Cell`` for streaming). Forward under
  ``torch.inference_mode()``; training = forward + ``y.sum().backward()`` with grad enabled,
  with x, h0 (and c0) requiring grad so it computes the same gradients gatedrnn does ("train-nodx":
  x does not require grad, as a model's input; h0 and c0 still do). PyTorch has no
  reset-before GRU: n/a there.
- ``ORT``: ONNX Runtime (CPU provider), one ONNX RNN/GRU/LSTM node per layer built in memory with
  onnx.helper (GRU ``linear_before_reset=1`` for ``reset_after=True``, ``0`` for
  ``reset_after=False``), forward only.
- ``NumPy ref``: ``gatedrnn.reference``, the plain NumPy specification. A short probe estimates
  one call; if that exceeds the per-call budget (``--max-time``) it is shown as "over budget".

Threads: the same count ``n`` everywhere: ``gatedrnn.set_num_threads(n)``,
``torch.set_num_threads(n)``, ORT ``intra_op_num_threads=n, inter_op_num_threads=1``, and
NumPy's BLAS (through threadpoolctl when installed, else the OpenBLAS ``*_set_num_threads``
symbol of the library NumPy loaded; if neither works a note says so and NumPy's BLAS keeps its
own default, set ``OPENBLAS_NUM_THREADS`` before starting Python).

Cases (``cases()``):

- DeepBench RNN shapes (``DEEPBENCH_CSV`` below, a verbatim copy of the DeepBench kernel list:
  columns set,hidden,batch,timesteps,type), scaled to a small CPU: input size = hidden;
  ``vanilla`` = RNN tanh; ``gru`` gives both GRU forms (reset_after True and False); hidden
  clamped to <= 1024 and T to <= 200; duplicates removed (after clamping; inference_server and
  inference_device are merged into one inference set). The training set is timed as forward,
  as training (forward + backward, every gradient: mode "train") and as training without dx
  (mode "train-nodx": all but dL/dx, what a model's first layer computes when it trains on
  data, as ``fit`` runs it); the inference set as forward. The training targets are
  stated on "train" (the same gradients as a layer deeper in a model); "train-nodx" shows how
  the speed-up carries over to the usual first layer.
- ``bidir``: 2-layer bidirectional LSTM and GRU, T=100, B=32, I=H=256, forward, training and
  training without dx (the first layer's), against torch's ``num_layers=2,
  bidirectional=True`` layers and a 2-layer ONNX graph.
- ``stream``: B=1, I=H=256, LSTM and GRU, one T=1 call per step carrying the state (a packed
  handle when ``pack_weights`` exists), against torch's LSTMCell/GRUCell stepping and one ORT
  session run per step. Times and FLOPs are per step.
- ``overhead``: T=1, B=1, I=H=64, every cell: the fixed cost of one call.
- ``ragged``: LSTM and GRU (reset-after), T=150, B=32, I=H=256, forward and training, a batch
  of sequences of different lengths (uniform in [T/2, T], the longest T, fixed per case id:
  ``Case.lengths``): gatedrnn's ``lengths=``, torch's ``pack_padded_sequence`` (unsorted) and
  ``pad_packed_sequence``, the ONNX node's ``sequence_lens``. FLOPs count the valid steps.
- ``denormal``: LSTM and GRU forward and LSTM training, T=100, B=32, I=H=256, zero biases and
  initial states, each twice: x ~ N(0, 1), and the same x scaled into float32's subnormal range
  (``data="subnormal"``, ids ending in ``-subnormal``; see make_problem). The subnormal case
  also times every implementation on its normal twin, in the same interleaved rounds; the
  report gives each one's speed relative to normal data (``vs_normal``, twin time / time).
  (The pytest-benchmark suite times the two cases one after the other and pairs their rows:
  bench/report.py, ``compare_with_twins``.)

Measurement (``measure``): each implementation of a case first runs a probe on a few time steps
(to estimate one call and warm up), then, if one call fits in ``--max-time``, one warm-up call
(whose outputs are the parity check; a call shorter than a round is then repeated for about
a round's time, untimed, since the first calls can take many times the steady time and the
rounds are planned from the fastest) and rounds until ``--min-time`` has passed (at least 3
rounds, at most ``--max-time``; calls shorter than ~2 ms are grouped into rounds of several
calls); the median per call is reported. A call longer than ``--max-time`` is timed once, as
a second full call after the warm-up call: the probe ran fewer steps, so the first full-size
call also pays for first touching its larger buffers (on this kind of VM up to twice the
steady time of a training call), which a loop of calls does not. A call whose estimate
exceeds ``--max-call`` is not run
("over budget", the estimate is kept in the JSON). gatedrnn, PyTorch and ONNX Runtime are
warmed up first and then timed in interleaved rounds (``measure_interleaved``: their rounds take
turns in rounds of ~50 ms, the order rotating, each turn after the previous implementation's
idle thread pool has stopped spinning: ``wait_until_quiet``; a call shorter than ``--lead-in``,
default 10 ms, is first called untimed for about that long in each turn, since the first calls
after such a pause run slower), so a slow spell of a shared machine hits all of them alike;
the NumPy reference is timed on its own afterwards (taking turns only with its own normal twin
in a case with subnormal data).

Report columns: median time per call (per step for streaming) of each implementation; ``xPyT``,
``xORT``, ``xref`` = peer time / gatedrnn time (above 1 means gatedrnn is faster); ``GFLOP/s``
= gatedrnn's achieved rate with FLOPs forward = sum over layers and directions of
``2*T*B*G*H*(I_layer + H)`` and training = 3x that; ``%SGEMM`` = that rate as a percentage of
the machine's large-SGEMM throughput (NumPy float32 2048x2048 matmul, same threads), column
``of``: the SGEMM takes its turns among the case's interleaved rounds (one product per turn,
median over its turns), so it is measured at the same time as the case: on a shared machine
the ceiling moves by a third within minutes, and a figure from another moment would move every
percentage with it (the run-wide figure, median of 5 at the start, is printed in the heading
and kept per row as ``sgemm_gflops_run``; a case with no interleaved rounds re-measures it,
median of 3, right after its calls); ``%BW`` (forward, B <= 4) = the memory-bandwidth bound as a
percentage of gatedrnn's time (100 % = at the bound), the bound being the time to stream the
weights once per step as NumPy GEMVs of the same sizes, less NumPy's fixed cost per call:
``t(W_ih) + T * t(W_hh)`` per layer and direction (the input projection reads W_ih once for the
whole sequence; a single step, streaming or T = 1: ``t([W_ih | W_hh])``, as each call reads
both). The weights sit in whatever cache
level they settle in when reused, as in the recurrence; matrices under 1 MiB are timed as
stacked copies of >= 1 MiB (see GemvTimes), so for tiny weights that live in L1 the "bound" is
loose and %BW can exceed 100 %. ``parity`` = the largest scaled difference
``max|a - b| / max(1, max|b|)`` of any output or gradient of any peer against gatedrnn ("ok"
when <= 1e-4, else MISMATCH). ``[busy N%]`` after a row: while it ran, other processes (or the
hypervisor) used N% of the CPUs, which makes its times untrustworthy (multi-threaded code that
synchronises every step slows down many-fold when another program takes a core). Such a case
is rerun (``--retry-busy``, default once, after waiting up to ``--busy-wait`` seconds for the
machine to be idle) and the least disturbed attempt kept; a flag that remains means the machine
never became idle enough.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import dataclasses
import functools
import gc
import importlib
import inspect
import io
import json
import math
import os
import platform
import statistics
import sys
import time
import zlib
from dataclasses import dataclass

import numpy as np

import gatedrnn
from gatedrnn import functional as F

__all__ = [
    "Case", "DEEPBENCH_CSV", "ForeignCpu", "GemvTimes", "IMPLEMENTATIONS", "LABELS",
    "PARITY_TOL", "Problem", "ThreadSettings", "Timing", "add_arguments", "bandwidth_bound",
    "build_onnx_model", "cases", "check_targets", "compare_with_twins", "deepbench_shapes",
    "finish_row",
    "format_report", "machine_info", "main", "make_implementations", "make_problem", "measure",
    "median_report",
    "measure_interleaved", "wait_until_quiet",
    "new_row", "parity", "parity_entry", "plan_rounds", "prepare_and_warm", "run",
    "run_from_args", "sgemm_gflops", "summarize", "wait_for_idle", "write_json", "write_png",
]

IMPLEMENTATIONS = ("gatedrnn", "torch", "onnxruntime", "reference")
PEERS = IMPLEMENTATIONS[1:]
LABELS = {"gatedrnn": "gatedrnn", "torch": "PyTorch", "onnxruntime": "ORT",
          "reference": "NumPy ref"}
RATIO_LABELS = {"torch": "xPyT", "onnxruntime": "xORT", "reference": "xref"}
PARITY_TOL = 1e-4
BUSY_FLAG = 0.10   # flag a row when other work used more than this share of the CPUs
MAX_H, MAX_T = 1024, 200

VARIANTS = {  # name -> (cell, keyword options)
    "rnn_tanh": ("rnn", {"nonlinearity": "tanh"}),
    "gru_ra": ("gru", {"reset_after": True}),   # PyTorch/cuDNN form, ONNX linear_before_reset=1
    "gru_rb": ("gru", {"reset_after": False}),  # Cho et al. 2014, ONNX linear_before_reset=0
    "lstm": ("lstm", {}),
}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
DATA_KINDS = ("normal", "subnormal")
#: "fwd" forward; "train" forward + backward with every gradient, dL/dx included (what a
#: layer that is not the model's first needs); "train-nodx" the same without dL/dx, as the
#: first layer of a model trains on data (``input_grad=False``; PyTorch with x not
#: requiring grad; in a stacked case only the first layer skips it).
MODES = ("fwd", "train", "train-nodx")
#: The denormal suite's x scale: 2**-130 puts |x| < 8 (all of N(0, 1) in practice) below
#: float32's smallest normal number, 2**-126.
SUBNORMAL_SCALE = 2.0 ** -130
#: A subnormal case's speed relative to its normal twin's that counts as "normal speed".
SUBNORMAL_SPEED_TARGET = 0.9
DEEPBENCH_TYPES = {"vanilla": ("rnn_tanh",), "gru": ("gru_ra", "gru_rb"), "lstm": ("lstm",)}


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One benchmark: a cell variant, a suite, a mode (``MODES``) and its sizes.

    suite: "train" / "infer" (DeepBench-derived), "bidir", "stream" (T = steps of one timed
    run, reported per step), "overhead", "ragged" (sequences of different lengths, see
    ``lengths``) or "denormal" (zero biases and initial states; pairs of cases that differ
    only in ``data``).
    data: "normal" (x ~ N(0, 1)) or "subnormal" (the same x scaled into float32's subnormal
    range, see make_problem; the case id ends in "-subnormal").
    """

    suite: str
    variant: str
    mode: str
    T: int
    B: int
    I: int
    H: int
    layers: int = 1
    directions: int = 1
    data: str = "normal"

    def __post_init__(self):
        if self.data not in DATA_KINDS:
            raise ValueError(f"data: expected one of {DATA_KINDS}, got {self.data!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {self.mode!r}")

    @property
    def training(self):
        """Forward and backward ("train" or "train-nodx")."""
        return self.mode != "fwd"

    @property
    def input_grad(self):
        """Training that computes dL/dx of the first layer's input ("train")."""
        return self.mode == "train"

    @property
    def cell(self):
        return VARIANTS[self.variant][0]

    @property
    def opts(self):
        return dict(VARIANTS[self.variant][1])

    @property
    def G(self):
        return GATES[self.cell]

    @property
    def streaming(self):
        return self.suite == "stream"

    @property
    def id(self):
        ld = "" if (self.layers, self.directions) == (1, 1) else \
            f"L{self.layers}D{self.directions}-"
        sizes = f"{ld}T{self.T}-B{self.B}-I{self.I}-H{self.H}"
        if self.data != "normal":
            sizes += f"-{self.data}"
        return f"{self.suite}/{self.variant}/{sizes}/{self.mode}"

    @property
    def twin(self):
        """The same case with normal data (itself when its data is normal)."""
        return self if self.data == "normal" else dataclasses.replace(self, data="normal")

    @property
    def unit(self):
        return "step" if self.streaming else "call"

    @property
    def per_unit(self):
        """Divide a timed call by this to get the reported time (steps for streaming)."""
        return self.T if self.streaming else 1

    def layer_inputs(self):
        return [self.I if l == 0 else self.directions * self.H for l in range(self.layers)]

    def lengths(self):
        """The ragged suite's sequence lengths (B,), int64: uniform in [T/2, T], the first T;
        the same for every run and for the forward and training case. None for other suites."""
        if self.suite != "ragged":
            return None
        rng = np.random.default_rng(zlib.crc32(dataclasses.replace(self, mode="fwd").id.encode()))
        lengths = rng.integers(self.T // 2, self.T + 1, self.B).astype(np.int64)
        lengths[0] = self.T
        return lengths

    def flops(self):
        """FLOPs per reported unit: forward 2*T*B*G*H*(I_l + H) summed over layers and
        directions (T = 1 for a streaming step; T*B = the valid steps of a ragged batch);
        training 3x that (the backward pass's dX, dh, dW_ih and dW_hh products); without dx
        ("train-nodx") less the first layer's dX = dG W_ih, 2*T*B*G*H*I_0 per direction."""
        lengths = self.lengths()
        rows = int(lengths.sum()) if lengths is not None else \
            (1 if self.streaming else self.T) * self.B
        per_input = 2 * rows * self.G * self.H * self.directions   # per input or hidden unit
        f = sum(per_input * (i + self.H) for i in self.layer_inputs())
        if not self.training:
            return f
        return 3 * f if self.input_grad else 3 * f - per_input * self.I


def deepbench_shapes(csv_text=None):
    """The derived DeepBench shape list: (set, variant, H, B, T), set "train" or "infer".

    input size = hidden; vanilla -> rnn_tanh; gru -> gru_ra and gru_rb; H -> min(H, 1024);
    T -> min(T, 200); inference_server and inference_device -> "infer"; duplicates removed;
    sorted by set, variant, H, B, T.
    """
    rows = csv.DictReader(io.StringIO(csv_text if csv_text is not None else DEEPBENCH_CSV))
    shapes = set()
    for r in rows:
        suite = "train" if r["set"] == "train" else "infer"
        H, B, T = min(int(r["hidden"]), MAX_H), int(r["batch"]), min(int(r["timesteps"]), MAX_T)
        for variant in DEEPBENCH_TYPES[r["type"]]:
            shapes.add((suite, variant, H, B, T))
    order = {"train": 0, "infer": 1}
    vorder = {v: i for i, v in enumerate(VARIANTS)}
    return sorted(shapes, key=lambda s: (order[s[0]], vorder[s[1]], s[2], s[3], s[4]))


def _all_cases():
    out = []
    for suite, variant, H, B, T in deepbench_shapes():
        modes = MODES if suite == "train" else ("fwd",)
        out += [Case(suite, variant, m, T, B, H, H) for m in modes]
    for variant in ("lstm", "gru_ra"):
        for mode in MODES:
            out.append(Case("bidir", variant, mode, 100, 32, 256, 256, layers=2, directions=2))
    for variant in ("lstm", "gru_ra"):
        out.append(Case("stream", variant, "fwd", 100, 1, 256, 256))
    for variant in VARIANTS:
        out.append(Case("overhead", variant, "fwd", 1, 1, 64, 64))
    for variant in ("lstm", "gru_ra"):
        for mode in ("fwd", "train"):
            out.append(Case("ragged", variant, mode, 150, 32, 256, 256))
    for variant, mode in (("lstm", "fwd"), ("gru_ra", "fwd"), ("lstm", "train")):
        for data in DATA_KINDS:
            out.append(Case("denormal", variant, mode, 100, 32, 256, 256, data=data))
    return out


#: --quick: one or two of each kind, small enough for a smoke run of a minute or two.
QUICK_IDS = (
    "train/rnn_tanh/T50-B16-I1024-H1024/fwd",
    "train/gru_ra/T1-B32-I512-H512/train",
    "train/lstm/T25-B32-I512-H512/fwd",
    "train/lstm/T25-B32-I512-H512/train",
    "train/lstm/T25-B32-I512-H512/train-nodx",
    "train/lstm/T150-B16-I256-H256/train",
    "infer/gru_ra/T1-B4-I512-H512/fwd",
    "infer/gru_rb/T1-B4-I512-H512/fwd",
    "infer/lstm/T150-B1-I256-H256/fwd",
    "infer/lstm/T25-B4-I512-H512/fwd",
    "infer/rnn_tanh/T96-B1-I64-H64/fwd",
    "bidir/lstm/L2D2-T100-B32-I256-H256/fwd",
    "bidir/gru_ra/L2D2-T100-B32-I256-H256/train",
    "stream/lstm/T100-B1-I256-H256/fwd",
    "stream/gru_ra/T100-B1-I256-H256/fwd",
    "overhead/lstm/T1-B1-I64-H64/fwd",
    "overhead/gru_rb/T1-B1-I64-H64/fwd",
    "denormal/lstm/T100-B32-I256-H256-subnormal/fwd",   # times its normal twin too
)


def cases(quick=False, filters=None):
    """The case list (all, or the --quick subset), keeping those whose id contains any of
    ``filters`` (a string or a list of strings; None keeps all)."""
    selected = _all_cases()
    if quick:
        by_id = {c.id: c for c in selected}
        selected = [by_id[i] for i in QUICK_IDS]
    if filters:
        if isinstance(filters, str):
            filters = [filters]
        selected = [c for c in selected if any(f in c.id for f in filters)]
    return selected


# ---------------------------------------------------------------------------------------------
# Threads, peers, machine
# ---------------------------------------------------------------------------------------------

def _import_peer(name):
    """(module, None) or (None, reason): any failure to import means the peer is unusable."""
    try:
        return importlib.import_module(name), None
    except Exception as exc:  # noqa: BLE001 - a broken install raises OSError etc.
        return None, f"{type(exc).__name__}: {exc}"


_OPENBLAS_SYMBOLS = [("openblas_set_num_threads", "openblas_get_num_threads"),
                     ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
                     ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
                     ("openblas_set_num_threads64_", "openblas_get_num_threads64_")]


def _openblas_handles():
    """(set, get) ctypes functions of every OpenBLAS library loaded in this process (Linux)."""
    import ctypes
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower()}
    except OSError:
        return []
    found = []
    for path in sorted(p for p in paths if p.startswith("/")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _OPENBLAS_SYMBOLS:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                found.append((getattr(lib, set_name), getattr(lib, get_name), path))
                break
    return found


class ThreadSettings:
    """Sets the same thread count for gatedrnn, torch, NumPy's BLAS; restores them on exit.
    (ORT gets it per session.)"""

    def __init__(self, n, torch):
        self.n, self.torch, self.notes, self._undo = n, torch, [], []

    def __enter__(self):
        n = self.n
        prev = gatedrnn.get_num_threads()
        gatedrnn.set_num_threads(n)
        self._undo.append(lambda: gatedrnn.set_num_threads(prev))
        if self.torch is not None:
            tprev = self.torch.get_num_threads()
            self.torch.set_num_threads(n)
            self._undo.append(lambda: self.torch.set_num_threads(tprev))
        self.blas = self._set_blas(n)
        return self

    def _set_blas(self, n):
        try:
            from threadpoolctl import threadpool_limits
            limiter = threadpool_limits(limits=n, user_api="blas")
            self._undo.append(limiter.restore_original_limits)
            return "threadpoolctl"
        except ImportError:
            pass
        except Exception as exc:  # noqa: BLE001
            self.notes.append(f"threadpoolctl failed ({exc}); trying OpenBLAS directly")
        handles = _openblas_handles()
        for set_fn, get_fn, _ in handles:
            prev = int(get_fn())
            set_fn(int(n))
            self._undo.append(functools.partial(set_fn, prev))
        if handles:
            return "openblas symbol"
        self.notes.append(
            "NumPy's BLAS thread count could not be set (no threadpoolctl, no OpenBLAS symbol "
            "found): the SGEMM ceiling, the bandwidth bound and the NumPy reference use BLAS's "
            "default threads; set OPENBLAS_NUM_THREADS/MKL_NUM_THREADS before starting Python "
            "or `pip install threadpoolctl`")
        return "not set"

    def __exit__(self, *exc):
        for undo in reversed(self._undo):
            with contextlib.suppress(Exception):
                undo()


class ForeignCpu:
    """Share of the machine's CPU time used by anything other than this process (other
    processes, and time the hypervisor steals) between start() and stop(), from /proc/stat and
    os.times(). None where /proc/stat is unavailable. Benchmarks of 2-thread barrier-synchronised
    code slow down many-fold when another program takes a core, so rows measured while this was
    high are flagged."""

    def __init__(self):
        self._t0 = None

    @staticmethod
    def _busy_seconds():
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        busy = sum(fields[:3]) + sum(fields[5:8])
        return busy / os.sysconf("SC_CLK_TCK")

    def start(self):
        try:
            t = os.times()
            self._t0 = (self._busy_seconds(), t.user + t.system, time.perf_counter())
        except (OSError, ValueError, AttributeError, IndexError):
            self._t0 = None

    def stop(self):
        if self._t0 is None:
            return None
        try:
            t = os.times()
            busy, own, wall = self._busy_seconds(), t.user + t.system, time.perf_counter()
        except (OSError, ValueError, AttributeError, IndexError):
            return None
        b0, o0, w0 = self._t0
        span = (wall - w0) * _available_cpus()
        if span <= 0:
            return None
        return min(1.0, max(0.0, ((busy - b0) - (own - o0)) / span))


def wait_for_idle(max_wait, window=1.0):
    """Sleep until other work uses at most BUSY_FLAG of the CPUs over ``window`` seconds, or
    ``max_wait`` seconds have passed. True when the machine was found idle."""
    deadline = time.perf_counter() + max_wait
    while True:
        monitor = ForeignCpu()
        monitor.start()
        time.sleep(window)
        share = monitor.stop()
        if share is None or share <= BUSY_FLAG:
            return True
        if time.perf_counter() >= deadline:
            return False


def _cpu_model():
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _available_cpus():
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# ---------------------------------------------------------------------------------------------
# Timing and ceilings
# ---------------------------------------------------------------------------------------------

@dataclass
class Timing:
    median: float      # seconds per call
    rounds: int
    number: int        # calls per round
    total: float       # seconds spent in the timed rounds


def plan_rounds(estimate, min_time=0.5, max_time=2.0, min_rounds=3, round_time=2e-3):
    """(rounds, calls per round) for a call of ``estimate`` seconds: rounds of >= ~``round_time``
    (2 ms), at least ``min_rounds`` and ``min_time`` in total where that fits in ``max_time``, at
    least one round."""
    number = max(1, int(round_time / max(estimate, 1e-9)))
    per_round = estimate * number
    rounds = max(min_rounds, math.ceil(min_time / per_round))
    rounds = min(rounds, max(1, int(max_time / per_round)))
    return rounds, number


def measure(fn, min_time=0.5, max_time=2.0, min_rounds=3, estimate=None):
    """Median seconds per call of ``fn`` (already warmed up). Calls are grouped into rounds of
    >= ~2 ms; rounds repeat until ``min_time`` has passed and ``min_rounds`` are done, and stop
    before exceeding ``max_time`` (always at least one round)."""
    if estimate is None:
        t0 = time.perf_counter()
        fn()
        estimate = time.perf_counter() - t0
    _, number = plan_rounds(estimate, min_time, max_time, min_rounds)
    times = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
        elapsed = time.perf_counter() - start
        if len(times) >= min_rounds and elapsed >= min_time:
            break
        if elapsed + statistics.median(times) * number > max_time:
            break
    return Timing(statistics.median(times), len(times), number, time.perf_counter() - start)


def wait_until_quiet(max_wait=0.25, window=0.004, threshold=0.2):
    """Sleeps until this process's threads have stopped using the CPUs: an idle thread pool
    busy-waits for a while after its last task (gatedrnn's and PyTorch's OpenMP pools some 6-9
    ms here, ONNX Runtime's ~50 ms), and would take the cores from whatever runs next. Returns
    when a ``window`` passes with under ``threshold`` of one CPU used, or after ``max_wait``."""
    end = time.perf_counter() + max_wait
    while True:
        c0, t0 = time.process_time(), time.perf_counter()
        time.sleep(window)
        busy = (time.process_time() - c0) / max(time.perf_counter() - t0, 1e-9)
        if busy < threshold or time.perf_counter() >= end:
            return


# Seconds of calls per timed round of measure_interleaved.
INTERLEAVED_ROUND_TIME = 0.05


def measure_interleaved(entries, min_time=0.5, max_time=2.0, min_rounds=3, settle=0.25,
                        round_time=INTERLEAVED_ROUND_TIME, followers=(), lead_in=0.0):
    """Median seconds per call of each entry, the entries taking turns round by round.

    ``entries``: name -> (fn, ctx, estimate), fn already warmed up, called inside ``ctx()``.
    Each entry gets a round plan like :func:`measure`'s (rounds of >= ~``round_time``, until
    ``min_rounds`` rounds and ``min_time`` seconds are done, never past ``max_time``), but the
    rounds of all entries alternate, and the order rotates every round. On a shared machine a
    slow spell (another tenant, a frequency change) then falls on every implementation alike
    instead of on whichever was being timed, so the ratios stay honest. Before each turn the
    process waits (:func:`wait_until_quiet`, at most ``settle`` seconds) until the previous
    implementation's idle thread pool has stopped spinning. Rounds of ~50 ms keep those pauses
    a modest part of the run. A pause of that kind costs the calls right after it: for the
    first milliseconds memory-bound work runs up to twice as slow here (a 12 MB copy: 2.1, 2.0,
    1.0, 0.92 ms after 60 ms of sleep, 0.92 ms back to back; a one-step GRU training call, B=32,
    H=512: 2.9 ms first, 1.4 ms in a loop). So each turn of an entry whose call is shorter than
    ``lead_in`` seconds starts with untimed calls, about ``lead_in`` seconds of them (at most as
    many as the round has): rounds then time the steady state a loop of calls sees, for every
    implementation alike. Entries named in ``followers`` (a reference measurement taken
    alongside, such as the SGEMM ceiling) stop when the others have. Returns name -> Timing.
    """
    number = {name: plan_rounds(est, min_time, max_time, min_rounds, round_time)[1]
              for name, (_, _, est) in entries.items()}
    # Calls shorter than lead_in get untimed calls before each timed round: about lead_in
    # seconds of them, never more calls than the round itself.
    lead = {name: min(number[name], math.ceil(lead_in / max(est, 1e-9))) if est < lead_in else 0
            for name, (_, _, est) in entries.items()}
    times = {name: [] for name in entries}
    spent = {name: 0.0 for name in entries}
    active = list(entries)
    turn = 0
    while active:
        shift = turn % len(active)
        for name in active[shift:] + active[:shift]:
            fn, ctx, _ = entries[name]
            if settle > 0:
                wait_until_quiet(settle)
            with ctx():
                for _ in range(lead[name]):  # untimed: the machine waking from the pause
                    fn()
                t0 = time.perf_counter()
                for _ in range(number[name]):
                    fn()
                dt = time.perf_counter() - t0
            times[name].append(dt / number[name])
            spent[name] += dt
        turn += 1
        for name in list(active):
            done = len(times[name]) >= min_rounds and spent[name] >= min_time
            over = spent[name] + statistics.median(times[name]) * number[name] > max_time
            if done or over:
                active.remove(name)
        if all(name in followers for name in active):
            break
    return {name: Timing(statistics.median(times[name]), len(times[name]), number[name],
                         spent[name]) for name in entries}


class Sgemm:
    """The large-SGEMM ceiling: a NumPy float32 (n, n) x (n, n) matmul into a preallocated
    output. ``call()`` runs one product (a turn in :func:`measure_interleaved`);
    ``gflops(seconds)`` turns seconds per product into GFLOP/s; ``measure(repeats)`` is the
    rate of the median of ``repeats`` products."""

    def __init__(self, n=2048):
        rng = np.random.default_rng(0)
        self.n = n
        self.a = rng.standard_normal((n, n), dtype=np.float32)
        self.b = rng.standard_normal((n, n), dtype=np.float32)
        self.c = np.empty((n, n), np.float32)
        self.call()  # warm-up (BLAS threads started, pages touched)
        t0 = time.perf_counter()
        self.call()
        self.estimate = time.perf_counter() - t0  # seconds per product, to plan rounds

    def call(self):
        np.matmul(self.a, self.b, out=self.c)

    def gflops(self, seconds):
        return 2.0 * self.n ** 3 / seconds / 1e9

    def measure(self, repeats=5):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.call()
            times.append(time.perf_counter() - t0)
        return self.gflops(statistics.median(times))


def sgemm_gflops(n=2048, repeats=5):
    """The machine's large-SGEMM throughput now: median of ``repeats`` (n, n) products."""
    return Sgemm(n).measure(repeats)


class GemvTimes:
    """Seconds to stream a float32 (rows, cols) matrix once, measured as a NumPy GEMV with the
    matrix wherever it settles when reused (as W_hh is every step), less NumPy's fixed cost
    per call (a 1x1 GEMV). A matrix under 1 MiB is measured as k stacked copies of >= 1 MiB,
    divided by k, so that per-call costs do not pass for streaming time."""

    MIN_BYTES = 1 << 20

    def __init__(self):
        self._cache = {}
        self.call_overhead = self._gemv(1, 1)

    @staticmethod
    def _gemv(rows, cols):
        rng = np.random.default_rng(1)
        w = rng.standard_normal((rows, cols), dtype=np.float32)
        v = rng.standard_normal(cols, dtype=np.float32)
        o = np.empty(rows, np.float32)
        fn = functools.partial(np.matmul, w, v, out=o)
        fn()
        return measure(fn, min_time=0.05, max_time=0.3).median

    def __call__(self, rows, cols):
        key = (rows, cols)
        if key not in self._cache:
            k = max(1, math.ceil(self.MIN_BYTES / max(4 * rows * cols, 1)))
            t = self._gemv(k * rows, cols) - self.call_overhead
            self._cache[key] = max(t, 1e-9) / k
        return self._cache[key]


def bandwidth_bound(case, gemv):
    """Seconds per reported unit to stream the weights (forward, B <= 4 only; else None): per
    layer and direction t(W_ih) + T * t(W_hh) (the input projection reads W_ih once for the whole
    sequence); a single step (streaming, per step, or a call with T = 1): t([W_ih | W_hh]), one
    (G*H, I+H) matrix, since each call reads both and they share the caches (timed apart, each
    would settle in cache as if the other did not exist)."""
    if case.mode != "fwd" or case.B > 4:
        return None
    GH = case.G * case.H
    if case.streaming or case.T == 1:
        return sum(case.directions * gemv(GH, i + case.H) for i in case.layer_inputs())
    return sum(case.directions * (gemv(GH, i) + case.T * gemv(GH, case.H))
               for i in case.layer_inputs())


# ---------------------------------------------------------------------------------------------
# Problems: the same float32 data for every implementation
# ---------------------------------------------------------------------------------------------

@dataclass
class Problem:
    x: np.ndarray        # (T, B, I)
    params: list         # [layer][direction] -> (weight_ih, weight_hh, bias_ih, bias_hh)
    h0: np.ndarray       # (L*D, B, H)
    c0: np.ndarray       # (L*D, B, H) or None
    lengths: np.ndarray = None   # (B,) int64 for the ragged suite (Case.lengths), else None

    def lengths_for(self, T):
        """The lengths of a run on the first T steps (a probe runs fewer), or None."""
        return None if self.lengths is None else np.minimum(self.lengths, T)


def make_problem(case, seed=0):
    """PyTorch's default init U(-1/sqrt(H), 1/sqrt(H)) for weights and biases, x ~ N(0, 1),
    h0, c0 ~ N(0, 0.5^2); deterministic per case id (a subnormal case and its normal twin get
    the same numbers).

    The denormal suite: zero biases and initial states, and for ``data="subnormal"`` x scaled by
    SUBNORMAL_SCALE, every entry subnormal. Then every pre-activation is subnormal, and so is
    every state: h ~ 0.5 tanh(c) and c ~ 0.5 g for the LSTM, h ~ 0.5 n for the GRU, step after
    step. An implementation that does not flush denormals meets a subnormal operand in every
    multiply-add of both GEMMs (and of the weight gradients in training); one that flushes them
    computes zeros at normal speed. Its normal twin differs only in x's scale."""
    rng = np.random.default_rng([seed, zlib.crc32(case.twin.id.encode())])
    k = 1.0 / math.sqrt(case.H)
    GH, H, B = case.G * case.H, case.H, case.B

    def u(*shape):
        return rng.uniform(-k, k, size=shape).astype(np.float32)

    params = [[(u(GH, i), u(GH, H), u(GH), u(GH)) for _ in range(case.directions)]
              for i in case.layer_inputs()]
    x = rng.standard_normal((case.T, B, case.I), dtype=np.float32)
    n = case.layers * case.directions
    h0 = (0.5 * rng.standard_normal((n, B, H))).astype(np.float32)
    c0 = (0.5 * rng.standard_normal((n, B, H))).astype(np.float32) if case.cell == "lstm" else None
    if case.suite == "denormal":
        params = [[(w_ih, w_hh, np.zeros_like(b_ih), np.zeros_like(b_hh))
                   for w_ih, w_hh, b_ih, b_hh in dirs] for dirs in params]
        h0 = np.zeros_like(h0)
        c0 = None if c0 is None else np.zeros_like(c0)
    if case.data == "subnormal":
        x = (x.astype(np.float64) * SUBNORMAL_SCALE).astype(np.float32)
    return Problem(x, params, h0, c0, case.lengths())


def _param_name(kind, layer, direction):
    return f"{kind}_l{layer}" + ("_reverse" if direction else "")


# ---------------------------------------------------------------------------------------------
# Implementations. Each prepare() returns a Runner: make(T) -> a no-argument callable running
# the case on the first T steps; extract(result) -> {name: ndarray} for the parity check; ctx()
# -> a context manager entered around warm-up and timing.
# ---------------------------------------------------------------------------------------------

class Runner:
    def __init__(self, make, extract, ctx=contextlib.nullcontext):
        self.make, self.extract, self.ctx = make, extract, ctx


class _Skip(Exception):
    """This implementation does not run this case (reason in the message): shown as n/a."""


class _GatedFamily:
    """gatedrnn.functional or gatedrnn.reference (the same API; the reference has no packing
    and no bidirectional=True, so it uses two single-direction calls per layer)."""

    def __init__(self, name, module, notes):
        self.name, self.mod, self.notes = name, module, notes
        self.can_pack = module is F and hasattr(F, "pack_weights")
        self.can_bidir = ("bidirectional" in inspect.signature(module.lstm).parameters)

    def prepare(self, case, prob, threads):
        fn = getattr(self.mod, case.cell)
        bwd = getattr(self.mod, case.cell + "_backward")
        opts, D, H, lstm = case.opts, case.directions, case.H, case.cell == "lstm"
        # The first layer's backward: with dx unless the case skips it (layers above need it).
        first_kw = {} if case.input_grad else {"input_grad": False}
        pack = self.can_pack and case.mode == "fwd"
        bidir_api = D == 2 and self.can_bidir
        if self.mod is F:
            if D == 2 and not bidir_api:
                self.notes.add("gatedrnn.functional has no bidirectional=True yet: bidirectional "
                               "cases run two single-direction calls per layer + a concatenate")
            if not self.can_pack and (case.streaming or case.mode == "fwd"):
                self.notes.add("gatedrnn.functional.pack_weights does not exist yet: forward and "
                               "streaming cases pass raw weight arrays (packed per call)")

        layer_args = []   # per layer: list of per-direction argument tuples, or one stacked
        for dirs in prob.params:
            if D == 1 or bidir_api:
                arrays = dirs[0] if D == 1 else tuple(np.stack(a) for a in zip(*dirs))
                if pack:
                    extra = {"bidirectional": True} if D == 2 else {}
                    arrays = (F.pack_weights(case.cell, *arrays, **opts, **extra),)
                layer_args.append([arrays])
            else:
                layer_args.append(list(dirs))

        def states(l):
            sl = slice(l * D, (l + 1) * D)
            h0 = prob.h0[sl]
            c0 = prob.c0[sl] if lstm else None
            return h0, c0

        def call_kw(h0, c0, **extra):
            kw = dict(opts, h0=h0, **extra)
            if lstm:
                kw["c0"] = c0
            return kw

        # --- single layer, single direction: bind everything, so tiny calls pay no wrapper ---
        if case.layers == 1 and D == 1 and not case.streaming:
            args = layer_args[0][0]
            h0, c0 = states(0)
            kw = call_kw(h0[0], c0[0] if lstm else None)

            def make(T):
                x = prob.x[:T]
                kwT = kw if prob.lengths is None else dict(kw, lengths=prob.lengths_for(T))
                if case.mode == "fwd":
                    return functools.partial(fn, x, *args, **kwT)
                dy = np.ones((T, case.B, H), np.float32)

                def train():
                    out = fn(x, *args, training=True, **kwT)
                    return out, bwd(out.ctx, dy=dy, **first_kw)
                return train

            def extract(res):
                out, g = (res, None) if case.mode == "fwd" else res
                d = {"y": out.y, "h_n": out.h_n[None]}
                if lstm:
                    d["c_n"] = out.c_n[None]
                if g is not None:
                    if g.dx is not None:
                        d["d_x"] = g.dx
                    d.update({"d_h0": g.dh0[None],
                              "d_weight_ih_l0": g.dweight_ih, "d_weight_hh_l0": g.dweight_hh,
                              "d_bias_ih_l0": g.dbias_ih, "d_bias_hh_l0": g.dbias_hh})
                    if lstm:
                        d["d_c0"] = g.dc0[None]
                return d
            return Runner(make, extract)

        if prob.lengths is not None:
            raise _Skip("ragged lengths are run for one layer and direction only")

        # --- streaming: one T=1 call per step, state carried -------------------------------
        if case.streaming:
            args = layer_args[0][0]
            h0, c0 = states(0)

            # The loop a user writes: the call with its state, nothing rebuilt per step (the
            # PyTorch and ONNX Runtime loops are as lean). Without a handle the options go
            # along; a handle holds them.
            kw = {} if pack else dict(opts)

            def make(T):
                xs = [prob.x[t:t + 1] for t in range(T)]

                def stream():
                    h = h0[0]
                    if lstm:
                        c = c0[0]
                        for xt in xs:
                            _, h, c = fn(xt, *args, h0=h, c0=c, **kw)
                        return h, c
                    for xt in xs:
                        h = fn(xt, *args, h0=h, **kw).h_n
                    return h, None
                return stream

            def extract(res):
                d = {"h_n": res[0][None]}
                if lstm:
                    d["c_n"] = res[1][None]
                return d
            return Runner(make, extract)

        # --- several layers and/or two directions ------------------------------------------
        def layer_forward(l, x, training):
            h0, c0 = states(l)
            if D == 1 or bidir_api:
                extra = {"bidirectional": True} if D == 2 else {}
                out = fn(x, *layer_args[l][0], training=training,
                         **call_kw(h0 if D == 2 else h0[0],
                                   (c0 if D == 2 else c0[0]) if lstm else None, **extra))
                hn = out.h_n if D == 2 else out.h_n[None]
                cn = (out.c_n if D == 2 else out.c_n[None]) if lstm else None
                return out.y, hn, cn, [out.ctx] if training else None
            outs = [fn(x, *layer_args[l][d], training=training, reverse=bool(d),
                       **call_kw(h0[d], c0[d] if lstm else None)) for d in range(D)]
            y = np.concatenate([o.y for o in outs], axis=-1)
            hn = np.stack([o.h_n for o in outs])
            cn = np.stack([o.c_n for o in outs]) if lstm else None
            return y, hn, cn, [o.ctx for o in outs] if training else None

        def layer_backward(l, ctxs, dy, grads):
            kw = first_kw if l == 0 else {}
            if D == 1 or bidir_api:
                g = bwd(ctxs[0], dy=dy, **kw)
                per_dir = [(g.dweight_ih[d], g.dweight_hh[d], g.dbias_ih[d], g.dbias_hh[d])
                           for d in range(D)] if D == 2 else \
                    [(g.dweight_ih, g.dweight_hh, g.dbias_ih, g.dbias_hh)]
                dx = g.dx
                dh0 = g.dh0 if D == 2 else g.dh0[None]
                dc0 = ((g.dc0 if D == 2 else g.dc0[None]) if lstm else None)
            else:
                gs = [bwd(ctxs[d], dy=np.ascontiguousarray(dy[..., d * H:(d + 1) * H]), **kw)
                      for d in range(D)]
                per_dir = [(g.dweight_ih, g.dweight_hh, g.dbias_ih, g.dbias_hh) for g in gs]
                dx = None if gs[0].dx is None else gs[0].dx + gs[1].dx
                dh0 = np.stack([g.dh0 for g in gs])
                dc0 = np.stack([g.dc0 for g in gs]) if lstm else None
            for d, ws in enumerate(per_dir):
                for kind, w in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), ws):
                    grads["d_" + _param_name(kind, l, d)] = w
            grads[f"d_h0_{l}"] = dh0
            if lstm:
                grads[f"d_c0_{l}"] = dc0
            return dx

        def make(T):
            x0 = prob.x[:T]
            training = case.training
            dy_last = np.ones((T, case.B, D * H), np.float32) if training else None

            def run():
                x, hns, cns, ctxs = x0, [], [], []
                for l in range(case.layers):
                    x, hn, cn, c = layer_forward(l, x, training)
                    hns.append(hn)
                    cns.append(cn)
                    ctxs.append(c)
                res = {"y": x, "h_n": np.concatenate(hns)}
                if lstm:
                    res["c_n"] = np.concatenate(cns)
                if training:
                    grads, dy = {}, dy_last
                    for l in reversed(range(case.layers)):
                        dy = layer_backward(l, ctxs[l], dy, grads)
                    if dy is not None:
                        res["d_x"] = dy
                    res["d_h0"] = np.concatenate([grads.pop(f"d_h0_{l}")
                                                  for l in range(case.layers)])
                    if lstm:
                        res["d_c0"] = np.concatenate([grads.pop(f"d_c0_{l}")
                                                      for l in range(case.layers)])
                    res.update(grads)
                return res
            return run

        return Runner(make, lambda res: res)


class _Torch:
    name = "torch"

    def __init__(self, torch, notes):
        self.torch, self.notes = torch, notes

    def prepare(self, case, prob, threads):
        torch = self.torch
        nn = torch.nn
        if case.variant == "gru_rb":
            raise _Skip("PyTorch has no reset-before GRU")
        lstm = case.cell == "lstm"
        D = case.directions
        if case.streaming:
            cls = {"rnn": nn.RNNCell, "gru": nn.GRUCell, "lstm": nn.LSTMCell}[case.cell]
            kw = {"nonlinearity": "tanh"} if case.cell == "rnn" else {}
            mod = cls(case.I, case.H, **kw)
            names = {"weight_ih": 0, "weight_hh": 1, "bias_ih": 2, "bias_hh": 3}
            with torch.no_grad():
                for n, i in names.items():
                    getattr(mod, n).copy_(torch.from_numpy(prob.params[0][0][i]))
        else:
            cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[case.cell]
            kw = {"nonlinearity": "tanh"} if case.cell == "rnn" else {}
            mod = cls(case.I, case.H, num_layers=case.layers, bidirectional=D == 2, **kw)
            with torch.no_grad():
                for l, dirs in enumerate(prob.params):
                    for d, arrays in enumerate(dirs):
                        for kind, a in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"),
                                           arrays):
                            getattr(mod, _param_name(kind, l, d)).copy_(torch.from_numpy(a))
        training = case.training
        mod.train(training)
        h0 = torch.from_numpy(prob.h0)
        c0 = torch.from_numpy(prob.c0) if lstm else None
        if prob.lengths is not None and case.streaming:
            raise _Skip("ragged lengths are not run as streaming steps")

        def layer(T):
            """The module on (T, B, I) input; a ragged batch through a packed sequence (lengths
            unsorted, as given) and back to (T, B, D*H), zero past each length."""
            if prob.lengths is None:
                return mod
            rnn_utils = nn.utils.rnn
            lengths = torch.from_numpy(prob.lengths_for(T))

            def run(x, hx):
                packed = rnn_utils.pack_padded_sequence(x, lengths, enforce_sorted=False)
                y, hn = mod(packed, hx)
                return rnn_utils.pad_packed_sequence(y, total_length=T)[0], hn
            return run

        if case.streaming:
            def make(T):
                xs = [torch.from_numpy(prob.x[t]) for t in range(T)]

                def stream():
                    h, c = h0[0], (c0[0] if lstm else None)
                    for xt in xs:
                        if lstm:
                            h, c = mod(xt, (h, c))
                        else:
                            h = mod(xt, h)
                    return h, c
                return stream

            def extract(res):
                d = {"h_n": res[0].numpy()[None]}
                if lstm:
                    d["c_n"] = res[1].numpy()[None]
                return d
            return Runner(make, extract, torch.inference_mode)

        if not training:
            def make(T):
                xt = torch.from_numpy(prob.x[:T])
                return functools.partial(layer(T), xt, (h0, c0) if lstm else h0)

            def extract(res):
                y, hx = res
                d = {"y": y.numpy()}
                if lstm:
                    d["h_n"], d["c_n"] = hx[0].numpy(), hx[1].numpy()
                else:
                    d["h_n"] = hx.numpy()
                return d
            return Runner(make, extract, torch.inference_mode)

        leaves = {"x": None, "h0": h0.clone().requires_grad_(True),
                  "c0": c0.clone().requires_grad_(True) if lstm else None}

        def make(T):
            # Without dx (the first layer of a model, on data) x is a plain tensor.
            x = torch.from_numpy(prob.x[:T]).clone().requires_grad_(case.input_grad)
            hx = (leaves["h0"], leaves["c0"]) if lstm else leaves["h0"]
            run = layer(T)

            def train():
                mod.zero_grad(set_to_none=True)
                x.grad = None
                leaves["h0"].grad = None
                if lstm:
                    leaves["c0"].grad = None
                y, hn = run(x, hx)
                y.sum().backward()
                return x, y, hn
            return train

        def extract(res):
            x, y, hn = res
            d = {"y": y.detach().numpy()}
            if lstm:
                d["h_n"], d["c_n"] = hn[0].detach().numpy(), hn[1].detach().numpy()
            else:
                d["h_n"] = hn.detach().numpy()
            if case.input_grad:
                d["d_x"] = x.grad.numpy()
            d["d_h0"] = leaves["h0"].grad.numpy()
            if lstm:
                d["d_c0"] = leaves["c0"].grad.numpy()
            for name, p in mod.named_parameters():
                d["d_" + name] = p.grad.numpy()
            return d
        return Runner(make, extract, functools.partial(torch.set_grad_enabled, True))


_ONNX_GATE_ORDER = {"rnn": [0], "gru": [1, 0, 2], "lstm": [0, 3, 1, 2]}  # ours -> ONNX blocks
_ONNX_OPSET, _ONNX_IR = 17, 8


def _onnx_blocks(a, H, order):
    return np.concatenate([a[k * H:(k + 1) * H] for k in order], axis=0)


def build_onnx_model(onnx, case, prob, T_dim="T"):
    """One ONNX RNN/GRU/LSTM node per layer (direction forward or bidirectional), weights
    converted from the canonical layout (GRU [r,z,n] -> [z,r,h], LSTM [i,f,g,o] -> [i,o,f,c],
    B = [Wb | Rb]). Inputs X (T, B, I), h0_l (and c0_l) (D, B, H) per layer, and for a ragged
    batch (``prob.lengths``) seq_lens (B,) int32, every layer's sequence_lens; outputs Y
    ((T, D, B, H) for one layer and direction, else (T, B, D*H)), Y_h (and Y_c) (L*D, B, H)."""
    from onnx import TensorProto, helper, numpy_helper
    f32 = TensorProto.FLOAT
    cell, H, B, D, L = case.cell, case.H, case.B, case.directions, case.layers
    lstm = cell == "lstm"
    order = _ONNX_GATE_ORDER[cell]
    op = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}[cell]
    nodes, inits = [], []
    inputs = [helper.make_tensor_value_info("X", f32, [T_dim, B, case.I])]
    seq_lens = ""
    if prob.lengths is not None:
        seq_lens = "seq_lens"
        inputs.append(helper.make_tensor_value_info(seq_lens, TensorProto.INT32, [B]))
    if L > 1 or D > 1:
        inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "merge_shape"))
    cur, hn, cn = "X", [], []
    for l, dirs in enumerate(prob.params):
        W = np.stack([_onnx_blocks(p[0], H, order) for p in dirs])
        R = np.stack([_onnx_blocks(p[1], H, order) for p in dirs])
        Bv = np.stack([np.concatenate([_onnx_blocks(p[2], H, order),
                                       _onnx_blocks(p[3], H, order)]) for p in dirs])
        inits += [numpy_helper.from_array(np.ascontiguousarray(W), f"W{l}"),
                  numpy_helper.from_array(np.ascontiguousarray(R), f"R{l}"),
                  numpy_helper.from_array(np.ascontiguousarray(Bv), f"B{l}")]
        inputs.append(helper.make_tensor_value_info(f"h0_{l}", f32, [D, B, H]))
        node_in = [cur, f"W{l}", f"R{l}", f"B{l}", seq_lens, f"h0_{l}"]
        node_out = [f"Y{l}", f"Yh{l}"]
        if lstm:
            inputs.append(helper.make_tensor_value_info(f"c0_{l}", f32, [D, B, H]))
            node_in.append(f"c0_{l}")
            node_out.append(f"Yc{l}")
        attrs = {"hidden_size": H, "direction": "forward" if D == 1 else "bidirectional"}
        if cell == "rnn":
            attrs["activations"] = ["Tanh"] * D
        elif cell == "gru":
            attrs["linear_before_reset"] = 1 if case.opts["reset_after"] else 0
        nodes.append(helper.make_node(op, node_in, node_out, **attrs))
        hn.append(f"Yh{l}")
        cn.append(f"Yc{l}")
        if L > 1 or D > 1:  # (T, D, B, H) -> (T, B, D*H) = [fwd | bwd], the next layer's input
            nodes.append(helper.make_node("Transpose", [f"Y{l}"], [f"Yt{l}"], perm=[0, 2, 1, 3]))
            nodes.append(helper.make_node("Reshape", [f"Yt{l}", "merge_shape"], [f"Ym{l}"]))
            cur = f"Ym{l}"
        else:
            cur = f"Y{l}"
    nodes.append(helper.make_node("Identity", [cur], ["Y"]))
    y_shape = [T_dim, 1, B, H] if (L, D) == (1, 1) else [T_dim, B, D * H]
    outputs = [helper.make_tensor_value_info("Y", f32, y_shape)]
    for name, parts in (("Y_h", hn), ("Y_c", cn)):
        if name == "Y_c" and not lstm:
            continue
        nodes.append(helper.make_node("Concat", parts, [name], axis=0) if len(parts) > 1
                     else helper.make_node("Identity", parts, [name]))
        outputs.append(helper.make_tensor_value_info(name, f32, [L * D, B, H]))
    graph = helper.make_graph(nodes, f"gatedrnn_bench_{case.variant}", inputs, outputs,
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _ONNX_OPSET)])
    model.ir_version = _ONNX_IR
    onnx.checker.check_model(model)
    return model


class _Ort:
    name = "onnxruntime"

    def __init__(self, ort, onnx, notes):
        self.ort, self.onnx, self.notes = ort, onnx, notes

    def prepare(self, case, prob, threads):
        if case.mode != "fwd":
            raise _Skip("ONNX Runtime: forward only")
        ort = self.ort
        lstm = case.cell == "lstm"
        model = build_onnx_model(self.onnx, case, prob, T_dim=1 if case.streaming else "T")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        sess = ort.InferenceSession(model.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        D = case.directions
        state_feeds = {}
        for l in range(case.layers):
            state_feeds[f"h0_{l}"] = np.ascontiguousarray(prob.h0[l * D:(l + 1) * D])
            if lstm:
                state_feeds[f"c0_{l}"] = np.ascontiguousarray(prob.c0[l * D:(l + 1) * D])
        out_names = ["Y", "Y_h"] + (["Y_c"] if lstm else [])
        single = (case.layers, D) == (1, 1)

        if case.streaming:
            if prob.lengths is not None:
                raise _Skip("ragged lengths are not run as streaming steps")
            state_names = ["Y_h", "Y_c"] if lstm else ["Y_h"]

            def make(T):
                xs = [prob.x[t:t + 1] for t in range(T)]

                def stream():
                    feeds = dict(state_feeds)
                    st = None
                    for xt in xs:
                        feeds["X"] = xt
                        st = sess.run(state_names, feeds)
                        feeds["h0_0"] = st[0]
                        if lstm:
                            feeds["c0_0"] = st[1]
                    return st
                return stream

            def extract(res):
                d = {"h_n": res[0]}
                if lstm:
                    d["c_n"] = res[1]
                return d
            return Runner(make, extract)

        def make(T):
            feeds = dict(state_feeds, X=prob.x[:T])
            if prob.lengths is not None:
                feeds["seq_lens"] = prob.lengths_for(T).astype(np.int32)
            return functools.partial(sess.run, out_names, feeds)

        def extract(res):
            d = {"y": res[0][:, 0] if single else res[0], "h_n": res[1]}
            if lstm:
                d["c_n"] = res[2]
            return d
        return Runner(make, extract)


# ---------------------------------------------------------------------------------------------
# Running a case
# ---------------------------------------------------------------------------------------------

def _probe_steps(T):
    return max(1, min(T, math.ceil(T / 20)))


def _timed(fn):
    t0 = time.perf_counter()
    res = fn()
    return time.perf_counter() - t0, res


def prepare_and_warm(impl, case, prob, *, threads, budget, max_time, warm_long=True):
    """Prepare ``impl`` for ``case``, estimate one call from a probe and warm it up.

    Returns a dict: status ("ok", "over budget", "n/a", "error"), note, estimate_s, and for
    "ok": fn (the full call), warm_s (seconds of the warm-up call), plan_s (seconds of a steady
    call to plan timed rounds by: the fastest of the warm-up call and, for a call shorter than a
    round, about a round's time of repeated calls), single (True when one call
    takes longer than ``max_time``: it is then timed once, as single_s, the seconds of a second
    full call after the warm-up call), outputs (extracted from the warm-up call, for the parity
    check), extract (turns a result of fn into such outputs) and ctx (the context manager to
    call fn in).
    ``budget``: the most one call may take (else "over budget"). ``warm_long=False``: when the
    probe estimates one call above ``max_time``, skip the warm-up call (outputs is None; the
    caller times fn once and extracts the outputs from that call itself).
    """
    try:
        runner = impl.prepare(case, prob, threads)
    except _Skip as exc:
        return {"status": "n/a", "note": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one implementation failing must not stop the run
        return {"status": "error", "note": f"prepare: {type(exc).__name__}: {exc}"}
    try:
        with runner.ctx():
            T = case.T
            estimate = None
            if T > 1:
                Tp = _probe_steps(T)
                probe = runner.make(Tp)
                t1, _ = _timed(probe)
                if t1 * T / Tp > 2 * budget:  # cold probe already far over: don't insist
                    return {"status": "over budget", "estimate_s": t1 * T / Tp,
                            "note": f"one call ~{t1 * T / Tp:.3g} s > {budget:g} s"}
                t2, _ = _timed(probe)
                estimate = t2 * T / Tp
                if estimate > budget:
                    return {"status": "over budget", "estimate_s": estimate,
                            "note": f"one call ~{estimate:.3g} s > {budget:g} s"}
                del probe
            fn = runner.make(T)
            if not warm_long and estimate is not None and estimate >= max_time:
                return {"status": "ok", "fn": fn, "warm_s": None, "plan_s": None,
                        "estimate_s": estimate, "single": True, "single_s": None, "outputs": None,
                        "extract": runner.extract, "ctx": runner.ctx}
            warm, res = _timed(fn)
            if estimate is None and warm > budget:
                return {"status": "over budget", "estimate_s": warm,
                        "note": f"one call {warm:.3g} s > {budget:g} s"}
            outputs = {k: np.array(v, copy=True) for k, v in runner.extract(res).items()
                       if v is not None}
            del res
            # The rounds are planned from a steady call. The first calls can take many times
            # as long (a thread pool starting, first touch of new buffers, a runtime's first-run
            # set-up, another pool still spinning, the second CPU waking): planned from them, a
            # short call's rounds would hold a handful of calls and no lead-in, and time the
            # machine waking from each pause between turns. So a call shorter than a round is
            # repeated for about a round's time, and the fastest call plans the rounds.
            plan = warm
            if warm < INTERLEAVED_ROUND_TIME:
                spent, calls = 0.0, 0
                while calls < 3 or spent < INTERLEAVED_ROUND_TIME:
                    dt, res = _timed(fn)
                    del res
                    plan, spent, calls = min(plan, dt), spent + dt, calls + 1
            single_s = None
            if warm >= max_time:
                # The warm-up was the first full-size call; the one timed call is the next.
                single_s, res = _timed(fn)
                del res
    except Exception as exc:  # noqa: BLE001
        return {"status": "error", "note": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok", "fn": fn, "warm_s": warm, "plan_s": plan,
            "estimate_s": estimate or plan,
            "single": single_s is not None, "single_s": single_s, "outputs": outputs,
            "extract": runner.extract, "ctx": runner.ctx}


def parity(anchor, other):
    """Largest scaled difference max|a - b| / max(1, max|b|) over the arrays both have, and
    the name of the worst one. Shape mismatches count as infinitely different."""
    worst, worst_key, compared = 0.0, None, 0
    for key, b in anchor.items():
        if key not in other:
            continue
        a = other[key]
        compared += 1
        if a.shape != b.shape:
            return math.inf, f"{key} shape {a.shape} vs {b.shape}", compared
        if b.size == 0:
            continue
        diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
        scale = max(1.0, float(np.max(np.abs(b))))
        d = diff / scale if np.isfinite(diff) else math.inf
        if not d <= worst:
            worst, worst_key = d, key
    return worst, worst_key, compared


def make_implementations(names, notes):
    impls = {}
    torch, why = (None, None)
    if "torch" in names:
        torch, why = _import_peer("torch")
        if torch is None:
            notes.add(f"PyTorch not importable ({why}): its column is n/a")
    for name in names:
        if name == "gatedrnn":
            impls[name] = _GatedFamily("gatedrnn", F, notes)
        elif name == "reference":
            import gatedrnn.reference as reference
            impls[name] = _GatedFamily("reference", reference, notes)
        elif name == "torch":
            impls[name] = _Torch(torch, notes) if torch is not None else f"not installed ({why})"
        elif name == "onnxruntime":
            ort, why_ort = _import_peer("onnxruntime")
            onnx, why_onnx = _import_peer("onnx")
            if ort is None or onnx is None:
                why2 = why_ort or why_onnx
                notes.add(f"onnxruntime/onnx not importable ({why2}): the ORT column is n/a")
                impls[name] = f"not installed ({why2})"
            else:
                impls[name] = _Ort(ort, onnx, notes)
        else:
            raise ValueError(f"unknown implementation {name!r}; expected one of {IMPLEMENTATIONS}")
    return impls, torch


def new_row(case):
    """An empty report row for ``case`` (filled by run() or by bench/report.py)."""
    return {"id": case.id, "suite": case.suite, "variant": case.variant, "cell": case.cell,
            "mode": case.mode, "T": case.T, "B": case.B, "I": case.I, "H": case.H,
            "layers": case.layers, "directions": case.directions, "unit": case.unit,
            "flops": case.flops(), "impls": {}, "parity": {}, "data": case.data,
            "normal_twin": case.twin.id if case.data != "normal" else None}


def compare_with_twins(rows):
    """For each row with subnormal data whose normal twin is among ``rows`` (the same run):
    ``vs_normal`` = {implementation: twin's time / the row's time}, its speed relative to the
    same call with normal data (1.0 = normal speed; None where either was not timed). For
    results timed case by case (bench/report.py, from pytest-benchmark); run() times each
    implementation's twin in the subnormal case's own interleaved rounds instead."""
    by_id = {r["id"]: r for r in rows}
    for r in rows:
        twin = by_id.get(r.get("normal_twin"))
        if twin is not None:
            r["vs_normal"] = _speed_vs_normal(
                r["impls"], {n: e.get("median_s") for n, e in twin["impls"].items()})
    return rows


def _speed_vs_normal(impls, twin_s):
    """{implementation: twin_s[name] / its time}, both seconds per unit (None where either
    is missing)."""
    out = {}
    for name, entry in impls.items():
        t, t0 = entry.get("median_s"), twin_s.get(name)
        out[name] = t0 / t if (t and t0) else None
    return out


def finish_row(row, sgemm, bound):
    """Derived columns: GFLOP/s of every implementation, speed-ups (peer time / gatedrnn
    time), % of the SGEMM ceiling and of the bandwidth bound (seconds per unit, or None),
    parity_ok."""
    for entry in row["impls"].values():
        if entry.get("median_s"):
            entry["gflops"] = row["flops"] / entry["median_s"] / 1e9
    gd = row["impls"].get("gatedrnn", {})
    t_gd = gd.get("median_s")
    row["speedup"] = {}
    for name, entry in row["impls"].items():
        if name != "gatedrnn":
            t = entry.get("median_s")
            row["speedup"][name] = (t / t_gd) if (t and t_gd) else None
    row["gflops"] = gd.get("gflops")
    row["sgemm_gflops"] = sgemm
    row["pct_sgemm"] = 100.0 * row["gflops"] / sgemm if row["gflops"] and sgemm else None
    row["bw_bound_s"] = bound
    row["pct_bw"] = 100.0 * bound / t_gd if (bound and t_gd) else None
    row["parity_ok"] = all(p["ok"] for p in row["parity"].values())
    return row


def parity_entry(anchor, outputs):
    d, key, n = parity(anchor, outputs)
    return {"max_scaled_diff": d, "worst": key, "arrays": n,
            "ok": bool(d <= PARITY_TOL and n > 0)}


_CEILING = "(sgemm ceiling)"  # its turn's name among the implementations' (not a valid one)
TWIN_TURN = " (normal data)"  # suffix of an implementation's turns on a case's normal twin


def _run_case(case, impls, *, threads, min_time, max_time, max_call, gemv, sgemm, seed,
              ceiling=None, lead_in=0.0):
    prob = make_problem(case, seed)
    row = new_row(case)
    monitor = ForeignCpu()
    monitor.start()
    outputs = {}
    per = case.per_unit

    def record(name, st, timing):
        entry = {k: st[k] for k in ("status", "note", "estimate_s") if k in st}
        if entry.get("estimate_s") is not None:
            entry["estimate_s"] /= per
        if timing is not None:
            if timing.rounds == 1 and st.get("single"):
                entry["note"] = "one call (longer than --max-time)"
            entry.update(median_s=timing.median / per, rounds=timing.rounds,
                         number=timing.number, measured_s=timing.total)
        row["impls"][name] = entry

    # A case with subnormal data also times each implementation on its normal twin (the same
    # call with normal x), in the same interleaved rounds: its speed relative to normal data,
    # vs_normal, is then a ratio of times taken together (a slow spell of a shared machine
    # between two separate cases would pass for a denormal slowdown).
    twin_prob = make_problem(case.twin, seed) if case.twin != case else None
    twin_outputs, twin_ready = {}, {}

    def prepare_twin(name, impl, st, budget):
        # also when the subnormal call is timed once (longer than max_time): a many-fold
        # denormal slowdown is what the suite is there to show
        if twin_prob is None or st["status"] != "ok":
            return
        tw = prepare_and_warm(impl, case.twin, twin_prob, threads=threads, budget=budget,
                              max_time=max_time)
        if tw["status"] == "ok" and not tw["single"]:
            twin_outputs[name] = tw["outputs"]
            twin_ready[name] = tw

    def twin_turns(names):
        return {name + TWIN_TURN: (twin_ready[name]["fn"], twin_ready[name]["ctx"],
                                   twin_ready[name]["plan_s"]) for name in names
                if name in twin_ready}

    # The implementations under comparison are prepared and warmed up first, then timed in
    # interleaved rounds (measure_interleaved). The plain NumPy reference, slow and with BLAS
    # threads that keep spinning long after each call, is timed on its own afterwards (in
    # turns with its normal twin only).
    ready, timed_apart = {}, []
    for name, impl in impls.items():
        if isinstance(impl, str):
            row["impls"][name] = {"status": "n/a", "note": impl}
        elif name == "reference":
            timed_apart.append((name, impl))
        else:
            st = prepare_and_warm(impl, case, prob, threads=threads, budget=max_call,
                                  max_time=max_time)
            if st["status"] == "ok":
                outputs[name] = st["outputs"]
            ready[name] = st
            prepare_twin(name, impl, st, max_call)
    turns = {name: (st["fn"], st["ctx"], st["plan_s"]) for name, st in ready.items()
             if st["status"] == "ok" and not st["single"]}
    turns.update(twin_turns(ready))
    # The SGEMM ceiling takes its turns among the implementations' rounds: on a shared
    # machine its throughput moves by a third within minutes, and a figure taken at another
    # time would move every %SGEMM of the case with it.
    if ceiling is not None and turns:
        turns[_CEILING] = (ceiling.call, contextlib.nullcontext, ceiling.estimate)
    timings = (measure_interleaved(turns, min_time, max_time, followers=(_CEILING,),
                                   lead_in=lead_in) if turns else {})
    run_sgemm = sgemm
    if ceiling is not None:
        t = timings.pop(_CEILING, None)
        sgemm = ceiling.gflops(t.median) if t else ceiling.measure(3)
        row["sgemm_rounds"] = t.rounds if t else 3
    for name, st in ready.items():
        timing = timings.get(name)
        if st["status"] == "ok" and st["single"]:
            timing = Timing(st["single_s"], 1, 1, st["single_s"])
        record(name, st, timing)
    twin_times = {name: timings[name + TWIN_TURN].median / per for name in twin_ready
                  if name + TWIN_TURN in timings}
    ready = turns = None
    twin_ready.clear()
    gc.collect()
    for name, impl in timed_apart:
        st = prepare_and_warm(impl, case, prob, threads=threads, budget=max_time,
                              max_time=max_time)
        timing = None
        if st["status"] == "ok":
            outputs[name] = st["outputs"]
            prepare_twin(name, impl, st, max_time)
            timed = {}
            if name in twin_ready:  # the two alone, taking turns (a call timed once: its twin)
                entries = twin_turns([name])
                if not st["single"]:
                    entries[name] = (st["fn"], st["ctx"], st["plan_s"])
                timed = measure_interleaved(entries, min_time, max_time, lead_in=lead_in)
                twin_times[name] = timed[name + TWIN_TURN].median / per
            if st["single"]:
                timing = Timing(st["single_s"], 1, 1, st["single_s"])
            elif name in timed:
                timing = timed[name]
            else:
                with st["ctx"]():
                    timing = measure(st["fn"], min_time, max_time, estimate=st["plan_s"])
        record(name, st, timing)
        st = None
        twin_ready.clear()
        gc.collect()
    if twin_prob is not None:
        row["vs_normal"] = _speed_vs_normal(row["impls"], twin_times)
    # rows list the implementations in the order asked for
    row["impls"] = {name: row["impls"][name] for name in impls if name in row["impls"]}
    # parity: every peer against gatedrnn (or the first implementation that ran)
    anchor_name = "gatedrnn" if "gatedrnn" in outputs else next(iter(outputs), None)
    row["parity_anchor"] = anchor_name
    for name, out in outputs.items():
        if name != anchor_name:
            row["parity"][name] = parity_entry(outputs[anchor_name], out)
    # with subnormal data every output is (nearly) zero: the twins' outputs are the real check
    for name, out in twin_outputs.items():
        if name != anchor_name and anchor_name in twin_outputs:
            row["parity"][name + TWIN_TURN] = parity_entry(twin_outputs[anchor_name], out)
    row["foreign_cpu"] = monitor.stop()
    row = finish_row(row, sgemm, bandwidth_bound(case, gemv))
    row["sgemm_gflops_run"] = run_sgemm
    return row


def run(case_list, *, threads=None, implementations=IMPLEMENTATIONS, reference=True,
        min_time=0.5, max_time=2.0, max_call=30.0, sgemm_n=2048, seed=0, out="stdout",
        retry_busy=1, busy_wait=30.0, lead_in=0.01):
    """Run ``case_list`` with every implementation and return the report (a JSON-able dict).

    A case that ran while other work used more than BUSY_FLAG of the CPUs is run again, up to
    ``retry_busy`` times, each after waiting up to ``busy_wait`` seconds for the machine to be
    idle; the attempt with the least interference is kept (``attempts`` in its row).
    ``lead_in``: seconds of untimed calls before each timed round of a short call (see
    :func:`measure_interleaved`).

    Prints the machine line, the ceilings and one table row per case as it completes to
    ``out`` (a file; "stdout": sys.stdout at call time; None: silent). A KeyboardInterrupt stops
    the run and returns what was measured.
    """
    started = time.perf_counter()
    if out == "stdout":
        out = sys.stdout
    notes = set()
    names = [n for n in implementations if reference or n != "reference"]
    if threads is None:
        threads = gatedrnn.get_num_threads()
    impls, torch = make_implementations(names, notes)
    say = (lambda s="": print(s, file=out, flush=True)) if out is not None else (lambda s="": None)
    report = {"machine": machine_info(torch, impls), "settings": {
        "threads": threads, "min_time": min_time, "max_time": max_time, "max_call": max_call,
        "implementations": names, "seed": seed, "parity_tol": PARITY_TOL,
        "retry_busy": retry_busy, "busy_wait": busy_wait, "lead_in": lead_in}, "cases": []}
    with ThreadSettings(threads, torch) as th:
        notes.update(th.notes)
        report["settings"]["blas_threads"] = th.blas
        ceiling = Sgemm(sgemm_n)
        sgemm = ceiling.measure(5)
        report["ceilings"] = {"sgemm_gflops": sgemm, "sgemm_n": sgemm_n}
        say(_machine_line(report))
        say(f"ceiling: NumPy float32 SGEMM {sgemm_n}x{sgemm_n}: {sgemm:.1f} GFLOP/s "
            f"({threads} threads, BLAS threads via {th.blas})")
        for note in sorted(notes):
            say(f"note: {note}")
        say()
        say(_header(names))
        gemv = GemvTimes()
        try:
            for case in case_list:
                def attempt():
                    return _run_case(case, impls, threads=threads, min_time=min_time,
                                     max_time=max_time, max_call=max_call, gemv=gemv,
                                     sgemm=sgemm, seed=seed, ceiling=ceiling, lead_in=lead_in)
                row, attempts = attempt(), 1
                while (row.get("foreign_cpu") or 0) > BUSY_FLAG and attempts <= retry_busy:
                    wait_for_idle(busy_wait)
                    again = attempt()
                    attempts += 1
                    if (again.get("foreign_cpu") or 0) < row["foreign_cpu"]:
                        row = again
                row["attempts"] = attempts
                report["cases"].append(row)
                say(_format_row(row, names))
        except KeyboardInterrupt:
            report["interrupted"] = True
            say("interrupted: reporting the cases measured so far")
        report["ceilings"]["gemv_s"] = {f"{r}x{c}": t for (r, c), t in gemv._cache.items()}
        report["ceilings"]["numpy_call_overhead_s"] = gemv.call_overhead
        # the machine is shared/noisy: a second SGEMM figure shows how much the ceiling moved
        report["ceilings"]["sgemm_gflops_at_end"] = ceiling.measure(5)
    report["notes"] = sorted(notes)
    report["machine"]["loadavg_end"] = _loadavg()
    report["wall_s"] = time.perf_counter() - started
    report["targets"] = check_targets(report["cases"])
    return report


def machine_info(torch, impls):
    info = {"cpu": _cpu_model(), "cpus_available": _available_cpus(),
            "platform": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "gatedrnn": gatedrnn.info(), "loadavg_start": _loadavg(),
            "pack_weights": hasattr(F, "pack_weights"),
            "bidirectional_api": "bidirectional" in inspect.signature(F.lstm).parameters}
    if torch is not None:
        info["torch"] = torch.__version__
    ort = impls.get("onnxruntime")
    if isinstance(ort, _Ort):
        info["onnxruntime"] = ort.ort.__version__
        info["onnx"] = ort.onnx.__version__
    return info


def _loadavg():
    """1-minute load average: other work on the machine distorts every number."""
    with contextlib.suppress(AttributeError, OSError):
        return os.getloadavg()[0]
    return None


def _machine_line(report):
    m = report.get("machine", {})
    g = m.get("gatedrnn", {})
    peers = ", ".join(f"{k} {m[k]}" for k in ("torch", "onnxruntime") if k in m) or "no peers"
    return (f"gatedrnn {g.get('version')} ({g.get('simd')}, {g.get('compiler')}) vs {peers}; "
            f"NumPy {m.get('numpy')}; {m.get('cpu')}, {m.get('cpus_available')} CPUs available; "
            f"{report['settings'].get('threads')} threads for everyone")


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------

_W_CASE = 48


def _fmt_time(s):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def _fmt_cell(entry):
    st = entry.get("status")
    if st == "ok":
        return _fmt_time(entry["median_s"]) + ("*" if entry.get("rounds") == 1 else "")
    return {"n/a": "n/a", "over budget": "over budget", "error": "ERROR"}.get(st, "-")


def _fmt_ratio(r):
    return "-" if r is None else (f"{r:.2f}x" if r < 10 else f"{r:.1f}x")


def _fmt_pct(p):
    return "-" if p is None else f"{p:.0f}%"


def _header(names):
    cols = [f"{'case':<{_W_CASE}}"] + [f"{LABELS[n]:>11}" for n in names]
    cols += [f"{RATIO_LABELS[n]:>6}" for n in names if n != "gatedrnn"]
    cols += [f"{'GFLOP/s':>7}", f"{'%SGEMM':>6}", f"{'of':>5}", f"{'%BW':>5}", "  parity"]
    return " ".join(cols)


def _format_row(row, names):
    cols = [f"{row['id']:<{_W_CASE}}"]
    cols += [f"{_fmt_cell(row['impls'].get(n, {})):>11}" for n in names]
    cols += [f"{_fmt_ratio(row['speedup'].get(n)):>6}" for n in names if n != "gatedrnn"]
    g = row.get("gflops")
    c = row.get("sgemm_gflops")
    cols += [f"{g:7.1f}" if g else f"{'-':>7}", f"{_fmt_pct(row.get('pct_sgemm')):>6}",
             f"{c:5.0f}" if c else f"{'-':>5}", f"{_fmt_pct(row.get('pct_bw')):>5}",
             "  " + _fmt_parity(row)]
    busy = row.get("foreign_cpu")
    if busy is not None and busy > BUSY_FLAG:
        cols.append(f" [busy {100 * busy:.0f}%]")
    return " ".join(cols)


def _label(name):
    """An implementation's label; a turn on the normal twin keeps its suffix."""
    if name.endswith(TWIN_TURN):
        return LABELS.get(name[:-len(TWIN_TURN)], name) + TWIN_TURN
    return LABELS.get(name, name)


def _fmt_parity(row):
    par = row.get("parity", {})
    if not par:
        return "n/a"
    bad = [(n, p) for n, p in par.items() if not p["ok"]]
    if bad:
        return "MISMATCH " + ", ".join(f"{_label(n)} {p['max_scaled_diff']:.1e} "
                                       f"({p['worst']})" for n, p in bad)
    return f"ok {max(p['max_scaled_diff'] for p in par.values()):.0e}"


def _geomean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def summarize(rows):
    """Per (suite, mode) group and peer: cases compared, geometric mean, min and max speed-up.
    Cases with subnormal data are left out (the report compares them with their normal twins)."""
    groups = {}
    for r in rows:
        if r.get("data", "normal") != "normal":  # reported apart, against their normal twins
            continue
        for peer, s in r.get("speedup", {}).items():
            if s:
                groups.setdefault((r["suite"], r["mode"], peer), []).append(s)
    return [{"suite": s, "mode": m, "peer": p, "n": len(v), "geomean": _geomean(v),
             "min": min(v), "max": max(v)} for (s, m, p), v in groups.items()]


def check_targets(rows):
    """The targets of issue 3 (section 3), evaluated on the measured rows: one entry per
    (rule, case) with the measured value, the target and whether it is met. Rules whose
    inputs were not measured (peer n/a, over budget) are left out. A speed-up target also
    records ``needs_pct_sgemm`` (and ``needs_pct_bw`` where the case has a bandwidth bound):
    the % of that ceiling at which gatedrnn would meet it against the same peer time.
    The training targets are stated on training with dx ("train"); "train-nodx" rows are
    reported, not judged."""
    res = []

    def add(rule, row, value, target, unit="x", speedup=False):
        if value is None:
            return
        t = {"rule": rule, "case": row["id"], "value": value, "target": target, "unit": unit,
             "met": bool(value >= target)}
        if speedup and value > 0:
            # Where the target lies on this machine: the % of each ceiling gatedrnn would
            # reach at the time that meets it against the same peer time (the measured %
            # scaled by target / value). Above 100% it lies beyond the machine's GEMM
            # throughput (or, for a small batch, beyond streaming the weights once).
            for key in ("pct_sgemm", "pct_bw"):
                if row.get(key):
                    t["needs_" + key] = row[key] * target / value
        res.append(t)

    for r in rows:
        sp, small = r.get("speedup", {}), r["B"] <= 4
        gru = r["cell"] == "gru"
        if r["suite"] in ("train", "infer", "overhead", "ragged") and r["mode"] == "fwd":
            peers = [sp.get(p) for p in ("torch", "onnxruntime") if sp.get(p)]
            best = min(peers) if peers else None   # vs the faster peer
            need = 1.5 if (gru or small) else 1.0
            add(f"forward >= {need}x faster of PyTorch/ORT", r, best, need, speedup=True)
        if r["suite"] in ("train", "ragged") and r["mode"] == "train":
            need = 2.0 if gru else 1.3
            add(f"training >= {need}x PyTorch", r, sp.get("torch"), need, speedup=True)
        if r["suite"] == "train" and r["mode"] in ("fwd", "train") and r["B"] >= 32 \
                and r["H"] >= 512:
            need = 85.0 if r["mode"] == "fwd" else 75.0
            add(f"large {r['mode']} >= {need:.0f}% SGEMM", r, r.get("pct_sgemm"), need, "%")
        if r["suite"] == "stream":
            add("streaming >= 4x PyTorch cell", r, sp.get("torch"), 4.0, speedup=True)
            add("streaming within 1.5x of bandwidth bound", r, r.get("pct_bw"), 100 / 1.5, "%")
        if r["suite"] == "bidir" and r["mode"] in ("fwd", "train"):
            add(f"bidirectional {r['mode']} >= 1.3x PyTorch", r, sp.get("torch"), 1.3,
                speedup=True)
        if r.get("normal_twin"):
            add(f"subnormal input at normal speed (>= {SUBNORMAL_SPEED_TARGET:g}x the speed "
                "with normal input)", r, (r.get("vs_normal") or {}).get("gatedrnn"),
                SUBNORMAL_SPEED_TARGET)
    return res


def median_report(reports):
    """One report from several runs of the same cases: per case, the median over the runs of
    every implementation's time, and of each speed-up, GFLOP/s, % SGEMM and % bandwidth bound
    as measured within each run (ratios are only meaningful within a run). Targets are then
    evaluated on those medians; each also records in how many runs it was met and the range
    of its value over the runs (runs, runs_met, run_min, run_max), and targets_met_per_run
    counts the targets each run met by itself. A case missing from some runs is merged from
    the runs that have it; parity must have held in every one."""
    if not reports:
        raise ValueError("reports: expected at least one report, got none")
    by_id = {}
    for rep in reports:
        for row in rep["cases"]:
            by_id.setdefault(row["id"], []).append(row)
    med = lambda values: statistics.median(values) if values else None  # noqa: E731
    rows = []
    for rid, runs in by_id.items():
        row = copy.deepcopy(runs[0])
        for name, entry in row["impls"].items():
            times = [r["impls"][name]["median_s"] for r in runs
                     if r["impls"].get(name, {}).get("median_s")]
            if times:
                entry["median_s"] = med(times)
        for peer in row.get("speedup", {}):
            row["speedup"][peer] = med([r["speedup"][peer] for r in runs
                                        if r.get("speedup", {}).get(peer)])
        names = {n: None for r in runs for n in (r.get("vs_normal") or {})}  # ordered union
        if names:
            row["vs_normal"] = {n: med([r["vs_normal"][n] for r in runs
                                        if (r.get("vs_normal") or {}).get(n)]) for n in names}
        for key in ("gflops", "pct_sgemm", "pct_bw", "foreign_cpu", "sgemm_gflops",
                    "sgemm_gflops_run"):
            row[key] = med([r[key] for r in runs if r.get(key) is not None])
        row["parity_ok"] = all(r.get("parity_ok", True) for r in runs)
        row["runs"] = len(runs)
        rows.append(row)
    merged = copy.deepcopy(reports[0])
    merged["cases"] = rows
    merged["targets"] = check_targets(rows)
    # How each target fared in the runs themselves: a shortfall of the medians that some runs
    # met is within this machine's run-to-run spread; one that no run met is not.
    run_targets = [check_targets(rep["cases"]) for rep in reports]
    per_run = {}
    for ts in run_targets:
        for t in ts:
            per_run.setdefault((t["rule"], t["case"]), []).append(t)
    for t in merged["targets"]:
        runs = per_run.get((t["rule"], t["case"]), [])
        t["runs"] = len(runs)
        t["runs_met"] = sum(r["met"] for r in runs)
        t["run_min"] = min((r["value"] for r in runs), default=None)
        t["run_max"] = max((r["value"] for r in runs), default=None)
    merged["targets_met_per_run"] = [sum(t["met"] for t in ts) for ts in run_targets]
    ceilings = [r.get("ceilings", {}).get("sgemm_gflops") for r in reports]
    merged.setdefault("ceilings", {})["sgemm_gflops"] = med([c for c in ceilings if c])
    merged["ceilings"].pop("sgemm_gflops_at_end", None)
    merged["merged_runs"] = len(reports)
    return merged


def format_report(report):
    """The whole report as text: table, per-group summary, targets, notes."""
    names = report["settings"]["implementations"]
    lines = [_machine_line(report)]
    c = report.get("ceilings", {})
    if "sgemm_gflops" in c:
        n = c.get("sgemm_n", 2048)
        end = c.get("sgemm_gflops_at_end")
        lines.append(f"ceiling: NumPy float32 SGEMM {n}x{n}: {c['sgemm_gflops']:.1f} GFLOP/s"
                     + (f" (re-measured at the end: {end:.1f})" if end else ""))
    per_case = [r["sgemm_gflops"] for r in report["cases"]
                if r.get("sgemm_rounds") and r.get("sgemm_gflops")]
    if per_case:
        lines.append(f"ceiling per case, timed in turns with the case's rounds (what %SGEMM "
                     f"divides by): median {statistics.median(per_case):.1f} GFLOP/s "
                     f"[{min(per_case):.1f} .. {max(per_case):.1f}]")
    if report.get("merged_runs"):
        lines.append(f"median of {report['merged_runs']} runs: every time, speed-up and "
                     "percentage is the median over the runs of its value within each run")
    lines += ["", _header(names)] + [_format_row(r, names) for r in report["cases"]]
    lines += _format_tail(report)
    return "\n".join(lines)


def _format_tail(report):
    lines = ["", "Times: median per call (streaming: per step); * = timed once (a long call: "
                 "one timed call after the warm-up call). xPeer = peer time / gatedrnn time.",
             "", "Speed-up of gatedrnn per group (geometric mean [min .. max] over cases):"]
    for s in sorted(summarize(report["cases"]), key=lambda s: (s["suite"], s["mode"], s["peer"])):
        lines.append(f"  {s['suite']:>8} {s['mode']:<10} vs {LABELS[s['peer']]:<9} "
                     f"{s['geomean']:6.2f}x  [{s['min']:.2f}x .. {s['max']:.2f}x]  "
                     f"({s['n']} cases)")
    twins = [r for r in report["cases"] if r.get("vs_normal")]
    if twins:
        lines += ["", "Subnormal input (denormal suite: x in float32's subnormal range, zero "
                      "biases and initial states), speed relative to the same call with normal "
                      "x (the twin's time / this time; 1.00x = normal speed):"]
        for r in twins:
            lines.append(f"  {r['id']:<{_W_CASE}}  " + "  ".join(
                f"{_label(n)} {_fmt_ratio(v)}" for n, v in r["vs_normal"].items()))
    tg = report.get("targets", [])
    if tg:
        per_run = report.get("targets_met_per_run")
        lines += ["", f"Targets (issue 3): {sum(t['met'] for t in tg)} of {len(tg)} met"
                  + (f" (within each run: {', '.join(map(str, per_run))})" if per_run else "")]
        rules = {}
        for t in tg:
            rules.setdefault(t["rule"], []).append(t)
        for rule, ts in rules.items():
            miss = [t for t in ts if not t["met"]]
            lines.append(f"  {rule}: {len(ts) - len(miss)}/{len(ts)}")
            for t in miss:
                u = t["unit"]
                fmt = (lambda x: f"{x:.2f}x") if u == "x" else (lambda x: f"{x:.0f}%")  # noqa: E731
                needs = ", ".join(f"{t[k]:.0f}% {name}" for k, name in
                                  (("needs_pct_sgemm", "SGEMM"), ("needs_pct_bw", "BW"))
                                  if t.get(k))
                needs = f"; needs {needs}" if needs else ""
                runs = ""
                if t.get("runs", 0) > 1:
                    runs = (f"; met in {t['runs_met']} of {t['runs']} runs, "
                            f"[{fmt(t['run_min'])} .. {fmt(t['run_max'])}]")
                lines.append(f"      short: {t['case']}  {fmt(t['value'])} "
                             f"(target {t['target']:.3g}{u}{needs}{runs})")
        if any(t.get("needs_pct_sgemm") or t.get("needs_pct_bw") for t in tg if not t["met"]):
            lines.append("  needs N% SGEMM / BW: the % of the SGEMM ceiling (and of the bandwidth "
                         "bound) gatedrnn would reach at the time that meets the target against "
                         "the same peer time; above 100% the target lies beyond this machine's "
                         "GEMM throughput (or beyond streaming the weights once)")
    busy = [r for r in report["cases"] if (r.get("foreign_cpu") or 0) > BUSY_FLAG]
    if busy:
        lines += ["", f"[busy N%]: {len(busy)} case(s) ran while other work used N% of the "
                      "CPUs (even after --retry-busy); their times are not trustworthy, rerun "
                      "them (--filter) on an idle machine"]
    load = report.get("machine", {}).get("loadavg_start")
    if load is not None and load > 0.5:
        lines.append(f"note: load average {load:.2f} at the start: the machine was not idle")
    bad = [r["id"] for r in report["cases"] if not r.get("parity_ok", True)]
    if bad:
        lines += ["", f"PARITY MISMATCH in {len(bad)} case(s): " + ", ".join(bad)]
    errors = [(r["id"], n, e.get("note")) for r in report["cases"]
              for n, e in r["impls"].items() if e.get("status") == "error"]
    for cid, n, note in errors:
        lines.append(f"ERROR {cid} {LABELS.get(n, n)}: {note}")
    for note in report.get("notes", []):
        lines.append(f"note: {note}")
    if "wall_s" in report:
        lines.append(f"\n{len(report['cases'])} cases in {report['wall_s']:.0f} s")
    return lines


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, float)):
        f = float(o)
        return f if math.isfinite(f) else str(f)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def write_json(report, path):
    with open(path, "w") as fh:
        json.dump(_jsonable(report), fh, indent=1)
        fh.write("\n")


def write_png(report, path):
    """Speed-up vs batch size, one panel per cell variant and mode (forward / training), a
    point per case and peer, a line through the geometric mean per batch size. Returns None
    when written, else the reason it was not (matplotlib missing, nothing to plot)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except Exception as exc:  # noqa: BLE001
        return f"matplotlib not available ({type(exc).__name__}): no PNG written"
    rows = [r for r in report["cases"] if r["suite"] in ("train", "infer", "overhead")]
    panels = sorted({(r["mode"], r["variant"]) for r in rows
                     if any(r["speedup"].get(p) for p in PEERS)},
                    key=lambda k: (k[0] != "fwd", list(VARIANTS).index(k[1])))
    if not panels:
        return "no speed-ups measured: no PNG written"
    ncol = min(4, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.3 * nrow), squeeze=False)
    markers = {"torch": "o", "onnxruntime": "s", "reference": "^"}
    colors = {"torch": "C0", "onnxruntime": "C1", "reference": "C2"}
    for ax, (mode, variant) in zip(axes.flat, panels):
        sel = [r for r in rows if r["mode"] == mode and r["variant"] == variant]
        for peer in PEERS:
            pts = [(r["B"], r["speedup"][peer]) for r in sel if r["speedup"].get(peer)]
            if not pts:
                continue
            xs, ys = zip(*pts)
            ax.scatter(xs, ys, marker=markers[peer], color=colors[peer], alpha=0.6,
                       label=LABELS[peer])
            bs = sorted(set(xs))
            ax.plot(bs, [_geomean([y for x, y in pts if x == b]) for b in bs],
                    color=colors[peer], alpha=0.9)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        title = {"fwd": "forward", "train": "training", "train-nodx": "training, no dx"}[mode]
        ax.set_title(f"{variant} {title}")
        ax.set_xlabel("batch size")
        ax.set_ylabel("speed-up of gatedrnn")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"gatedrnn speed-up vs batch size ({report['settings']['threads']} threads)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def add_arguments(parser):
    """The options of ``python -m gatedrnn bench`` (also used by ``main``)."""
    parser.add_argument("--quick", action="store_true",
                        help=f"a representative subset ({len(QUICK_IDS)} cases, ~1-2 min)")
    parser.add_argument("--filter", action="append", metavar="SUBSTRING",
                        help="keep cases whose id contains SUBSTRING (repeatable: any matches), "
                             "e.g. lstm, /train, B1-, stream")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every implementation (default: gatedrnn's default)")
    parser.add_argument("--json", default="gatedrnn_bench.json", metavar="PATH",
                        help="where to write the JSON report ('' to skip)")
    parser.add_argument("--png", default="gatedrnn_bench.png", metavar="PATH",
                        help="where to write the speed-up plot, if matplotlib is installed "
                             "('' to skip)")
    parser.add_argument("--no-reference", action="store_true",
                        help="leave out the plain NumPy reference")
    parser.add_argument("--min-time", type=float, default=0.5,
                        help="seconds of timed rounds per implementation and case (default 0.5)")
    parser.add_argument("--max-time", type=float, default=2.0,
                        help="most seconds of timed rounds per implementation and case; also the "
                             "NumPy reference's per-call budget (default 2)")
    parser.add_argument("--lead-in", type=float, default=0.01, metavar="SECONDS",
                        help="untimed calls, about this many seconds of them, before each timed "
                             "round of a call shorter than that (default 0.01; 0 for none): the "
                             "rounds follow a pause, and the first calls after one run slower")
    parser.add_argument("--max-call", type=float, default=30.0,
                        help="skip ('over budget') an implementation whose single call is "
                             "estimated above this many seconds (default 30)")
    parser.add_argument("--retry-busy", type=int, default=1, metavar="N",
                        help="rerun a case up to N times (default 1) when other work used more "
                             f"than {100 * BUSY_FLAG:.0f}%% of the CPUs while it ran, after "
                             "waiting up "
                             "to --busy-wait seconds for the machine to be idle; the least "
                             "disturbed attempt is kept")
    parser.add_argument("--busy-wait", type=float, default=30.0, metavar="SECONDS",
                        help="longest wait for an idle machine before a retry (default 30)")
    parser.add_argument("--list", action="store_true", help="print the selected case ids and exit")
    return parser


def run_from_args(args):
    """Run the benchmark for parsed ``args``; exit status 1 if a parity check failed."""
    if args.threads is not None and args.threads < 1:
        print("--threads must be >= 1", file=sys.stderr)
        return 2
    if not args.lead_in >= 0:
        print(f"--lead-in must be >= 0 seconds, got {args.lead_in}", file=sys.stderr)
        return 2
    selected = cases(quick=args.quick, filters=args.filter)
    if args.list:
        for c in selected:
            print(c.id)
        return 0
    if not selected:
        print("no case matches the filter", file=sys.stderr)
        return 2
    report = run(selected, threads=args.threads, reference=not args.no_reference,
                 min_time=args.min_time, max_time=args.max_time, max_call=args.max_call,
                 retry_busy=args.retry_busy, busy_wait=args.busy_wait, lead_in=args.lead_in)
    print("\n".join(_format_tail(report)))
    if args.json:
        write_json(report, args.json)
        print(f"JSON report: {args.json}")
    if args.png:
        why = write_png(report, args.png)
        print(f"speed-up plot: {args.png}" if why is None else f"note: {why}")
    return 0 if all(r.get("parity_ok", True) for r in report["cases"]) else 1


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gatedrnn.bench",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


# ---------------------------------------------------------------------------------------------
# Data: the DeepBench RNN shape list (Baidu DeepBench's RNN kernels), verbatim from the
# project's shared data file deepbench_rnn_shapes.csv; embedded so the harness works from an
# installed wheel. deepbench_shapes() derives the benchmark shapes from it.
# ---------------------------------------------------------------------------------------------

DEEPBENCH_CSV = """\
set,hidden,batch,timesteps,type
train,1760,16,50,vanilla
train,1760,32,50,vanilla
train,1760,64,50,vanilla
train,1760,128,50,vanilla
train,2048,16,50,vanilla
train,2048,32,50,vanilla
train,2048,64,50,vanilla
train,2048,128,50,vanilla
train,2560,16,50,vanilla
train,2560,32,50,vanilla
train,2560,64,50,vanilla
train,2560,128,50,vanilla
train,512,16,25,lstm
train,512,32,25,lstm
train,512,64,25,lstm
train,512,128,25,lstm
train,1024,16,25,lstm
train,1024,32,25,lstm
train,1024,64,25,lstm
train,1024,128,25,lstm
train,2048,16,25,lstm
train,2048,32,25,lstm
train,2048,64,25,lstm
train,2048,128,25,lstm
train,4096,16,25,lstm
train,4096,32,25,lstm
train,4096,64,25,lstm
train,4096,128,25,lstm
train,1536,8,50,lstm
train,1536,16,50,lstm
train,1536,32,50,lstm
train,256,16,150,lstm
train,256,32,150,lstm
train,256,64,150,lstm
train,2816,32,750,gru
train,2816,32,375,gru
train,2816,32,187,gru
train,2048,32,1500,gru
train,2048,32,750,gru
train,2048,32,375,gru
train,2048,32,187,gru
train,1536,32,1500,gru
train,1536,32,750,gru
train,1536,32,375,gru
train,1536,32,187,gru
train,2560,32,1500,gru
train,2560,32,750,gru
train,2560,32,375,gru
train,2560,32,187,gru
train,512,32,1,gru
train,1024,32,1500,gru
train,1024,64,1500,gru
inference_server,512,1,25,lstm
inference_server,512,2,25,lstm
inference_server,512,4,25,lstm
inference_server,1024,1,25,lstm
inference_server,1024,2,25,lstm
inference_server,1024,4,25,lstm
inference_server,2048,1,25,lstm
inference_server,2048,2,25,lstm
inference_server,2048,4,25,lstm
inference_server,1536,1,50,lstm
inference_server,1536,2,50,lstm
inference_server,1536,4,50,lstm
inference_server,256,1,150,lstm
inference_server,256,2,150,lstm
inference_server,256,4,150,lstm
inference_server,2816,1,1500,gru
inference_server,2816,1,750,gru
inference_server,2816,1,375,gru
inference_server,2816,1,187,gru
inference_server,2816,2,1500,gru
inference_server,2816,2,750,gru
inference_server,2816,2,375,gru
inference_server,2816,2,187,gru
inference_server,2816,4,1500,gru
inference_server,2816,4,750,gru
inference_server,2816,4,375,gru
inference_server,2816,4,187,gru
inference_server,2048,1,1500,gru
inference_server,2048,1,750,gru
inference_server,2048,1,375,gru
inference_server,2048,1,187,gru
inference_server,2048,2,1500,gru
inference_server,2048,2,750,gru
inference_server,2048,2,375,gru
inference_server,2048,2,187,gru
inference_server,2048,4,1500,gru
inference_server,2048,4,750,gru
inference_server,2048,4,375,gru
inference_server,2048,4,187,gru
inference_server,1536,1,1500,gru
inference_server,1536,1,750,gru
inference_server,1536,1,375,gru
inference_server,1536,1,187,gru
inference_server,1536,2,1500,gru
inference_server,1536,2,750,gru
inference_server,1536,2,375,gru
inference_server,1536,2,187,gru
inference_server,1536,4,1500,gru
inference_server,1536,4,750,gru
inference_server,1536,4,375,gru
inference_server,1536,4,187,gru
inference_server,2560,1,1500,gru
inference_server,2560,1,750,gru
inference_server,2560,1,375,gru
inference_server,2560,1,187,gru
inference_server,2560,2,1500,gru
inference_server,2560,2,750,gru
inference_server,2560,2,375,gru
inference_server,2560,2,187,gru
inference_server,2560,4,1500,gru
inference_server,2560,4,750,gru
inference_server,2560,4,375,gru
inference_server,2560,4,187,gru
inference_server,512,1,1,gru
inference_server,512,2,1,gru
inference_server,512,4,1,gru
inference_server,1024,1,1500,gru
inference_server,1024,2,1500,gru
inference_server,1024,4,1500,gru
inference_device,32,1,672,vanilla
inference_device,64,1,96,vanilla
inference_device,256,1,150,lstm
"""


if __name__ == "__main__":
    sys.exit(main())
