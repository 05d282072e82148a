"""gatedrnn.optim: each optimizer step by step against a NumPy restatement of Keras 3's update
formulas written here (keras/src/optimizers/{sgd,adam,adamw,rmsprop}.py and
base_optimizer.py), against torch.optim where the two provably coincide, clipping on
hand-computed numbers, and exact resume through get_state/set_state.
"""

import math

import numpy as np
import pytest

from gatedrnn import optim
from gatedrnn.layers.parameter import Parameter

SHAPES = [(3, 4), (5,)]
STEPS = 5


def make_params(rng, dtype, shapes=SHAPES):
    return [Parameter(f"p{i}", rng.standard_normal(s).astype(dtype)) for i, s in enumerate(shapes)]


def grad_sequence(rng, dtype, steps=STEPS, shapes=SHAPES, scale=1.0):
    return [[(scale * rng.standard_normal(s)).astype(dtype) for s in shapes] for _ in range(steps)]


def run(opt, params, grads_per_step):
    for grads in grads_per_step:
        for p, g in zip(params, grads):
            p.grad[...] = g
        opt.apply(params)
    return [p.value.copy() for p in params]


# --------------------------------------------------------------------------------------------
# Keras 3 formulas restated (one parameter, one step; every scalar in the parameter dtype)
# --------------------------------------------------------------------------------------------


class KerasSGD:
    def __init__(self, lr, momentum=0.0, nesterov=False, wd=None):
        self.lr, self.momentum, self.nesterov, self.wd = lr, momentum, nesterov, wd
        self.m = {}

    def step(self, i, w, g, t):
        dt = w.dtype.type
        lr = dt(self.lr)
        if self.wd is not None:
            w = w - w * dt(self.wd) * lr
        if self.momentum == 0:
            return w - g * lr
        m = self.m.get(i, np.zeros_like(w))
        m = m * dt(self.momentum) - g * lr
        self.m[i] = m
        if self.nesterov:
            return w + (m * dt(self.momentum) - g * lr)
        return w + m


class KerasAdam:
    def __init__(self, lr, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False, wd=None):
        self.lr, self.b1, self.b2, self.eps, self.amsgrad, self.wd = lr, b1, b2, eps, amsgrad, wd
        self.m, self.v, self.vhat = {}, {}, {}

    def step(self, i, w, g, t):
        dt = w.dtype.type
        lr = dt(self.lr)
        if self.wd is not None:
            w = w - w * dt(self.wd) * lr
        local_step = dt(t + 1)
        alpha = lr * np.sqrt(1 - dt(self.b2) ** local_step) / (1 - dt(self.b1) ** local_step)
        m = self.m.get(i, np.zeros_like(w))
        v = self.v.get(i, np.zeros_like(w))
        m = m + (g - m) * dt(1 - self.b1)
        v = v + (g * g - v) * dt(1 - self.b2)
        self.m[i], self.v[i] = m, v
        if self.amsgrad:
            vhat = np.maximum(self.vhat.get(i, np.zeros_like(w)), v)
            self.vhat[i] = vhat
            v = vhat
        return w - (m * alpha) / (np.sqrt(v) + dt(self.eps))


class KerasRMSprop:
    def __init__(self, lr, rho=0.9, momentum=0.0, eps=1e-7, centered=False):
        self.lr, self.rho, self.momentum, self.eps, self.centered = lr, rho, momentum, eps, centered
        self.vel, self.mom, self.avg = {}, {}, {}

    def step(self, i, w, g, t):
        dt = w.dtype.type
        lr, rho = dt(self.lr), dt(self.rho)
        vel = rho * self.vel.get(i, np.zeros_like(w)) + dt(1 - self.rho) * g * g
        self.vel[i] = vel
        if self.centered:
            avg = rho * self.avg.get(i, np.zeros_like(w)) + dt(1 - self.rho) * g
            self.avg[i] = avg
            denom = vel - avg * avg + dt(self.eps)
        else:
            denom = vel + dt(self.eps)
        inc = lr * g / np.sqrt(denom)
        if self.momentum > 0:
            mom = dt(self.momentum) * self.mom.get(i, np.zeros_like(w)) + inc
            self.mom[i] = mom
            return w - mom
        return w - inc


