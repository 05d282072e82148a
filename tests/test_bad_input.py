"""Every bad-input rule of the issue (section 3) and the robustness promises around them.

Rules: wrong ndim, mismatched sizes between x, weights, biases and states, non-floating or mixed
dtypes, lengths of the wrong shape / non-integer / < 0 / > T, an unknown nonlinearity, a backward
call with a context from another cell or with gradients of the wrong shape or dtype, H = 0.
TypeError for a wrong type or dtype, ValueError for shapes and values; the message must name
the argument and show the offending shape or dtype.

Robustness: read-only inputs work and are not modified; non-contiguous, negative-stride,
Fortran-order, unaligned and byte-swapped inputs give exactly the results of contiguous ones;
inputs are never modified; NaN propagates (and Inf saturates like the reference); a request
too large to allocate raises MemoryError (checked in a subprocess so a crash is a failure, not
the end of the test run); a plain Python list for x is converted or refused cleanly.
"""

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gatedrnn.functional as F
import gatedrnn.reference as R
from conftest import (
    VARIANT_BY_NAME,
    VARIANTS,
    assert_close,
    backward,
    forward,
    grad_reduction_lengths,
    make_inputs,
    make_output_grads,
    seed_of,
    upcast,
    variant_params,
)

T, B, I, H = 3, 2, 4, 6   # G*H = 6 (rnn), 18 (gru), 24 (lstm): distinct from every other size

RNN = VARIANT_BY_NAME["rnn_tanh"]
GRU = VARIANT_BY_NAME["gru_reset_after"]
LSTM = VARIANT_BY_NAME["lstm"]


def base(variant, dtype=np.float64, seed=0, **opts):
    rng = np.random.default_rng(seed)
    opts.setdefault("lengths", "nozero")
    opts.setdefault("mask", True)
    return make_inputs(rng, variant, T, B, I, H, dtype, **opts)


def shape_re(shape):
    """Regex for a shape as printed in any usual style: (18, 5), [18, 5], 18x5, (19,)."""
    inner = r"\D{1,4}".join(str(int(s)) for s in shape)
    return r"(?<!\d)" + inner + r"(?!\d)"


def dtype_re(dtype):
    dtype = np.dtype(dtype)
    return "|".join(re.escape(s) for s in {dtype.name, dtype.str, dtype.str[1:]})


def name_re(*names):
    return "|".join(r"(?<![A-Za-z0-9_])" + re.escape(n) + r"(?![A-Za-z0-9_])" for n in names)


def expect_error(exc_type, fn, names, *shows):
    """``fn()`` raises exactly ``exc_type`` (not a subclass chosen by accident such as a
    generic RuntimeError) whose message names one of ``names`` and matches every ``shows``
    regex."""
    with pytest.raises(Exception) as info:
        fn()
    err = info.value
    assert type(err) is exc_type or isinstance(err, exc_type), (
        f"expected {exc_type.__name__}, got {type(err).__name__}: {err}")
    msg = str(err)
    names = (names,) if isinstance(names, str) else names
    assert re.search(name_re(*names), msg), f"message does not name {names}: {msg!r}"
    for pattern in shows:
        assert re.search(pattern, msg), f"message does not show /{pattern}/: {msg!r}"


def call(variant, kw, **extra):
    return lambda: forward(F, variant, kw, **extra)


# ----------------------------------------------------------------------------------------------
# Wrong ndim
# ----------------------------------------------------------------------------------------------

NDIM_CASES = {
    # argument: (replacement factory, shape shown in the message)
    "x_2d": ("x", lambda kw: kw["x"].reshape(T * B, I)),
    "x_4d": ("x", lambda kw: kw["x"][None]),
    "weight_ih_1d": ("weight_ih", lambda kw: kw["weight_ih"].ravel()),
    "weight_ih_3d": ("weight_ih", lambda kw: kw["weight_ih"][None]),
    "weight_hh_1d": ("weight_hh", lambda kw: kw["weight_hh"].ravel()),
    "weight_hh_3d": ("weight_hh", lambda kw: kw["weight_hh"][None]),
    "bias_ih_2d": ("bias_ih", lambda kw: kw["bias_ih"][None]),
    "bias_hh_2d": ("bias_hh", lambda kw: kw["bias_hh"][:, None]),
    "bias_ih_0d": ("bias_ih", lambda kw: kw["bias_ih"][0]),
    "h0_3d_torch_style": ("h0", lambda kw: kw["h0"][None]),
    "h0_1d": ("h0", lambda kw: kw["h0"][0]),
    "c0_3d_torch_style": ("c0", lambda kw: kw["c0"][None]),
    "recurrent_mask_1d": ("recurrent_mask", lambda kw: kw["recurrent_mask"][0]),
    "recurrent_mask_3d": ("recurrent_mask", lambda kw: kw["recurrent_mask"][None]),
}


