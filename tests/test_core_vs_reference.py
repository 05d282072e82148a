"""The C++ core (through gatedrnn.functional) against gatedrnn.reference, the plain NumPy oracle.

Every case checks outputs, final states and every gradient (dx, dh0, dc0, dweight_ih, dweight_hh,
dbias_ih, dbias_hh, dh_seq), plus the result types, shapes and dtypes.  The oracle always runs in
float64 on the same input values (float32 inputs are cast up), so the tolerance only has to
cover the core's rounding; see ``conftest.tolerance`` for the policy and its justification.

A few semantic facts of DESIGN.md section 2 are also asserted directly (independently of the
oracle): outputs, dx and dh_seq are zero past a sequence's length; a sequence of length 0 returns
h0/c0 and passes dh_n/dc_n straight to dh0/dc0.
"""

import numpy as np
import pytest

import gatedrnn.functional as F
import gatedrnn.reference as R
from conftest import (
    GRAD_FIELDS,
    VARIANTS,
    assert_close,
    backward,
    dtype_params,
    forward,
    grad_reduction_lengths,
    make_inputs,
    make_output_grads,
    seed_of,
    upcast,
    variant_params,
)

ALL_GRADS = ("dy", "dh_n", "dc_n")


def _sizes(kw):
    x = kw["x"]
    if kw["batch_first"]:
        B, T, I = x.shape
    else:
        T, B, I = x.shape
    H = kw["weight_hh"].shape[1]
    return T, B, I, H


def _time_major(a, batch_first):
    return a.transpose(1, 0, 2) if batch_first else a


def _expected_grad_shapes(variant, kw):
    T, B, I, H = _sizes(kw)
    G = variant.G
    shapes = {"dx": kw["x"].shape, "dh0": (B, H), "dc0": (B, H), "dweight_ih": (G * H, I),
              "dweight_hh": (G * H, H), "dbias_ih": (G * H,), "dbias_hh": (G * H,),
              "dh_seq": kw["x"].shape[:2] + (H,)}
    return shapes


def check_forward(variant, kw, out, ref, dtype, training):
    T, B, I, H = _sizes(kw)
    K = grad_reduction_lengths(variant, T, B, I, H)
    if variant.is_lstm:
        expected_type = "LSTMTrainOutput" if training else "LSTMOutput"
        fields = ("y", "h_n", "c_n")
    else:
        expected_type = "RNNTrainOutput" if training else "RNNOutput"
        fields = ("y", "h_n")
    if training:
        fields = fields + ("ctx",)
    assert type(out).__name__ == expected_type
    assert out._fields == fields
    y_shape = (B, T, H) if kw["batch_first"] else (T, B, H)
    for name in fields:
        if name == "ctx":
            continue
        got = getattr(out, name)
        assert isinstance(got, np.ndarray), name
        assert got.dtype == dtype, f"{name}: dtype {got.dtype}, expected {np.dtype(dtype)}"
        assert got.shape == (y_shape if name == "y" else (B, H)), f"{name}: shape {got.shape}"
        assert_close(got, getattr(ref, name), dtype=dtype, K=K[name], name=name)

    # Semantics asserted independently of the oracle.
    lengths = kw["lengths"]
    if lengths is not None and T > 0:
        y_tm = _time_major(out.y, kw["batch_first"])
        past = np.arange(T)[:, None] >= lengths[None, :]  # (T, B)
        assert np.all(y_tm[past] == 0), "y must be exactly zero at t >= lengths[b]"
        zero = lengths == 0
        h0 = kw["h0"] if kw["h0"] is not None else np.zeros((B, H), dtype)
        np.testing.assert_array_equal(out.h_n[zero], h0[zero], "h_n must be h0 when length 0")
        if variant.is_lstm:
            c0 = kw["c0"] if kw["c0"] is not None else np.zeros((B, H), dtype)
            np.testing.assert_array_equal(out.c_n[zero], c0[zero],
                                          "c_n must be c0 when length 0")


