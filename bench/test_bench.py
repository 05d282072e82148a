"""One benchmark per (case, implementation); each case is a pytest-benchmark group.

Before timing, every peer's outputs (and, in training, gradients) are compared with gatedrnn's
on the same data: a mismatch fails the test instead of benchmarking a different computation.
A peer that does not run a case (PyTorch has no reset-before GRU, ORT is forward only, a
missing package) or whose one call exceeds its budget is skipped with the reason.
"""

import dataclasses

import pytest

from gatedrnn import bench as harness


def test_bench(benchmark, bench_env, case, impl):
    env = bench_env
    im = env.impls[impl]
    if isinstance(im, str):
        pytest.skip(f"{harness.LABELS[impl]}: {im}")
    st = harness.prepare_and_warm(im, case, env.problem(case), threads=env.threads,
                                  budget=env.budget(impl), max_time=env.max_time,
                                  warm_long=False)
    if st["status"] == "error":
        pytest.fail(f"{harness.LABELS[impl]}: {st['note']}", pytrace=False)
    if st["status"] != "ok":
        pytest.skip(f"{harness.LABELS[impl]} {st['status']}: {st.get('note', '')}")

    def check(outputs):
        if impl == "gatedrnn":
            env.set_anchor(case, outputs)
            return None
        anchor = env.anchor(case)
        if anchor is None:
            return None
        entry = harness.parity_entry(anchor, outputs)
        benchmark.extra_info["parity"] = harness._jsonable(entry)
        return entry

    entry = check(st["outputs"]) if st["outputs"] is not None else None
    if entry is not None and not entry["ok"]:
        pytest.fail(f"{harness.LABELS[impl]} differs from gatedrnn: max scaled diff "
                    f"{entry['max_scaled_diff']:.2e} in {entry['worst']}", pytrace=False)

    benchmark.group = case.id
    benchmark.extra_info.update(
        case=dataclasses.asdict(case), case_id=case.id, impl=impl, per_unit=case.per_unit,
        flops=case.flops(), sgemm_gflops=env.sgemm, threads=env.threads,
        bw_bound_s=harness.bandwidth_bound(case, env.gemv), single_call=st["single"])
    if st["single"]:
        rounds, number = 1, 1
    else:
        rounds, number = harness.plan_rounds(st["plan_s"], env.min_time, env.max_time)
    # A long call skipped its warm-up (warm_long=False): one full-size call first, so the timed
    # one does not pay for first touching its buffers (as the harness times it too).
    warmup = 1 if st["outputs"] is None else 0
    monitor = harness.ForeignCpu()
    monitor.start()
    with st["ctx"]():
        result = benchmark.pedantic(st["fn"], rounds=rounds, iterations=number,
                                    warmup_rounds=warmup)
    benchmark.extra_info["foreign_cpu"] = monitor.stop()
    if st["outputs"] is None:  # a long call: its only timed run is also its parity check
        with st["ctx"]():
            outputs = st["extract"](result)
        entry = check(outputs)
        if entry is not None and not entry["ok"]:
            pytest.fail(f"{harness.LABELS[impl]} differs from gatedrnn: max scaled diff "
                        f"{entry['max_scaled_diff']:.2e} in {entry['worst']}", pytrace=False)
