"""Turn a pytest-benchmark JSON file of bench/ into gatedrnn's ratio table.

    python -m pytest bench/ --benchmark-only --benchmark-json results.json
    python bench/report.py results.json [--json report.json] [--png speedup.png]

Prints, per case: the median time of each implementation (per step for streaming), the
speed-up of gatedrnn against each peer (peer time / gatedrnn time), gatedrnn's GFLOP/s, its %
of the large-SGEMM ceiling and (forward, batch <= 4) of the memory-bandwidth bound measured in
the same session, and the parity check; then the per-group summary, each subnormal case's speed
relative to its normal twin (here two rows timed one after the other, not in turns as
``python -m gatedrnn bench`` times them) and the issue-3 targets.
The columns are those of ``python -m gatedrnn bench`` (see gatedrnn/bench.py). Implementations
that were skipped (n/a, over budget, filtered out) show "-".
"""

import argparse
import json
import sys

from gatedrnn import bench as harness


def report_from_benchmarks(benchmarks, machine=None):
    """A gatedrnn.bench report dict from pytest-benchmark entries (``as_dict()`` or the
    "benchmarks" list of its JSON). Entries without gatedrnn extra_info are ignored."""
    rows, order, sgemm, threads = {}, [], None, None
    present = set()
    for b in benchmarks:
        info = b.get("extra_info") or {}
        if "case_id" not in info:
            continue
        case = harness.Case(**info["case"])
        if case.id not in rows:
            rows[case.id] = (case, harness.new_row(case), info.get("bw_bound_s"))
            order.append(case.id)
        row = rows[case.id][1]
        stats = b["stats"]
        impl = info["impl"]
        present.add(impl)
        row["impls"][impl] = {"status": "ok", "median_s": stats["median"] / info["per_unit"],
                              "rounds": stats["rounds"], "number": stats.get("iterations", 1)}
        if info.get("parity"):
            row["parity"][impl] = info["parity"]
        if info.get("parity") or impl == "gatedrnn":
            row["parity_anchor"] = "gatedrnn"
        if info.get("foreign_cpu") is not None:   # the worst interference of the case
            row["foreign_cpu"] = max(row.get("foreign_cpu") or 0.0, info["foreign_cpu"])
        sgemm = info.get("sgemm_gflops", sgemm)
        threads = info.get("threads", threads)
    cases = harness.compare_with_twins(
        [harness.finish_row(rows[i][1], sgemm, rows[i][2]) for i in order])
    names = [n for n in harness.IMPLEMENTATIONS if n in present or n == "gatedrnn"]
    for row in cases:  # an implementation missing from a case was skipped or filtered out
        for n in names:
            row["impls"].setdefault(n, {"status": "-"})
            if n != "gatedrnn":
                row["speedup"].setdefault(n, None)
    return {"machine": machine or {}, "settings": {"threads": threads, "implementations": names},
            "ceilings": {"sgemm_gflops": sgemm} if sgemm else {}, "cases": cases,
            "targets": harness.check_targets(cases)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="a JSON file written by --benchmark-json")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    parser.add_argument("--png", metavar="PATH", help="also plot speed-up vs batch size")
    args = parser.parse_args(argv)
    with open(args.results) as fh:
        data = json.load(fh)
    machine = (data.get("machine_info") or {}).get("gatedrnn_bench")
    report = report_from_benchmarks(data.get("benchmarks", []), machine)
    if not report["cases"]:
        print(f"{args.results}: no gatedrnn bench results in it", file=sys.stderr)
        return 1
    print(harness.format_report(report))
    if args.json:
        harness.write_json(report, args.json)
    if args.png:
        why = harness.write_png(report, args.png)
        print(f"speed-up plot: {args.png}" if why is None else f"note: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
