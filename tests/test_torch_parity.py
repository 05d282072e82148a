"""Parity of gatedrnn.functional with PyTorch fed the same weights.

- nn.RNN (tanh, relu), nn.GRU (= our reset_after=True) and nn.LSTM: outputs, final states and
  ALL gradients (autograd on the torch side, fed the same dy / dh_n / dc_n), float32 and
  float64.  Lengths >= 1 go through pack_padded_sequence(enforce_sorted=False); rows of length 0
  (torch refuses to pack them) are checked against gatedrnn.reference instead.  reverse=True is
  compared with the reverse half of a bidirectional torch layer.
- An unrolled torch autograd implementation of the equations of DESIGN.md section 2 covers what
  nn.* has no equivalent for: GRU reset_after=False, recurrent_mask, and dh_seq (the total
  gradient of every h_t, read with retain_grad()).

Tolerance: as in conftest (rtol 1e-5 for float32, absolute term 16*sqrt(K)*eps*scale), doubled
because both sides now carry their own rounding of the same size.
"""

import numpy as np
import pytest

import gatedrnn.functional as F
import gatedrnn.reference as R
from conftest import (
    VARIANT_BY_NAME,
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
)

pytestmark = pytest.mark.peers

TORCH_VARIANTS = [VARIANT_BY_NAME[n] for n in ("rnn_tanh", "rnn_relu", "gru_reset_after", "lstm")]
torch_variant_params = pytest.mark.parametrize("variant", TORCH_VARIANTS,
                                               ids=[v.name for v in TORCH_VARIANTS])
BOTH_SIDES = 2.0  # tolerance factor: torch and gatedrnn both round


def _tdtype(torch, dtype):
    return torch.float32 if np.dtype(dtype) == np.float32 else torch.float64


def _torch_module(torch, variant, I, H, dtype, bias, batch_first, bidirectional):
    common = dict(input_size=I, hidden_size=H, num_layers=1, bias=bias, batch_first=batch_first,
                  bidirectional=bidirectional, dtype=_tdtype(torch, dtype))
    if variant.cell == "rnn":
        return torch.nn.RNN(nonlinearity=variant.opts["nonlinearity"], **common)
    if variant.cell == "gru":
        assert variant.opts["reset_after"], "torch's GRU is reset_after=True"
        return torch.nn.GRU(**common)
    return torch.nn.LSTM(**common)


