"""Smoke test of the benchmark harness (gatedrnn.bench) on tiny cases: it runs every installed
implementation, checks parity, and produces a well-formed report (positive times, speed-ups that
are the ratio of the times, JSON that loads back). Speed itself is never asserted here.
"""

import contextlib
import dataclasses
import importlib.util
import io
import json
import math
import os
import sys
import time

import numpy as np
import pytest

import gatedrnn
from gatedrnn import bench

FAST = dict(min_time=0.002, max_time=0.02, sgemm_n=64, retry_busy=0)

TINY = [
    bench.Case("train", "lstm", "fwd", 4, 3, 5, 6),
    bench.Case("train", "lstm", "train", 4, 3, 5, 6),
    bench.Case("train", "gru_ra", "train", 3, 2, 4, 5),
    bench.Case("train", "lstm", "train-nodx", 4, 3, 5, 6),
    bench.Case("infer", "gru_rb", "fwd", 3, 2, 4, 5),
    bench.Case("infer", "rnn_tanh", "fwd", 5, 1, 3, 4),
    bench.Case("bidir", "lstm", "train", 4, 2, 3, 4, layers=2, directions=2),
    bench.Case("bidir", "gru_ra", "train-nodx", 4, 2, 3, 4, layers=2, directions=2),
    bench.Case("bidir", "gru_ra", "fwd", 4, 2, 3, 4, layers=2, directions=2),
    bench.Case("stream", "gru_ra", "fwd", 4, 1, 5, 6),
    bench.Case("stream", "lstm", "fwd", 4, 1, 5, 6),
    bench.Case("overhead", "rnn_tanh", "fwd", 1, 1, 4, 4),
    bench.Case("ragged", "lstm", "train", 6, 5, 3, 4),
    bench.Case("ragged", "gru_ra", "fwd", 6, 5, 3, 4),
    bench.Case("denormal", "lstm", "fwd", 4, 2, 3, 4),
    bench.Case("denormal", "lstm", "fwd", 4, 2, 3, 4, data="subnormal"),
]


def check_report(report, names):
    """Structure and arithmetic of a report, whatever ran."""
    assert report["settings"]["implementations"] == names
    assert report["ceilings"]["sgemm_gflops"] > 0
    assert len(report["cases"]) == len(TINY)
    for case, row in zip(TINY, report["cases"]):
        assert row["id"] == case.id
        assert row["flops"] == case.flops() > 0
        assert set(row["impls"]) == set(names)
        gd = row["impls"]["gatedrnn"]
        assert gd["status"] == "ok", gd
        assert gd["median_s"] > 0 and gd["rounds"] >= 1 and gd["number"] >= 1
        assert math.isclose(row["gflops"], case.flops() / gd["median_s"] / 1e9)
        # the ceiling of the case, timed in turns with its rounds
        assert row["sgemm_gflops"] > 0 and row["sgemm_rounds"] >= 1
        assert row["sgemm_gflops_run"] == report["ceilings"]["sgemm_gflops"]
        assert math.isclose(row["pct_sgemm"], 100 * row["gflops"] / row["sgemm_gflops"])
        for name in names[1:]:
            entry = row["impls"][name]
            assert entry["status"] in ("ok", "n/a", "over budget"), (row["id"], name, entry)
            if entry["status"] == "ok":
                assert entry["median_s"] > 0
                assert math.isclose(row["speedup"][name], entry["median_s"] / gd["median_s"])
                assert row["parity"][name]["ok"], (row["id"], name, row["parity"][name])
                assert row["parity"][name]["arrays"] >= (1 if case.streaming else 2)
            else:
                assert row["speedup"][name] is None and entry.get("note")
        assert row["parity_ok"]
        if case.mode == "fwd" and case.B <= 4:
            assert row["bw_bound_s"] > 0 and row["pct_bw"] > 0
        else:
            assert row["bw_bound_s"] is None
        if case.data == "subnormal":
            # every implementation also timed on the normal twin, in the same rounds, and
            # checked against gatedrnn there (where the outputs are not all ~0)
            assert row["normal_twin"] == case.twin.id
            assert set(row["vs_normal"]) == set(names)
            assert row["vs_normal"]["gatedrnn"] > 0
            for name in names[1:]:
                if row["impls"][name]["status"] == "ok":
                    assert row["vs_normal"][name] > 0
                    twin = row["parity"][name + bench.TWIN_TURN]
                    assert twin["ok"] and twin["arrays"] >= 2, (name, twin)
        else:
            assert row["normal_twin"] is None and "vs_normal" not in row
    for t in report["targets"]:
        assert t["met"] == (t["value"] >= t["target"])
    subnormal = [t for t in report["targets"] if t["rule"].startswith("subnormal input")]
    assert [t["case"] for t in subnormal] == [c.id for c in TINY if c.data == "subnormal"]
    text = bench.format_report(report)
    for case in TINY:
        assert case.id in text
    assert "Subnormal input (denormal suite" in text


def run_tiny(tmp_path, **kw):
    before = gatedrnn.get_num_threads()
    out = io.StringIO()
    report = bench.run(TINY, threads=1, out=out, **FAST, **kw)
    assert gatedrnn.get_num_threads() == before  # thread settings restored
    assert "case" in out.getvalue() and TINY[0].id in out.getvalue()
    path = tmp_path / "report.json"
    bench.write_json(report, path)
    assert json.loads(path.read_text())["cases"][0]["id"] == TINY[0].id
    return report