def check_grads(variant, kw, grads, ref, dtype, return_dh_seq, given):
    T, B, I, H = _sizes(kw)
    K = grad_reduction_lengths(variant, T, B, I, H)
    fields = tuple(f for f in GRAD_FIELDS if variant.is_lstm or f != "dc0")
    prefix = "LSTMGradients" if variant.is_lstm else "RNNGradients"
    if return_dh_seq:
        fields = fields + ("dh_seq",)
        prefix += "WithSeq"
    assert type(grads).__name__ == prefix
    assert grads._fields == fields
    shapes = _expected_grad_shapes(variant, kw)
    for name in fields:
        got = getattr(grads, name)
        if name.startswith("dbias") and kw[name[1:]] is None:
            assert got is None, f"{name} must be None when {name[1:]} was None"
            continue
        assert isinstance(got, np.ndarray), f"{name}: {type(got)}"
        assert got.dtype == dtype, f"{name}: dtype {got.dtype}, expected {np.dtype(dtype)}"
        assert got.shape == shapes[name], f"{name}: shape {got.shape} != {shapes[name]}"
        assert_close(got, getattr(ref, name), dtype=dtype, K=K[name], name=name)

    lengths = kw["lengths"]
    if lengths is not None and T > 0:
        past = np.arange(T)[:, None] >= lengths[None, :]
        dx_tm = _time_major(grads.dx, kw["batch_first"])
        assert np.all(dx_tm[past] == 0), "dx must be exactly zero at t >= lengths[b]"
        if return_dh_seq:
            seq_tm = _time_major(grads.dh_seq, kw["batch_first"])
            assert np.all(seq_tm[past] == 0), "dh_seq must be zero at t >= lengths[b]"
        zero = lengths == 0
        dh_n = given["dh_n"] if given["dh_n"] is not None else np.zeros((B, H), dtype)
        np.testing.assert_array_equal(grads.dh0[zero], dh_n[zero],
                                      "dh0 must equal dh_n for a length-0 sequence")
        if variant.is_lstm:
            dc_n = given["dc_n"] if given["dc_n"] is not None else np.zeros((B, H), dtype)
            np.testing.assert_array_equal(grads.dc0[zero], dc_n[zero],
                                          "dc0 must equal dc_n for a length-0 sequence")


def run_case(variant, dtype, T, B, I, H, seed, *, reverse=False, which=ALL_GRADS,
             return_dh_seq=True, **input_opts):
    rng = np.random.default_rng(seed)
    kw = make_inputs(rng, variant, T, B, I, H, dtype, **input_opts)
    originals = {k: v.copy() for k, v in kw.items() if isinstance(v, np.ndarray)}

    out = forward(F, variant, kw, training=True, reverse=reverse)
    ref = forward(R, variant, upcast(kw), training=True, reverse=reverse)
    check_forward(variant, kw, out, ref, dtype, training=True)

    inference = forward(F, variant, kw, training=False, reverse=reverse)
    check_forward(variant, kw, inference, ref, dtype, training=False)

    given = make_output_grads(rng, variant, out, which)
    grads = backward(F, variant, out.ctx, **given, return_dh_seq=return_dh_seq)
    ref_grads = backward(R, variant, ref.ctx, **upcast(given), return_dh_seq=return_dh_seq)
    check_grads(variant, kw, grads, ref_grads, dtype, return_dh_seq, given)

    for k, v in originals.items():
        np.testing.assert_array_equal(kw[k], v, f"input {k} was modified")
    return kw, out, grads


# ----------------------------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------------------------

SHAPES = [
    (1, 1, 1, 1),
    (1, 1, 7, 13),
    (1, 6, 7, 13),
    (5, 1, 7, 13),
    (5, 4, 7, 13),
    (3, 2, 16, 8),
    (7, 3, 5, 32),
    (20, 9, 33, 40),
    # shapes that reach other code paths of the core: per-step work above the threading
    # threshold (rows split over threads), a large batch with a tiny H, a long input
    # reduction (GEMM K tails), H beyond a SIMD-friendly multiple
    (5, 37, 19, 67),
    (4, 130, 3, 5),
    (3, 6, 300, 33),
    (2, 3, 5, 130),
    # one step of up to 64 rows: the backward reads W_hh and W_ih in place, by whole panels
    # plus a packed partial one
    (1, 40, 70, 70),
]