def _valid(variant, arg):
    return variant.is_lstm or arg not in ("c0", "dc_n")


def variant_case_params(cases, arg_of):
    """(variant, case) pairs, leaving out LSTM-only arguments for the other cells."""
    return pytest.mark.parametrize("variant,case", [
        pytest.param(v, c, id=f"{v.name}-{c}") for v in VARIANTS for c in cases
        if _valid(v, arg_of(c))])


@variant_case_params(NDIM_CASES, lambda c: NDIM_CASES[c][0])
def test_wrong_ndim(variant, case):
    arg, make = NDIM_CASES[case]
    kw = base(variant)
    kw[arg] = np.asarray(make(kw))
    expect_error(ValueError, call(variant, kw), arg, shape_re(kw[arg].shape))


# ----------------------------------------------------------------------------------------------
# Mismatched sizes
# ----------------------------------------------------------------------------------------------

def _mismatch_cases(variant):
    G = variant.G
    GH = G * H
    rng = np.random.default_rng(1)
    r = lambda *s: rng.standard_normal(s)  # noqa: E731
    return {
        # the mutated argument is the odd one out: it must be named
        "weight_ih_columns": (("weight_ih",), "weight_ih", r(GH, I + 1)),
        "weight_ih_rows": (("weight_ih",), "weight_ih", r(GH + 1, I)),
        "weight_ih_transposed": (("weight_ih",), "weight_ih", r(I, GH)),
        "weight_hh_rows": (("weight_hh",), "weight_hh", r(GH + 2, H)),
        "bias_ih_length": (("bias_ih",), "bias_ih", r(GH + 1)),
        "bias_hh_length": (("bias_hh",), "bias_hh", r(GH - 1)),
        "h0_batch": (("h0",), "h0", r(B + 1, H)),
        "h0_hidden": (("h0",), "h0", r(B, H + 1)),
        "h0_transposed": (("h0",), "h0", r(H, B)),
        "c0_batch": (("c0",), "c0", r(B + 1, H)),
        "c0_hidden": (("c0",), "c0", r(B, H - 1)),
        "recurrent_mask_hidden": (("recurrent_mask",), "recurrent_mask", r(B, H + 1)),
        "recurrent_mask_batch": (("recurrent_mask",), "recurrent_mask", r(B + 1, H)),
        # which side is "wrong" is a matter of convention: either name is fine
        "weight_hh_columns": (("weight_hh", "weight_ih"), "weight_hh", r(GH, H + 1)),
        "x_input_size": (("x", "weight_ih"), "x", r(T, B, I + 1)),
        "x_batch_vs_h0": (("x", "h0", "lengths", "recurrent_mask", "c0"), "x", r(T, B + 1, I)),
    }


@variant_case_params(_mismatch_cases(RNN), lambda c: _mismatch_cases(RNN)[c][1])
def test_mismatched_sizes(variant, case):
    names, arg, value = _mismatch_cases(variant)[case]
    kw = base(variant)
    kw[arg] = value
    shows = () if len(names) > 1 else (shape_re(value.shape),)
    expect_error(ValueError, call(variant, kw), names, *shows)


@variant_params
def test_gate_count_of_another_cell(variant):
    """Weights of another cell (e.g. LSTM's 4H rows given to gru) are a ValueError."""
    other = LSTM if variant.cell != "lstm" else GRU
    kw = base(variant)
    wrong = base(other)
    kw["weight_ih"], kw["weight_hh"] = wrong["weight_ih"], wrong["weight_hh"]
    kw["bias_ih"], kw["bias_hh"] = wrong["bias_ih"], wrong["bias_hh"]
    expect_error(ValueError, call(variant, kw), ("weight_hh", "weight_ih", "bias_ih", "bias_hh"))


@variant_params
def test_batch_first_mismatch(variant):
    """A time-major x passed with batch_first=True reads B as T: the sizes no longer match."""
    kw = base(variant)
    kw["batch_first"] = True  # x is (T=3, B=2, I) but is now read as (B=3, T=2, I)
    expect_error(ValueError, call(variant, kw),
                 ("x", "h0", "c0", "lengths", "recurrent_mask"))


# ----------------------------------------------------------------------------------------------
# dtypes
# ----------------------------------------------------------------------------------------------

