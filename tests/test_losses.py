"""gatedrnn.losses: values against formulas written out here, gradients against central finite
differences (float64), and the from_logits cases against torch.nn.functional.

The reference formulas below restate Keras 3's definitions independently of the
implementation: per-position loss (mean over the last axis for MSE/BCE, a sum over classes for
the cross-entropies), then the mean over positions, or sum(loss * mask) / sum(mask).
"""

import math

import numpy as np
import pytest

from gatedrnn import losses

EPS = 1e-7
B, T, C = 3, 4, 5

# --------------------------------------------------------------------------------------------
# Independent reference formulas (loops over positions, Python math)
# --------------------------------------------------------------------------------------------


def _positions(shape):
    return list(np.ndindex(*shape))


def _reduce(per_position, mask):
    """Mean over positions, or the masked mean; 0 when nothing counts."""
    if mask is None:
        vals = list(per_position.values())
        return sum(vals) / len(vals) if vals else 0.0
    num = sum(v for k, v in per_position.items() if mask[k])
    den = sum(1 for k in per_position if mask[k])
    return num / den if den else 0.0


def _clip(p):
    return min(max(p, EPS), 1 - EPS)


def ref_mse(y_true, y_pred, mask=None):
    per = {}
    for pos in _positions(y_pred.shape[:-1]):
        row_t, row_p = y_true[pos], y_pred[pos]
        per[pos] = sum((float(a) - float(b)) ** 2 for a, b in zip(row_t, row_p)) / len(row_p)
    return _reduce(per, mask)


def ref_bce(y_true, y_pred, mask=None, from_logits=False):
    per = {}
    for pos in _positions(y_pred.shape[:-1]):
        total = 0.0
        for y, p in zip(y_true[pos], y_pred[pos]):
            y, p = float(y), float(p)
            if from_logits:
                # -[y log s(x) + (1 - y) log(1 - s(x))] with log s(x) = -log(1 + e^-x)
                log_s = -math.log1p(math.exp(-p)) if p >= 0 else p - math.log1p(math.exp(p))
                log_1ms = log_s - p
                total += -(y * log_s + (1 - y) * log_1ms)
            else:
                q = _clip(p)
                total += -(y * math.log(q) + (1 - y) * math.log(1 - q))
        per[pos] = total / y_pred.shape[-1]
    return _reduce(per, mask)


def _log_probs(row, from_logits):
    row = [float(v) for v in row]
    if from_logits:
        m = max(row)
        lse = m + math.log(sum(math.exp(v - m) for v in row))
        return [v - lse for v in row]
    s = sum(row)
    return [math.log(_clip(v / s)) for v in row]


def ref_cce(y_true, y_pred, mask=None, from_logits=False):
    per = {}
    for pos in _positions(y_pred.shape[:-1]):
        logq = _log_probs(y_pred[pos], from_logits)
        per[pos] = -sum(float(t) * lq for t, lq in zip(y_true[pos], logq))
    return _reduce(per, mask)


def ref_sparse(labels, y_pred, mask=None, from_logits=False):
    per = {}
    for pos in _positions(y_pred.shape[:-1]):
        per[pos] = -_log_probs(y_pred[pos], from_logits)[int(labels[pos])]
    return _reduce(per, mask)


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

CASES = [
    ("mse", False), ("bce", False), ("bce", True), ("cce", False), ("cce", True),
    ("sparse", False), ("sparse", True),
]
CASE_IDS = [f"{k}{'-logits' if fl else ''}" for k, fl in CASES]


def make_loss(kind, from_logits):
    if kind == "mse":
        return losses.MeanSquaredError()
    cls = {"bce": losses.BinaryCrossentropy, "cce": losses.CategoricalCrossentropy,
           "sparse": losses.SparseCategoricalCrossentropy}[kind]
    return cls(from_logits=from_logits)


