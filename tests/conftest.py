"""Shared fixtures and helpers for the gatedrnn test suite.

Peers (torch, onnx, onnxruntime) are optional for a developer but mandatory in CI: request them
through the fixtures below (or ``require_peer``). When the environment variable
``GATEDRNN_REQUIRE_PEERS=1`` is set (``.ci/run`` sets it) a missing peer FAILS the test instead
of skipping it, so parity tests can never silently disappear.

Helpers used by several test files (``from conftest import ...`` works in every import mode
because this directory is put on ``sys.path`` below):

- ``VARIANTS``: every cell/option combination (rnn tanh/relu, gru reset_after True/False, lstm).
- ``make_inputs``: random, well-conditioned inputs for one variant.
- ``forward`` / ``backward``: call a module (``gatedrnn.functional`` or ``gatedrnn.reference``)
  for one variant with the right keyword arguments.
- ``assert_close``: the float32/float64 tolerance policy, documented where it is defined.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

REQUIRE_PEERS_ENV = "GATEDRNN_REQUIRE_PEERS"


@pytest.fixture(autouse=True, scope="session")
def _team_always_used():
    """Every call sizes its thread team as if the team were awake (GATEDRNN_COLD_START=team):
    a small call after a pause would otherwise run on the calling thread alone once a costly
    wake-up has been measured, and the tests written for two threads would not exercise them.
    test_threads.py turns the adaptive policy back on where it tests it."""
    from gatedrnn import _core
    saved = _core._cold_start_adaptive()
    _core._set_cold_start_adaptive(False)
    yield
    _core._set_cold_start_adaptive(saved)


def peers_required() -> bool:
    """True when a missing peer must fail the test (CI), False when it may skip (a laptop)."""
    return os.environ.get(REQUIRE_PEERS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def require_peer(name: str):
    """Import and return the peer module ``name``.

    If it cannot be imported: ``pytest.fail`` when GATEDRNN_REQUIRE_PEERS=1, else ``pytest.skip``.
    Any exception during import counts as "missing" (a broken install raises OSError etc.).
    """
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - any import failure means the peer is unusable
        msg = f"peer {name!r} cannot be imported ({type(exc).__name__}: {exc})"
        if peers_required():
            pytest.fail(f"{msg}; {REQUIRE_PEERS_ENV}=1 makes a missing peer a failure",
                        pytrace=False)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def torch():
    return require_peer("torch")


@pytest.fixture(scope="session")
def onnx():
    return require_peer("onnx")


@pytest.fixture(scope="session")
def onnxruntime():
    return require_peer("onnxruntime")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "peers: the test compares against a peer library (torch, onnxruntime, ...)")


def pytest_report_header(config):
    lines = [f"{REQUIRE_PEERS_ENV}={os.environ.get(REQUIRE_PEERS_ENV, '')!r} "
             f"(missing peers {'FAIL' if peers_required() else 'skip'})"]
    try:
        import gatedrnn
        info = getattr(gatedrnn, "info", None)
        lines.append(f"gatedrnn {getattr(gatedrnn, '__version__', '?')}: "
                     f"{info() if callable(info) else 'no info()'}")
    except Exception as exc:  # noqa: BLE001 - a header must never break collection
        lines.append(f"gatedrnn not importable: {exc!r}")
    return lines


# --------------------------------------------------------------------------------------------
# Variants and inputs
# --------------------------------------------------------------------------------------------

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


@dataclass(frozen=True)
class Variant:
    """One cell with its cell-specific keyword options (nonlinearity / reset_after)."""

    name: str
    cell: str
    opts: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def G(self) -> int:
        return GATES[self.cell]

    @property
    def is_lstm(self) -> bool:
        return self.cell == "lstm"

    def __repr__(self):
        return self.name


VARIANTS = [
    Variant("rnn_tanh", "rnn", {"nonlinearity": "tanh"}),
    Variant("rnn_relu", "rnn", {"nonlinearity": "relu"}),
    Variant("gru_reset_after", "gru", {"reset_after": True}),
    Variant("gru_reset_before", "gru", {"reset_after": False}),
    Variant("lstm", "lstm", {}),
]
VARIANT_BY_NAME = {v.name: v for v in VARIANTS}
variant_params = pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
dtype_params = pytest.mark.parametrize("dtype", [np.float32, np.float64],
                                       ids=["float32", "float64"])


def make_lengths(rng, B, T, kind):
    """lengths of the given kind: None, 'full' (all T), 'zeros' (all 0), 'mixed' (zeros and T
    among others, random order), 'nozero' (1..T random order)."""
    if kind is None:
        return None
    if kind == "full":
        return np.full(B, T, dtype=np.int64)
    if kind == "zeros":
        return np.zeros(B, dtype=np.int64)
    if kind == "nozero":
        return rng.integers(1, T + 1, size=B).astype(np.int64) if T > 0 else np.zeros(B, np.int64)
    if kind == "mixed":
        lengths = rng.integers(0, T + 1, size=B).astype(np.int64)
        # guarantee at least one 0 and one full length when B allows, in random positions
        if B >= 2:
            pos = rng.permutation(B)[:2]
            lengths[pos[0]] = 0
            lengths[pos[1]] = T
        return lengths
    raise ValueError(kind)


def make_inputs(rng, variant: Variant, T, B, I, H, dtype, *, bias=True, h0=True, c0=True,
                lengths=None, batch_first=False, mask=False):
    """Random inputs for ``variant`` as keyword arguments of the functional call.

    Weights follow PyTorch's default init U(-1/sqrt(H), 1/sqrt(H)) so every cell (relu too)
    stays well conditioned over 20+ steps; x ~ N(0, 1); states ~ N(0, 0.5^2);
    the recurrent mask looks like inverted dropout (0 or 1/(1-p)).
    """
    G = variant.G
    k = 1.0 / np.sqrt(H) if H > 0 else 1.0
    u = lambda *shape: rng.uniform(-k, k, size=shape).astype(dtype)  # noqa: E731
    x_shape = (B, T, I) if batch_first else (T, B, I)
    kw = {
        "x": rng.standard_normal(x_shape).astype(dtype),
        "weight_ih": u(G * H, I),
        "weight_hh": u(G * H, H),
        "bias_ih": u(G * H) if bias else None,
        "bias_hh": u(G * H) if bias else None,
        "h0": (0.5 * rng.standard_normal((B, H))).astype(dtype) if h0 else None,
    }
    if variant.is_lstm:
        kw["c0"] = (0.5 * rng.standard_normal((B, H))).astype(dtype) if c0 else None
    kw["lengths"] = make_lengths(rng, B, T, lengths)
    kw["batch_first"] = batch_first
    if mask:
        keep = rng.random((B, H)) < 0.7
        kw["recurrent_mask"] = (keep / 0.7).astype(dtype)
    return kw


def forward(mod, variant: Variant, kw, **extra):
    """Call ``mod.<cell>(**kw, **variant.opts, **extra)``."""
    fn = getattr(mod, variant.cell)
    return fn(**kw, **variant.opts, **extra)


def backward(mod, variant: Variant, ctx, dy=None, dh_n=None, dc_n=None, return_dh_seq=False):
    fn = getattr(mod, variant.cell + "_backward")
    if variant.is_lstm:
        return fn(ctx, dy=dy, dh_n=dh_n, dc_n=dc_n, return_dh_seq=return_dh_seq)
    assert dc_n is None
    return fn(ctx, dy=dy, dh_n=dh_n, return_dh_seq=return_dh_seq)


def make_output_grads(rng, variant: Variant, out, which=("dy", "dh_n", "dc_n")):
    """Random gradients with the shapes/dtype of the forward outputs; keys not in ``which``
    are None."""
    dt = out.y.dtype
    g = {"dy": None, "dh_n": None, "dc_n": None}
    if "dy" in which:
        g["dy"] = rng.standard_normal(out.y.shape).astype(dt)
    if "dh_n" in which:
        g["dh_n"] = rng.standard_normal(out.h_n.shape).astype(dt)
    if variant.is_lstm and "dc_n" in which:
        g["dc_n"] = rng.standard_normal(out.c_n.shape).astype(dt)
    return g


def upcast(kw):
    """Copy of the inputs with every float array in float64 (for a float64 oracle run)."""
    out = {}
    for k, v in kw.items():
        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            out[k] = v.astype(np.float64)
        else:
            out[k] = v
    return out


def seed_of(*parts) -> int:
    """A deterministic seed from any printable parts (Python's hash() is salted per process)."""
    import zlib
    return zlib.crc32(repr(parts).encode())


GRAD_FIELDS = ("dx", "dh0", "dc0", "dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh")

# --------------------------------------------------------------------------------------------
# Tolerances
# --------------------------------------------------------------------------------------------
#
# We compare the core against an oracle evaluated in float64 (for float32 inputs the oracle
# runs on the same float32 values cast up, so its error is ~1e-16 and everything we see is the
# core's own rounding).  Each entry of an output is a sum of K rounded products (K = I + H per
# forward step, G*H for dx/dh, T*B for the weight and bias gradients), so its rounding error
# behaves like a random walk: ~ sqrt(K) * eps * (typical magnitude of the summands).  We bound
# the summands' magnitude by the largest entry of the expected array ("scale", floored at 1e-3
# so an array of exact zeros still gets a tiny absolute floor).  Errors made at one step are
# carried into later steps by the recurrence and by BPTT; with the PyTorch-style init used here
# the recurrence is contractive, so that adds only a modest factor.  Measured on the shapes of
# this suite (T up to 30, H up to 128, masks, lengths, reverse), a float32 NumPy implementation
# stays below 0.3 * sqrt(K) * eps * scale; C_ABS = 16 leaves room for a different summation
# order (blocked/sequential GEMM accumulation, a few-ulp exp-based activation) while a real
# bug (wrong gate, off-by-one step, missing term) is O(1e-2 .. 1) and far outside.  On top of
# that a relative term (1e-5 ~ 80 ulp for float32, 1e-12 for float64) covers entries whose own
# magnitude dominates.
#
#     |got - want| <= rtol * |want| + C_ABS * sqrt(K) * eps(dtype) * scale
#
C_ABS = 16.0
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def tolerance(dtype, K, scale):
    dtype = np.dtype(dtype)
    eps = np.finfo(dtype).eps
    atol = C_ABS * np.sqrt(max(K, 1)) * eps * max(scale, 1e-3)
    return RTOL[dtype], atol


def assert_close(got, want, *, dtype, K, name="", scale=None, factor=1.0):
    """Compare ``got`` (core, in ``dtype``) with ``want`` (oracle) under the policy above.

    ``factor`` widens the tolerance when BOTH sides carry ``dtype`` rounding (peer parity).
    NaNs must be in the same places.
    """
    assert got is not None, f"{name}: got None"
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != expected {want.shape}"
    if want.size == 0:
        return
    if scale is None:
        finite = want[np.isfinite(want)]
        scale = float(np.max(np.abs(finite))) if finite.size else 1.0
    rtol, atol = tolerance(dtype, K, scale)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                               rtol=rtol * factor, atol=atol * factor, equal_nan=True,
                               err_msg=f"{name} (dtype={np.dtype(dtype).name}, K={K})")