@variant_params
@dtype_params
@pytest.mark.parametrize("shape", SHAPES, ids=["T%d-B%d-I%d-H%d" % s for s in SHAPES])
def test_shapes(variant, dtype, shape):
    T, B, I, H = shape
    run_case(variant, dtype, T, B, I, H, seed=seed_of(variant.name, shape))


# ----------------------------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------------------------

OPTIONS = {
    "lengths_mixed": dict(lengths="mixed"),
    "lengths_full": dict(lengths="full"),
    "lengths_nozero": dict(lengths="nozero"),
    "lengths_all_zero": dict(lengths="zeros"),
    "lengths_all_zero_reverse": dict(lengths="zeros", reverse=True),
    "reverse": dict(reverse=True),
    "reverse_lengths": dict(reverse=True, lengths="mixed"),
    "no_bias": dict(bias=False),
    "no_h0": dict(h0=False, c0=False),
    "no_bias_no_h0": dict(bias=False, h0=False, c0=False),
    "h0_only": dict(c0=False),  # LSTM: h0 given, c0 missing
    "batch_first": dict(batch_first=True),
    "batch_first_reverse_lengths": dict(batch_first=True, reverse=True, lengths="mixed"),
    "mask": dict(mask=True),
    "mask_lengths_reverse": dict(mask=True, lengths="mixed", reverse=True),
    "everything": dict(mask=True, lengths="mixed", reverse=True, batch_first=True, bias=False),
    "no_dh_seq": dict(return_dh_seq=False, lengths="mixed"),
}


@variant_params
@dtype_params
@pytest.mark.parametrize("option", list(OPTIONS), ids=list(OPTIONS))
def test_options(variant, dtype, option):
    run_case(variant, dtype, 6, 5, 7, 13, seed=seed_of(variant.name, option),
             **OPTIONS[option])


@variant_params
@dtype_params
@pytest.mark.parametrize("option", ["lengths_mixed_reverse_mask", "batch_first_lengths"])
def test_large(variant, dtype, option):
    opts = (dict(lengths="mixed", reverse=True, mask=True) if option.startswith("lengths")
            else dict(batch_first=True, lengths="mixed"))
    run_case(variant, dtype, 20, 9, 33, 40, seed=7, **opts)


@variant_params
@pytest.mark.parametrize("lengths_dtype", [np.int8, np.uint8, np.int16, np.int32, np.uint32,
                                           np.int64, np.uint64])
def test_lengths_integer_dtypes(variant, lengths_dtype):
    """Any signed/unsigned integer dtype is accepted for lengths and gives the same numbers."""
    rng = np.random.default_rng(3)
    kw = make_inputs(rng, variant, 6, 5, 7, 13, np.float64, lengths="mixed")
    base = forward(F, variant, kw)
    kw2 = dict(kw, lengths=kw["lengths"].astype(lengths_dtype))
    other = forward(F, variant, kw2)
    for name in base._fields:
        np.testing.assert_array_equal(getattr(other, name), getattr(base, name), name)


# ----------------------------------------------------------------------------------------------
# Which output gradients are given
# ----------------------------------------------------------------------------------------------

WHICH = {
    "dy_only": ("dy",),
    "dh_n_only": ("dh_n",),
    "dc_n_only": ("dc_n",),
    "dy_and_dh_n": ("dy", "dh_n"),
    "all": ALL_GRADS,
}


@pytest.mark.parametrize("variant,which", [
    pytest.param(v, w, id=f"{v.name}-{w}") for v in VARIANTS for w in WHICH
    if v.is_lstm or w != "dc_n_only"])
