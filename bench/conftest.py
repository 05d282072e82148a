"""pytest-benchmark suite over gatedrnn.bench: the same cases, implementations, thread settings
and parity checks as ``python -m gatedrnn bench``, timed by pytest-benchmark.

    python -m pytest bench/ --benchmark-only [--bench-quick] [--bench-filter SUBSTRING]
        [--bench-threads N] [--bench-no-reference] [--benchmark-json results.json]
    python bench/report.py results.json      # the ratio / %-of-ceiling table from a saved run

Not collected by a plain ``python -m pytest`` in the repository root (pyproject's testpaths is
``tests``). Each case is one pytest-benchmark group, so the implementations appear side by side
in pytest-benchmark's tables; at the end the same ratio table as ``python -m gatedrnn bench``
is printed (speed-ups, GFLOP/s, % of the SGEMM ceiling and of the bandwidth bound, parity).
"""

import importlib.util
import os

import pytest

from gatedrnn import bench as harness

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load_report_module():
    # loaded by path: bench/ and tests/ both have a conftest and are not packages
    spec = importlib.util.spec_from_file_location("gatedrnn_bench_report",
                                                  os.path.join(_HERE, "report.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pytest_addoption(parser):
    g = parser.getgroup("gatedrnn bench")
    g.addoption("--bench-quick", action="store_true",
                help="the representative subset of `python -m gatedrnn bench --quick`")
    g.addoption("--bench-filter", action="append", metavar="SUBSTRING",
                help="keep cases whose id contains SUBSTRING (repeatable)")
    g.addoption("--bench-threads", type=int, default=None,
                help="threads for every implementation (default: gatedrnn's default)")
    g.addoption("--bench-no-reference", action="store_true",
                help="leave out the plain NumPy reference")
    g.addoption("--bench-min-time", type=float, default=0.5,
                help="seconds of timed rounds per implementation and case (default 0.5)")
    g.addoption("--bench-max-time", type=float, default=2.0,
                help="most seconds of timed rounds per implementation and case, and the NumPy "
                     "reference's per-call budget (default 2)")
    g.addoption("--bench-max-call", type=float, default=30.0,
                help="skip an implementation whose one call is estimated above this (default 30)")


def _implementations(config):
    no_ref = config.getoption("--bench-no-reference")
    return [n for n in harness.IMPLEMENTATIONS if not (no_ref and n == "reference")]


def pytest_generate_tests(metafunc):
    if {"case", "impl"} <= set(metafunc.fixturenames):
        cfg = metafunc.config
        selected = []
        for c in harness.cases(quick=cfg.getoption("--bench-quick"),
                               filters=cfg.getoption("--bench-filter")):
            # a subnormal case brings its normal twin (report.py pairs them)
            if c.twin not in selected:
                selected.append(c.twin)
            if c not in selected:
                selected.append(c)
        params = [pytest.param(c, i, id=f"{c.id}|{i}")
                  for c in selected for i in _implementations(cfg)]
        metafunc.parametrize(("case", "impl"), params)


class BenchEnv:
    """Session state: implementations, thread settings, ceilings, the current case's problem and
    gatedrnn's outputs per case (the parity anchor)."""

    def __init__(self, config):
        self.notes = set()
        self.min_time = config.getoption("--bench-min-time")
        self.max_time = config.getoption("--bench-max-time")
        self.max_call = config.getoption("--bench-max-call")
        self.impls, torch = harness.make_implementations(_implementations(config), self.notes)
        threads = config.getoption("--bench-threads")
        self.threads = threads if threads is not None else harness.gatedrnn.get_num_threads()
        self._thread_settings = harness.ThreadSettings(self.threads, torch).__enter__()
        self.notes.update(self._thread_settings.notes)
        self.sgemm = harness.sgemm_gflops()
        self.gemv = harness.GemvTimes()
        self.machine = harness.machine_info(torch, self.impls)
        self.machine.update(threads=self.threads, blas_threads=self._thread_settings.blas,
                            sgemm_gflops=self.sgemm)
        config._gatedrnn_bench_machine = self.machine
        self._problem = (None, None)
        self._anchors = {}

    def close(self):
        self._thread_settings.__exit__(None, None, None)

    def problem(self, case):
        if self._problem[0] != case.id:
            self._problem = (case.id, harness.make_problem(case))
        return self._problem[1]

    def budget(self, impl):
        return self.max_time if impl == "reference" else self.max_call

    def anchor(self, case):
        """gatedrnn's outputs for ``case`` (from its benchmark if it ran, else one call now);
        None when gatedrnn does not run it."""
        if case.id not in self._anchors:
            impl = self.impls.get("gatedrnn")
            st = (harness.prepare_and_warm(impl, case, self.problem(case), threads=self.threads,
                                           budget=self.max_call, max_time=self.max_time)
                  if impl is not None else {"status": "n/a"})
            self._anchors = {case.id: st.get("outputs")}
        return self._anchors[case.id]

    def set_anchor(self, case, outputs):
        self._anchors = {case.id: outputs}


@pytest.fixture(scope="session")
def bench_env(request):
    env = BenchEnv(request.config)
    yield env
    env.close()


def pytest_benchmark_update_machine_info(config, machine_info):
    machine = getattr(config, "_gatedrnn_bench_machine", None)
    if machine is not None:
        machine_info["gatedrnn_bench"] = harness._jsonable(machine)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    benchmarks = getattr(session, "benchmarks", None)
    # only the kernel cases (test_bench.py) feed the ratio table; other benchmark files (e.g.
    # test_training_loop.py) print their own
    if not benchmarks or not any("case_id" in (b.extra_info or {}) for b in benchmarks):
        return
    try:
        data = [b.as_dict(include_data=False) for b in benchmarks]
        report = _load_report_module().report_from_benchmarks(
            data, getattr(config, "_gatedrnn_bench_machine", None))
        text = harness.format_report(report)
    except Exception as exc:  # noqa: BLE001 - a summary must never hide the test results
        text = f"(ratio table unavailable: {type(exc).__name__}: {exc}; see bench/report.py)"
    terminalreporter.write_sep("=", "gatedrnn vs peers (ratios, % of ceilings)")
    terminalreporter.write_line(text)