def make_data(rng, kind, from_logits, shape=(B, T, C), dtype=np.float64):
    """Targets and predictions well inside the clip range (so finite differences are valid)."""
    if kind == "mse" or from_logits:
        y_pred = rng.standard_normal(shape) * 2
    elif kind == "bce":
        y_pred = rng.uniform(0.05, 0.95, shape)
    else:
        # unnormalised positive scores: the loss must renormalise them
        y_pred = rng.uniform(0.2, 1.5, shape)
    if kind == "sparse":
        y_true = rng.integers(0, shape[-1], size=shape[:-1])
    elif kind == "cce":
        # soft targets (not one-hot, not summing to 1) exercise the general gradient
        y_true = rng.uniform(0.0, 1.0, shape)
    elif kind == "bce":
        y_true = rng.uniform(0.0, 1.0, shape)
    else:
        y_true = rng.standard_normal(shape)
    return y_true, y_pred.astype(dtype)


def reference(kind, from_logits, y_true, y_pred, mask=None):
    if kind == "mse":
        return ref_mse(y_true, y_pred, mask)
    if kind == "bce":
        return ref_bce(y_true, y_pred, mask, from_logits)
    if kind == "cce":
        return ref_cce(y_true, y_pred, mask, from_logits)
    return ref_sparse(y_true, y_pred, mask, from_logits)


def finite_differences(fn, y_pred, h=1e-6):
    grad = np.zeros_like(y_pred)
    for idx in np.ndindex(*y_pred.shape):
        up, down = y_pred.copy(), y_pred.copy()
        up[idx] += h
        down[idx] -= h
        grad[idx] = (fn(up) - fn(down)) / (2 * h)
    return grad


# --------------------------------------------------------------------------------------------
# Values and gradients
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,from_logits", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_value_matches_reference_formula(kind, from_logits, masked):
    rng = np.random.default_rng(1)
    y_true, y_pred = make_data(rng, kind, from_logits)
    mask = (rng.random((B, T)) < 0.6) if masked else None
    if masked:
        mask[0, 0], mask[0, 1] = True, False
    loss = make_loss(kind, from_logits)
    got = loss(y_true, y_pred, mask=mask)
    want = reference(kind, from_logits, y_true, y_pred, mask)
    assert isinstance(got, float)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-14)
    value, _ = loss.forward_backward(y_true, y_pred, mask=mask)
    assert value == got


@pytest.mark.parametrize("kind,from_logits", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("shape", [(B, T, C), (6, C)], ids=["3d", "2d"])
def test_gradient_matches_finite_differences(kind, from_logits, masked, shape):
    rng = np.random.default_rng(2)
    y_true, y_pred = make_data(rng, kind, from_logits, shape=shape)
    mask = (rng.random(shape[:-1]) < 0.6) if masked else None
    if masked:
        mask.flat[0], mask.flat[1] = True, False
    loss = make_loss(kind, from_logits)
    value, grad = loss.forward_backward(y_true, y_pred, mask=mask)
    assert grad.shape == y_pred.shape and grad.dtype == np.float64
    fd = finite_differences(lambda p: loss(y_true, p, mask=mask), y_pred)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)
    if masked:  # masked-out positions get no gradient at all
        assert np.all(grad[~mask] == 0)


@pytest.mark.parametrize("kind,from_logits", CASES, ids=CASE_IDS)
def test_float32_computes_in_float32(kind, from_logits):
    rng = np.random.default_rng(3)
    y_true, y_pred64 = make_data(rng, kind, from_logits)
    y_pred32 = y_pred64.astype(np.float32)
    loss = make_loss(kind, from_logits)
    v32, g32 = loss.forward_backward(y_true, y_pred32)
    v64, g64 = loss.forward_backward(y_true, y_pred32.astype(np.float64))
    assert g32.dtype == np.float32 and g32.shape == y_pred32.shape
    assert v32 == pytest.approx(v64, rel=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-6)