def grad_reduction_lengths(variant: Variant, T, B, I, H):
    """Reduction length K behind each output/gradient, for ``tolerance``: forward values are
    sums over I + H per step, dx/dh0/dc0/dh_seq over G*H, weight/bias gradients over T*B rows."""
    G = variant.G
    return {
        "y": I + H, "h_n": I + H, "c_n": I + H,
        "dx": G * H, "dh0": G * H, "dc0": G * H, "dh_seq": G * H,
        "dweight_ih": T * B, "dweight_hh": T * B, "dbias_ih": T * B, "dbias_hh": T * B,
    }


def numerical_gradient(f, a, eps=1e-6):
    """Central differences of the scalar f() with respect to every element of array a
    (perturbed in place, restored afterwards)."""
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        orig = a[idx]
        a[idx] = orig + eps
        f_plus = f()
        a[idx] = orig - eps
        f_minus = f()
        a[idx] = orig
        g[idx] = (f_plus - f_minus) / (2 * eps)
    return g


def randomize_weights(layer, rng, scale=0.5):
    """Weights ~ U(-1, 1) * 2 * scale / sqrt(fan), non-zero biases: every term counts."""
    ws = []
    for w in layer.get_weights():
        fan = max(w.shape[-1], 1)
        ws.append(rng.uniform(-1, 1, w.shape).astype(w.dtype) * (2 * scale / np.sqrt(fan)))
    layer.set_weights(ws)
    return layer