def run_reference(ref, init, grads_per_step):
    ws = [w.copy() for w in init]
    history = []
    for t, grads in enumerate(grads_per_step):
        ws = [ref.step(i, w, g, t) for i, (w, g) in enumerate(zip(ws, grads))]
        history.append([w.copy() for w in ws])
    return history


CONFIGS = [
    ("sgd", dict(learning_rate=0.1), lambda: KerasSGD(0.1)),
    ("sgd-momentum", dict(learning_rate=0.05, momentum=0.9),
     lambda: KerasSGD(0.05, momentum=0.9)),
    ("sgd-nesterov", dict(learning_rate=0.05, momentum=0.8, nesterov=True),
     lambda: KerasSGD(0.05, momentum=0.8, nesterov=True)),
    ("sgd-wd", dict(learning_rate=0.05, momentum=0.5, weight_decay=0.1),
     lambda: KerasSGD(0.05, momentum=0.5, wd=0.1)),
    ("adam", dict(learning_rate=0.01), lambda: KerasAdam(0.01)),
    ("adam-amsgrad", dict(learning_rate=0.01, beta_1=0.8, beta_2=0.99, amsgrad=True),
     lambda: KerasAdam(0.01, b1=0.8, b2=0.99, amsgrad=True)),
    ("adamw", dict(learning_rate=0.01, weight_decay=0.05), lambda: KerasAdam(0.01, wd=0.05)),
    ("rmsprop", dict(learning_rate=0.01), lambda: KerasRMSprop(0.01)),
    ("rmsprop-centered-momentum", dict(learning_rate=0.01, rho=0.8, momentum=0.7, centered=True),
     lambda: KerasRMSprop(0.01, rho=0.8, momentum=0.7, centered=True)),
]
CLASSES = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop}