def test_mse_hand_computed():
    y_true = np.array([[0.0, 1.0], [2.0, 2.0]])
    y_pred = np.array([[1.0, 1.0], [0.0, 4.0]])
    # per-sample means over the last axis: (1 + 0) / 2 = 0.5 and (4 + 4) / 2 = 4; mean 2.25
    value, grad = losses.MeanSquaredError().forward_backward(y_true, y_pred)
    assert value == 2.25
    # L = (1/2) sum_i (1/2) sum_j (p_ij - t_ij)^2  ->  dL/dp_ij = (p_ij - t_ij) / 2
    np.testing.assert_array_equal(grad, (y_pred - y_true) / 2)


def test_bce_hand_computed():
    y_true = np.array([[1.0, 0.0]])
    y_pred = np.array([[0.8, 0.4]])
    want = -(math.log(0.8) + math.log(0.6)) / 2
    assert losses.BinaryCrossentropy()(y_true, y_pred) == pytest.approx(want, rel=1e-14)


def test_sparse_hand_computed_probabilities_are_renormalised():
    y_pred = np.array([[2.0, 1.0, 1.0]])  # sums to 4: probabilities 0.5, 0.25, 0.25
    assert losses.SparseCategoricalCrossentropy()([1], y_pred) == pytest.approx(math.log(4))
    assert losses.CategoricalCrossentropy()([[0, 1, 0]], y_pred) == pytest.approx(math.log(4))


def test_categorical_scale_invariance_from_probabilities():
    rng = np.random.default_rng(4)
    y_true, y_pred = make_data(rng, "cce", False)
    loss = losses.CategoricalCrossentropy()
    assert loss(y_true, 3.0 * y_pred) == pytest.approx(loss(y_true, y_pred), rel=1e-12)


# --------------------------------------------------------------------------------------------
# Clipping, stability, masks
# --------------------------------------------------------------------------------------------


def test_bce_probabilities_clip_and_zero_gradient_outside():
    y_true = np.array([[1.0, 0.0, 1.0, 0.0]])
    y_pred = np.array([[0.0, 1.0, 1.0, 0.0]])  # two hopeless, two perfect predictions
    value, grad = losses.BinaryCrossentropy().forward_backward(y_true, y_pred)
    # clipped to eps / 1 - eps: the hopeless ones cost -log(eps), the perfect ones -log(1-eps)
    want = (2 * -math.log(EPS) + 2 * -math.log1p(-EPS)) / 4
    assert value == pytest.approx(want, rel=1e-9)
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad, 0.0)  # every entry is outside [eps, 1 - eps]