def test_case_list_follows_the_derivation():
    rows = list(csv_rows(bench.DEEPBENCH_CSV))
    assert len(rows) == 124 and {r["type"] for r in rows} == {"vanilla", "gru", "lstm"}
    shapes = bench.deepbench_shapes()
    assert len(shapes) == len(set(shapes))
    expected = set()
    for r in rows:
        suite = "train" if r["set"] == "train" else "infer"
        for v in bench.DEEPBENCH_TYPES[r["type"]]:
            expected.add((suite, v, min(int(r["hidden"]), 1024), int(r["batch"]),
                          min(int(r["timesteps"]), 200)))
    assert set(shapes) == expected
    all_cases = bench.cases()
    ids = [c.id for c in all_cases]
    assert len(ids) == len(set(ids))
    assert {c.variant for c in all_cases} == set(bench.VARIANTS)
    dbench = [c for c in all_cases if c.suite in ("train", "infer")]
    assert all(c.I == c.H <= 1024 and c.T <= 200 for c in dbench)
    assert {(c.suite, c.mode) for c in dbench} == {("train", "fwd"), ("train", "train"),
                                                    ("train", "train-nodx"), ("infer", "fwd")}
    # every training shape also without dx
    assert {c.id.replace("/train-nodx", "/train") for c in dbench if c.mode == "train-nodx"} \
        == {c.id for c in dbench if c.mode == "train"}
    # 2048 and 4096 hidden clamp onto the 1024 rows, T=1500/750/375 onto 200
    assert "train/lstm/T25-B128-I1024-H1024/train" in ids
    assert "infer/gru_rb/T200-B4-I1024-H1024/fwd" in ids
    assert "infer/rnn_tanh/T200-B1-I32-H32/fwd" in ids            # vanilla = RNN tanh
    assert sum(c.suite == "bidir" for c in all_cases) == 6
    assert [c.id for c in all_cases if c.suite == "stream"] == [
        "stream/lstm/T100-B1-I256-H256/fwd", "stream/gru_ra/T100-B1-I256-H256/fwd"]
    assert sum(c.suite == "overhead" for c in all_cases) == len(bench.VARIANTS)
    # the ragged suite: lengths uniform in [T/2, T], the longest T, the same for a case's
    # forward and training and from run to run; FLOPs count the valid steps only
    ragged = [c for c in all_cases if c.suite == "ragged"]
    assert [c.id for c in ragged] == [
        "ragged/lstm/T150-B32-I256-H256/fwd", "ragged/lstm/T150-B32-I256-H256/train",
        "ragged/gru_ra/T150-B32-I256-H256/fwd", "ragged/gru_ra/T150-B32-I256-H256/train"]
    for c in ragged:
        lengths = c.lengths()
        assert lengths.shape == (c.B,) and lengths.max() == c.T and lengths.min() >= c.T // 2
        assert len(set(lengths.tolist())) > c.B // 2    # ragged, not a few distinct values
        np.testing.assert_array_equal(bench.make_problem(c).lengths, lengths)
        assert c.flops() == (3 if c.mode == "train" else 1) * 2 * int(lengths.sum()) * c.G * \
            c.H * (c.I + c.H)
    np.testing.assert_array_equal(ragged[0].lengths(), ragged[1].lengths())
    assert all(c.lengths() is None for c in all_cases if c.suite != "ragged")
    # the denormal suite: pairs that differ only in their data, the normal twin first
    denormal = [c.id for c in all_cases if c.suite == "denormal"]
    assert denormal == [
        "denormal/lstm/T100-B32-I256-H256/fwd", "denormal/lstm/T100-B32-I256-H256-subnormal/fwd",
        "denormal/gru_ra/T100-B32-I256-H256/fwd",
        "denormal/gru_ra/T100-B32-I256-H256-subnormal/fwd",
        "denormal/lstm/T100-B32-I256-H256/train",
        "denormal/lstm/T100-B32-I256-H256-subnormal/train"]
    for c in all_cases:   # every subnormal case's twin is in the list too
        assert c.twin.id in ids and (c.twin == c) == (c.data == "normal")
    quick = bench.cases(quick=True)
    assert 5 <= len(quick) < len(all_cases)
    assert [c.id for c in bench.cases(filters=["stream/", "overhead/lstm"])] == [
        "stream/lstm/T100-B1-I256-H256/fwd", "stream/gru_ra/T100-B1-I256-H256/fwd",
        "overhead/lstm/T1-B1-I64-H64/fwd"]
    # FLOPs: forward 2*T*B*G*H*(I+H), training 3x; bidirectional 2-layer sums both layers
    c = bench.Case("train", "lstm", "fwd", 25, 16, 512, 512)
    assert c.flops() == 2 * 25 * 16 * 4 * 512 * 1024
    assert bench.Case("train", "lstm", "train", 25, 16, 512, 512).flops() == 3 * c.flops()
    # without dx: less the first layer's dX = dG W_ih, 2*T*B*G*H*I (here I != H)
    assert bench.Case("train", "lstm", "train-nodx", 25, 16, 300, 512).flops() == \
        3 * 2 * 25 * 16 * 4 * 512 * (300 + 512) - 2 * 25 * 16 * 4 * 512 * 300
    # two layers and directions: only layer 0's dX (input I) is skipped, per direction
    bt = bench.Case("bidir", "gru_ra", "train", 100, 32, 200, 256, layers=2, directions=2)
    bn = dataclasses.replace(bt, mode="train-nodx")
    assert bt.flops() - bn.flops() == 2 * 2 * 100 * 32 * 3 * 256 * 200
    with pytest.raises(ValueError, match="mode: expected one of"):
        bench.Case("train", "lstm", "backward", 2, 2, 2, 2)
    b = bench.Case("bidir", "gru_ra", "fwd", 100, 32, 256, 256, layers=2, directions=2)
    assert b.flops() == 2 * 2 * 100 * 32 * 3 * 256 * ((256 + 256) + (512 + 256))


def csv_rows(text):
    import csv
    return csv.DictReader(io.StringIO(text))