def make_opt(key, kwargs):
    return CLASSES[key.split("-")[0]](**kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("key,kwargs,ref", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_matches_keras_formulas_step_by_step(key, kwargs, ref, dtype):
    rng = np.random.default_rng(10)
    params = make_params(rng, dtype)
    init = [p.value.copy() for p in params]
    grads = grad_sequence(rng, dtype)
    want = run_reference(ref(), init, grads)
    opt = make_opt(key, kwargs)
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    for t, step_grads in enumerate(grads):
        for p, g in zip(params, step_grads):
            p.grad[...] = g
        opt.apply(params)
        assert opt.iterations == t + 1
        for p, w in zip(params, want[t]):
            assert p.value.dtype == dtype
            np.testing.assert_allclose(p.value, w, rtol=rtol, atol=rtol * 1e-2,
                                       err_msg=f"{key} step {t + 1} {p.name}")
    # the parameters moved: a no-op optimizer would fail the comparison above only weakly
    assert not np.allclose(params[0].value, init[0])


def test_sgd_hand_computed():
    p = Parameter("w", np.array([1.0, -2.0]))
    opt = optim.SGD(learning_rate=0.5, momentum=0.5)
    p.grad[...] = [1.0, 1.0]
    opt.apply([p])  # v = -0.5 * [1, 1]; w = [0.5, -2.5]
    np.testing.assert_array_equal(p.value, [0.5, -2.5])
    opt.apply([p])  # v = 0.5 * -0.5 - 0.5 = -0.75; w = [-0.25, -3.25]
    np.testing.assert_array_equal(p.value, [-0.25, -3.25])


def test_adam_first_step_is_lr_times_sign():
    # at t = 1: m = 0.1 g, v = 0.001 g^2, alpha = lr sqrt(0.001) / 0.1, so the step is
    # lr * g / (|g| + eps / sqrt(0.001)) ~= lr * sign(g)
    p = Parameter("w", np.zeros(3))
    p.grad[...] = [2.0, -3.0, 0.5]
    optim.Adam(learning_rate=0.1, epsilon=0.0).apply([p])
    np.testing.assert_allclose(p.value, [-0.1, 0.1, -0.1], rtol=1e-12)


# --------------------------------------------------------------------------------------------
# torch.optim where the formulas coincide
# --------------------------------------------------------------------------------------------
#
# - SGD: torch's buffer b = mu b + g and w -= lr b equals Keras' v = mu v - lr g, w += v with
#   v = -lr b (constant lr); Nesterov w -= lr (g + mu b) equals w += mu v - lr g.
# - Adam/AdamW: torch divides m / (1 - b1^t) by sqrt(v / (1 - b2^t)) + eps, Keras folds the
#   corrections into alpha and adds eps to sqrt(v): identical when eps = 0.  AdamW's decay
#   w *= 1 - lr wd before the step equals Keras' w -= w wd lr.
# - RMSprop: torch adds eps outside the square root, Keras inside: identical when eps = 0;
#   torch's momentum buffer b = mu b + g / sqrt(v), w -= lr b equals Keras' with constant lr.

TORCH_CASES = [
    ("sgd-momentum", dict(learning_rate=0.05, momentum=0.9),
     lambda t, ps: t.optim.SGD(ps, lr=0.05, momentum=0.9)),
    ("sgd-nesterov", dict(learning_rate=0.05, momentum=0.8, nesterov=True),
     lambda t, ps: t.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True)),
    ("adam", dict(learning_rate=0.01, epsilon=0.0),
     lambda t, ps: t.optim.Adam(ps, lr=0.01, eps=0.0)),
    ("adam-amsgrad", dict(learning_rate=0.01, epsilon=0.0, amsgrad=True),
     lambda t, ps: t.optim.Adam(ps, lr=0.01, eps=0.0, amsgrad=True)),
    ("adamw", dict(learning_rate=0.01, weight_decay=0.1, epsilon=0.0),
     lambda t, ps: t.optim.AdamW(ps, lr=0.01, weight_decay=0.1, eps=0.0)),
    ("rmsprop", dict(learning_rate=0.01, rho=0.9, epsilon=0.0),
     lambda t, ps: t.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=0.0)),
    ("rmsprop-centered-momentum", dict(learning_rate=0.01, rho=0.8, momentum=0.5,
                                       centered=True, epsilon=0.0),
     lambda t, ps: t.optim.RMSprop(ps, lr=0.01, alpha=0.8, momentum=0.5, centered=True,
                                   eps=0.0)),
]


