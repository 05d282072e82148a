"""Concurrency: Python threads calling the core at once, the GIL, and two OpenMP runtimes.

- Several Python threads calling forward and backward at once on different data get the
  results of serial calls.
- The GIL is released while the core computes (another Python thread keeps running).
- ``import torch`` before ``import gatedrnn`` and the reverse order (PyTorch ships its own
  libgomp) both compute correctly; each order runs in a fresh interpreter with a timeout.
"""

import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import gatedrnn
import gatedrnn.functional as F
import gatedrnn.reference as R
from conftest import (
    VARIANTS,
    assert_close,
    backward,
    forward,
    grad_reduction_lengths,
    make_inputs,
    make_output_grads,
    upcast,
)

N_THREADS = 4
CALLS_PER_THREAD = 10


def _job(index):
    """A forward + backward problem; shapes and options differ between jobs, some are large
    enough for the core's own OpenMP threads to kick in."""
    rng = np.random.default_rng(1000 + index)
    variant = VARIANTS[index % len(VARIANTS)]
    dtype = np.float32 if index % 2 else np.float64
    T, B, I, H = [(7, 5, 9, 13), (20, 32, 64, 96), (3, 1, 4, 5), (12, 16, 33, 64)][index % 4]
    kw = make_inputs(rng, variant, T, B, I, H, dtype, lengths="mixed", mask=index % 3 == 0,
                     batch_first=index % 5 == 0)
    reverse = index % 2 == 1
    out = forward(F, variant, kw, training=True, reverse=reverse)
    given = make_output_grads(rng, variant, out)
    return variant, kw, reverse, given, (T, B, I, H)


def _run(job):
    variant, kw, reverse, given, _ = job
    out = forward(F, variant, kw, training=True, reverse=reverse)
    grads = backward(F, variant, out.ctx, **given, return_dh_seq=True)
    res = {k: v for k, v in out._asdict().items() if k != "ctx"}
    res.update(grads._asdict())
    return res


def _in_threads(work, n=N_THREADS, timeout=300):
    """Runs work(t) on n Python threads at once; fails on a hang or on any thread's exception
    (which would otherwise be lost with its thread)."""
    errors = []
    barrier = threading.Barrier(n)

    def worker(t):
        try:
            barrier.wait(timeout=60)
            work(t)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=timeout)
    assert not any(th.is_alive() for th in threads), "a thread hangs (deadlock?)"
    assert not errors, errors


def test_concurrent_calls_match_serial_calls():
    jobs = [_job(i) for i in range(N_THREADS * CALLS_PER_THREAD)]
    serial = [_run(job) for job in jobs]
    results = [None] * len(jobs)

    def work(t):
        for i in range(t, len(jobs), N_THREADS):
            results[i] = _run(jobs[i])

    _in_threads(work)

    for i, (job, want, got) in enumerate(zip(jobs, serial, results)):
        variant, kw, _, _, (T, B, I, H) = job
        K = grad_reduction_lengths(variant, T, B, I, H)
        dtype = kw["x"].dtype
        assert got is not None, f"job {i} produced nothing"
        for name, w in want.items():
            if w is None:
                assert got[name] is None
                continue
            # a race (shared scratch buffer, shared workspace) gives gross errors; the
            # tolerance only allows for a different thread split of the same sums
            assert_close(got[name], w, dtype=dtype, K=K[name], name=f"job {i} {name}")


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_one_thread_and_all_threads_match_the_reference(variant):
    """The same problem computed with 1 thread and with every thread the core may use: both
    match the reference (the split of rows/panels over threads must not change the math)."""
    set_threads = getattr(gatedrnn, "set_num_threads", None)
    get_threads = getattr(gatedrnn, "get_num_threads", None)
    if set_threads is None or get_threads is None:
        pytest.fail("gatedrnn.set_num_threads / get_num_threads are missing (DESIGN.md section 4)")
    T, B, I, H = 6, 41, 23, 71
    rng = np.random.default_rng(77)
    kw = make_inputs(rng, variant, T, B, I, H, np.float32, lengths="mixed", mask=True)
    ref = forward(R, variant, upcast(kw), training=True, reverse=True)
    given = make_output_grads(rng, variant, ref)
    given = {k: (v.astype(np.float32) if v is not None else None) for k, v in given.items()}
    ref_grads = backward(R, variant, ref.ctx, **upcast(given))
    want = dict(ref._asdict())
    want.update(ref_grads._asdict())
    K = grad_reduction_lengths(variant, T, B, I, H)
    saved = get_threads()
    try:
        for n in (1, max(saved, 2)):
            set_threads(n)
            assert get_threads() == n
            got = _run((variant, kw, True, given, None))
            for name, w in want.items():
                if name == "ctx":
                    continue
                assert_close(got[name], w, dtype=np.float32, K=K[name], name=f"{n} threads {name}")
    finally:
        set_threads(saved)


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_two_thread_unit_split_backward_matches_the_reference(variant, dtype):
    """Two threads splitting every step by hidden units (B = 12 is under the 8 rows per thread
    from which steps split by batch rows; H = 256 gives 8 AVX-512 panels and work enough for two
    threads even for the RNN), with
    ragged lengths that shrink the running batch step by step and the block cache poisoned with
    NaN first: every step's barrier-separated phases must see only what the other thread
    finished writing."""
    T, B, I, H = 9, 12, 24, 256
    rng = np.random.default_rng(5)
    kw = make_inputs(rng, variant, T, B, I, H, dtype, lengths="mixed", mask=True)
    kw["lengths"][:3] = [T, 8, 7]
    ref = forward(R, variant, upcast(kw), training=True)
    given = make_output_grads(rng, variant, ref)
    given = {k: (v.astype(dtype) if v is not None else None) for k, v in given.items()}
    ref_grads = backward(R, variant, ref.ctx, **upcast(given), return_dh_seq=True)
    want = dict(ref._asdict())
    want.update(ref_grads._asdict())
    K = grad_reduction_lengths(variant, T, B, I, H)
    saved = gatedrnn.get_num_threads()
    try:
        gatedrnn.set_num_threads(2)
        gatedrnn._core._fill_memory_cache(0xFF)
        got = _run((variant, kw, False, given, None))
    finally:
        gatedrnn.set_num_threads(saved)
    for name, w in want.items():
        if name == "ctx" or w is None:
            continue
        assert_close(got[name], w, dtype=dtype, K=K.get(name, H), name=name)