@dtype_params
def test_given_gradients(variant, dtype, which):
    run_case(variant, dtype, 6, 5, 7, 13, seed=11, lengths="mixed", reverse=which == "dy_only",
             which=WHICH[which])


@variant_params
@dtype_params
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_no_gradient_given_is_all_zeros(variant, dtype, bias):
    rng = np.random.default_rng(5)
    kw = make_inputs(rng, variant, 4, 3, 5, 6, dtype, lengths="mixed", bias=bias)
    out = forward(F, variant, kw, training=True)
    grads = backward(F, variant, out.ctx, return_dh_seq=True)
    shapes = _expected_grad_shapes(variant, kw)
    for name in grads._fields:
        got = getattr(grads, name)
        if name.startswith("dbias") and not bias:
            assert got is None, name
            continue
        assert isinstance(got, np.ndarray) and got.dtype == dtype, name
        assert got.shape == shapes[name], name
        assert not np.any(got), f"{name} must be all zeros when no gradient is given"


# ----------------------------------------------------------------------------------------------
# A context is reusable
# ----------------------------------------------------------------------------------------------

@variant_params
@dtype_params
def test_ctx_reused_for_several_backward_calls(variant, dtype):
    rng = np.random.default_rng(13)
    kw = make_inputs(rng, variant, 6, 5, 7, 13, dtype, lengths="mixed", mask=True)
    out = forward(F, variant, kw, training=True, reverse=True)
    ref = forward(R, variant, upcast(kw), training=True, reverse=True)
    first_given = make_output_grads(rng, variant, out)
    second_given = make_output_grads(rng, variant, out, which=("dh_n",))
    given_copy = {k: (v.copy() if v is not None else None) for k, v in first_given.items()}

    first = backward(F, variant, out.ctx, **first_given, return_dh_seq=True)
    second = backward(F, variant, out.ctx, **second_given, return_dh_seq=True)
    again = backward(F, variant, out.ctx, **first_given, return_dh_seq=True)

    for given, got in ((first_given, first), (second_given, second)):
        want = backward(R, variant, ref.ctx, **upcast(given), return_dh_seq=True)
        check_grads(variant, kw, got, want, dtype, True, given)
    for name in first._fields:
        a, b = getattr(first, name), getattr(again, name)
        np.testing.assert_array_equal(a, b, f"{name} differs on a repeated backward call")
    for k, v in given_copy.items():
        if v is not None:
            np.testing.assert_array_equal(first_given[k], v, f"{k} was modified by backward")


@variant_params
@pytest.mark.parametrize("layout", ["contiguous", "fortran"])
def test_ctx_outlives_the_caller_arrays(variant, layout):
    """Backward after the caller dropped x, the weights and the forward outputs (and memory was
    reused) gives the same gradients: ctx keeps alive whatever it points to, including the
    copies made for non-contiguous inputs."""
    import gc

    rng = np.random.default_rng(59)
    kw = make_inputs(rng, variant, 6, 5, 7, 13, np.float64, lengths="mixed", mask=True)
    if layout == "fortran":
        kw = {k: (np.asfortranarray(v) if isinstance(v, np.ndarray) and v.ndim > 1 else v)
              for k, v in kw.items()}
    ref = forward(R, variant, upcast(kw), training=True)
    out = forward(F, variant, kw, training=True)
    given = make_output_grads(rng, variant, out)
    want = backward(R, variant, ref.ctx, **upcast(given), return_dh_seq=True)
    ctx = out.ctx
    del out, kw
    gc.collect()
    junk = [np.full(n, np.nan) for n in (210, 52 * 7, 52 * 13, 52, 65) * 40]  # reuse memory
    got = backward(F, variant, ctx, **given, return_dh_seq=True)
    del junk
    K = grad_reduction_lengths(variant, 6, 5, 7, 13)
    for name in want._fields:
        if getattr(want, name) is not None:
            assert_close(getattr(got, name), getattr(want, name), dtype=np.float64, K=K[name],
                         name=name)


