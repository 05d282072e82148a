"""pytest-benchmark: one training epoch of the digits and character-LM examples' models (and of
a Dense(1) model whose epoch is all fixed per-batch cost), by gatedrnn's ``fit``, by the same
steps without ``fit``, and by a minimal PyTorch loop (see ``training_loop.py`` beside this file
for what exactly is timed).

    python -m pytest bench/test_training_loop.py --benchmark-only [--bench-quick]
        [--bench-threads N]
    python bench/training_loop.py          # the same, interleaved repeats, as a table

Each task is one pytest-benchmark group (``training epoch: <task>``); each round is one epoch.
At the end the table of ``training_loop.py`` is printed: PyTorch / gatedrnn-fit speed-up and
fit's overhead per batch. Speed is reported, never asserted; the PyTorch twin is checked to be
the same model (its first batch's loss agrees with gatedrnn's) before anything is timed.
"""

import importlib.util
import os
import sys

import pytest

import gatedrnn
from gatedrnn import bench as harness

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load_training_loop():
    # loaded by path: bench/ is not a package (its conftest loads report.py the same way)
    name = "gatedrnn_bench_training_loop"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name,
                                                      os.path.join(_HERE, "training_loop.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


tl = _load_training_loop()


class LoopEnv:
    """Tasks and their runners (built on first use), thread settings, and every timed epoch."""

    def __init__(self, config):
        self.quick = config.getoption("--bench-quick")
        threads = config.getoption("--bench-threads")
        self.threads = threads if threads is not None else gatedrnn.get_num_threads()
        self.char_batches = 20 if self.quick else 200
        self.rounds, self.warmup = (1, 0) if self.quick else (3, 1)
        self.torch, why = tl.import_torch()
        self.notes = [] if self.torch else [f"PyTorch unavailable ({why})"]
        self._threads = harness.ThreadSettings(self.threads, self.torch).__enter__()
        self.notes += self._threads.notes
        self._runners = {}
        self.times = {}        # task -> impl -> [seconds]
        self.busy = {}         # task -> [share]

    def runners(self, task_name):
        if task_name not in self._runners:
            try:
                task = tl.make_task(task_name, self.char_batches)
            except ImportError as exc:
                self._runners[task_name] = f"{task_name}: {exc}"
            else:
                self._runners[task_name] = tl.Runners(task, self.torch)
        return self._runners[task_name]

    def timed(self, task_name, impl):
        """The epoch function of (task, impl), recording its time and the machine's busyness."""
        fn = self.runners(task_name).epoch[impl]
        calls = [0]

        def run():
            seconds, busy = tl.timed(fn)
            calls[0] += 1
            if calls[0] > self.warmup:          # pedantic's warm-up rounds are not recorded
                self.times.setdefault(task_name, {}).setdefault(impl, []).append(seconds)
                self.busy.setdefault(task_name, []).append(busy)
        return run

    def rows(self):
        rows = []
        for name in tl.TASKS:
            r = self._runners.get(name)
            if name not in self.times or isinstance(r, str):
                continue
            rows.append(tl.summarize(name, r.task.batches, self.times[name], self.busy[name],
                                     r.check_same_model()))
        return rows

    def close(self):
        self._threads.__exit__(None, None, None)


@pytest.fixture(scope="module")
def loop_env(request):
    env = LoopEnv(request.config)
    yield env
    env.close()
    rows = env.rows()
    if rows:
        # output written now would be captured: print it with the session's summary instead
        request.config.pluginmanager.register(
            _Summary(tl.format_table(rows, env.threads, env.notes)),
            "gatedrnn_training_loop_summary")


class _Summary:
    """A plugin registered at the end of the module: prints the table in the terminal summary."""

    def __init__(self, text):
        self.text = text

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_sep("=", "training loop: gatedrnn fit vs PyTorch")
        terminalreporter.write_line(self.text)


@pytest.mark.parametrize("impl", tl.IMPLS)
@pytest.mark.parametrize("task_name", tl.TASKS)
def test_training_epoch(benchmark, loop_env, task_name, impl):
    runners = loop_env.runners(task_name)
    if isinstance(runners, str):
        pytest.skip(f"task unavailable: {runners}")
    if impl not in runners.epoch:
        pytest.skip(f"{tl.LABELS[impl]} unavailable: {'; '.join(loop_env.notes)}")
    runners.check_same_model()      # a different model would make the comparison meaningless
    benchmark.group = f"training epoch: {task_name}"
    benchmark.extra_info.update(task=task_name, impl=impl, batches=runners.task.batches,
                                batch_size=runners.task.batch_size, threads=loop_env.threads)
    benchmark.pedantic(loop_env.timed(task_name, impl), rounds=loop_env.rounds, iterations=1,
                       warmup_rounds=loop_env.warmup)