def run_torch(torch, variant, kw, given, reverse, rows=None):
    """Run the torch layer on batch ``rows`` (all by default); return numpy outputs and grads.

    Our direction is index 0 of a unidirectional layer, or index 1 (the reverse half) of a
    bidirectional one whose forward half gets unrelated random weights.
    """
    x, bf = kw["x"], kw["batch_first"]
    dtype = x.dtype
    if bf:
        B, T, I = x.shape
    else:
        T, B, I = x.shape
    H = kw["weight_hh"].shape[1]
    rows = np.arange(B) if rows is None else np.asarray(rows)
    bsel = (lambda a: a[rows]) if bf else (lambda a: a[:, rows])  # noqa: E731

    bias = kw["bias_ih"] is not None
    mod = _torch_module(torch, variant, I, H, dtype, bias, bf, bidirectional=reverse)
    d = 1 if reverse else 0
    sfx = "_reverse" if reverse else ""
    with torch.no_grad():
        getattr(mod, "weight_ih_l0" + sfx).copy_(torch.from_numpy(kw["weight_ih"]))
        getattr(mod, "weight_hh_l0" + sfx).copy_(torch.from_numpy(kw["weight_hh"]))
        if bias:
            getattr(mod, "bias_ih_l0" + sfx).copy_(torch.from_numpy(kw["bias_ih"]))
            getattr(mod, "bias_hh_l0" + sfx).copy_(torch.from_numpy(kw["bias_hh"]))

    D = 2 if reverse else 1
    nb = len(rows)
    rng = np.random.default_rng(0)

    def state(ours):
        full = 0.5 * rng.standard_normal((D, nb, H)).astype(dtype)
        full[d] = ours[rows] if ours is not None else 0.0
        return torch.tensor(full, requires_grad=True)

    x_t = torch.tensor(bsel(x), requires_grad=True)
    h0_t = state(kw["h0"])
    hx = h0_t
    if variant.is_lstm:
        c0_t = state(kw["c0"])
        hx = (h0_t, c0_t)

    lengths = kw["lengths"]
    if lengths is not None:
        lens = torch.as_tensor(lengths[rows].astype(np.int64))
        packed = torch.nn.utils.rnn.pack_padded_sequence(x_t, lens, batch_first=bf,
                                                         enforce_sorted=False)
        out_p, states = mod(packed, hx)
        y_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out_p, batch_first=bf, total_length=T)
    else:
        y_t, states = mod(x_t, hx)
    y_dir = y_t[..., d * H:(d + 1) * H]
    if variant.is_lstm:
        hn_t, cn_t = states
    else:
        hn_t, cn_t = states, None

    loss = y_dir.sum() * 0
    if given["dy"] is not None:
        loss = loss + (y_dir * torch.from_numpy(bsel(given["dy"]))).sum()
    if given["dh_n"] is not None:
        loss = loss + (hn_t[d] * torch.from_numpy(given["dh_n"][rows])).sum()
    if given.get("dc_n") is not None:
        loss = loss + (cn_t[d] * torch.from_numpy(given["dc_n"][rows])).sum()
    loss.backward()

    def grad_of(p):
        return p.grad.numpy() if p.grad is not None else np.zeros(tuple(p.shape), dtype)

    res = {
        "y": y_dir.detach().numpy(),
        "h_n": hn_t[d].detach().numpy(),
        "dx": grad_of(x_t),
        "dh0": grad_of(h0_t)[d],
        "dweight_ih": grad_of(getattr(mod, "weight_ih_l0" + sfx)),
        "dweight_hh": grad_of(getattr(mod, "weight_hh_l0" + sfx)),
    }
    if bias:
        res["dbias_ih"] = grad_of(getattr(mod, "bias_ih_l0" + sfx))
        res["dbias_hh"] = grad_of(getattr(mod, "bias_hh_l0" + sfx))
    if variant.is_lstm:
        res["c_n"] = cn_t[d].detach().numpy()
        res["dc0"] = grad_of(c0_t)[d]
    return res


def compare(ours, theirs, variant, kw, dtype, rows=None, batch_select=None):
    x = kw["x"]
    if kw["batch_first"]:
        B, T, I = x.shape
    else:
        T, B, I = x.shape
    H = kw["weight_hh"].shape[1]
    K = grad_reduction_lengths(variant, T, B, I, H)
    for name, want in theirs.items():
        got = ours[name]
        assert got is not None, name
        assert got.dtype == dtype, f"{name}: dtype {got.dtype}"
        if rows is not None and not name.startswith(("dweight", "dbias")):
            got = batch_select(got, rows) if name in ("y", "dx") else got[rows]
        assert_close(got, want, dtype=dtype, K=K[name], name=name, factor=BOTH_SIDES)


def ours_all(variant, kw, given, reverse):
    out = forward(F, variant, kw, training=True, reverse=reverse)
    grads = backward(F, variant, out.ctx, **given)
    res = dict(out._asdict())
    res.update(grads._asdict())
    return res


CASES = {
    "plain": dict(),
    "T1_B1": dict(T=1, B=1),
    "lengths": dict(lengths="nozero"),
    "lengths_full": dict(lengths="full"),
    "reverse": dict(reverse=True),
    "reverse_lengths": dict(reverse=True, lengths="nozero"),
    "batch_first_lengths": dict(batch_first=True, lengths="nozero"),
    "batch_first_reverse_lengths": dict(batch_first=True, reverse=True, lengths="nozero"),
    "no_bias": dict(bias=False),
    "no_h0": dict(h0=False, c0=False),
    "no_bias_no_h0_reverse": dict(bias=False, h0=False, c0=False, reverse=True),
    "large": dict(T=20, B=9, I=33, H=40, lengths="nozero", reverse=True),
}