@variant_params
@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.int32, np.bool_, np.complex128,
                                   np.longdouble])
def test_non_float_or_unsupported_x_dtype(variant, dtype):
    if np.dtype(dtype) == np.dtype(np.float64):  # longdouble == double on some platforms
        pytest.skip("longdouble is float64 here")
    kw = base(variant, mask=False)
    for k, v in list(kw.items()):
        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            kw[k] = v.astype(dtype)
    expect_error(TypeError, call(variant, kw), "x", dtype_re(dtype))


FLOAT_ARGS = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "h0", "c0", "recurrent_mask"]


@variant_case_params(FLOAT_ARGS, lambda c: c)
@pytest.mark.parametrize("x_dtype,arg_dtype", [(np.float32, np.float64), (np.float64, np.float32),
                                               (np.float32, np.float16), (np.float64, np.int64)],
                         ids=["f32-f64", "f64-f32", "f32-f16", "f64-i64"])
def test_mixed_dtypes(variant, case, x_dtype, arg_dtype):
    arg = case
    kw = base(variant, dtype=x_dtype)
    kw[arg] = kw[arg].astype(arg_dtype)
    expect_error(TypeError, call(variant, kw), arg, dtype_re(arg_dtype))


@variant_params
def test_none_for_a_required_array(variant):
    kw = base(variant)
    kw["weight_hh"] = None
    with pytest.raises(TypeError):
        forward(F, variant, kw)
    kw = base(variant)
    kw["x"] = None
    with pytest.raises(TypeError):
        forward(F, variant, kw)


# ----------------------------------------------------------------------------------------------
# lengths
# ----------------------------------------------------------------------------------------------

LENGTH_CASES = {
    # name: (exception, lengths, shows)
    "too_long": (ValueError, np.full(B + 1, T, np.int64), (shape_re((B + 1,)),)),
    "too_short": (ValueError, np.full(B - 1, T, np.int64), (shape_re((B - 1,)),)),
    "2d": (ValueError, np.full((B, 1), T, np.int64), (shape_re((B, 1)),)),
    "0d": (ValueError, np.array(T, np.int64), ()),
    "float": (TypeError, np.full(B, T, np.float64), (dtype_re(np.float64),)),
    "float32": (TypeError, np.full(B, T, np.float32), (dtype_re(np.float32),)),
    "bool": (TypeError, np.ones(B, np.bool_), (dtype_re(np.bool_),)),
    "negative": (ValueError, np.array([-1, T], np.int64), ()),
    "greater_than_T": (ValueError, np.array([T, T + 1], np.int64), ()),
    # values that only look valid after a careless narrowing cast must be refused too
    "int64_wraps_in_int32": (ValueError, np.array([T, 2**32 + 1], np.int64), ()),
    "huge_uint64": (ValueError, np.array([T, 2**64 - 1], np.uint64), ()),
    "int8_negative": (ValueError, np.array([T, -128], np.int8), ()),
}


@variant_params
@pytest.mark.parametrize("case", list(LENGTH_CASES))
def test_bad_lengths(variant, case):
    exc, lengths, shows = LENGTH_CASES[case]
    kw = base(variant)
    kw["lengths"] = lengths
    expect_error(exc, call(variant, kw), "lengths", *shows)


def test_lengths_greater_than_T_with_batch_first():
    """With batch_first, T is x.shape[1]: a length valid for x.shape[0] but > T is refused."""
    kw = base(GRU, batch_first=True, lengths=None)  # x is (B=2, T=3, I)
    kw["lengths"] = np.array([T, T], np.int64)
    forward(F, GRU, kw)  # valid
    kw = dict(kw, x=np.ascontiguousarray(kw["x"][:, :1]))  # T = 1 now
    expect_error(ValueError, call(GRU, kw), "lengths")


# ----------------------------------------------------------------------------------------------
# nonlinearity, H = 0
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("nonlinearity", ["sigmoid", "", "gelu"])
def test_unknown_nonlinearity(nonlinearity):
    kw = base(RNN)
    fn = lambda: F.rnn(**kw, nonlinearity=nonlinearity)  # noqa: E731
    expect_error(ValueError, fn, "nonlinearity")


def _flag_names(variant):
    names = ["reverse", "batch_first", "training", "bidirectional"]
    return names + (["reset_after"] if variant.cell == "gru" else [])


@variant_params
@pytest.mark.parametrize("bad", [1, 0, "yes", 1.0, [True], np.array([True])],
                         ids=["int1", "int0", "str", "float", "list", "array"])
