"""Finite-difference checks (float64, central differences) of gatedrnn.functional's backward.

For the loss L = sum(y * dy) + sum(h_n * dh_n) [+ sum(c_n * dc_n)] with random dy, dh_n, dc_n,
every element of every differentiable argument (x, h0, c0, weight_ih, weight_hh, bias_ih,
bias_hh) is perturbed by +-EPS and (L+ - L-) / (2 EPS) is compared with the core's gradient.
This checks the core against its own forward, independently of gatedrnn.reference.

dh_seq (dL/dh_t, the total gradient of each intermediate state) is checked the same way by
splitting the sequence at t: the state after step t becomes h0 (and c0) of the remaining steps.

Error budget: central differences have truncation error ~EPS^2 * |L'''| ~ 1e-12 and round-off
~ 1e-16 * |L| / EPS ~ 1e-9 at these sizes, so atol 1e-6 with rtol 1e-5 leaves a wide margin,
while a wrong gradient is off by O(1e-2) or more.
"""

import numpy as np
import pytest

import gatedrnn.functional as F
from conftest import (
    numerical_gradient,
    backward,
    forward,
    make_inputs,
    make_output_grads,
    seed_of,
    variant_params,
)

EPS = 1e-6
RTOL, ATOL = 1e-5, 1e-6
T, B, I, H = 4, 3, 3, 4


def _loss(variant, kw, given, reverse):
    out = forward(F, variant, kw, reverse=reverse)
    L = 0.0
    if given["dy"] is not None:
        L += float(np.sum(out.y * given["dy"]))
    if given["dh_n"] is not None:
        L += float(np.sum(out.h_n * given["dh_n"]))
    if variant.is_lstm and given["dc_n"] is not None:
        L += float(np.sum(out.c_n * given["dc_n"]))
    return L


def numeric_gradient(f, a):
    return numerical_gradient(f, a, EPS)


CASES = {
    "plain": dict(),
    "no_bias": dict(bias=False),
    "no_h0": dict(h0=False, c0=False),
    "lengths": dict(lengths="mixed"),
    "reverse": dict(reverse=True),
    "reverse_lengths": dict(reverse=True, lengths="mixed"),
    "batch_first_lengths": dict(batch_first=True, lengths="mixed"),
    "mask": dict(mask=True),
    "everything": dict(mask=True, lengths="mixed", reverse=True, batch_first=True, bias=False),
}

GRAD_OF = {"x": "dx", "h0": "dh0", "c0": "dc0", "weight_ih": "dweight_ih",
           "weight_hh": "dweight_hh", "bias_ih": "dbias_ih", "bias_hh": "dbias_hh"}


@variant_params
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_gradients_match_finite_differences(variant, case):
    opts = dict(CASES[case])
    reverse = opts.pop("reverse", False)
    rng = np.random.default_rng(seed_of("fd", variant.name, case))
    kw = make_inputs(rng, variant, T, B, I, H, np.float64, **opts)
    if variant.name == "rnn_relu":
        kw["x"] *= 0.5  # fewer pre-activations near the kink
    out = forward(F, variant, kw, training=True, reverse=reverse)
    given = make_output_grads(rng, variant, out)
    grads = backward(F, variant, out.ctx, **given)

    # a missing h0/c0 is zeros: differentiate at zeros
    probe = dict(kw)
    for state in ("h0", "c0"):
        if state in probe and probe[state] is None:
            probe[state] = np.zeros((B, H))
    checked = 0
    for arg, gname in GRAD_OF.items():
        if arg not in probe or probe[arg] is None:
            continue
        a = probe[arg] = probe[arg].copy()
        want = numeric_gradient(lambda: _loss(variant, probe, given, reverse), a)
        got = getattr(grads, gname)
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{gname} vs finite differences")
        checked += 1
    assert checked >= 4  # x, h0, weight_ih, weight_hh at least


DH_SEQ_CASES = {"plain": dict(), "reverse": dict(reverse=True), "mask": dict(mask=True),
                "mask_reverse_no_bias": dict(mask=True, reverse=True, bias=False)}


@variant_params
@pytest.mark.parametrize("case", list(DH_SEQ_CASES), ids=list(DH_SEQ_CASES))
def test_dh_seq_matches_finite_differences(variant, case):
    """dh_seq[t] = dy[t] + dL_rest/dh_t, where L_rest is the loss of the steps after t run
    from the state after step t (c_t held fixed for LSTM)."""
    opts = dict(DH_SEQ_CASES[case])
    reverse = opts.pop("reverse", False)
    rng = np.random.default_rng(seed_of("dh_seq", variant.name, case))
    kw = make_inputs(rng, variant, T, B, I, H, np.float64, **opts)
    out = forward(F, variant, kw, training=True, reverse=reverse)
    given = make_output_grads(rng, variant, out)
    grads = backward(F, variant, out.ctx, **given, return_dh_seq=True)
    assert grads.dh_seq.shape == (T, B, H)

    for t in range(T):
        done = slice(t, T) if reverse else slice(0, t + 1)      # steps processed up to t
        rest = slice(0, t) if reverse else slice(t + 1, T)      # steps processed after t
        first = forward(F, variant, dict(kw, x=np.ascontiguousarray(kw["x"][done])),
                        reverse=reverse)
        tail = dict(kw, x=np.ascontiguousarray(kw["x"][rest]), h0=first.h_n.copy())
        if variant.is_lstm:
            tail["c0"] = first.c_n.copy()
        tail_given = dict(given, dy=np.ascontiguousarray(given["dy"][rest]))
        d_rest = numeric_gradient(lambda: _loss(variant, tail, tail_given, reverse), tail["h0"])
        want = given["dy"][t] + d_rest
        np.testing.assert_allclose(grads.dh_seq[t], want, rtol=RTOL, atol=ATOL,
                                   err_msg=f"dh_seq[{t}] vs finite differences")