@torch_variant_params
@dtype_params
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_torch_parity(torch, variant, dtype, case):
    opts = dict(CASES[case])
    T, B, I, H = (opts.pop(k, d) for k, d in (("T", 6), ("B", 5), ("I", 7), ("H", 13)))
    reverse = opts.pop("reverse", False)
    rng = np.random.default_rng(seed_of("torch", variant.name, case))
    kw = make_inputs(rng, variant, T, B, I, H, dtype, **opts)
    out = forward(F, variant, kw, training=True, reverse=reverse)
    given = make_output_grads(rng, variant, out)
    ours = ours_all(variant, kw, given, reverse)
    theirs = run_torch(torch, variant, kw, given, reverse)
    compare(ours, theirs, variant, kw, dtype)


@pytest.mark.parametrize("variant,which", [
    pytest.param(v, w, id=f"{v.name}-{w}") for v in TORCH_VARIANTS for w in ("dy", "dh_n", "dc_n")
    if v.is_lstm or w != "dc_n"])
@dtype_params
def test_torch_parity_single_gradient(torch, variant, dtype, which):
    """Only one of dy / dh_n / dc_n given (the others None on our side, absent in torch)."""
    rng = np.random.default_rng(seed_of("single", variant.name, which))
    kw = make_inputs(rng, variant, 6, 5, 7, 13, dtype, lengths="nozero")
    out = forward(F, variant, kw, training=True, reverse=True)
    given = make_output_grads(rng, variant, out, which=(which,))
    compare(ours_all(variant, kw, given, True), run_torch(torch, variant, kw, given, True),
            variant, kw, dtype)


@torch_variant_params
@dtype_params
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
def test_zero_length_rows(torch, variant, dtype, reverse, batch_first):
    """Lengths with zeros: rows >= 1 against torch, rows == 0 against the reference; weight
    gradients (to which a length-0 row contributes nothing) against torch on the other rows."""
    T, B, I, H = 6, 7, 5, 9
    rng = np.random.default_rng(seed_of("zero_rows", variant.name, reverse, batch_first))
    kw = make_inputs(rng, variant, T, B, I, H, dtype, lengths="mixed", batch_first=batch_first)
    kw["lengths"][[1, 4]] = 0
    assert (kw["lengths"] > 0).sum() >= 2
    out = forward(F, variant, kw, training=True, reverse=reverse)
    given = make_output_grads(rng, variant, out)
    ours = ours_all(variant, kw, given, reverse)

    live = np.flatnonzero(kw["lengths"] > 0)
    dead = np.flatnonzero(kw["lengths"] == 0)

    def bsel(a, rows):
        return a[rows] if batch_first else a[:, rows]

    theirs = run_torch(torch, variant, kw, given, reverse, rows=live)
    compare(ours, theirs, variant, kw, dtype, rows=live, batch_select=bsel)

    ref_out = forward(R, variant, upcast(kw), training=True, reverse=reverse)
    ref_grads = backward(R, variant, ref_out.ctx, **upcast(given))
    ref = dict(ref_out._asdict())
    ref.update(ref_grads._asdict())
    K = grad_reduction_lengths(variant, T, B, I, H)
    for name in ("y", "h_n", "c_n", "dx", "dh0", "dc0"):
        if name not in ours:
            continue
        sel = (lambda a: bsel(a, dead)) if name in ("y", "dx") else (lambda a: a[dead])  # noqa
        assert_close(sel(ours[name]), sel(ref[name]), dtype=dtype, K=K[name], name=name)


# ----------------------------------------------------------------------------------------------
# Unrolled torch autograd: GRU reset_after=False, recurrent_mask, dh_seq
# ----------------------------------------------------------------------------------------------