def test_categorical_probability_clip_zero_gradient():
    # one class with exactly zero probability: its gradient path is cut by the clip
    y_true = np.array([[0.0, 1.0, 0.0]])
    y_pred = np.array([[0.5, 0.0, 0.5]])
    value, grad = losses.CategoricalCrossentropy().forward_backward(y_true, y_pred)
    assert value == pytest.approx(-math.log(EPS), rel=1e-9)
    np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_from_logits_is_stable_for_huge_logits(dtype):
    logits = np.array([[1000.0, -1000.0]], dtype=dtype)
    bce = losses.BinaryCrossentropy(from_logits=True)
    v, g = bce.forward_backward(np.array([[0.0, 1.0]]), logits)
    assert v == pytest.approx(1000.0, rel=1e-6)  # softplus(1000) = softplus(-(-1000)) = 1000
    np.testing.assert_allclose(g, [[0.5, -0.5]], rtol=1e-6)
    scce = losses.SparseCategoricalCrossentropy(from_logits=True)
    v, g = scce.forward_backward([1], np.array([[1000.0, 0.0, -1000.0]], dtype=dtype))
    assert v == pytest.approx(1000.0, rel=1e-6)
    np.testing.assert_allclose(g, [[1.0, -1.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize("kind,from_logits", CASES, ids=CASE_IDS)
def test_all_masked_gives_zero_not_nan(kind, from_logits):
    rng = np.random.default_rng(5)
    y_true, y_pred = make_data(rng, kind, from_logits)
    y_pred[0, 0, 0] = np.nan  # padding may hold anything
    mask = np.zeros((B, T), bool)
    value, grad = make_loss(kind, from_logits).forward_backward(y_true, y_pred, mask=mask)
    assert value == 0.0
    np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize("kind,from_logits", CASES, ids=CASE_IDS)
def test_masked_equals_loss_on_selected_positions(kind, from_logits):
    rng = np.random.default_rng(6)
    y_true, y_pred = make_data(rng, kind, from_logits)
    mask = rng.random((B, T)) < 0.5
    mask[1, 2] = True
    y_pred_padded = y_pred.copy()
    y_pred_padded[~mask] = np.nan  # values behind the mask must not leak
    loss = make_loss(kind, from_logits)
    value, grad = loss.forward_backward(y_true, y_pred_padded, mask=mask)
    selected = loss(y_true[mask], y_pred[mask])  # (N, C) rows of the valid positions
    assert value == pytest.approx(selected, rel=1e-12)
    assert not np.any(np.isnan(grad))


def test_empty_batch_gives_zero():
    value, grad = losses.MeanSquaredError().forward_backward(np.zeros((0, 3)), np.zeros((0, 3)))
    assert value == 0.0 and grad.shape == (0, 3)


def test_numeric_mask_and_trailing_label_axes_accepted():
    rng = np.random.default_rng(7)
    y_true, y_pred = make_data(rng, "sparse", True)
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    mask = rng.random((B, T)) < 0.5
    mask[0, 0] = True
    want = loss(y_true, y_pred, mask=mask)
    assert loss(y_true[..., None], y_pred, mask=mask.astype(np.int8)) == want
    assert loss(y_true.astype(np.float32), y_pred, mask=mask) == want
    # (B,) targets for a (B, 1) output, as Keras
    p = rng.uniform(0.1, 0.9, (6, 1))
    t = rng.integers(0, 2, 6).astype(np.float64)
    assert losses.BinaryCrossentropy()(t, p) == losses.BinaryCrossentropy()(t[:, None], p)


def test_one_dimensional_predictions_are_one_value_per_sample():
    y_true = np.array([0.0, 1.0, 1.0])
    y_pred = np.array([0.2, 0.6, 0.9])
    want = -(math.log(0.8) + math.log(0.6) + math.log(0.9)) / 3
    bce = losses.BinaryCrossentropy()
    v, g = bce.forward_backward(y_true, y_pred, mask=np.array([True, True, True]))
    assert v == pytest.approx(want, rel=1e-14) and g.shape == (3,)
    assert bce(y_true, y_pred, mask=np.array([True, False, False])) == pytest.approx(
        -math.log(0.8), rel=1e-14)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"y_true.*y_pred.*\(2, 3\).*\(2, 4\)"):
        losses.MeanSquaredError()(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"y_true"):
        losses.SparseCategoricalCrossentropy()(np.zeros((2, 2), int), np.full((2, 3), 1 / 3))


@pytest.mark.parametrize("bad", [-1, 3])
def test_sparse_label_out_of_range(bad):
    with pytest.raises(ValueError, match=r"y_true.*out of range"):
        losses.SparseCategoricalCrossentropy(from_logits=True)([0, bad], np.zeros((2, 3)))


def test_sparse_non_integral_labels():
    with pytest.raises(ValueError, match="y_true"):
        losses.SparseCategoricalCrossentropy()([0.5, 1.0], np.full((2, 3), 1 / 3))


def test_bad_dtypes_and_masks():
    with pytest.raises(TypeError, match="y_pred.*int64"):
        losses.MeanSquaredError()(np.zeros((2, 2)), np.zeros((2, 2), np.int64))
    with pytest.raises(TypeError, match="y_pred.*float16"):
        losses.MeanSquaredError()(np.zeros((2, 2)), np.zeros((2, 2), np.float16))
    with pytest.raises(TypeError, match="y_true"):
        losses.MeanSquaredError()(np.array([["a", "b"]]), np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"mask.*\(2, 3\).*\(2, 4\)"):
        losses.MeanSquaredError()(np.zeros((2, 3, 1)), np.zeros((2, 3, 1)),
                                  mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="mask"):
        losses.MeanSquaredError()(np.zeros((2, 3, 1)), np.zeros((2, 3, 1)),
                                  mask=np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="y_pred"):
        losses.MeanSquaredError()(1.0, np.float64(1.0))
    with pytest.raises(TypeError, match="from_logits"):
        losses.BinaryCrossentropy(from_logits="yes")


# --------------------------------------------------------------------------------------------
# Lookup and config
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,cls", [
    ("mse", losses.MeanSquaredError), ("mean_squared_error", losses.MeanSquaredError),
    ("binary_crossentropy", losses.BinaryCrossentropy),
    ("categorical_crossentropy", losses.CategoricalCrossentropy),
    ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
])
def test_get_by_name(name, cls):
    loss = losses.get(name)
    assert type(loss) is cls