# ----------------------------------------------------------------------------------------------
# Empty sizes
# ----------------------------------------------------------------------------------------------

@variant_params
@dtype_params
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("h0", [True, False], ids=["h0", "no_h0"])
def test_zero_time_steps(variant, dtype, batch_first, h0):
    B, I, H = 3, 4, 5
    rng = np.random.default_rng(17)
    kw = make_inputs(rng, variant, 0, B, I, H, dtype, batch_first=batch_first, h0=h0, c0=h0)
    out = forward(F, variant, kw, training=True)
    assert out.y.shape == ((B, 0, H) if batch_first else (0, B, H))
    assert out.y.dtype == dtype
    h0_val = kw["h0"] if h0 else np.zeros((B, H), dtype)
    np.testing.assert_array_equal(out.h_n, h0_val)
    if h0:
        assert not np.shares_memory(out.h_n, kw["h0"]), "h_n must be a copy of h0, not h0"
    if variant.is_lstm:
        np.testing.assert_array_equal(out.c_n, kw["c0"] if h0 else np.zeros((B, H), dtype))
        if h0:
            assert not np.shares_memory(out.c_n, kw["c0"])
    given = make_output_grads(rng, variant, out)
    grads = backward(F, variant, out.ctx, **given, return_dh_seq=True)
    shapes = _expected_grad_shapes(variant, kw)
    for name in grads._fields:
        assert getattr(grads, name).shape == shapes[name], name
        assert getattr(grads, name).dtype == dtype, name
    np.testing.assert_array_equal(grads.dh0, given["dh_n"])
    if variant.is_lstm:
        np.testing.assert_array_equal(grads.dc0, given["dc_n"])
    for name in ("dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh"):
        assert not np.any(getattr(grads, name)), f"{name} must be zero for T = 0"
    # the oracle agrees
    ref = forward(R, variant, upcast(kw), training=True)
    check_forward(variant, kw, out, ref, dtype, training=True)


@variant_params
@dtype_params
@pytest.mark.parametrize("size", ["B0", "I0", "B0_I0", "T0_B0"])
def test_empty_sizes(variant, dtype, size):
    T, B, I, H = 4, 3, 5, 6
    if "T0" in size:
        T = 0
    if "B0" in size:
        B = 0
    if "I0" in size:
        I = 0
    lengths = "mixed" if B > 0 else None
    run_case(variant, dtype, T, B, I, H, seed=19, lengths=lengths)
    run_case(variant, dtype, T, B, I, H, seed=20, reverse=True, batch_first=True)


@variant_params
@dtype_params
def test_empty_batch_with_lengths(variant, dtype):
    """B = 0 with an empty lengths array (shape (0,)) is valid."""
    rng = np.random.default_rng(23)
    kw = make_inputs(rng, variant, 4, 0, 5, 6, dtype)
    kw["lengths"] = np.zeros(0, np.int64)
    out = forward(F, variant, kw, training=True)
    assert out.y.shape == (4, 0, 6) and out.h_n.shape == (0, 6)
    grads = backward(F, variant, out.ctx, dy=np.zeros((4, 0, 6), dtype))
    assert grads.dx.shape == (4, 0, 5)
    assert not np.any(grads.dweight_ih) and not np.any(grads.dweight_hh)


@variant_params
def test_input_size_zero_is_bias_only(variant):
    """I = 0: the input projection is just the bias, so the result equals a run with I = 1,
    a zero input and any weight_ih column."""
    rng = np.random.default_rng(29)
    kw = make_inputs(rng, variant, 5, 3, 0, 6, np.float64, lengths="mixed")
    out = forward(F, variant, kw)
    kw1 = dict(kw, x=np.zeros((5, 3, 1)),
               weight_ih=rng.standard_normal((variant.G * 6, 1)))
    want = forward(R, variant, kw1)
    for name in out._fields:
        assert_close(getattr(out, name), getattr(want, name), dtype=np.float64, K=12, name=name)
