"""``input_grad=False``: backward without dx (a first layer, whose input is data).

The functional ``*_backward`` calls, the layers and ``Sequential`` training skip the product
dx = dG W_ih when nobody needs it. Skipping it must change nothing else: every other gradient
is compared bit for bit against the same backward call with dx, on the paths that compute dx
differently (rows in order or gathered, a single step, two directions at once or in turn).
"""

import numpy as np
import pytest

import gatedrnn
import gatedrnn.functional as F
import gatedrnn.reference as R
from conftest import VARIANTS, make_inputs, make_output_grads, variant_params


def _backward(mod, cell, ctx, given, **kw):
    fn = getattr(mod, cell + "_backward")
    if cell != "lstm":
        given = {k: v for k, v in given.items() if k != "dc_n"}
    return fn(ctx, **given, **kw)


def _assert_same_except_dx(with_dx, without):
    assert type(with_dx) is type(without)
    assert without.dx is None
    assert with_dx.dx is not None
    for name in with_dx._fields[1:]:
        a, b = getattr(with_dx, name), getattr(without, name)
        if a is None:
            assert b is None, name
        else:
            np.testing.assert_array_equal(b, a, err_msg=f"{name} changed without dx")


CASES = {
    # T, B, options: rows in order; gathered (lengths, reverse); one step; one step gathered
    "in_order": (7, 5, {}),
    "lengths_reverse_mask": (7, 6, {"lengths": "mixed", "reverse": True, "mask": True}),
    "batch_first": (5, 4, {"batch_first": True, "lengths": "nozero"}),
    "one_step": (1, 9, {}),
    "large_batch": (3, 40, {"lengths": "nozero"}),
}


@variant_params
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_functional_backward_without_dx_changes_nothing_else(variant, case, dtype):
    T, B, opts = CASES[case]
    rng = np.random.default_rng(21)
    reverse = opts.get("reverse", False)
    kw = make_inputs(rng, variant, T, B, 6, 8, dtype, lengths=opts.get("lengths"),
                     batch_first=opts.get("batch_first", False), mask=opts.get("mask", False))
    out = getattr(F, variant.cell)(**kw, **variant.opts, reverse=reverse, training=True)
    given = make_output_grads(rng, variant, out)
    for return_dh_seq in (False, True):
        with_dx = _backward(F, variant.cell, out.ctx, given, return_dh_seq=return_dh_seq)
        without = _backward(F, variant.cell, out.ctx, given, return_dh_seq=return_dh_seq,
                            input_grad=False)
        _assert_same_except_dx(with_dx, without)
    # the reference takes the same argument
    ref = getattr(R, variant.cell)(**kw, **variant.opts, reverse=reverse, training=True)
    r_with = _backward(R, variant.cell, ref.ctx, given)
    r_without = _backward(R, variant.cell, ref.ctx, given, input_grad=False)
    _assert_same_except_dx(r_with, r_without)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("threads", [1, 2])
def test_bidirectional_backward_without_dx(cell, threads):
    """Both directions in one call: the second direction's dx (added in, or computed apart and
    summed) is skipped too, at one thread (in turn) and two (possibly at once)."""
    rng = np.random.default_rng(5)
    G = {"gru": 3, "lstm": 4}[cell]
    T, B, I, H = 6, 16, 12, 32
    w = [rng.uniform(-0.2, 0.2, s).astype(np.float32)
         for s in ((2, G * H, I), (2, G * H, H), (2, G * H), (2, G * H))]
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dy = rng.standard_normal((T, B, 2 * H)).astype(np.float32)
    before = gatedrnn.get_num_threads()
    gatedrnn.set_num_threads(threads)
    try:
        out = getattr(F, cell)(x, *w, bidirectional=True, training=True,
                               lengths=rng.integers(1, T + 1, B))
        fn = getattr(F, cell + "_backward")
        _assert_same_except_dx(fn(out.ctx, dy=dy), fn(out.ctx, dy=dy, input_grad=False))
    finally:
        gatedrnn.set_num_threads(before)


@pytest.mark.parametrize("mod", [F, R], ids=["functional", "reference"])
@pytest.mark.parametrize("bad", [1, "no", None])
def test_input_grad_must_be_true_or_false(mod, bad):
    rng = np.random.default_rng(0)
    variant = VARIANTS[-1]
    kw = make_inputs(rng, variant, 3, 2, 4, 5, np.float64)
    ctx = getattr(mod, "lstm")(**kw, training=True).ctx
    with pytest.raises(TypeError, match=f"^input_grad: expected True or False, got "
                                        f"{type(bad).__name__}$"):
        mod.lstm_backward(ctx, dh_n=np.ones((2, 5)), input_grad=bad)