def test_get_instance_unknown_and_config_roundtrip():
    inst = losses.BinaryCrossentropy(from_logits=True)
    assert losses.get(inst) is inst
    with pytest.raises(ValueError, match=r"unknown.*'hinge'.*binary_crossentropy.*mse"):
        losses.get("hinge")
    with pytest.raises(TypeError):
        losses.get(3)
    cfg = inst.get_config()
    assert cfg == {"name": "binary_crossentropy", "reduction": "sum_over_batch_size",
                   "from_logits": True}
    again = losses.BinaryCrossentropy.from_config(cfg)
    assert again.from_logits is True and again.name == "binary_crossentropy"
    via_dict = losses.get(losses.serialize(losses.SparseCategoricalCrossentropy(from_logits=True)))
    assert isinstance(via_dict, losses.SparseCategoricalCrossentropy) and via_dict.from_logits
    assert losses.MeanSquaredError().name == "mean_squared_error"
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="sum")


# --------------------------------------------------------------------------------------------
# torch parity (from_logits=True; values and autograd gradients)
# --------------------------------------------------------------------------------------------


@pytest.mark.peers
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("kind", ["bce", "cce", "sparse", "mse"])
def test_torch_parity(torch, kind, masked):
    F = torch.nn.functional
    rng = np.random.default_rng(8)
    y_true, y_pred = make_data(rng, kind, True)
    mask = (rng.random((B, T)) < 0.6) if masked else np.ones((B, T), bool)
    mask[0, 0] = True
    x = torch.tensor(y_pred, requires_grad=True)
    if kind == "bce":
        per_elem = F.binary_cross_entropy_with_logits(x, torch.tensor(y_true), reduction="none")
        per_pos = per_elem.mean(-1)
    elif kind == "cce":
        # (N, C) with class-probability targets
        per_pos = F.cross_entropy(x.reshape(-1, C), torch.tensor(y_true).reshape(-1, C),
                                  reduction="none").reshape(B, T)
    elif kind == "sparse":
        per_pos = F.cross_entropy(x.reshape(-1, C), torch.tensor(y_true).reshape(-1),
                                  reduction="none").reshape(B, T)
    else:
        per_pos = F.mse_loss(x, torch.tensor(y_true), reduction="none").mean(-1)
    m = torch.tensor(mask, dtype=torch.float64)
    total = (per_pos * m).sum() / m.sum()
    total.backward()
    loss = make_loss(kind, True)
    value, grad = loss.forward_backward(y_true, y_pred, mask=mask if masked else None)
    assert value == pytest.approx(total.item(), rel=1e-12)
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.peers
def test_torch_parity_bce_probabilities_inside_clip(torch):
    F = torch.nn.functional
    rng = np.random.default_rng(9)
    y_true, y_pred = make_data(rng, "bce", False)
    x = torch.tensor(y_pred, requires_grad=True)
    total = F.binary_cross_entropy(x, torch.tensor(y_true))
    total.backward()
    value, grad = losses.BinaryCrossentropy().forward_backward(y_true, y_pred)
    assert value == pytest.approx(total.item(), rel=1e-12)
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-10)
