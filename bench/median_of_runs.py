"""Merge several runs of ``python -m gatedrnn bench --json PATH`` into one table of medians.

    python bench/median_of_runs.py run1.json run2.json run3.json [--json merged.json]

On a shared machine one run's ratios move by tens of percent from run to run. Per case this
prints the median over the runs of every time and of every ratio as measured within each run
(``gatedrnn.bench.median_report``), then the per-group summary and the targets evaluated on
those medians.
"""

import argparse
import json
import sys

from gatedrnn import bench as harness


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="JSON reports written by --json")
    parser.add_argument("--json", metavar="PATH", help="also write the merged report as JSON")
    args = parser.parse_args(argv)
    reports = []
    for path in args.runs:
        with open(path) as fh:
            reports.append(json.load(fh))
    merged = harness.median_report(reports)
    print(harness.format_report(merged))
    if args.json:
        harness.write_json(merged, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
