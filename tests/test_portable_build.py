"""The default build runs on an x86-64 CPU without AVX.

The AVX2 and AVX-512 kernels live in their own translation units, compiled with -mavx2/-mavx512f
and entered only after CPUID says the CPU has them. Nothing on this machine shows it when that
rule is broken: an inline function or template from a shared header that the linker took from
an AVX2 unit, or ISA-unit code run before the CPUID check, works here and dies with SIGILL on an
older CPU. So these tests run the package this process imports under ``qemu-x86_64 -cpu Nehalem``
(Debian's qemu-user: SSE4.2, no AVX), which raises SIGILL on any AVX instruction. One emulated
subprocess runs:

- import, dispatch from CPUID (``gatedrnn.info()["simd"] == "baseline"``),
- a small forward (training=True, and inference) and backward of every cell (RNN tanh/relu,
  GRU reset_after True/False, LSTM) in float64 and float32, against gatedrnn.reference
  (float64: 1e-10; float32: against the float64 oracle on the same values, 1e-4),

and a second, short one checks that forcing ``GATEDRNN_ISA=avx2`` there is refused with an
error, not a SIGILL.

qemu-user runs the venv's interpreter directly (dynamically linked binaries use the host's
loader and libraries); NumPy and glibc pick their own SIMD from CPUID, which reports Nehalem.
Without qemu-x86_64 the tests skip, unless GATEDRNN_REQUIRE_QEMU=1 (CI) makes that a failure.
Shapes are tiny: Python under emulation is slow.
"""

import os
import platform
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

import gatedrnn

REQUIRE_QEMU_ENV = "GATEDRNN_REQUIRE_QEMU"
QEMU = "qemu-x86_64"
CPU = "Nehalem"  # SSE4.2, no AVX
TIMEOUT = 240    # seconds for one emulated child; it needs ~5 s here