# (T, B, I, H, lengths, mask, dtype), each with work enough for 3 threads even for the RNN
# (B * H * H >= 3 * 262144): batches that split by rows between threads (37 = 19 + 18 rows, 19
# in tiles of 6 + 6 + 4 + 3), splits by hidden units whose row tiles end in 3 rows (B = 7 = 4 + 3,
# 13 = 6 + 4 + 3), batches of 2 and 3 rows (several partial sums per element), ragged lengths
# (the running batch shrinks step by step), one-step calls that read the weights in place (the
# last with an input so wide that one thread's scratch for all 64 rows would pass its limit).
THREAD_COUNT_CASES = [
    (6, 37, 23, 160, "mixed", True, np.float32),
    (5, 19, 16, 208, None, False, np.float64),
    (9, 48, 8, 128, "mixed", False, np.float32),
    (1, 17, 64, 224, None, False, np.float32),
    (4, 7, 9, 352, "mixed", True, np.float32),
    (3, 13, 20, 256, None, False, np.float64),
    (3, 3, 8, 512, "mixed", False, np.float32),
    (2, 2, 300, 640, None, False, np.float32),
    (1, 64, 20000, 128, None, False, np.float32),
]


@pytest.fixture(params=gatedrnn._core._available_isas())
def each_isa(request):
    """Every kernel path this CPU supports (their tile heights differ), then the default."""
    default = gatedrnn.info()["simd"]
    gatedrnn._core._set_isa(request.param)
    yield request.param
    gatedrnn._core._set_isa(default)


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_results_do_not_depend_on_the_thread_count(variant, each_isa):
    """Forward and backward with 1, 2 and 3 threads give the same bits: however the rows and
    units are shared out, each output is the same sum in the same order (README, Threads).
    Without it the cold-start policy, which runs a small call alone when the team sleeps,
    would make a call's results depend on timing."""
    saved = gatedrnn.get_num_threads()
    try:
        for i, (T, B, I, H, lengths, mask, dtype) in enumerate(THREAD_COUNT_CASES):
            rng = np.random.default_rng(300 + i)
            kw = make_inputs(rng, variant, T, B, I, H, dtype, lengths=lengths, mask=mask)
            gatedrnn.set_num_threads(1)
            given = make_output_grads(rng, variant, forward(F, variant, kw, training=True))
            runs = []
            for n in (1, 2, 3):
                gatedrnn.set_num_threads(n)
                runs.append(_run((variant, kw, i % 2 == 1, given, None)))
            for n, got in zip((2, 3), runs[1:]):
                for name, want in runs[0].items():
                    if want is not None:
                        np.testing.assert_array_equal(
                            got[name], want, f"case {i} (T, B, I, H = {T}, {B}, {I}, {H}): "
                            f"{name} with {n} threads differs from 1 thread")
    finally:
        gatedrnn.set_num_threads(saved)


