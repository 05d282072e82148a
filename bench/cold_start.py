"""The first call after a pause: gatedrnn, ONNX Runtime and PyTorch side by side.

    python bench/cold_start.py [--threads 2] [--pauses 0,0.01,0.1,0.3] [--repeats 10]

A server answering sporadic requests makes its calls after pauses, and between calls every
library's thread pool goes idle. Waking it is cheap on a dedicated machine, but where a virtual
machine's host gives an idle vCPU's core to another guest it can cost milliseconds, more than
the call itself (README, "Cold starts"). For each case and pause this sleeps for the pause, then
times one call, and prints the median over ``--repeats`` of those first calls, in microseconds
(pause 0: calls back to back). gatedrnn runs twice: with its cold-start policy (the default) and
with it turned off (``GATEDRNN_COLD_START=team``), which shows what the policy changes. The
implementations and their settings (threads, inference mode, packed weights) are those of
``python -m gatedrnn bench``; peers that are not installed are left out.
"""

import argparse
import statistics
import time

from gatedrnn import _core
from gatedrnn import bench as harness

CASES = [
    harness.Case("infer", "gru_ra", "fwd", 1, 1, 512, 512),     # a one-step call, raw weights
    harness.Case("stream", "lstm", "fwd", 1, 1, 256, 256),      # one streaming step, a handle
    harness.Case("infer", "lstm", "fwd", 25, 1, 512, 512),      # a short sequence
]


def first_calls(fn, ctx, pauses, repeats):
    """Median seconds of a call made right after each pause."""
    out = {}
    with ctx():
        for _ in range(5):
            fn()
        for pause in pauses:
            times = []
            for _ in range(repeats):
                time.sleep(pause)
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            out[pause] = statistics.median(times)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for every implementation (default 2)")
    parser.add_argument("--pauses", default="0,0.01,0.1,0.3",
                        help="comma-separated pauses in seconds (default 0,0.01,0.1,0.3)")
    parser.add_argument("--repeats", type=int, default=10, help="calls per pause (default 10)")
    args = parser.parse_args(argv)
    try:
        pauses = [float(p) for p in args.pauses.split(",")]
    except ValueError:
        parser.error(f"--pauses: expected comma-separated seconds, got {args.pauses!r}")
    if any(p < 0 for p in pauses) or args.repeats < 1 or args.threads < 1:
        parser.error("--pauses must be >= 0, --repeats and --threads >= 1")

    notes = set()
    impls, torch = harness.make_implementations(["gatedrnn", "onnxruntime", "torch"], notes)
    adaptive = _core._cold_start_adaptive()
    header = f"  {'pause:':<30}" + "  ".join(f"{f'{p * 1e3:g} ms':>10}" for p in pauses)
    print(f"first call after a pause, median of {args.repeats}, microseconds; "
          f"{args.threads} threads for everyone")
    for case in CASES:
        prob = harness.make_problem(case)
        print(f"\n{case.id}\n{header}")
        with harness.ThreadSettings(args.threads, torch):
            for name, impl in impls.items():
                st = harness.prepare_and_warm(impl, case, prob, threads=args.threads, budget=30,
                                              max_time=2)
                if st["status"] != "ok":
                    print(f"  {name:<24} {st['status']}: {st.get('note', '')}")
                    continue
                runs = [(name, True)] if name != "gatedrnn" else [
                    ("gatedrnn", True), ("gatedrnn (COLD_START=team)", False)]
                for label, policy in runs:
                    try:
                        if name == "gatedrnn":
                            _core._set_cold_start_adaptive(policy)
                        res = first_calls(st["fn"], st["ctx"], pauses, args.repeats)
                    finally:
                        _core._set_cold_start_adaptive(adaptive)
                    print(f"  {label:<30}" + "  ".join(f"{res[p] * 1e6:>10.0f}" for p in pauses))
    for note in sorted(notes):
        print("note:", note)


if __name__ == "__main__":
    main()