def test_parity_check_flags_a_mismatch():
    a = {"y": np.ones((3, 2, 4), np.float32), "h_n": np.zeros((1, 2, 4), np.float32)}
    same = {k: v + 1e-6 for k, v in a.items()}
    assert bench.parity_entry(a, same)["ok"]
    off = dict(same, h_n=a["h_n"] + 1e-2)
    entry = bench.parity_entry(a, off)
    assert not entry["ok"] and entry["worst"] == "h_n"
    assert not bench.parity_entry(a, {"y": a["y"][:2]})["ok"]      # wrong shape
    assert not bench.parity_entry(a, {})["ok"]                      # nothing compared


def test_harness_without_peers(tmp_path, monkeypatch):
    """No torch / onnxruntime / onnx: their columns are n/a with a note, nothing crashes."""
    for name in ("torch", "onnxruntime", "onnx"):
        monkeypatch.setitem(sys.modules, name, None)   # makes `import name` raise ImportError
    report = run_tiny(tmp_path)
    names = list(bench.IMPLEMENTATIONS)
    check_report(report, names)
    for row in report["cases"]:
        assert row["impls"]["torch"]["status"] == "n/a"
        assert row["impls"]["onnxruntime"]["status"] == "n/a"
        assert row["impls"]["reference"]["status"] == "ok"
    assert any("PyTorch not importable" in n for n in report["notes"])
    assert any("onnxruntime/onnx not importable" in n for n in report["notes"])


def test_harness_with_every_peer(tmp_path, torch, onnx, onnxruntime):
    torch_threads = torch.get_num_threads()
    report = run_tiny(tmp_path)
    assert torch.get_num_threads() == torch_threads
    check_report(report, list(bench.IMPLEMENTATIONS))
    for case, row in zip(TINY, report["cases"]):
        st = {n: e["status"] for n, e in row["impls"].items()}
        assert st["torch"] == ("n/a" if case.variant == "gru_rb" else "ok"), row["id"]
        assert st["onnxruntime"] == ("ok" if case.mode == "fwd" else "n/a"), row["id"]
        assert st["reference"] == "ok", row["id"]
        if case.training:   # gradients were compared, not only outputs
            assert row["parity"]["torch"]["arrays"] > 5
    bench.write_png(report, tmp_path / "speedup.png")   # a PNG if matplotlib is installed


@pytest.mark.parametrize("case", [
    bench.Case("train", "lstm", "train-nodx", 4, 3, 5, 6),
    bench.Case("ragged", "gru_ra", "train-nodx", 6, 5, 3, 4),
    bench.Case("bidir", "gru_ra", "train-nodx", 4, 2, 3, 4, layers=2, directions=2),
    bench.Case("bidir", "lstm", "train-nodx", 4, 2, 3, 4, layers=2, directions=2),
], ids=lambda c: c.id)
@pytest.mark.parametrize("impl", ["gatedrnn", "reference", "torch"])
def test_training_without_dx_computes_every_other_gradient(case, impl, request):
    """"train-nodx": every implementation returns no dL/dx and exactly the gradients it
    returns in "train" on the same problem (gatedrnn's and the reference's bit-identical;
    PyTorch's within the parity tolerance, as it may order its sums differently)."""
    if impl == "torch":
        request.getfixturevalue("torch")
    notes = set()
    im = bench.make_implementations([impl], notes)[0][impl]
    with_dx = dataclasses.replace(case, mode="train")
    prob = bench.make_problem(with_dx)

    def prepared(c):
        st = bench.prepare_and_warm(im, c, prob, threads=1, budget=10.0, max_time=1.0)
        assert st["status"] == "ok", st
        return st

    st = prepared(case)
    full, nodx = prepared(with_dx)["outputs"], st["outputs"]
    if impl == "torch":   # the call's input is a plain tensor, as a model's data
        with st["ctx"]():
            x = st["fn"]()[0]
        assert not x.requires_grad and x.grad is None
    assert "d_x" in full and "d_x" not in nodx
    assert set(nodx) == set(full) - {"d_x"} and len(nodx) > 5
    for key, a in nodx.items():
        if impl == "torch":
            assert bench.parity(full, {key: a})[0] <= bench.PARITY_TOL, key
        else:
            np.testing.assert_array_equal(a, full[key], err_msg=key)


def test_over_budget_reference_is_skipped_not_run(tmp_path):
    case = bench.Case("train", "lstm", "train", 40, 2, 3, 4)
    report = bench.run([case], implementations=("gatedrnn", "reference"), threads=1,
                       out=None, min_time=0.0, max_time=1e-7, sgemm_n=64, retry_busy=0)
    row = report["cases"][0]
    assert row["impls"]["reference"]["status"] == "over budget"
    assert row["impls"]["reference"]["estimate_s"] > 1e-7
    assert row["impls"]["gatedrnn"]["rounds"] == 1      # longer than max_time: one call
    assert row["speedup"]["reference"] is None


def test_a_long_call_is_timed_after_a_full_warm_up_call():
    """A call longer than --max-time is timed once, but not as its first full-size call (the
    probe ran fewer steps): that one also pays for first touching its buffers."""
    case = bench.Case("train", "lstm", "train", 40, 2, 3, 4)
    calls = []

    class FirstFullCallSlow:
        def prepare(self, case, prob, threads):
            def make(T):
                def fn():
                    if T == case.T:
                        calls.append(T)
                    time.sleep(0.2 if calls == [case.T] else 0.05)
                    return T
                return fn
            return bench.Runner(make, lambda res: {"steps": np.array([res])})

    st = bench.prepare_and_warm(FirstFullCallSlow(), case, None, threads=1, budget=10.0,
                                max_time=0.01)
    assert st["status"] == "ok" and st["single"]
    assert len(calls) == 2                           # the warm-up call and the timed one
    assert st["warm_s"] >= 0.2 and 0.05 <= st["single_s"] < 0.2
    assert st["outputs"]["steps"] == case.T