def test_flags_must_be_true_or_false(variant, bad):
    """A flag is True, False or a NumPy bool; anything else is a TypeError that names it, even
    a value Python would call true (1, "yes"), and the same goes for the packed-handle path."""
    kw = base(variant, mask=False)
    packed = {k: kw[k] for k in kw if k not in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    packed["weight_ih"] = F.pack_weights(variant.cell, kw["weight_ih"], kw["weight_hh"],
                                         kw["bias_ih"], kw["bias_hh"], **variant.opts)
    for name in _flag_names(variant):
        for args in (kw, packed):
            call = {**args, **{k: v for k, v in variant.opts.items() if args is kw}, name: bad}
            with pytest.raises(TypeError) as exc:
                getattr(F, variant.cell)(**call)
            assert str(exc.value) == f"{name}: expected True or False, got {type(bad).__name__}"
    ctx = forward(F, variant, kw, training=True).ctx
    expected = f"^{{}}: expected True or False, got {type(bad).__name__}$"
    with pytest.raises(TypeError, match=expected.format("return_dh_seq")):
        backward(F, variant, ctx, dh_n=np.ones((B, H)), return_dh_seq=bad)
    weights = [kw[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    for name in ("reset_after", "bidirectional"):
        with pytest.raises(TypeError, match=expected.format(name)):
            F.pack_weights(variant.cell, *weights, **{name: bad})
    with pytest.raises(TypeError, match=expected.format("reset_after")):
        F.workspace_size(variant.cell, T, B, I, H, reset_after=bad)


@variant_params
def test_flags_take_numpy_bools(variant):
    """np.True_ / np.False_ (a comparison's result) act exactly as True / False."""
    kw = base(variant, mask=False)
    rng = np.random.default_rng(3)
    for name, value in (("reverse", True), ("training", True)):
        want = forward(F, variant, kw, **{name: value})
        got = forward(F, variant, kw, **{name: np.bool_(value)})
        assert type(got) is type(want)
        np.testing.assert_array_equal(got.y, want.y)
        np.testing.assert_array_equal(got.h_n, want.h_n)
    ctx = forward(F, variant, kw, training=np.True_).ctx
    g = make_output_grads(rng, variant, forward(F, variant, kw), which=("dy",))
    want = backward(F, variant, ctx, dy=g["dy"], return_dh_seq=True)
    got = backward(F, variant, ctx, dy=g["dy"], return_dh_seq=np.True_)
    assert type(got) is type(want) and len(got) == len(want)
    for a, b in zip(got, want):
        if a is None:
            assert b is None
        else:
            np.testing.assert_array_equal(a, b)
    plain = backward(F, variant, ctx, dy=g["dy"], return_dh_seq=np.False_)
    assert type(plain).__name__.endswith("Gradients") and not hasattr(plain, "dh_seq")
    handle = F.pack_weights(variant.cell, kw["weight_ih"], kw["weight_hh"], kw["bias_ih"],
                            kw["bias_hh"], **variant.opts, bidirectional=np.False_)
    assert handle.bidirectional is False
    assert F.workspace_size("gru", T, B, I, H, reset_after=np.False_) == \
        F.workspace_size("gru", T, B, I, H, reset_after=False)
    # the results are the documented namedtuples, fields and all
    out = forward(F, variant, kw)
    assert out._fields == (("y", "h_n", "c_n") if variant.is_lstm else ("y", "h_n"))
    assert forward(F, variant, kw, training=True)._fields[-1] == "ctx"


@variant_params
@pytest.mark.parametrize("training", [False, True])
def test_hidden_size_zero(variant, training):
    kw = base(variant, mask=False)
    kw["weight_ih"] = np.zeros((0, I))
    kw["weight_hh"] = np.zeros((0, 0))
    kw["bias_ih"] = kw["bias_hh"] = None
    kw["h0"] = None
    if variant.is_lstm:
        kw["c0"] = None
    expect_error(ValueError, call(variant, kw, training=training),
                 ("weight_hh", "weight_ih", "H", "hidden_size", "hidden size"))


# ----------------------------------------------------------------------------------------------
# Backward: ctx of another cell or not a ctx, gradients of the wrong shape or dtype
# ----------------------------------------------------------------------------------------------

def _ctx(variant, dtype=np.float64, **opts):
    kw = base(variant, dtype=dtype, **opts)
    return forward(F, variant, kw, training=True)


@pytest.mark.parametrize("producer,consumer", [
    ("lstm", "gru_backward"), ("lstm", "rnn_backward"), ("gru_reset_after", "lstm_backward"),
    ("gru_reset_before", "rnn_backward"), ("rnn_tanh", "gru_backward"),
    ("rnn_relu", "lstm_backward")])
def test_ctx_from_another_cell(producer, consumer):
    out = _ctx(VARIANT_BY_NAME[producer])
    fn = getattr(F, consumer)
    expect_error(TypeError, lambda: fn(out.ctx, dh_n=np.ones_like(out.h_n)), "ctx")


@pytest.mark.parametrize("consumer", ["rnn_backward", "gru_backward", "lstm_backward"])
@pytest.mark.parametrize("bad", ["None", "object", "forward_output_tuple", "dict", "array"])
def test_not_a_ctx(consumer, bad):
    cell = consumer.split("_")[0]
    variant = {"rnn": RNN, "gru": GRU, "lstm": LSTM}[cell]
    out = _ctx(variant)
    value = {"None": None, "object": object(), "forward_output_tuple": out,
             "dict": {"y": out.y}, "array": out.y}[bad]
    fn = getattr(F, consumer)
    expect_error(TypeError, lambda: fn(value, dh_n=np.ones_like(out.h_n)), "ctx")


def _grad_cases(variant):
    G_SHAPES = {"dy": (T, B, H), "dh_n": (B, H), "dc_n": (B, H)}
    cases = {}
    for arg, shape in G_SHAPES.items():
        if arg == "dc_n" and not variant.is_lstm:
            continue
        bigger = shape[:-1] + (shape[-1] + 1,)
        cases[f"{arg}_last_dim"] = (ValueError, arg, np.ones(bigger), (shape_re(bigger),))
        cases[f"{arg}_extra_dim"] = (ValueError, arg, np.ones((1,) + shape),
                                     (shape_re((1,) + shape),))
        cases[f"{arg}_float32"] = (TypeError, arg, np.ones(shape, np.float32),
                                   (dtype_re(np.float32),))
        cases[f"{arg}_float16"] = (TypeError, arg, np.ones(shape, np.float16),
                                   (dtype_re(np.float16),))
        cases[f"{arg}_int64"] = (TypeError, arg, np.ones(shape, np.int64),
                                 (dtype_re(np.int64),))
    cases["dy_batch_first_layout"] = (ValueError, "dy", np.ones((B, T, H)),
                                      (shape_re((B, T, H)),))
    cases["dy_2d"] = (ValueError, "dy", np.ones((T * B, H)), (shape_re((T * B, H)),))
    return cases


@variant_case_params(_grad_cases(LSTM), lambda c: _grad_cases(LSTM)[c][1])
def test_bad_output_gradients(variant, case):
    cases = _grad_cases(variant)
    exc, arg, value, shows = cases[case]
    out = _ctx(variant)
    fn = getattr(F, variant.cell + "_backward")
    expect_error(exc, lambda: fn(out.ctx, **{arg: value}), arg, *shows)


def test_float32_ctx_rejects_float64_gradients():
    out = _ctx(LSTM, dtype=np.float32)
    expect_error(TypeError, lambda: F.lstm_backward(out.ctx, dh_n=np.ones((B, H))), "dh_n",
                 dtype_re(np.float64))


def test_batch_first_ctx_wants_batch_first_dy():
    out = _ctx(GRU, batch_first=True)  # y is (B, T, H)
    assert out.y.shape == (B, T, H)
    F.gru_backward(out.ctx, dy=np.ones((B, T, H)))  # valid
    expect_error(ValueError, lambda: F.gru_backward(out.ctx, dy=np.ones((T, B, H))), "dy",
                 shape_re((T, B, H)))


# ----------------------------------------------------------------------------------------------
# Read-only, non-contiguous, Fortran, unaligned, byte-swapped inputs; inputs never modified
# ----------------------------------------------------------------------------------------------

def _strided(a):
    """Same values, every axis strided by 2 inside a bigger buffer."""
    if a.ndim == 0:
        return a
    big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    return view


def _negative_strides(a):
    if a.ndim == 0:
        return a
    rev = np.ascontiguousarray(a[tuple(slice(None, None, -1) for _ in a.shape)])
    return rev[tuple(slice(None, None, -1) for _ in a.shape)]


def _unaligned(a):
    buf = np.zeros(a.nbytes + 1, np.uint8)
    view = buf[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    return view


def _byteswapped(a):
    return a.astype(a.dtype.newbyteorder())


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


TRANSFORMS = {
    "readonly": _readonly,
    "strided": _strided,
    "negative_strides": _negative_strides,
    "fortran": np.asfortranarray,
    "unaligned": _unaligned,
    "byteswapped": _byteswapped,
}


def _full_run(variant, kw, given, reverse):
    out = forward(F, variant, kw, training=True, reverse=reverse)
    grads = backward(F, variant, out.ctx, **given, return_dh_seq=True)
    inference = forward(F, variant, kw, reverse=reverse)
    return out, grads, inference


@variant_params
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
def test_memory_layouts_give_identical_results(variant, dtype, transform, batch_first):
    rng = np.random.default_rng(seed_of("layout", variant.name, transform))
    kw = make_inputs(rng, variant, 5, 4, 7, 9, dtype, lengths="mixed", mask=True,
                     batch_first=batch_first)
    out0 = forward(F, variant, kw, training=True, reverse=True)
    given = make_output_grads(rng, variant, out0)
    want_out, want_grads, want_inf = _full_run(variant, kw, given, True)

    fn = TRANSFORMS[transform]
    kw2 = {k: (fn(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    given2 = {k: (fn(v) if v is not None else None) for k, v in given.items()}
    if transform in ("strided", "negative_strides", "unaligned", "byteswapped"):
        changed = [k for k, v in kw2.items() if isinstance(v, np.ndarray) and v.ndim > 0
                   and (not v.flags.c_contiguous or not v.flags.aligned
                        or not v.dtype.isnative)]
        assert "x" in changed and "weight_hh" in changed, "the transform must take effect"
    copies = {k: v.copy() for k, v in kw2.items() if isinstance(v, np.ndarray)}
    copies.update({"g_" + k: v.copy() for k, v in given2.items() if v is not None})

    got_out, got_grads, got_inf = _full_run(variant, kw2, given2, True)

    # Copies of non-contiguous / swapped inputs are ordinary arrays: bit-identical results.
    # An unaligned array may legitimately be read in place by a kernel whose summation order
    # depends on the address, so it gets the usual tolerance instead.
    if transform == "unaligned":
        K = grad_reduction_lengths(variant, 5, 4, 7, 9)

        def same(a, b, name):
            assert_close(a, b, dtype=dtype, K=K[name], name=name)
    else:
        def same(a, b, name):
            np.testing.assert_array_equal(a, b, name)

    for name in ("y", "h_n", "c_n"):
        if name in want_out._fields:
            same(getattr(got_out, name), getattr(want_out, name), name)
            same(getattr(got_inf, name), getattr(want_inf, name), name)
            assert getattr(got_out, name).dtype == np.dtype(dtype)  # native dtype out
            assert getattr(got_out, name).dtype.isnative
    for name in want_grads._fields:
        a, b = getattr(got_grads, name), getattr(want_grads, name)
        if b is None:
            assert a is None, name
            continue
        same(a, b, name)
        assert a.dtype == np.dtype(dtype) and a.dtype.isnative, name
    for k, v in copies.items():
        cur = kw2[k] if not k.startswith("g_") else given2[k[2:]]
        np.testing.assert_array_equal(cur, v, f"input {k} was modified")


@variant_params
def test_readonly_inputs_are_not_copied_into_writes(variant):
    """Every input read-only (including dy/dh_n/dc_n): no error, same numbers as writable."""
    rng = np.random.default_rng(31)
    kw = make_inputs(rng, variant, 4, 3, 5, 6, np.float64, lengths="mixed", mask=True)
    out = forward(F, variant, kw, training=True)
    given = make_output_grads(rng, variant, out)
    want = backward(F, variant, out.ctx, **given)
    ro = {k: (_readonly(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    ro_given = {k: (_readonly(v) if v is not None else None) for k, v in given.items()}
    out2 = forward(F, variant, ro, training=True)
    got = backward(F, variant, out2.ctx, **ro_given)
    np.testing.assert_array_equal(out2.y, out.y)
    for name in want._fields:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), name)
    # results are ordinary writable arrays
    assert out2.y.flags.writeable and got.dx.flags.writeable


@variant_params
def test_inputs_never_modified(variant):
    """Forward, backward (twice) and inference leave every argument bit-identical."""
    rng = np.random.default_rng(37)
    kw = make_inputs(rng, variant, 6, 4, 5, 7, np.float32, lengths="mixed", mask=True)
    before = {k: v.copy() for k, v in kw.items() if isinstance(v, np.ndarray)}
    out = forward(F, variant, kw, training=True, reverse=True)
    given = make_output_grads(rng, variant, out)
    given_before = {k: v.copy() for k, v in given.items() if v is not None}
    backward(F, variant, out.ctx, **given, return_dh_seq=True)
    backward(F, variant, out.ctx, **given)
    forward(F, variant, kw)
    for k, v in before.items():
        np.testing.assert_array_equal(kw[k], v, f"{k} modified")
    for k, v in given_before.items():
        np.testing.assert_array_equal(given[k], v, f"{k} modified")


# ----------------------------------------------------------------------------------------------
# NaN / Inf
# ----------------------------------------------------------------------------------------------

@variant_params
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_nan_in_x_propagates(variant, dtype, reverse):
    Tn, Bn, In, Hn = 6, 4, 5, 7
    t0, b0 = 2, 1
    rng = np.random.default_rng(41)
    kw = make_inputs(rng, variant, Tn, Bn, In, Hn, dtype)
    kw["x"][t0, b0, 0] = np.nan
    out = forward(F, variant, kw, training=True, reverse=reverse)
    hit = slice(0, t0 + 1) if reverse else slice(t0, None)
    clean = slice(t0 + 1, None) if reverse else slice(0, t0)
    assert np.all(np.isnan(out.y[hit, b0])), "every output from the NaN step on must be NaN"
    assert np.all(np.isfinite(out.y[clean, b0])), "outputs before the NaN step stay finite"
    others = np.arange(Bn) != b0
    assert np.all(np.isfinite(out.y[:, others])), "other sequences are unaffected"
    assert np.all(np.isnan(out.h_n[b0])) and np.all(np.isfinite(out.h_n[others]))
    if variant.is_lstm:
        assert np.all(np.isnan(out.c_n[b0])) and np.all(np.isfinite(out.c_n[others]))
    inference = forward(F, variant, kw, reverse=reverse)
    np.testing.assert_array_equal(np.isnan(inference.y), np.isnan(out.y))


@variant_params
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_nan_in_dy_propagates(variant, dtype):
    Tn, Bn, In, Hn = 6, 4, 5, 7
    t0, b0 = 3, 2
    rng = np.random.default_rng(43)
    kw = make_inputs(rng, variant, Tn, Bn, In, Hn, dtype)
    out = forward(F, variant, kw, training=True)
    given = make_output_grads(rng, variant, out)
    given["dy"][t0, b0, 0] = np.nan
    grads = backward(F, variant, out.ctx, **given)
    others = np.arange(Bn) != b0
    assert np.all(np.isnan(grads.dx[:t0 + 1, b0])), "dx at and before the NaN step is NaN"
    assert np.all(np.isfinite(grads.dx[t0 + 1:, b0]))
    assert np.all(np.isfinite(grads.dx[:, others]))
    assert np.all(np.isnan(grads.dh0[b0])) and np.all(np.isfinite(grads.dh0[others]))
    assert np.all(np.isnan(grads.dweight_hh)), "dW_hh mixes every step of every unit"


@pytest.mark.parametrize("variant", [VARIANT_BY_NAME[n] for n in
                                     ("rnn_tanh", "gru_reset_after", "gru_reset_before", "lstm")],
                         ids=["rnn_tanh", "gru_reset_after", "gru_reset_before", "lstm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_inf_in_x_saturates_like_the_reference(variant, dtype):
    """+-Inf pre-activations saturate sigmoid/tanh to exactly 0/1/+-1 (no NaN from inf/inf)."""
    rng = np.random.default_rng(47)
    kw = make_inputs(rng, variant, 5, 4, 6, 7, dtype)
    kw["x"][1, 0, 0] = np.inf
    kw["x"][3, 2, 1] = -np.inf
    out = forward(F, variant, kw, training=True)
    with np.errstate(over="ignore", invalid="ignore"):
        ref = forward(R, variant, upcast(kw))
    assert np.all(np.isfinite(ref.y)), "test premise: the reference saturates to finite values"
    K = grad_reduction_lengths(variant, 5, 4, 6, 7)
    for name in ref._fields:
        assert_close(getattr(out, name), getattr(ref, name), dtype=dtype, K=K[name], name=name)


@pytest.mark.parametrize("variant,scale", [
    pytest.param(v, s, id=f"{v.name}-{s:g}") for v in VARIANTS for s in (30.0, 1e4, 1e30)
    if v.name != "rnn_relu" or s < 100])  # relu does not saturate: huge values just grow
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_huge_inputs_saturate_like_the_reference(variant, dtype, scale):
    """Very large pre-activations (clamping paths of the vectorised exp) match the reference,
    forward and backward."""
    rng = np.random.default_rng(53)
    kw = make_inputs(rng, variant, 5, 4, 6, 7, dtype, lengths="mixed")
    kw["x"] = (kw["x"] * scale).astype(dtype)
    out = forward(F, variant, kw, training=True)
    with np.errstate(over="ignore"):
        ref = forward(R, variant, upcast(kw), training=True)
    given = make_output_grads(rng, variant, out)
    grads = backward(F, variant, out.ctx, **given)
    with np.errstate(over="ignore"):
        ref_grads = backward(R, variant, ref.ctx, **upcast(given))
    K = grad_reduction_lengths(variant, 5, 4, 6, 7)
    for name in ("y", "h_n", "c_n"):
        if name in ref._fields:
            got = getattr(out, name)
            assert np.all(np.isfinite(got)), name
            assert_close(got, getattr(ref, name), dtype=dtype, K=K[name], name=name)
    if variant.name != "rnn_relu":
        # Saturated gates must have exactly zero slope: below its clamp the core's sigmoid is 0
        # (the true value is below the smallest normal number), so dweight_ih = dG^T x gets no
        # spurious FLT_MIN * |x| terms even with |x| ~ 1e30. Plain tolerances apply.
        for name in ref_grads._fields:
            want = getattr(ref_grads, name)
            if want is not None:
                assert_close(getattr(grads, name), want, dtype=dtype, K=K[name], name=name)


# ----------------------------------------------------------------------------------------------
# Too large to allocate -> MemoryError (in a subprocess: a crash must fail, not kill pytest)
# ----------------------------------------------------------------------------------------------

HUGE_SCRIPT = textwrap.dedent("""
    import resource, sys
    # cap the address space so no allocator overcommit can make the huge request "succeed"
    limit = 6 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import numpy as np
    import gatedrnn.functional as F
    case, cell, training = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    H = 4
    G = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    if case == "broadcast_x":
        # stride-0 x: not contiguous, so a copy (16 TiB) or the workspace must fail
        T = B = 2**20
        I = 2
        x = np.broadcast_to(np.zeros((1, 1, I)), (T, B, I))
    elif case == "empty_x":
        # a contiguous x of size 0 (I = 0): the outputs and workspace (32 TiB) must fail
        T = B = 2**20
        I = 0
        x = np.empty((T, B, I))
    elif case == "workspace":
        # y (T*B*H*8 = 4 GiB of untouched virtual memory) fits under the cap, but the training
        # workspace (>= 2 more (T*B, H) planes per gate) does not: the core's own allocation
        # must raise MemoryError
        T = B = 2**13
        I = 0
        H = 8
        x = np.empty((T, B, I))
    elif case == "overflow":
        # y alone is T*B*H*8 = 2**65 bytes: the size computation overflows 64 bits and must be
        # detected, not wrapped to a small number (x itself is a valid empty array)
        T = B = 2**29
        I = 0
        H = 16
        x = np.empty((T, B, I))
    w_ih = np.zeros((G * H, I))
    w_hh = np.zeros((G * H, H))
    try:
        getattr(F, cell)(x, w_ih, w_hh, training=training)
    except BaseException as e:
        print("RAISED", type(e).__name__, str(e)[:200])
    else:
        print("NO-ERROR")
""")


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("case,training", [("broadcast_x", True), ("empty_x", True),
                                           ("workspace", True),
                                           ("empty_x", False), ("overflow", True),
                                           ("overflow", False)])
def test_too_large_raises_memory_error(cell, case, training):
    proc = subprocess.run([sys.executable, "-c", HUGE_SCRIPT, case, cell,
                           "1" if training else "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (
        f"interpreter died (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}")
    line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    # A size that does not even fit in 64 bits may also be refused by NumPy's own
    # "array is too big" ValueError; anything else (or no error) is a bug.
    allowed = ("MemoryError", "ValueError") if case == "overflow" else ("MemoryError",)
    assert line.split(" ")[:2] in [["RAISED", a] for a in allowed], (
        f"expected {' or '.join(allowed)}, got: {line!r}\n{proc.stderr[-2000:]}")


# ----------------------------------------------------------------------------------------------
# Python lists
# ----------------------------------------------------------------------------------------------

@variant_params
def test_x_as_python_list(variant):
    """A nested list for x is either converted (to float64) or refused with a TypeError naming
    x; never a crash or a wrong answer."""
    kw = base(variant, mask=False)
    want = forward(F, variant, kw)
    kw_list = dict(kw, x=kw["x"].tolist())
    try:
        got = forward(F, variant, kw_list)
    except TypeError as e:
        assert re.search(name_re("x"), str(e)), str(e)
        return
    for name in want._fields:
        a = getattr(got, name)
        assert a.dtype == np.float64, name
        np.testing.assert_array_equal(a, getattr(want, name), name)