def test_more_threads_than_cpus_and_several_callers_give_the_same_bits():
    """Steps split by units meet at gatedrnn's own barrier (parallel.h, TeamBarrier). With
    more threads than the process has CPUs, and several Python threads calling at once, a
    waiter there yields its core and then sleeps until the thread it waits for wakes it: every
    path of the barrier, whose results must still be those of one thread."""
    if not gatedrnn.info()["openmp"]:
        pytest.skip("built without OpenMP: one thread only")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cases = []
    for i, cell in enumerate(["lstm", "gru", "gru_rb", "rnn"]):
        rng = np.random.default_rng(700 + i)
        G = {"lstm": 4, "gru": 3, "gru_rb": 3, "rnn": 1}[cell]
        T, B, H = 12, 1 + i % 2, 256   # a batch of 1-2 rows: split by units, a barrier a step
        args = [rng.standard_normal(s).astype(np.float32) * 0.1
                for s in [(T, B, H), (G * H, H), (G * H, H), (G * H,), (G * H,)]]
        fn, kw = (F.gru, {"reset_after": False}) if cell == "gru_rb" else (getattr(F, cell), {})
        cases.append((fn, args, kw))
    saved = gatedrnn.get_num_threads()
    try:
        gatedrnn.set_num_threads(1)
        want = [fn(*args, **kw).y for fn, args, kw in cases]
        gatedrnn.set_num_threads(2 * cpus + 1)
        got = {}

        def work(t):
            for rep in range(3):
                for k, (fn, args, kw) in enumerate(cases):
                    got[(t, rep, k)] = fn(*args, **kw).y

        _in_threads(work, n=3)
    finally:
        gatedrnn.set_num_threads(saved)
    assert len(got) == 3 * 3 * len(cases)
    for (t, rep, k), y in got.items():
        np.testing.assert_array_equal(y, want[k], f"caller {t}, call {rep}, case {k}")