def test_command_line(tmp_path, capsys):
    from gatedrnn.__main__ import main
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0 and "--retry-busy" in capsys.readouterr().out
    assert main(["bench", "--quick", "--list"]) == 0
    assert capsys.readouterr().out.split() == [c.id for c in bench.cases(quick=True)]
    js = tmp_path / "r.json"
    status = main(["bench", "--filter", "overhead/rnn_tanh", "--threads", "1", "--no-reference",
                   "--min-time", "0.002", "--max-time", "0.02", "--retry-busy", "0",
                   "--lead-in", "0.001", "--json", str(js),
                   "--png", str(tmp_path / "r.png")])
    assert status == 0
    out = capsys.readouterr().out
    assert "overhead/rnn_tanh/T1-B1-I64-H64/fwd" in out and "ceiling" in out
    data = json.loads(js.read_text())
    assert [r["id"] for r in data["cases"]] == ["overhead/rnn_tanh/T1-B1-I64-H64/fwd"]
    assert data["settings"]["threads"] == 1 and "reference" not in data["cases"][0]["impls"]
    assert data["settings"]["lead_in"] == 0.001
    assert main(["bench", "--quick", "--lead-in", "-1"]) == 2
    assert "--lead-in must be >= 0 seconds, got -1.0" in capsys.readouterr().err