def unrolled_torch(torch, variant, kw, given, reverse):
    """Time-major, full-length sequences; the cell equations of DESIGN.md section 2 and the
    recurrent_mask rule of the API contract, differentiated by torch autograd."""
    dtype = kw["x"].dtype
    leaf = lambda a: torch.tensor(a, requires_grad=True)  # noqa: E731
    x = leaf(kw["x"])
    T, B, _ = x.shape
    w_ih, w_hh = leaf(kw["weight_ih"]), leaf(kw["weight_hh"])
    GH, H = w_hh.shape
    has_bias = kw["bias_ih"] is not None
    b_ih = leaf(kw["bias_ih"]) if has_bias else torch.zeros(GH, dtype=x.dtype)
    b_hh = leaf(kw["bias_hh"]) if has_bias else torch.zeros(GH, dtype=x.dtype)
    h0 = leaf(kw["h0"] if kw["h0"] is not None else np.zeros((B, H), dtype))
    c0 = None
    if variant.is_lstm:
        c0 = leaf(kw["c0"] if kw["c0"] is not None else np.zeros((B, H), dtype))
    m = kw.get("recurrent_mask")
    m = torch.from_numpy(m) if m is not None else torch.ones((B, H), dtype=x.dtype)

    h, c = h0, c0
    hs = [None] * T
    for k in range(T):
        t = T - 1 - k if reverse else k
        gi = x[t] @ w_ih.T + b_ih
        mh = m * h
        if variant.cell == "rnn":
            a = gi + mh @ w_hh.T + b_hh
            h = torch.tanh(a) if variant.opts["nonlinearity"] == "tanh" else torch.relu(a)
        elif variant.cell == "lstm":
            g = gi + mh @ w_hh.T + b_hh
            i, f = torch.sigmoid(g[:, :H]), torch.sigmoid(g[:, H:2 * H])
            gg, o = torch.tanh(g[:, 2 * H:3 * H]), torch.sigmoid(g[:, 3 * H:])
            c = f * c + i * gg
            h = o * torch.tanh(c)
        else:
            ghrz = mh @ w_hh[:2 * H].T + b_hh[:2 * H]
            r = torch.sigmoid(gi[:, :H] + ghrz[:, :H])
            z = torch.sigmoid(gi[:, H:2 * H] + ghrz[:, H:])
            if variant.opts["reset_after"]:
                n = torch.tanh(gi[:, 2 * H:] + r * (mh @ w_hh[2 * H:].T + b_hh[2 * H:]))
            else:
                n = torch.tanh(gi[:, 2 * H:] + (r * mh) @ w_hh[2 * H:].T + b_hh[2 * H:])
            h = (1 - z) * n + z * h
        h.retain_grad()
        hs[t] = h
    y = torch.stack(hs) if T else torch.zeros((0, B, H), dtype=x.dtype)
    loss = (y * torch.from_numpy(given["dy"])).sum() + (h * torch.from_numpy(given["dh_n"])).sum()
    if variant.is_lstm:
        loss = loss + (c * torch.from_numpy(given["dc_n"])).sum()
    loss.backward()
    res = {"y": y.detach().numpy(), "h_n": h.detach().numpy(), "dx": x.grad.numpy(),
           "dh0": h0.grad.numpy(), "dweight_ih": w_ih.grad.numpy(),
           "dweight_hh": w_hh.grad.numpy(),
           "dh_seq": np.stack([hh.grad.numpy() for hh in hs])}
    if has_bias:
        res["dbias_ih"], res["dbias_hh"] = b_ih.grad.numpy(), b_hh.grad.numpy()
    if variant.is_lstm:
        res["c_n"], res["dc0"] = c.detach().numpy(), c0.grad.numpy()
    return res


UNROLLED_CASES = {
    "plain": dict(),
    "mask": dict(mask=True),
    "mask_reverse": dict(mask=True, reverse=True),
    "mask_no_bias_no_h0": dict(mask=True, bias=False, h0=False, c0=False),
}


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
@dtype_params
@pytest.mark.parametrize("case", list(UNROLLED_CASES), ids=list(UNROLLED_CASES))
def test_unrolled_torch_autograd(torch, variant, dtype, case):
    opts = dict(UNROLLED_CASES[case])
    reverse = opts.pop("reverse", False)
    T, B, I, H = 5, 4, 7, 13
    rng = np.random.default_rng(seed_of("unrolled", variant.name, case))
    kw = make_inputs(rng, variant, T, B, I, H, dtype, **opts)
    out = forward(F, variant, kw, training=True, reverse=reverse)
    given = make_output_grads(rng, variant, out)
    grads = backward(F, variant, out.ctx, **given, return_dh_seq=True)
    ours = dict(out._asdict())
    ours.update(grads._asdict())
    theirs = unrolled_torch(torch, variant, kw, given, reverse)
    compare(ours, theirs, variant, kw, dtype)
