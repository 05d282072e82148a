"""Smoke test of bench/training_loop.py (gatedrnn's fit against a minimal PyTorch loop) on tiny
epochs: the PyTorch twins are the same models as the examples' (their first batch's loss agrees
with gatedrnn's), every implementation trains, and the table is well-formed. Speed is never
asserted here (see bench/ for the measurement).
"""

import importlib.util
import math
import os
import sys

import numpy as np

from conftest import require_peer

_BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


def _load_training_loop():
    name = "gatedrnn_bench_training_loop"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name,
                                                      os.path.join(_BENCH, "training_loop.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def test_training_loop_runs_and_compares_the_same_models():
    torch = require_peer("torch")
    require_peer("sklearn")
    tl = _load_training_loop()
    rows = []
    for name in tl.TASKS:
        task = tl.make_task(name, char_batches=2)
        runners = tl.Runners(task, torch)
        assert set(runners.epoch) == set(tl.IMPLS)
        assert runners.check_same_model() < 1e-4
        times = {impl: [] for impl in tl.IMPLS}
        busy = []
        for impl in tl.IMPLS:
            seconds, share = tl.timed(runners.epoch[impl])
            times[impl].append(seconds)
            busy.append(share)
            assert seconds > 0
        rows.append(tl.summarize(name, task.batches, times, busy,
                                 runners.check_same_model()))
    for row in rows:
        m = row["median_s"]
        assert set(m) == set(tl.IMPLS)
        assert math.isclose(row["speedup_vs_torch"], m["torch"] / m["gatedrnn_fit"])
        assert math.isclose(row["fit_overhead_per_batch_s"],
                            (m["gatedrnn_fit"] - m["gatedrnn_steps"]) / row["batches"])
    text = tl.format_table(rows, threads=1)
    assert "digits" in text and "char_lm" in text and "speed-up" in text


def test_bare_steps_match_fit_one_batch():
    """The 'steps' loop the overhead is measured against does what fit does: one batch of each
    gives the same weights."""
    require_peer("sklearn")
    tl = _load_training_loop()
    task = tl.make_task("digits")
    B = task.batch_size
    a, b = task.gatedrnn_model(seed=3), task.gatedrnn_model(seed=3)
    a.fit(task.x[:B], task.y[:B], batch_size=B, epochs=1, verbose=0, shuffle=False)
    tl.bare_steps(b, [(task.x[:B], task.y[:B])])
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