def test_pytest_benchmark_report_script():
    """bench/report.py turns pytest-benchmark entries into the same rows and ratios."""
    path = os.path.join(os.path.dirname(__file__), os.pardir, "bench", "report.py")
    if not os.path.exists(path):
        pytest.skip("bench/ is not in this checkout")
    spec = importlib.util.spec_from_file_location("gatedrnn_bench_report_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    case = bench.Case("stream", "lstm", "fwd", 10, 1, 4, 4)
    import dataclasses

    def entry(impl, median, parity=None):
        return {"stats": {"median": median, "rounds": 5, "iterations": 1},
                "extra_info": {"case": dataclasses.asdict(case), "case_id": case.id,
                               "impl": impl, "per_unit": case.per_unit, "sgemm_gflops": 100.0,
                               "bw_bound_s": 1e-6, "threads": 2, "parity": parity}}
    ok = {"max_scaled_diff": 1e-7, "worst": "h_n", "arrays": 2, "ok": True}
    report = mod.report_from_benchmarks([entry("gatedrnn", 1e-4), entry("torch", 4e-4, ok)])
    (row,) = report["cases"]
    assert math.isclose(row["impls"]["gatedrnn"]["median_s"], 1e-5)     # per step
    assert math.isclose(row["speedup"]["torch"], 4.0)
    assert math.isclose(row["pct_bw"], 10.0)
    assert row["parity_ok"] and report["settings"]["implementations"] == ["gatedrnn", "torch"]
    assert case.id in bench.format_report(report)
    # a subnormal case and its normal twin, timed as two benchmarks, are paired by id (the
    # case's data goes through extra_info and back)
    sub = bench.Case("denormal", "lstm", "fwd", 10, 8, 4, 4, data="subnormal")
    entries = []
    for c, times in ((sub.twin, (2e-3, 3e-3)), (sub, (2.5e-3, 6e-3))):
        case = c
        entries += [entry("gatedrnn", times[0]), entry("torch", times[1], ok)]
    report = mod.report_from_benchmarks(entries)
    twin_row, sub_row = report["cases"]
    assert (twin_row["id"], sub_row["id"]) == (sub.twin.id, sub.id)
    assert "vs_normal" not in twin_row
    assert sub_row["vs_normal"] == pytest.approx({"gatedrnn": 0.8, "torch": 0.5})
    assert [t["value"] for t in report["targets"]
            if t["rule"].startswith("subnormal")] == pytest.approx([0.8])


def test_a_disturbed_case_is_retried(monkeypatch):
    """A case measured while other work took the CPUs is rerun; the quieter attempt is kept."""
    shares = iter([0.6, 0.02])
    monkeypatch.setattr(bench.ForeignCpu, "stop", lambda self: next(shares))
    waits = []
    monkeypatch.setattr(bench, "wait_for_idle", lambda max_wait: waits.append(max_wait))
    case = bench.Case("overhead", "rnn_tanh", "fwd", 1, 1, 4, 4)
    report = bench.run([case], implementations=("gatedrnn",), threads=1, out=None,
                       retry_busy=1, busy_wait=7.0, **{k: v for k, v in FAST.items()
                                                       if k != "retry_busy"})
    (row,) = report["cases"]
    assert row["attempts"] == 2 and row["foreign_cpu"] == 0.02 and waits == [7.0]
    assert "[busy" not in bench.format_report(report)


def test_interleaved_rounds_take_turns_and_follow_the_round_plan():
    """Implementations are timed in alternating rounds, the order rotating every round, each
    inside its own context, with the same round plan as measure()."""
    log = []

    class Ctx:
        def __init__(self, name):
            self.name = name

        def __enter__(self):
            log.append(("enter", self.name))

        def __exit__(self, *exc):
            log.append(("exit", self.name))

    def make(name, seconds):
        def fn():
            log.append(("call", name))
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                pass
        return fn

    entries = {"a": (make("a", 0.001), lambda: Ctx("a"), 0.001),
               "b": (make("b", 0.004), lambda: Ctx("b"), 0.004)}
    timings = bench.measure_interleaved(entries, min_time=0.02, max_time=0.2, min_rounds=3,
                                        settle=0, round_time=0.002)
    # round plans: ~2 ms rounds, so a calls twice per round and b once
    assert timings["a"].number == 2 and timings["b"].number == 1
    for name, t in timings.items():
        assert t.rounds >= 3 and t.total >= 0.02 - 1e-3
        assert 0.0005 < t.median < 0.05
    assert timings["a"].median < timings["b"].median
    # every call happens inside its own context, and turns alternate with rotating order
    turns, inside = [], None
    for what, name in log:
        if what == "enter":
            inside = name
            turns.append(name)
        elif what == "exit":
            inside = None
        else:
            assert inside == name
    both = min(timings["a"].rounds, timings["b"].rounds)
    firsts = [turns[2 * r] for r in range(both)]
    assert firsts[:4] == ["a", "b", "a", "b"][:len(firsts[:4])]
    assert all({turns[2 * r], turns[2 * r + 1]} == {"a", "b"} for r in range(both))


def test_lead_in_calls_precede_each_timed_round_untimed():
    """The first call of each turn is slow (as after the pause between turns); with a lead-in
    it runs untimed and the rounds time the fast calls; without one every round includes it.
    A call longer than the lead-in gets none."""
    state = {"fresh": False, "calls": 0}

    class Turn:
        def __enter__(self):
            state["fresh"] = True

        def __exit__(self, *exc):
            pass

    def fn():
        state["calls"] += 1
        seconds = 0.012 if state["fresh"] else 0.001
        state["fresh"] = False
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    entries = {"a": (fn, Turn, 0.001)}
    kw = dict(min_time=0.005, max_time=1.0, min_rounds=3, settle=0, round_time=0.002)
    slow = bench.measure_interleaved(entries, **kw)
    assert slow["a"].number == 2
    assert slow["a"].median > 0.006          # (12 + 1) / 2 ms per call in every round
    state["calls"] = 0
    fast = bench.measure_interleaved(entries, lead_in=0.0015, **kw)
    assert fast["a"].median < 0.003          # 1 ms calls: the slow one was the lead-in's
    # two lead-in calls (ceil(1.5 / 1)) and two timed calls per round
    assert state["calls"] == 4 * fast["a"].rounds
    state["calls"] = 0
    long_call = bench.measure_interleaved({"a": (fn, Turn, 0.001)}, lead_in=0.0005, **kw)
    assert state["calls"] == 2 * long_call["a"].rounds
    assert long_call["a"].median > 0.006


def test_a_follower_is_timed_in_turns_and_stops_with_the_others():
    """The SGEMM ceiling's entry takes its turns among a case's rounds and stops when the
    implementations have (it would otherwise go on alone, at another moment)."""
    turns = []

    def make(name, seconds):
        def fn():
            turns.append(name)
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                pass
        return fn

    entries = {"impl": (make("impl", 0.004), contextlib.nullcontext, 0.004),
               "ceiling": (make("ceiling", 0.001), contextlib.nullcontext, 0.001)}
    timings = bench.measure_interleaved(entries, min_time=0.012, max_time=1.0, min_rounds=3,
                                        settle=0, round_time=0.001, followers=("ceiling",))
    # alone, the ceiling would need 12 rounds of 1 ms; it stops with impl's 3
    assert timings["impl"].rounds == 3 and timings["ceiling"].rounds == 3
    assert sorted(turns[:2]) == sorted(turns[2:4]) == ["ceiling", "impl"]
    # without followers both run their own plans to the end
    turns.clear()
    timings = bench.measure_interleaved(entries, min_time=0.012, max_time=1.0, min_rounds=3,
                                        settle=0, round_time=0.001)
    assert timings["ceiling"].rounds >= 12


def test_percent_of_sgemm_uses_the_ceiling_timed_with_the_case(monkeypatch):
    """%SGEMM divides by the SGEMM rate measured in turns with the case's rounds, not by the
    figure taken at the start of the run: a machine twice as slow during the case halves
    the ceiling the case is compared with."""
    calls = {"n": 0}

    class Slowing(bench.Sgemm):
        def call(self):  # products after the run-wide measurement take twice as long
            calls["n"] += 1
            super().call()
            if calls["n"] > 7:  # warm-up, estimate, 5 timed at the start
                super().call()

    monkeypatch.setattr(bench, "Sgemm", Slowing)
    case = bench.Case("train", "lstm", "fwd", 4, 3, 5, 6)
    report = bench.run([case], implementations=("gatedrnn",), threads=1, out=None,
                       **dict(FAST, sgemm_n=256))
    (row,) = report["cases"]
    run_wide = report["ceilings"]["sgemm_gflops"]
    assert row["sgemm_gflops_run"] == run_wide and row["sgemm_rounds"] >= 1
    assert 0.3 * run_wide < row["sgemm_gflops"] < 0.75 * run_wide
    assert math.isclose(row["pct_sgemm"], 100 * row["gflops"] / row["sgemm_gflops"])


def test_median_of_runs_takes_each_value_within_its_run(tmp_path, monkeypatch):
    """Three runs of the same cases merge into medians of the per-run values; the targets are
    evaluated on those medians, and the merge script prints and writes the result."""
    for name in ("torch", "onnxruntime", "onnx"):
        monkeypatch.setitem(sys.modules, name, None)
    base = run_tiny(tmp_path)
    runs = []
    for factor in (1.0, 3.0, 2.0):      # medians: the run with factor 2
        rep = json.loads(json.dumps(base))
        for row in rep["cases"]:
            row["speedup"] = {p: (v * factor if v else v) for p, v in row["speedup"].items()}
            for entry in row["impls"].values():
                if entry.get("median_s"):
                    entry["median_s"] *= factor
            if row.get("pct_sgemm") is not None:
                row["pct_sgemm"] *= factor
            if row.get("vs_normal"):
                row["vs_normal"] = {n: v and v * factor for n, v in row["vs_normal"].items()}
        runs.append(rep)
    merged = bench.median_report(runs)
    assert merged["merged_runs"] == 3 and len(merged["cases"]) == len(base["cases"])
    for row, orig in zip(merged["cases"], base["cases"]):
        assert row["id"] == orig["id"] and row["runs"] == 3
        for peer, v in orig["speedup"].items():
            assert (row["speedup"][peer] is None) if not v else math.isclose(row["speedup"][peer], 2 * v)
        for name, entry in orig["impls"].items():
            if entry.get("median_s"):
                assert math.isclose(row["impls"][name]["median_s"], 2 * entry["median_s"])
        if orig.get("pct_sgemm") is not None:
            assert math.isclose(row["pct_sgemm"], 2 * orig["pct_sgemm"])
        for name, v in (orig.get("vs_normal") or {}).items():
            assert (row["vs_normal"][name] is None) if not v else math.isclose(row["vs_normal"][name], 2 * v)
    run_keys = ("runs", "runs_met", "run_min", "run_max")
    assert ([{k: v for k, v in t.items() if k not in run_keys} for t in merged["targets"]]
            == bench.check_targets(merged["cases"]))
    with pytest.raises(ValueError, match="reports: expected at least one report"):
        bench.median_report([])

    paths = []
    for i, rep in enumerate(runs):
        paths.append(tmp_path / f"run{i}.json")
        bench.write_json(rep, paths[-1])
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
    try:
        import median_of_runs
        out = tmp_path / "merged.json"
        assert median_of_runs.main([str(p) for p in paths] + ["--json", str(out)]) == 0
    finally:
        sys.path.pop(0)
    assert json.loads(out.read_text())["merged_runs"] == 3


def test_merged_targets_say_how_each_run_fared(tmp_path, monkeypatch):
    """A target of the merged medians records in how many runs it was met and the range of its
    value over the runs, and the text says so for each shortfall: one that some runs met is
    within the machine's spread, one that none met is not. Each run's own count is kept."""
    for name in ("torch", "onnxruntime", "onnx"):
        monkeypatch.setitem(sys.modules, name, None)
    base = run_tiny(tmp_path)
    cid = "train/lstm/T2-B32-I512-H512/fwd"

    def run(vs_ort, pct):
        rep = json.loads(json.dumps(base))
        rep["cases"] = [{"id": cid, "suite": "train", "mode": "fwd", "cell": "lstm", "B": 32,
                         "H": 512, "impls": {}, "speedup": {"torch": 2.0, "onnxruntime": vs_ort},
                         "pct_sgemm": pct}]
        return rep

    # forward vs the faster peer: 0.9, 1.1, 0.95 (median 0.95, met once);
    # % SGEMM: 90, 80, 70 (median 80, met once). Run by run: 1, 1 and 0 targets met.
    merged = bench.median_report([run(0.9, 90.0), run(1.1, 80.0), run(0.95, 70.0)])
    by_rule = {t["rule"]: t for t in merged["targets"]}
    assert sorted(by_rule) == ["forward >= 1.0x faster of PyTorch/ORT", "large fwd >= 85% SGEMM"]
    fwd = by_rule["forward >= 1.0x faster of PyTorch/ORT"]
    assert fwd["value"] == 0.95 and not fwd["met"]
    assert (fwd["runs"], fwd["runs_met"], fwd["run_min"], fwd["run_max"]) == (3, 1, 0.9, 1.1)
    large = by_rule["large fwd >= 85% SGEMM"]
    assert large["value"] == 80.0 and not large["met"]
    assert (large["runs"], large["runs_met"], large["run_min"], large["run_max"]) == (3, 1, 70.0, 90.0)
    assert merged["targets_met_per_run"] == [1, 1, 0]
    text = bench.format_report(merged)
    assert "Targets (issue 3): 0 of 2 met (within each run: 1, 1, 0)" in text
    # 80% of SGEMM at 0.95x: 1x needs 80 / 0.95 = 84%.
    assert f"short: {cid}  0.95x (target 1x; needs 84% SGEMM; met in 1 of 3 runs, [0.90x .. 1.10x])" in text
    assert f"short: {cid}  80% (target 85%; met in 1 of 3 runs, [70% .. 90%])" in text
    # A single run's report says nothing about runs.
    single = bench.median_report([run(0.9, 90.0)])
    assert f"short: {cid}  0.90x (target 1x; needs 100% SGEMM)" in bench.format_report(single)


def test_a_speed_up_shortfall_says_what_share_of_each_ceiling_its_target_needs():
    """A speed-up target that is not met records the % of SGEMM (and, for batch <= 4, of the
    bandwidth bound) at which gatedrnn would meet it: the measured % scaled by target / value,
    since the peer's time stays what it is. The text names both and explains them; a target
    that is met, and a target that is itself a percentage, carry none."""
    small = {"id": "infer/gru_ra/T10-B2-I64-H64/fwd", "suite": "infer", "mode": "fwd",
             "cell": "gru", "B": 2, "H": 64, "impls": {},
             "speedup": {"torch": 2.0, "onnxruntime": 1.25}, "pct_sgemm": 60.0, "pct_bw": 40.0}
    train = {"id": "train/lstm/T10-B64-I512-H512/train", "suite": "train", "mode": "train",
             "cell": "lstm", "B": 64, "H": 512, "impls": {}, "speedup": {"torch": 1.25},
             "pct_sgemm": 80.0}
    met = {"id": "train/lstm/T10-B32-I512-H512/fwd", "suite": "train", "mode": "fwd",
           "cell": "lstm", "B": 32, "H": 512, "impls": {},
           "speedup": {"torch": 1.5, "onnxruntime": 1.1}, "pct_sgemm": 90.0}
    targets = {(t["case"], t["rule"]): t for t in bench.check_targets([small, train, met])}
    fwd = targets[(small["id"], "forward >= 1.5x faster of PyTorch/ORT")]
    # vs ORT, the faster peer: 1.25x at 60% SGEMM and 40% BW; 1.5x needs 6/5 of each.
    assert not fwd["met"]
    assert fwd["needs_pct_sgemm"] == pytest.approx(72.0)
    assert fwd["needs_pct_bw"] == pytest.approx(48.0)
    tr = targets[(train["id"], "training >= 1.3x PyTorch")]
    assert tr["needs_pct_sgemm"] == pytest.approx(83.2) and "needs_pct_bw" not in tr
    large = targets[(train["id"], "large train >= 75% SGEMM")]
    assert large["met"] and "needs_pct_sgemm" not in large
    text = "\n".join(bench._format_tail({"cases": [small, train, met],
                                         "targets": list(targets.values())}))
    assert f"short: {small['id']}  1.25x (target 1.5x; needs 72% SGEMM, 48% BW)" in text
    assert f"short: {train['id']}  1.25x (target 1.3x; needs 83% SGEMM)" in text
    assert met["id"] not in text.split("Targets")[1]
    assert "needs N% SGEMM / BW:" in text
    # Without shortfalls of a speed-up, no explanation.
    text = "\n".join(bench._format_tail({"cases": [met], "targets": bench.check_targets([met])}))
    assert "needs" not in text
    # Training without dx is reported, not judged (the targets are stated with dx).
    for suite, cell in (("train", "gru"), ("bidir", "lstm"), ("ragged", "lstm")):
        row = dict(train, id=f"{suite}/x/T10-B64-I512-H512/train-nodx", suite=suite,
                   mode="train-nodx", cell=cell)
        assert bench.check_targets([row]) == []
        assert bench.check_targets([dict(row, mode="train")]) != []


def test_denormal_problems_are_subnormal_throughout_and_differ_from_their_twin_only_in_x():
    sub = bench.Case("denormal", "lstm", "fwd", 5, 3, 4, 6, data="subnormal")
    a, b = bench.make_problem(sub.twin), bench.make_problem(sub)
    tiny = np.finfo(np.float32).tiny
    assert a.x.dtype == b.x.dtype == np.float32
    assert np.all((b.x != 0) & (np.abs(b.x) < tiny)), "every x entry is subnormal"
    assert np.all(np.abs(a.x) > 1e-3)
    np.testing.assert_array_equal(b.x, (a.x.astype(np.float64) * 2.0 ** -130).astype(np.float32))
    for p, q in zip(a.params[0][0], b.params[0][0]):
        np.testing.assert_array_equal(p, q)
    w_ih, w_hh, b_ih, b_hh = b.params[0][0]
    assert np.all(w_ih != 0) and not b_ih.any() and not b_hh.any()
    assert not b.h0.any() and not b.c0.any()
    # Computed without flushing (the NumPy reference, float64), every state stays subnormal:
    # the case really is denormal-heavy for an implementation that does not flush.
    from gatedrnn import reference as R
    out = R.lstm(b.x.astype(np.float64), *[p.astype(np.float64) for p in b.params[0][0]])
    y = out.y.astype(np.float32)
    assert np.all((y != 0) & (np.abs(y) < tiny))
    # The other suites keep their data: biases and states are not zeroed.
    other = bench.make_problem(bench.Case("train", "lstm", "fwd", 5, 3, 4, 6))
    assert other.params[0][0][2].any() and other.h0.any()
    with pytest.raises(ValueError, match="data: expected one of"):
        bench.Case("denormal", "lstm", "fwd", 5, 3, 4, 6, data="tiny")


class _SlowerOnSubnormals:
    """A stand-in implementation whose call sleeps `normal` seconds, or `subnormal` seconds when
    the problem's x is subnormal (as an implementation that does not flush would slow down)."""

    def __init__(self, normal, subnormal):
        self.normal, self.subnormal = normal, subnormal

    def prepare(self, case, prob, threads):
        tiny = np.abs(prob.x).max() < np.finfo(np.float32).tiny
        wait = self.subnormal if tiny else self.normal

        def make(T):
            def fn():
                time.sleep(wait * T / case.T)
                return prob.x[:T]
            return fn
        return bench.Runner(make, lambda x: {"y": np.asarray(x, np.float64) * 0})


@pytest.mark.parametrize("slow", [0.008, 0.4])
def test_subnormal_case_times_each_implementation_against_its_twin(slow):
    """vs_normal is the twin's time over the subnormal call's time, for the implementations
    timed in turns and for the reference timed apart; also when the subnormal call is so slow
    that it is timed once (a many-fold denormal penalty is what the suite exists to show)."""
    sub = bench.Case("denormal", "lstm", "fwd", 4, 8, 3, 4, data="subnormal")
    impls = {"gatedrnn": _SlowerOnSubnormals(0.004, 0.004),
             "torch": _SlowerOnSubnormals(0.004, slow),
             "reference": _SlowerOnSubnormals(0.004, slow)}
    row = bench._run_case(sub, impls, threads=1, min_time=0.1, max_time=0.3, max_call=10.0,
                          gemv=None, sgemm=100.0, seed=0, lead_in=0.0)
    single = slow > 0.3
    timed_once = "longer than --max-time" in row["impls"]["torch"].get("note", "")
    assert timed_once == single, row["impls"]["torch"]
    assert row["vs_normal"]["torch"] == pytest.approx(0.004 / slow, rel=0.35)
    assert row["vs_normal"]["gatedrnn"] == pytest.approx(1.0, rel=0.35)
    assert "torch (normal data)" in row["parity"]
    if single:  # the reference's budget per call is --max-time: not run, no ratio
        assert row["impls"]["reference"]["status"] == "over budget"
        assert row["vs_normal"]["reference"] is None
    else:       # timed apart, in turns with its twin alone
        assert row["vs_normal"]["reference"] == pytest.approx(0.004 / slow, rel=0.35)
        assert "reference (normal data)" in row["parity"]


def test_speed_with_subnormal_data_is_relative_to_the_normal_twin():
    """Results timed case by case (the pytest-benchmark suite) pair each subnormal case with its
    normal twin; the target reads gatedrnn's ratio."""
    sub = bench.Case("denormal", "gru_ra", "fwd", 5, 3, 4, 6, data="subnormal")
    rows = [bench.new_row(sub.twin), bench.new_row(sub)]
    times = ({"gatedrnn": 2.0, "torch": 3.0, "onnxruntime": 4.0},
             {"gatedrnn": 2.5, "torch": 6.0, "onnxruntime": None})
    for row, ts in zip(rows, times):
        row["impls"] = {n: {"status": "ok", "median_s": t} if t else {"status": "n/a"}
                        for n, t in ts.items()}
        row["speedup"] = {}
    bench.compare_with_twins(rows)
    assert "vs_normal" not in rows[0]
    assert rows[1]["vs_normal"] == {"gatedrnn": 0.8, "torch": 0.5, "onnxruntime": None}
    (t,) = bench.check_targets(rows)
    assert t["case"] == sub.id and t["value"] == 0.8 and t["target"] == 0.9 and not t["met"]
    rows[1]["vs_normal"]["gatedrnn"] = 0.95
    assert bench.check_targets(rows)[0]["met"]
    text = "\n".join(bench._format_tail({"cases": rows, "targets": bench.check_targets(rows)}))
    assert f"{sub.id}" in text and "gatedrnn 0.95x  PyTorch 0.50x  ORT -" in text


def test_bandwidth_bound_of_a_single_step_streams_both_matrices_together():
    """A call of one step (streaming, or T = 1) reads W_ih and W_hh every call: its bound is one
    GEMV over [W_ih | W_hh]; a longer sequence reads W_ih once and W_hh every step."""
    calls = []

    def gemv(rows, cols):
        calls.append((rows, cols))
        return 1e-6 * rows * cols

    one = bench.Case("infer", "gru_ra", "fwd", 1, 2, 5, 6)        # T=1, B=2, I=5, H=6
    assert bench.bandwidth_bound(one, gemv) == pytest.approx(1e-6 * 18 * 11)
    assert calls == [(18, 11)]
    calls.clear()
    seq = bench.Case("infer", "gru_ra", "fwd", 3, 2, 5, 6)
    assert bench.bandwidth_bound(seq, gemv) == pytest.approx(1e-6 * 18 * (5 + 3 * 6))
    assert sorted(calls) == [(18, 5), (18, 6)]
    calls.clear()
    stream = bench.Case("stream", "lstm", "fwd", 4, 1, 5, 6)
    assert bench.bandwidth_bound(stream, gemv) == pytest.approx(1e-6 * 24 * 11)
    assert bench.bandwidth_bound(bench.Case("infer", "lstm", "fwd", 1, 8, 5, 6), gemv) is None


def test_rounds_are_planned_from_a_steady_call_not_the_first():
    # A short call whose first run is slow (a thread pool starting, a runtime's first-run set-up)
    # must not be planned as a slow call: its rounds would hold a handful of calls, without
    # lead-in, and time the machine waking from every pause between turns.
    case = bench.Case("overhead", "rnn_tanh", "fwd", 1, 1, 64, 64)
    durations = []

    class FirstCallSlow:
        def prepare(self, case, prob, threads):
            def make(T):
                def fn():
                    time.sleep(0.03 if not durations else 0.001)
                    durations.append(T)
                    return T
                return fn
            return bench.Runner(make, lambda res: {"steps": np.array([res])})

    st = bench.prepare_and_warm(FirstCallSlow(), case, None, threads=1, budget=10.0, max_time=2.0)
    assert st["status"] == "ok" and not st["single"]
    assert len(durations) >= 4                       # the warm-up call, then >= 3 more
    assert st["warm_s"] >= 0.03 and 0.001 <= st["plan_s"] < 0.02
    number = bench.plan_rounds(st["plan_s"], 0.5, 2.0, 3, bench.INTERLEAVED_ROUND_TIME)[1]
    assert number >= 3


def test_cold_start_script(torch, onnxruntime, capsys):
    """bench/cold_start.py times every implementation's first call after each pause (gatedrnn
    with and without its cold-start policy) and leaves the policy setting as it found it."""
    path = os.path.join(os.path.dirname(__file__), os.pardir, "bench", "cold_start.py")
    if not os.path.exists(path):
        pytest.skip("bench/ is not in this checkout")
    spec = importlib.util.spec_from_file_location("gatedrnn_bench_cold_start_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.CASES = [bench.Case("infer", "gru_ra", "fwd", 1, 1, 6, 8),
                 bench.Case("stream", "lstm", "fwd", 1, 1, 5, 4)]
    from gatedrnn import _core
    before = _core._cold_start_adaptive()
    mod.main(["--pauses", "0,0.015", "--repeats", "2"])
    assert _core._cold_start_adaptive() == before
    out = capsys.readouterr().out
    for case in mod.CASES:
        block = out.split(case.id, 1)[1].split("\n\n", 1)[0]
        rows = {line[:32].strip(): line[32:].split() for line in block.splitlines()[2:]}
        assert set(rows) == {"gatedrnn", "gatedrnn (COLD_START=team)", "onnxruntime", "torch"}
        for name, values in rows.items():
            assert len(values) == 2 and all(float(v) > 0 for v in values), (name, values)
    with pytest.raises(SystemExit):
        mod.main(["--pauses", "soon"])