def _qemu():
    """Path of qemu-x86_64, or skip (fail when GATEDRNN_REQUIRE_QEMU=1)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(f"x86-64 only (this is {platform.machine()})")
    path = shutil.which(QEMU)
    if path is None:
        msg = (f"{QEMU} not found: install Debian's qemu-user (apt-get install qemu-user) to "
               f"prove the default build runs without AVX")
        if os.environ.get(REQUIRE_QEMU_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
            pytest.fail(f"{msg}; {REQUIRE_QEMU_ENV}=1 makes a missing qemu a failure",
                        pytrace=False)
        pytest.skip(msg)
    return path


def _run_emulated(code, tmp_path, **env_overrides):
    """Run ``code`` with this interpreter under qemu -cpu Nehalem, importing the same gatedrnn
    as this process; CPUID alone picks the ISA unless ``env_overrides`` sets GATEDRNN_ISA."""
    env = {k: v for k, v in os.environ.items() if k not in ("GATEDRNN_ISA", "QEMU_CPU")}
    env.update(PYTHONFAULTHANDLER="1", OMP_NUM_THREADS="2", **env_overrides)
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(gatedrnn.__file__)))
    prologue = (f"import sys\n"
                f"if {package_dir!r} not in sys.path: sys.path.insert(0, {package_dir!r})\n")
    cmd = [_qemu(), "-cpu", CPU, sys.executable, "-c", prologue + code]
    try:
        return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        out, err = (t.decode(errors="replace") if isinstance(t, bytes) else t or ""
                    for t in (exc.stdout, exc.stderr))
        pytest.fail(f"{' '.join(cmd[:4])} ... did not finish in {TIMEOUT} s\n"
                    f"stdout:\n{out}\nstderr:\n{err[-4000:]}", pytrace=False)


def _describe(proc):
    if proc.returncode == -signal.SIGILL:
        how = (f"SIGILL under -cpu {CPU}: an AVX (or newer) instruction ran (the last 'stage:' "
               f"line of stdout, if any, and the Python stack below say where; find the "
               f"function with gdb attached to `{QEMU} -g PORT ...` or in objdump -d of "
               f"_core*.so: VEX instructions, ymm/zmm registers)")
    elif proc.returncode < 0:
        how = f"killed by signal {-proc.returncode}"
    else:
        how = f"exit status {proc.returncode}"
    return f"{how}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"


CHILD = textwrap.dedent(r"""
    import itertools

    def stage(name):
        print("stage:", name, flush=True)

    stage("numpy")
    import numpy as np
    a = np.arange(12.0).reshape(3, 4)
    assert float((a @ a.T).sum()) == 1134.0 and float(np.tanh(a).sum()) > 0

    stage("import gatedrnn")
    import gatedrnn
    import gatedrnn.functional as F
    import gatedrnn.reference as R

    stage("gatedrnn.info()")
    info = gatedrnn.info()
    print("info:", info, flush=True)
    assert info["simd"] == "baseline", f"CPUID dispatch chose {info['simd']!r} on a CPU without AVX"
    assert info["simd_available"] == ["baseline"], info["simd_available"]

    # Tiny (sizes off the vector widths: only tails; lengths with a 0) and one a little larger
    # (full micro-tiles; per-step work B*G*H*H large enough for two threads in the GRU and LSTM).
    shapes = [(4, 3, 7, 9, [4, 0, 2]), (3, 8, 16, 80, None)]
    variants = [("rnn", {"nonlinearity": "tanh"}, 1), ("rnn", {"nonlinearity": "relu"}, 1),
                ("gru", {"reset_after": True}, 3), ("gru", {"reset_after": False}, 3),
                ("lstm", {}, 4)]
    TOL = {np.float64: 1e-10, np.float32: 1e-4}

    def close(got, want, what, tol):
        want = np.asarray(want, dtype=np.float64)
        scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-3)
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=tol,
                                   atol=tol * scale, err_msg=what)

    rng = np.random.default_rng(3)
    for (T, B, I, H, lengths), (cell, opts, G), dtype in itertools.product(
            shapes, variants, (np.float64, np.float32)):
        lengths = None if lengths is None else np.array(lengths, dtype=np.int64)
        what = f"{cell} {opts} {np.dtype(dtype).name} T={T} B={B} I={I} H={H}"
        stage(what)
        k = 1 / np.sqrt(H)
        kw = dict(x=rng.standard_normal((T, B, I)),
                  weight_ih=rng.uniform(-k, k, (G * H, I)),
                  weight_hh=rng.uniform(-k, k, (G * H, H)),
                  bias_ih=rng.uniform(-k, k, G * H), bias_hh=rng.uniform(-k, k, G * H),
                  h0=0.5 * rng.standard_normal((B, H)))
        if cell == "lstm":
            kw["c0"] = 0.5 * rng.standard_normal((B, H))
        kw = {n: v.astype(dtype) for n, v in kw.items()}
        ref_kw = {n: v.astype(np.float64) for n, v in kw.items()}
        kw.update(opts, lengths=lengths)
        ref_kw.update(opts, lengths=lengths)

        out = getattr(F, cell)(**kw, training=True)
        ref = getattr(R, cell)(**ref_kw, training=True)
        states = ("h_n", "c_n") if cell == "lstm" else ("h_n",)
        for name in ("y",) + states:
            assert getattr(out, name).dtype == dtype, (what, name)
            close(getattr(out, name), getattr(ref, name), f"{what}: {name}", TOL[dtype])
        inference = getattr(F, cell)(**kw)
        close(inference.y, out.y, f"{what}: inference y", TOL[dtype])

        grads = {"dy": rng.standard_normal(out.y.shape), "dh_n": rng.standard_normal((B, H))}
        if cell == "lstm":
            grads["dc_n"] = rng.standard_normal((B, H))
        got = getattr(F, cell + "_backward")(
            out.ctx, **{n: g.astype(dtype) for n, g in grads.items()})
        want = getattr(R, cell + "_backward")(ref.ctx, **grads)
        for name in got._fields:
            assert getattr(got, name).dtype == dtype, (what, name)
            close(getattr(got, name), getattr(want, name), f"{what}: {name}", TOL[dtype])

    stage("done")
""")


def test_default_build_runs_without_avx(tmp_path):
    proc = _run_emulated(CHILD, tmp_path)
    assert proc.returncode == 0 and "stage: done" in proc.stdout, _describe(proc)


def test_forcing_avx2_without_avx_is_an_error_not_sigill(tmp_path):
    code = ("import gatedrnn\n"
            "print('imported:', gatedrnn.info()['simd'], flush=True)\n")
    proc = _run_emulated(code, tmp_path, GATEDRNN_ISA="avx2")
    assert proc.returncode > 0, _describe(proc)
    assert "this CPU does not support 'avx2'" in proc.stderr, _describe(proc)