# Shapes that split a step by units with 2 and 3 threads (few rows per thread), over several
# steps: the forward pass hands out each thread's units in chunks that another thread may take.
STEAL_CASES = [
    (6, 7, 9, 352, "mixed", True, np.float32),
    (5, 13, 20, 256, None, False, np.float64),
    (4, 3, 8, 512, "mixed", False, np.float32),
    (9, 2, 16, 544, None, True, np.float32),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_chunks_taken_by_another_thread_give_the_same_bits(variant, each_isa):
    """With the test switch on, every thread of a step split by units computes the next
    thread's chunks of units before its own, so chunks change hands at every step (in real
    runs that happens only when one thread falls behind). Inference and training outputs and
    gradients with 2 and 3 threads must still equal one thread's, bit for bit: the outputs of
    a unit must not depend on which thread computed it."""
    saved = gatedrnn.get_num_threads()
    try:
        for i, (T, B, I, H, lengths, mask, dtype) in enumerate(STEAL_CASES):
            rng = np.random.default_rng(500 + i)
            kw = make_inputs(rng, variant, T, B, I, H, dtype, lengths=lengths, mask=mask)
            reverse = i % 2 == 1
            gatedrnn.set_num_threads(1)
            given = make_output_grads(rng, variant, forward(F, variant, kw, training=True))
            want = _run((variant, kw, reverse, given, None))
            want_inference = forward(F, variant, kw, reverse=reverse)
            for n in (2, 3):
                gatedrnn.set_num_threads(n)
                gatedrnn._core._set_steal_others_first(True)
                try:
                    got = _run((variant, kw, reverse, given, None))
                    got_inference = forward(F, variant, kw, reverse=reverse)
                finally:
                    gatedrnn._core._set_steal_others_first(False)
                where = f"case {i} (T, B, I, H = {T}, {B}, {I}, {H}), {n} threads"
                for name, w in want.items():
                    if w is not None:
                        np.testing.assert_array_equal(got[name], w, f"{where}: {name}")
                for w, g in zip(want_inference, got_inference):
                    np.testing.assert_array_equal(g, w, f"{where}: inference")
    finally:
        gatedrnn.set_num_threads(saved)


@pytest.mark.parametrize("cell,opts", [("lstm", {}), ("gru", {"reset_after": False})])
def test_handles_and_bidirectional_calls_do_not_depend_on_the_thread_count(cell, opts):
    """The same for a packed handle's one-step (streaming) and multi-step calls, for the same
    calls with the arrays (packed for the call once it has enough rows) and for a
    bidirectional call with its backward. An input wider than one depth block of the GEMM
    (I > 768) too: a few rows' projection then runs unpacked on the threads that own the
    columns, and must add up the depth blocks as the one-thread projection does."""
    G = 4 if cell == "lstm" else 3
    rng = np.random.default_rng(11)
    fn, fn_backward = getattr(F, cell), getattr(F, cell + "_backward")
    saved = gatedrnn.get_num_threads()
    try:
        for T, B, I, H in ((1, 1, 256, 256), (1, 24, 128, 128), (7, 37, 160, 160),
                           (3, 5, 512, 512), (5, 1, 1024, 64), (3, 3, 1600, 32),
                           (2, 9, 1100, 32), (40, 1, 1000, 32)):
            w = [(rng.standard_normal(s) * 0.1).astype(np.float32)
                 for s in ((G * H, I), (G * H, H), (G * H,), (G * H,))]
            x = rng.standard_normal((T, B, I)).astype(np.float32)
            handle = F.pack_weights(cell, *w, **opts)
            runs = []
            for n in (1, 2, 3):
                gatedrnn.set_num_threads(n)
                out, raw = fn(x, handle, **opts), fn(x, *w, **opts)
                runs.append([out.y, out.h_n, raw.y, raw.h_n])
            for n, got in zip((2, 3), runs[1:]):
                for j, (a, b) in enumerate(zip(got, runs[0])):
                    np.testing.assert_array_equal(
                        a, b, f"{'handle' if j < 2 else 'arrays'} T={T} B={B} I={I} H={H}, "
                        f"{n} threads")
        T, B, H = 5, 33, 160
        w = [(rng.standard_normal((2,) + s) * 0.2).astype(np.float32)
             for s in ((G * H, H), (G * H, H), (G * H,), (G * H,))]
        x = rng.standard_normal((T, B, H)).astype(np.float32)
        dy = rng.standard_normal((T, B, 2 * H)).astype(np.float32)
        lengths = rng.integers(0, T + 1, B)
        runs = []
        for n in (1, 2, 3):
            gatedrnn.set_num_threads(n)
            out = fn(x, *w, lengths=lengths, bidirectional=True, training=True, **opts)
            grads = fn_backward(out.ctx, dy=dy)
            runs.append([out.y, out.h_n] + [g for g in grads if g is not None])
        for n, got in zip((2, 3), runs[1:]):
            for j, (a, b) in enumerate(zip(got, runs[0])):
                np.testing.assert_array_equal(a, b, f"bidirectional output {j}, {n} threads")
    finally:
        gatedrnn.set_num_threads(saved)


@pytest.mark.parametrize("cell,opts", [("rnn", {}), ("gru", {}), ("gru", {"reset_after": False}),
                                       ("lstm", {})])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_split_into_row_ranges_does_not_depend_on_the_thread_count(cell, opts, dtype):
    """A many-step call with enough rows splits by batch rows: each thread takes one range of
    the rows sorted by length, cut so the threads' valid steps come out even, projects its
    running rows into its own part of each block's buffer and runs their steps, in one region
    (training: writes their activations to the workspace, and backward takes the same ranges).
    Batches that 2 and 3 threads do not divide evenly, several projection blocks (T=50 at these
    sizes; with ragged lengths the threads are in different blocks at the same time), ragged
    lengths with zeros, lengths where one sequence outweighs the rest (a range of one row),
    initial states, batch_first, reversed, a recurrent mask, raw arrays and a handle, inference
    and training with its gradients (dy and dh_n, return_dh_seq): the same bits as one
    thread."""
    G = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    rng = np.random.default_rng(23)
    fn = getattr(F, cell)
    fn_backward = getattr(F, cell + "_backward")
    saved = gatedrnn.get_num_threads()
    try:
        for T, B, I, H in ((50, 37, 24, 160), (9, 25, 40, 64), (3, 49, 8, 96)):
            w = [(rng.standard_normal(s) * 0.2).astype(dtype)
                 for s in ((G * H, I), (G * H, H), (G * H,), (G * H,))]
            x = rng.standard_normal((T, B, I)).astype(dtype)
            states = {"h0": rng.standard_normal((B, H)).astype(dtype)}
            if cell == "lstm":
                states["c0"] = rng.standard_normal((B, H)).astype(dtype)
            mask = (rng.random((B, H)) > 0.2).astype(dtype)
            dy = rng.standard_normal((T, B, H)).astype(dtype)
            dh_n = rng.standard_normal((B, H)).astype(dtype)
            ragged = rng.integers(0, T + 1, B)
            ragged[:2] = (T, 0)
            one_long = np.minimum(rng.integers(1, 3, B), T)
            one_long[B // 2] = T
            handle = F.pack_weights(cell, *w, **opts)
            calls = {
                "handle": lambda **kw: fn(x, handle, **states, **kw),
                "arrays": lambda **kw: fn(x, *w, **opts, **states, **kw),
                "batch_first": lambda **kw: fn(np.ascontiguousarray(x.transpose(1, 0, 2)), handle,
                                               batch_first=True, **states, **kw),
                "reverse": lambda **kw: fn(x, handle, reverse=True, **states, **kw),
                "mask": lambda **kw: fn(x, handle, recurrent_mask=mask, **states, **kw),
                "lengths": lambda **kw: fn(x, handle, lengths=ragged, **states, **kw),
                "lengths_reverse": lambda **kw: fn(x, *w, **opts, lengths=ragged, reverse=True,
                                                   **states, **kw),
                "one_long": lambda **kw: fn(x, handle, lengths=one_long, **states, **kw),
            }

            def trained(name, call):
                out = call(training=True)
                d_y = np.ascontiguousarray(dy.transpose(1, 0, 2)) if name == "batch_first" else dy
                grads = fn_backward(out.ctx, dy=d_y, dh_n=dh_n, return_dh_seq=True)
                return [out.y, out.h_n] + [g for g in grads if g is not None]

            for name, call in calls.items():
                for mode, run in (("inference", lambda: [a for a in call() if a is not None]),
                                  ("training", lambda: trained(name, call))):
                    runs = []
                    for n in (1, 2, 3):
                        gatedrnn.set_num_threads(n)
                        runs.append(run())
                    for n, got in zip((2, 3), runs[1:]):
                        assert len(got) == len(runs[0])
                        for j, (a, b) in enumerate(zip(got, runs[0])):
                            np.testing.assert_array_equal(
                                a, b, f"{name} {mode} T={T} B={B} I={I} H={H}: output {j} with "
                                f"{n} threads differs from 1 thread")
    finally:
        gatedrnn.set_num_threads(saved)


def test_training_a_model_does_not_depend_on_the_thread_count():
    """The same seed gives the same losses and weights, bit for bit, on 1 and 2 threads
    (README, Determinism): masked Bidirectional LSTM and GRU layers with dropout, batches that
    split by rows and by units."""
    import gatedrnn as gr

    def train(threads):
        gatedrnn.set_num_threads(threads)
        gr.config.set_random_seed(0)
        rng = np.random.default_rng(0)
        tokens = rng.integers(1, 50, size=(192, 12))
        tokens[:, :4] = 0
        labels = tokens[:, -1] % 3
        model = gr.Sequential([
            gr.layers.Embedding(50, 32, mask_zero=True),
            gr.layers.Bidirectional(gr.layers.LSTM(128, return_sequences=True)),
            gr.layers.GRU(160, dropout=0.1, recurrent_dropout=0.1),
            gr.layers.Dense(3)])
        model.compile(optimizer=gr.optim.Adam(1e-2, clipnorm=1.0),
                      loss=gr.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = model.fit(tokens, labels, batch_size=48, epochs=2, verbose=0)
        return history.history["loss"], model.get_weights()

    saved = gatedrnn.get_num_threads()
    try:
        loss_1, weights_1 = train(1)
        loss_2, weights_2 = train(2)
    finally:
        gatedrnn.set_num_threads(saved)
    assert loss_1 == loss_2
    for i, (a, b) in enumerate(zip(weights_1, weights_2)):
        np.testing.assert_array_equal(a, b, f"weight {i}")


def test_gil_is_released_while_computing():
    """While one thread is inside the core, another Python thread keeps running.

    We record the main thread's progress as timestamps and look at the longest gap between
    them during each core call: if the GIL were held, the gap would span the whole call.
    """
    set_threads = getattr(gatedrnn, "set_num_threads", None)
    get_threads = getattr(gatedrnn, "get_num_threads", None)
    saved = get_threads() if get_threads else None
    if set_threads:
        set_threads(1)  # leave a core for the ticking thread on small machines
    try:
        rng = np.random.default_rng(3)
        variant = VARIANTS[-1]  # lstm
        T, B, I, H = 50, 32, 128, 128
        kw = make_inputs(rng, variant, T, B, I, H, np.float32)
        # make one call last >= ~0.3 s whatever the machine, by repeating T
        t0 = time.perf_counter()
        forward(F, variant, kw)
        one = max(time.perf_counter() - t0, 1e-4)
        reps = int(min(max(np.ceil(0.3 / one), 1), 200))
        kw["x"] = np.ascontiguousarray(np.tile(kw["x"], (reps, 1, 1)))

        intervals = []
        done = threading.Event()

        def worker():
            try:
                for _ in range(2):
                    s = time.perf_counter()
                    forward(F, variant, kw)
                    intervals.append((s, time.perf_counter()))
            finally:
                done.set()

        ticks = []
        th = threading.Thread(target=worker)
        th.start()
        while not done.is_set():
            ticks.append(time.perf_counter())
            sum(range(200))  # a little pure-Python work between ticks
        th.join()
        ticks = np.array(ticks)
        for s, e in intervals:
            duration = e - s
            inside = ticks[(ticks > s) & (ticks < e)]
            points = np.concatenate([[s], inside, [e]])
            longest_gap = np.max(np.diff(points))
            assert duration > 0.05, f"call too short to judge ({duration:.3f} s)"
            assert longest_gap < 0.5 * duration, (
                f"main thread stalled {longest_gap:.3f} s of a {duration:.3f} s call: "
                "the GIL is not released around the compute")
    finally:
        if set_threads and saved is not None:
            set_threads(saved)


def _subnormal_arithmetic():
    """Products that are subnormal unless the calling thread flushes them to zero."""
    f32 = np.array([1e-38], np.float32) * np.float32(1e-3)
    f64 = np.array([1e-300]) * 1e-10
    return float(f32[0]), float(f64[0])


def test_callers_floating_point_mode_is_restored():
    """The core may flush subnormals to zero while it computes (DESIGN.md section 4), but the
    calling thread's mode must be restored afterwards: NumPy arithmetic after a call still
    produces subnormals."""
    before = _subnormal_arithmetic()
    assert before[0] != 0.0 and before[1] != 0.0, "test premise: FTZ is off in this thread"
    rng = np.random.default_rng(61)
    for variant in VARIANTS:
        for dtype in (np.float32, np.float64):
            kw = make_inputs(rng, variant, 8, 40, 50, 70, dtype, lengths="mixed")
            out = forward(F, variant, kw, training=True)
            backward(F, variant, out.ctx, dh_n=np.ones_like(out.h_n))
            assert _subnormal_arithmetic() == before, (variant.name, np.dtype(dtype).name)
    with pytest.raises(ValueError):  # an error path must restore the mode as well
        forward(F, variant, dict(kw, lengths=np.full(40, 99)))
    assert _subnormal_arithmetic() == before


IMPORT_ORDER_SCRIPT = textwrap.dedent("""
    import sys
    if sys.argv[1] == "torch_first":
        import torch
        import gatedrnn.functional as F
    else:
        import gatedrnn.functional as F
        import torch
    import threading
    import numpy as np

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    T, B, I, H = 16, 24, 48, 64
    x = rng.standard_normal((T, B, I))
    mod = torch.nn.GRU(I, H, dtype=torch.float64)
    p = {k: v.detach().numpy().copy() for k, v in mod.named_parameters()}
    dy = rng.standard_normal((T, B, H))

    def ours():
        out = F.gru(x, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"],
                    training=True)
        g = F.gru_backward(out.ctx, dy=dy)
        return out.y, g.dx, g.dweight_hh

    def theirs():
        xt = torch.tensor(x, requires_grad=True)
        mod.zero_grad()
        y, _ = mod(xt)
        (y * torch.from_numpy(dy)).sum().backward()
        return y.detach().numpy(), xt.grad.numpy(), mod.weight_hh_l0.grad.numpy()

    # interleave both OpenMP runtimes, also from a second Python thread
    for _ in range(3):
        a, b = ours(), theirs()
        for u, v in zip(a, b):
            err = np.max(np.abs(u - v)) / max(np.max(np.abs(v)), 1.0)
            assert err < 1e-10, err
    res = []
    th = threading.Thread(target=lambda: res.append((ours(), theirs())))
    th.start(); th.join()
    for u, v in zip(*res[0]):
        assert np.max(np.abs(u - v)) / max(np.max(np.abs(v)), 1.0) < 1e-10
    print("IMPORT-ORDER-OK")
""")


@pytest.mark.peers
@pytest.mark.parametrize("order", ["torch_first", "gatedrnn_first"])
def test_import_order_with_torch(torch, order):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    try:
        proc = subprocess.run([sys.executable, "-c", IMPORT_ORDER_SCRIPT, order],
                              capture_output=True, text=True, timeout=180, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{order}: hung for 180 s (OpenMP runtime clash?): {e}")
    assert proc.returncode == 0, (
        f"{order}: rc={proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    assert "IMPORT-ORDER-OK" in proc.stdout


# ---- cold starts (gatedrnn/threads.h, CallThreads) ----------------------------------------------
# An idle OpenMP team sleeps; on a VM whose host gives an idle vCPU's core away, waking it was
# measured at ~8 ms, 100x a one-step call. While the team is cold, a call that one thread
# finishes sooner than that runs alone, until a burst of calls has lasted as long as a wake-up.
# The policy's inputs are the measured wake-up cost (here pretended through a test hook) and
# clocks, so these tests set the cost and pause longer than the 10 ms after which the team
# counts as cold and a burst as over.

COLD_PAUSE = 0.03


def _one_step_gru():
    """A short GRU call that a team of two shares when it is awake: B=1, H=512, its 6 MB of
    weights need two cores' L2 caches. Two steps: a single step would go to the helper threads
    (run_shares), which never hold a call up and need no cold-start policy."""
    rng = np.random.default_rng(5)
    H = 512
    w = [(rng.standard_normal(s) * 0.05).astype(np.float32)
         for s in ((3 * H, H), (3 * H, H), (3 * H,), (3 * H,))]
    x = rng.standard_normal((2, 1, H)).astype(np.float32)
    return lambda: F.gru(x, *w)


@pytest.fixture
def adaptive_cold_start():
    from gatedrnn import _core
    if not gatedrnn.info()["openmp"]:
        pytest.skip("built without OpenMP: no call starts a team")
    saved = (_core._cold_start_adaptive(), gatedrnn.info()["team_wake_seconds"],
             gatedrnn.get_num_threads())
    _core._set_cold_start_adaptive(True)
    gatedrnn.set_num_threads(2)
    yield _core
    _core._set_cold_start_adaptive(saved[0])
    _core._set_team_wake_seconds(saved[1])
    gatedrnn.set_num_threads(saved[2])


def _team_used(core, call):
    before = core._team_runs()
    out = call()
    return out, core._team_runs() > before


def test_a_cold_start_is_measured(adaptive_cold_start):
    core = adaptive_cold_start
    call = _one_step_gru()
    core._set_team_wake_seconds(0.0)   # nothing measured yet: the team is used
    time.sleep(COLD_PAUSE)
    _, used = _team_used(core, call)
    assert used
    assert gatedrnn.info()["team_wake_seconds"] > 0.0


def test_a_small_call_after_a_pause_runs_alone_with_the_same_results(adaptive_cold_start):
    core = adaptive_cold_start
    call = _one_step_gru()
    core._set_team_wake_seconds(1e-6)  # waking is cheap: the call's ~0.2 ms is worth a team
    time.sleep(COLD_PAUSE)
    team, used = _team_used(core, call)
    assert used
    core._set_team_wake_seconds(1.0)   # waking would cost a second
    time.sleep(COLD_PAUSE)
    alone, used = _team_used(core, call)
    assert not used
    np.testing.assert_array_equal(alone.y, team.y)
    np.testing.assert_array_equal(alone.h_n, team.h_n)
    # The team, once awake, is used again: a warm team costs nothing to start.
    core._set_team_wake_seconds(1e-6)
    call()
    core._set_team_wake_seconds(1.0)
    _, used = _team_used(core, call)
    assert used


def test_a_burst_wakes_the_team_once_it_has_lasted_a_wake_up(adaptive_cold_start):
    core = adaptive_cold_start
    call = _one_step_gru()
    wake = 0.005
    core._set_team_wake_seconds(wake)
    time.sleep(COLD_PAUSE)
    start = time.perf_counter()
    _, used = _team_used(core, call)
    assert not used
    while not used and time.perf_counter() - start < 2.0:
        _, used = _team_used(core, call)
    assert used, "a burst of 2 s never woke the team"
    assert time.perf_counter() - start >= wake


def test_cold_start_environment_variable():
    code = "import gatedrnn._core as c; print(c._cold_start_adaptive())"
    for value, want in (("team", "False"), ("adaptive", "True"), ("", "True")):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120, env=dict(os.environ, GATEDRNN_COLD_START=value))
        assert proc.returncode == 0 and proc.stdout.strip() == want, (value, proc.stderr[-2000:])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, GATEDRNN_COLD_START="sometimes"))
    assert proc.returncode != 0
    assert "GATEDRNN_COLD_START: expected 'adaptive' or 'team', got 'sometimes'" in proc.stderr


# Helper threads (cpp/src/parallel.h, run_shares): a one-step call whose parts need no barrier
# (streaming) runs them as independent shares. The caller takes share 0 and every share no
# helper has claimed, so results are those of any other thread count, whoever ran what. A
# one-step call of two phases (the reset-before GRU) runs its parts as rounds of shares
# (run_phases), a round's shares after every share of the round before.

def _streaming_lstm(seed, H=256, steps=60):
    """A packed LSTM handle and `steps` one-step inputs (B=1, I=H): two threads' worth of
    weights (2 MB), so a step is split between a team of two."""
    rng = np.random.default_rng(seed)
    w = [(rng.standard_normal(s) * 0.05).astype(np.float32)
         for s in ((4 * H, H), (4 * H, H), (4 * H,), (4 * H,))]
    xs = rng.standard_normal((steps, 1, 1, H)).astype(np.float32)
    packed = F.pack_weights("lstm", *w)
    # Packing ran an OpenMP team, whose idle workers spin for a few milliseconds on the cores
    # helpers would use: until it counts as cold (10 ms), the first step would run on it.
    time.sleep(0.03)
    return packed, xs


def _stream(packed, xs):
    h = c = None
    out = []
    for x in xs:
        y, h, c = F.lstm(x, packed, h0=h, c0=c)
        out.append(y)
    return np.concatenate(out), h, c


@pytest.fixture
def two_threads():
    from gatedrnn import _core
    if not gatedrnn.info()["openmp"]:
        pytest.skip("built without OpenMP: one thread only")
    saved = gatedrnn.get_num_threads()
    gatedrnn.set_num_threads(2)
    yield _core
    gatedrnn.set_num_threads(saved)


def test_streaming_steps_run_on_the_helpers_with_the_same_results(two_threads):
    core = two_threads
    packed, xs = _streaming_lstm(21)
    before = core._helped_jobs()
    team = _stream(packed, xs)
    # A helper woken from sleep may need a time slice to start claiming on a busy machine:
    # stream on (the same steps, so the same results) for up to a few seconds until it does.
    deadline = time.perf_counter() + 5.0
    while core._helped_jobs() == before and time.perf_counter() < deadline:
        np.testing.assert_array_equal(_stream(packed, xs)[1], team[1])
    assert core._helped_jobs() > before, "no step was shared with a helper"
    time.sleep(0.02)          # the helpers have gone to sleep (they spin 2 ms)
    again = _stream(packed, xs)
    gatedrnn.set_num_threads(1)
    alone = _stream(packed, xs)
    for a, b, c in zip(team, again, alone):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)
    # and they are the whole sequence's results, step by step
    w = [packed.weight_ih, packed.weight_hh, packed.bias_ih, packed.bias_hh]
    whole = F.lstm(xs[:, 0], *w)
    np.testing.assert_allclose(alone[0], whole.y, rtol=2e-5, atol=2e-6)


def test_a_stream_started_while_the_team_is_awake_moves_to_the_helpers(two_threads):
    # A call ran an OpenMP team a moment ago. The first step finds that team awake and runs on
    # it; from then on only our own steps would keep it awake, so the next steps go to the
    # helpers instead of waking the team at every step.
    core = two_threads
    packed, xs = _streaming_lstm(22)
    gatedrnn.set_num_threads(1)
    alone = _stream(packed, xs)
    gatedrnn.set_num_threads(2)
    before = core._team_runs()
    F.lstm(xs[:, 0], packed)   # the whole sequence in one call: a team of two, with barriers
    assert core._team_runs() > before
    before = core._team_runs()
    team = _stream(packed, xs)
    assert core._team_runs() - before == 1, "steps kept running on the OpenMP team"
    for a, b in zip(team, alone):
        np.testing.assert_array_equal(a, b)


def test_two_phase_steps_run_on_the_helpers_with_the_same_results(two_threads):
    # Reset-before GRU, I=H=256 B=1: 1.5 MB of weights, two threads' worth; each step has two
    # dependent phases (r, then n from W_hn (r * h)), so the parts of its second phase must
    # wait for every part of the first, whoever runs them.
    core = two_threads
    rng = np.random.default_rng(23)
    H = 256
    w = [(rng.standard_normal(s) * 0.05).astype(np.float32)
         for s in ((3 * H, H), (3 * H, H), (3 * H,), (3 * H,))]
    xs = rng.standard_normal((60, 1, 1, H)).astype(np.float32)
    packed = F.pack_weights("gru", *w, reset_after=False)

    def stream():
        h, out = None, []
        for x in xs:
            y, h = F.gru(x, packed, h0=h)
            out.append(y)
        return np.concatenate(out), h

    gatedrnn.set_num_threads(1)
    alone = stream()
    gatedrnn.set_num_threads(2)
    before, helped = core._team_runs(), core._helped_jobs()
    shared = stream()
    assert core._team_runs() - before <= 1, "two-phase steps kept running on the OpenMP team"
    deadline = time.perf_counter() + 5.0
    while core._helped_jobs() == helped and time.perf_counter() < deadline:
        again = stream()
        for a, b in zip(again, alone):
            np.testing.assert_array_equal(a, b)
    assert core._helped_jobs() > helped, "no step was shared with a helper"
    for a, b in zip(shared, alone):
        np.testing.assert_array_equal(a, b)
    # and the whole sequence in one call (a team with a barrier per phase) agrees
    whole = F.gru(xs[:, 0], packed)
    np.testing.assert_allclose(alone[0], whole.y, rtol=2e-5, atol=2e-6)


def test_concurrent_streaming_callers_share_the_helpers_correctly(two_threads):
    # One caller at a time has the helpers; the others run their steps on OpenMP teams.
    jobs = [_streaming_lstm(30 + i, steps=40) for i in range(N_THREADS)]
    want = [_stream(*job) for job in jobs]

    def work(i):
        for _ in range(3):
            for a, b in zip(_stream(*jobs[i]), want[i]):
                np.testing.assert_array_equal(a, b)

    _in_threads(work, timeout=120)


# The start of a fresh interpreter's script: a packed LSTM handle (I=H=256, two threads' worth
# of weights) and stream(), 30 one-step calls returning the last h.
_STREAM_SCRIPT = """
import os, sys
import numpy as np
import gatedrnn
import gatedrnn.functional as F
from gatedrnn import _core
rng = np.random.default_rng(3)
H = 256
w = [(rng.standard_normal(s) * 0.05).astype(np.float32)
     for s in ((4 * H, H), (4 * H, H), (4 * H,), (4 * H,))]
packed = F.pack_weights("lstm", *w)
xs = rng.standard_normal((30, 1, 1, H)).astype(np.float32)
import time; time.sleep(0.03)   # packing's OpenMP team goes idle (helpers wait for that)
def stream():
    h = c = None
    for x in xs:
        y, h, c = F.lstm(x, packed, h0=h, c0=c)
    return h
"""


def test_helpers_after_fork():
    # A forked child has no helper threads: it starts its own and computes the same steps.
    code = _STREAM_SCRIPT + textwrap.dedent("""
        gatedrnn.set_num_threads(2)
        want = stream()              # the parent's helpers are running
        pid = os.fork()
        if pid == 0:
            code = 0 if np.array_equal(stream(), want) else 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "0", proc.stdout + proc.stderr[-2000:]


@pytest.mark.parametrize("env", [{"OMP_PROC_BIND": "true"}, {"OMP_THREAD_LIMIT": "1"}],
                         ids=["OMP_PROC_BIND", "OMP_THREAD_LIMIT"])
def test_helpers_step_aside_where_openmp_limits_or_binds_threads(env):
    # Bound threads (helpers would share the caller's core) or a thread limit below the team:
    # the steps run on OpenMP's terms, with the same results.
    code = _STREAM_SCRIPT + textwrap.dedent("""
        if not gatedrnn.info()["openmp"]:
            print("skip"); raise SystemExit
        gatedrnn.set_num_threads(2)
        two = stream()
        helped = _core._helped_jobs()
        gatedrnn.set_num_threads(1)
        print(helped, np.array_equal(two, stream()))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, **env))
    assert proc.returncode == 0, proc.stderr[-2000:]
    if proc.stdout.strip() == "skip":
        pytest.skip("built without OpenMP")
    assert proc.stdout.split() == ["0", "True"], proc.stdout + proc.stderr[-2000:]