@pytest.mark.peers
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("key,kwargs,make_torch", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_matches_torch_optim(torch, key, kwargs, make_torch, dtype):
    rng = np.random.default_rng(11)
    params = make_params(rng, dtype)
    tparams = [torch.tensor(p.value.copy(), requires_grad=True) for p in params]
    topt = make_torch(torch, tparams)
    opt = make_opt(key, kwargs)
    rtol = 2e-5 if dtype == np.float32 else 1e-11
    for t, step_grads in enumerate(grad_sequence(rng, dtype, steps=6)):
        for p, tp, g in zip(params, tparams, step_grads):
            p.grad[...] = g
            tp.grad = torch.tensor(g.copy())
        opt.apply(params)
        topt.step()
        for p, tp in zip(params, tparams):
            np.testing.assert_allclose(p.value, tp.detach().numpy(), rtol=rtol, atol=rtol * 1e-2,
                                       err_msg=f"{key} step {t + 1}")


# --------------------------------------------------------------------------------------------
# Clipping
# --------------------------------------------------------------------------------------------


def one_sgd_step(grads, **clip):
    """Apply SGD(lr=1) from zero weights: the weights become minus the clipped gradients."""
    params = [Parameter(f"p{i}", np.zeros(np.shape(g))) for i, g in enumerate(grads)]
    for p, g in zip(params, grads):
        p.grad[...] = g
    optim.SGD(learning_rate=1.0, **clip).apply(params)
    return [-p.value for p in params]


def test_clipvalue_hand_computed():
    (got,) = one_sgd_step([np.array([-3.0, 0.2, 5.0])], clipvalue=1.0)
    np.testing.assert_array_equal(got, [-1.0, 0.2, 1.0])


def test_clipnorm_is_per_parameter():
    # norms: |(3, 4)| = 5 -> scaled by 2/5; |(0.6, 0.8)| = 1 stays
    a, b = one_sgd_step([np.array([3.0, 4.0]), np.array([0.6, 0.8])], clipnorm=2.0)
    np.testing.assert_allclose(a, [1.2, 1.6], rtol=1e-15)
    np.testing.assert_allclose(b, [0.6, 0.8], rtol=1e-15)


def test_global_clipnorm_hand_computed():
    # global norm sqrt(9 + 16 + 144) = 13 -> everything scaled by 6.5 / 13 = 0.5
    a, b = one_sgd_step([np.array([3.0, 4.0]), np.array([12.0])], global_clipnorm=6.5)
    np.testing.assert_allclose(a, [1.5, 2.0], rtol=1e-15)
    np.testing.assert_allclose(b, [6.0], rtol=1e-15)
    # below the threshold nothing changes
    a, b = one_sgd_step([np.array([3.0, 4.0]), np.array([12.0])], global_clipnorm=100.0)
    np.testing.assert_array_equal(a, [3.0, 4.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exploding_gradient_is_clipped_to_the_norm(dtype):
    g = np.full((10, 10), 1e10, dtype)  # norm 1e11; float32 squares alone would be 1e20 each
    norm = optim.global_norm([g])
    assert norm == pytest.approx(1e11, rel=1e-6)
    (clipped,), before = optim.clip_by_global_norm([g], 1.0)
    assert before == norm and clipped.dtype == dtype
    assert np.linalg.norm(clipped.astype(np.float64)) == pytest.approx(1.0, rel=1e-6)
    (got,) = one_sgd_step([g.astype(np.float64)], global_clipnorm=1.0)
    assert np.linalg.norm(got) == pytest.approx(1.0, rel=1e-12)
    (got,) = one_sgd_step([g.astype(np.float64)], clipnorm=1.0)
    assert np.linalg.norm(got) == pytest.approx(1.0, rel=1e-12)
    # float64 far beyond sqrt(max): the norm is still finite and exact
    huge = np.array([3e200, 4e200])
    assert optim.global_norm([huge]) == pytest.approx(5e200, rel=1e-12)
    np.testing.assert_allclose(optim.clip_by_norm(huge, 10.0), [6.0, 8.0], rtol=1e-12)


def test_global_norm_helpers():
    grads = [np.array([3.0]), None, np.array([[4.0]])]
    assert optim.global_norm(grads) == 5.0
    clipped, norm = optim.clip_by_global_norm(grads, 1.0)
    assert norm == 5.0 and clipped[1] is None
    np.testing.assert_allclose(clipped[0], [0.6])
    assert grads[0][0] == 3.0  # inputs untouched
    # a non-finite norm poisons everything (Keras): the problem shows instead of hiding
    clipped, norm = optim.clip_by_global_norm([np.array([np.inf]), np.array([1.0])], 1.0)
    assert math.isinf(norm) and np.isnan(clipped[1]).all()
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_by_global_norm(grads, 0.0)
    with pytest.raises(TypeError, match="grads"):
        optim.global_norm(np.zeros(3))


def test_clipping_does_not_modify_param_grad():
    p = Parameter("w", np.zeros(2))
    p.grad[...] = [30.0, 40.0]
    optim.SGD(learning_rate=1.0, global_clipnorm=1.0).apply([p])
    np.testing.assert_array_equal(p.grad, [30.0, 40.0])
    np.testing.assert_allclose(p.value, [-0.6, -0.8])


def test_at_most_one_clipping_option():
    with pytest.raises(ValueError, match="clipnorm.*global_clipnorm"):
        optim.Adam(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError, match="at most one"):
        optim.SGD(clipvalue=1.0, clipnorm=1.0)
    with pytest.raises(ValueError, match="clipnorm"):
        optim.SGD(clipnorm=-1.0)
    with pytest.raises(TypeError, match="clipvalue"):
        optim.SGD(clipvalue="1")


# --------------------------------------------------------------------------------------------
# Learning rate, trainability, parameter lists
# --------------------------------------------------------------------------------------------


def test_learning_rate_is_settable_and_schedules_see_the_iteration():
    opt = optim.SGD(learning_rate=0.1)
    opt.learning_rate = 0.25
    assert opt.learning_rate == 0.25
    p = Parameter("w", np.zeros(1))
    p.grad[...] = 1.0
    opt.apply([p])
    assert p.value[0] == -0.25
    seen = []

    def schedule(iteration):
        seen.append(iteration)
        return 1.0 / (iteration + 1)

    opt = optim.SGD(learning_rate=schedule)
    p = Parameter("w", np.zeros(1))
    p.grad[...] = 1.0
    for _ in range(3):
        opt.apply([p])
    assert p.value[0] == pytest.approx(-(1 + 1 / 2 + 1 / 3))
    assert 0 in seen and 2 in seen
    assert opt.learning_rate == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate = -1.0
    with pytest.raises(TypeError, match="learning_rate"):
        opt.learning_rate = "fast"
    with pytest.raises(ValueError, match="schedule"):
        optim.SGD(learning_rate=lambda it: float("nan")).apply([p])


def test_non_trainable_parameters_are_left_alone():
    rng = np.random.default_rng(12)
    frozen = Parameter("frozen", rng.standard_normal(3), trainable=False)
    live = Parameter("live", rng.standard_normal(3))
    before = frozen.value.copy()
    frozen.grad[...] = 1.0
    live.grad[...] = 1.0
    opt = optim.Adam(learning_rate=0.1, weight_decay=0.5)
    opt.apply([frozen, live])
    np.testing.assert_array_equal(frozen.value, before)
    assert set(opt.get_state()) == {"iterations", "adam/m/1", "adam/v/1"}


def test_same_parameter_list_required():
    rng = np.random.default_rng(13)
    params = make_params(rng, np.float64)
    opt = optim.Adam()
    opt.apply(params)
    with pytest.raises(ValueError, match="2 parameters, got 1"):
        opt.apply(params[:1])
    with pytest.raises(ValueError, match=r"params\[0\]"):
        opt.apply(list(reversed(params)))
    with pytest.raises(TypeError, match="params"):
        opt.apply(np.zeros(3))


def test_weight_decay_is_decoupled_and_uses_the_learning_rate():
    # zero gradient: SGD only applies the decay, w <- w (1 - wd lr)
    p = Parameter("w", np.array([2.0]))
    optim.SGD(learning_rate=0.1, weight_decay=0.5).apply([p])
    assert p.value[0] == pytest.approx(2.0 * (1 - 0.05), rel=1e-15)
    with pytest.raises(ValueError, match="weight_decay"):
        optim.AdamW(weight_decay=None)


# --------------------------------------------------------------------------------------------
# State, config, determinism
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key,kwargs,_", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_state_roundtrip_continues_bit_identically(key, kwargs, _):
    rng = np.random.default_rng(14)
    params = make_params(rng, np.float32)
    grads = grad_sequence(rng, np.float32, steps=6)
    opt = make_opt(key, kwargs)
    run(opt, params, grads[:3])
    state = opt.get_state()
    state_copy = {k: v.copy() for k, v in state.items()}
    snapshot = [p.value.copy() for p in params]
    straight = run(opt, params, grads[3:])
    for k in state:  # get_state handed out copies: running on did not change them
        np.testing.assert_array_equal(state[k], state_copy[k])

    resumed_params = [Parameter(p.name, w) for p, w in zip(params, snapshot)]
    resumed = make_opt(key, kwargs)
    resumed.set_state(state, resumed_params)
    assert resumed.iterations == 3
    again = run(resumed, resumed_params, grads[3:])
    for a, b in zip(straight, again):
        np.testing.assert_array_equal(a, b)


def test_state_keys_and_validation():
    rng = np.random.default_rng(15)
    params = make_params(rng, np.float64)
    opt = optim.Adam(amsgrad=True)
    run(opt, params, grad_sequence(rng, np.float64, steps=1))
    state = opt.get_state()
    assert set(state) == {"iterations", "adam/m/0", "adam/v/0", "adam/v_hat/0",
                          "adam/m/1", "adam/v/1", "adam/v_hat/1"}
    assert state["iterations"] == 1 and state["adam/m/0"].shape == (3, 4)

    fresh = optim.Adam(amsgrad=True)
    bad = dict(state, **{"adam/m/1": np.zeros(7)})
    with pytest.raises(ValueError, match=r"adam/m/1.*p1.*\(5,\).*\(7,\)"):
        fresh.set_state(bad, params)
    assert fresh.iterations == 0  # unchanged after a failed set_state
    with pytest.raises(ValueError, match="rmsprop"):
        optim.RMSprop().set_state({"iterations": np.array(1), "adam/m/0": np.zeros((3, 4))},
                                  params)
    with pytest.raises(ValueError, match="lacks"):
        fresh.set_state({k: v for k, v in state.items() if k != "adam/v_hat/0"}, params)
    with pytest.raises(ValueError, match="iterations"):
        fresh.set_state({"adam/m/0": np.zeros((3, 4))}, params)
    with pytest.raises(ValueError, match="parameter 1"):
        fresh.set_state(state, params[:1])
    with pytest.raises(ValueError, match="no slot"):
        optim.Adam().set_state(state, params)  # amsgrad=False has no v_hat


def test_config_roundtrip_and_get():
    opt = optim.RMSprop(learning_rate=0.02, rho=0.8, momentum=0.3, centered=True, clipnorm=2.0)
    cfg = opt.get_config()
    again = optim.RMSprop.from_config(cfg)
    assert again.get_config() == cfg
    assert cfg["learning_rate"] == 0.02 and cfg["clipnorm"] == 2.0 and cfg["centered"] is True
    for name, cls in [("sgd", optim.SGD), ("adam", optim.Adam), ("adamw", optim.AdamW),
                      ("rmsprop", optim.RMSprop), ("Adam", optim.Adam)]:
        assert type(optim.get(name)) is cls
    assert optim.get(opt) is opt
    assert isinstance(optim.get(optim.serialize(opt)), optim.RMSprop)
    with pytest.raises(ValueError, match="unknown.*adagrad"):
        optim.get("adagrad")
    d = optim.AdamW()
    assert (d.learning_rate, d.weight_decay, d.beta_1, d.beta_2, d.epsilon) == \
        (0.001, 0.004, 0.9, 0.999, 1e-7)
    s = optim.SGD()
    assert (s.learning_rate, s.momentum, s.nesterov) == (0.01, 0.0, False)
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD(momentum=1.5)
    with pytest.warns(UserWarning, match="schedule"):
        cfg = optim.SGD(learning_rate=lambda it: 0.5).get_config()
    assert cfg["learning_rate"] == 0.5


def test_deterministic():
    results = []
    for _ in range(2):
        rng = np.random.default_rng(16)
        params = make_params(rng, np.float32)
        opt = optim.Adam(learning_rate=0.01, global_clipnorm=0.5)
        results.append(run(opt, params, grad_sequence(rng, np.float32)))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
