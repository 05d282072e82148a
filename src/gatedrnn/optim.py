"""Optimizers (SGD, Adam, AdamW, RMSprop) with Keras 3's update rules, in plain NumPy.

An optimizer updates :class:`gatedrnn.layers.parameter.Parameter` objects in place from their
``.grad``::

    opt = Adam(learning_rate=1e-3, global_clipnorm=1.0)
    ...  # backward fills p.grad for every p in params
    opt.apply(params)

One :meth:`Optimizer.apply` call is one step, in Keras' order:

1. the gradients of the trainable parameters are cast to each parameter's dtype and clipped
   (``clipvalue``, ``clipnorm`` or ``global_clipnorm``; at most one of the three, as Keras).
   Clipping works on copies: ``param.grad`` is never modified;
2. decoupled weight decay, when ``weight_decay`` is set: ``w -= w * weight_decay * lr`` (Keras
   applies it this way for every optimizer; AdamW is Adam with it on by default);
3. the optimizer's own update rule (see each class);
4. ``iterations`` is incremented.

All arithmetic is done in each parameter's dtype (float32 or float64), elementwise NumPy only,
so the same inputs give bit-identical results on every run.

Learning rate: a non-negative float, settable at any time (``opt.learning_rate = 1e-4``; this is
what :class:`gatedrnn.callbacks.LearningRateScheduler` does), or a schedule: any callable
``schedule(iteration) -> float`` (Keras' ``LearningRateSchedule`` protocol), called with the
number of steps taken so far (0 on the first step).  Reading ``opt.learning_rate`` gives the
value the next step will use.

Optimizer state (slots such as Adam's first and second moments) is created lazily on the
first :meth:`~Optimizer.apply`, one set per parameter, keyed by the parameter's **position in
the list passed to apply** (non-trainable parameters keep their position but get no slots).
Pass the same list, in the same order, on every step; :meth:`~Optimizer.get_state` /
:meth:`~Optimizer.set_state` save and restore the slots and ``iterations`` for an exact resume.
"""

from __future__ import annotations

import math
import numbers
import re
import warnings

import numpy as np

from ._checks import check_bool
from ._registry import Configurable, deserialize_from

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "get",
    "serialize",
    "deserialize",
    "global_norm",
    "clip_by_global_norm",
    "clip_by_norm",
]


# --------------------------------------------------------------------------------------------
# Norms and clipping
# --------------------------------------------------------------------------------------------

def _norm(g):
    """L2 norm of one array as a Python float, accumulated in float64 with NumPy's pairwise
    summation (no BLAS: the result does not depend on the thread count).

    A float64 array whose squares overflow (entries beyond ~1e154) is rescaled by its largest
    entry first, so the norm is still finite; an inf entry gives inf, a NaN gives NaN.
    """
    flat = np.asarray(g).reshape(-1)
    if flat.size == 0:
        return 0.0
    f64 = flat.astype(np.float64, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        s = float(np.sum(f64 * f64))
    if math.isfinite(s):
        return math.sqrt(s)
    peak = float(np.max(np.abs(f64)))
    if not math.isfinite(peak):
        return peak  # inf, or NaN when the array holds a NaN
    if math.isnan(s):
        return math.nan
    scaled = f64 / peak
    return peak * math.sqrt(float(np.sum(scaled * scaled)))


def _check_grad_list(grads, what="grads"):
    if isinstance(grads, np.ndarray):
        raise TypeError(f"{what}: expected a list of arrays, got a single ndarray "
                        f"(wrap it in a list)")
    try:
        grads = list(grads)
    except TypeError:
        raise TypeError(f"{what}: expected a list of arrays, got {type(grads).__name__}") from None
    out = []
    for i, g in enumerate(grads):
        if g is None:
            out.append(None)
            continue
        arr = np.asarray(g)
        if arr.dtype.kind != "f":
            raise TypeError(f"{what}[{i}]: expected a floating array, got dtype {arr.dtype}")
        out.append(arr)
    return out


def _check_positive(value, what, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what}: expected a positive float, got {type(value).__name__}")
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{what}: expected a positive finite float, got {value!r}")
    return value


def global_norm(grads):
    """The L2 norm of all of ``grads`` taken together, as a Python float.

    ``None`` entries are skipped.  Accumulated in float64 (and rescaled when even that would
    overflow), so an exploding float32 gradient reports its true norm instead of ``inf``.
    A non-finite entry gives a non-finite norm (``inf`` or NaN).
    """
    grads = _check_grad_list(grads)
    return math.hypot(*(_norm(g) for g in grads if g is not None))


def clip_by_global_norm(grads, max_norm):
    """Scale all of ``grads`` by one factor so their global norm is at most ``max_norm``.

    Returns ``(clipped, norm)``: new arrays (the inputs are not modified; ``None`` entries stay
    ``None``) and the global norm **before** clipping, handy to log exploding gradients.
    The factor is ``max_norm / max(norm, max_norm)``, Keras' ``clip_by_global_norm``; as there,
    a non-finite norm (an inf or NaN gradient) turns every gradient into NaN rather than
    silently rescaling the others.
    """
    max_norm = _check_positive(max_norm, "max_norm", allow_none=False)
    grads = _check_grad_list(grads)
    norm = global_norm(grads)
    scale = max_norm / max(norm, max_norm) if math.isfinite(norm) else math.nan
    clipped = [None if g is None else (g * g.dtype.type(scale)).astype(g.dtype, copy=False)
               for g in grads]
    return clipped, norm


def clip_by_norm(grad, max_norm):
    """One array scaled so that its own L2 norm is at most ``max_norm`` (Keras' ``clipnorm``:
    ``g * max_norm / max(||g||, max_norm)``).  Returns a new array."""
    max_norm = _check_positive(max_norm, "max_norm", allow_none=False)
    g = np.asarray(grad)
    if g.dtype.kind != "f":
        raise TypeError(f"grad: expected a floating array, got dtype {g.dtype}")
    norm = _norm(g)
    scale = max_norm / max(norm, max_norm) if math.isfinite(norm) else math.nan
    return (g * g.dtype.type(scale)).astype(g.dtype, copy=False)


# --------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------

_SLOT_KEY = re.compile(r"^([a-z_]+)/([a-z_]+)/(\d+)$")


def _check_param(p, i):
    for attr in ("name", "value", "grad", "trainable"):
        if not hasattr(p, attr):
            raise TypeError(f"params[{i}]: expected a Parameter (name, value, grad, trainable), "
                            f"got {type(p).__name__} without .{attr}")
    if not isinstance(p.value, np.ndarray) or p.value.dtype not in (np.float32, np.float64):
        raise TypeError(f"params[{i}] ({p.name}): value must be a float32 or float64 ndarray, "
                        f"got {getattr(p.value, 'dtype', type(p.value).__name__)}")
    if np.shape(p.grad) != p.value.shape:
        raise ValueError(f"params[{i}] ({p.name}): grad has shape {np.shape(p.grad)}, value has "
                         f"shape {p.value.shape}")


class Optimizer(Configurable):
    """Base class.  Subclasses define ``_slot_names`` (given the hyperparameters) and
    ``_update(value, grad, slots, lr)`` which updates ``value`` and the slot arrays in place.

    Args:
        learning_rate: a non-negative float or a schedule ``callable(iteration) -> float``.
        weight_decay: decoupled weight decay rate (``w -= w * weight_decay * lr`` before each
            update), or None.
        clipnorm: clip each gradient to this L2 norm (per parameter).
        clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: clip all gradients together to this global L2 norm.
        name: a label for the optimizer (its config and ``repr``).

    At most one of ``clipnorm``, ``clipvalue``, ``global_clipnorm`` may be set (ValueError
    otherwise, as Keras).  All must be positive when given.
    """

    #: Prefix of this optimizer's state keys (``"adam/m/3"``); identifies the algorithm.
    kind = "optimizer"

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        given = {k: v for k, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                                   ("global_clipnorm", global_clipnorm)) if v is not None}
        if len(given) > 1:
            raise ValueError("clipnorm, clipvalue, global_clipnorm: at most one may be set, got "
                             + ", ".join(f"{k}={v!r}" for k, v in given.items()))
        self.clipnorm = _check_positive(clipnorm, "clipnorm")
        self.clipvalue = _check_positive(clipvalue, "clipvalue")
        self.global_clipnorm = _check_positive(global_clipnorm, "global_clipnorm")
        if weight_decay is not None:
            if isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real):
                raise TypeError(f"weight_decay: expected a float or None, "
                                f"got {type(weight_decay).__name__}")
            weight_decay = float(weight_decay)
            if not (weight_decay >= 0 and math.isfinite(weight_decay)):
                raise ValueError(f"weight_decay: expected a non-negative finite float, "
                                 f"got {weight_decay!r}")
        self.weight_decay = weight_decay
        if name is None:
            name = self.kind
        if not isinstance(name, str):
            raise TypeError(f"name: expected a str, got {type(name).__name__}")
        self.name = name
        self._learning_rate = None
        self.learning_rate = learning_rate
        self._iterations = 0
        self._slots = {}          # position -> {slot name: ndarray}
        self._signature = None    # [(name, shape, dtype)] of the params list, fixed on 1st apply
        self._warned_schedule = False

    # -- hyperparameters ----------------------------------------------------------------------

    @property
    def iterations(self):
        """Number of steps applied so far (restored by :meth:`set_state`)."""
        return self._iterations

    @property
    def learning_rate(self):
        """The learning rate the next step uses, as a float (a schedule is evaluated at the
        current ``iterations``)."""
        if callable(self._learning_rate):
            return self._schedule_value(self._iterations)
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if callable(value) and not isinstance(value, numbers.Real):
            self._learning_rate = value
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"learning_rate: expected a float or a callable(iteration) -> float, "
                            f"got {type(value).__name__}")
        value = float(value)
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"learning_rate: expected a non-negative finite float, got {value!r}")
        self._learning_rate = value

    @property
    def schedule(self):
        """The learning-rate schedule callable, or None for a constant learning rate."""
        return self._learning_rate if callable(self._learning_rate) else None

    def _schedule_value(self, iteration):
        value = self._learning_rate(iteration)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"learning_rate schedule: returned {value!r} at iteration "
                            f"{iteration}, expected a float") from None
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"learning_rate schedule: returned {value!r} at iteration "
                             f"{iteration}, expected a non-negative finite float")
        return value

    # -- the step -----------------------------------------------------------------------------

    def _slot_names(self):
        return ()

    def _update(self, value, grad, slots, lr):  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_params(self, params):
        if isinstance(params, np.ndarray) or not hasattr(params, "__iter__"):
            raise TypeError(f"params: expected a list of Parameter, got {type(params).__name__}")
        params = list(params)
        for i, p in enumerate(params):
            _check_param(p, i)
        signature = [(p.name, p.value.shape, p.value.dtype) for p in params]
        if self._signature is None:
            return params, signature
        if len(signature) != len(self._signature):
            raise ValueError(f"params: this optimizer was first applied to {len(self._signature)} "
                             f"parameters, got {len(signature)}; pass the same list every step "
                             f"(or use a new optimizer)")
        for i, ((name, shape, dtype), (name0, shape0, dtype0)) in enumerate(
                zip(signature, self._signature)):
            if shape != shape0 or dtype != dtype0:
                raise ValueError(f"params[{i}] ({name}): shape {shape} {dtype.name} differs from "
                                 f"the parameter at this position when the optimizer was built "
                                 f"({name0}: {shape0} {dtype0.name}); pass the same list, in "
                                 f"the same order, every step")
        return params, signature

    def _clip(self, grads):
        if self.clipvalue is not None:
            return [np.clip(g, g.dtype.type(-self.clipvalue), g.dtype.type(self.clipvalue))
                    for g in grads]
        if self.clipnorm is not None:
            return [clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm is not None:
            return clip_by_global_norm(grads, self.global_clipnorm)[0]
        return grads  # the update rules only read them

    def apply(self, params):
        """One step: update every trainable parameter of ``params`` in place from its ``.grad``
        (see the module docstring for the order of clipping, weight decay and update), and
        mark it updated (``Parameter.mark_updated``: layers holding packed copies of their
        weights pack them again). ``param.grad`` is left untouched (clipping works on copies)."""
        params, signature = self._check_params(params)
        positions = [i for i, p in enumerate(params) if p.trainable]
        lr = self.learning_rate
        if not positions:
            self._signature = signature
            self._iterations += 1
            return
        grads = [np.asarray(params[i].grad).astype(params[i].value.dtype, copy=False)
                 for i in positions]
        grads = self._clip(grads)
        if self.weight_decay is not None:
            for i in positions:
                value = params[i].value
                dt = value.dtype.type
                value -= value * dt(self.weight_decay) * dt(lr)
        for i, g in zip(positions, grads):
            value = params[i].value
            slots = self._slots.get(i)
            if slots is None:
                slots = {s: np.zeros_like(value) for s in self._slot_names()}
                self._slots[i] = slots
            self._update(value, g, slots, value.dtype.type(lr))
            mark = getattr(params[i], "mark_updated", None)
            if mark is not None:        # layers keeping packed copies pack again
                mark()
        self._signature = signature
        self._iterations += 1

    # -- state --------------------------------------------------------------------------------

    def get_state(self):
        """``{"iterations": int64 array, "<kind>/<slot>/<position>": array, ...}``: copies of
        everything an exact resume needs (the hyperparameters are in :meth:`get_config`).
        Position ``i`` refers to ``params[i]`` of the list given to :meth:`apply`."""
        state = {"iterations": np.array(self._iterations, dtype=np.int64)}
        for i in sorted(self._slots):
            for slot, arr in self._slots[i].items():
                state[f"{self.kind}/{slot}/{i}"] = arr.copy()
        return state

    def set_state(self, state, params):
        """Restore :meth:`get_state` output for ``params`` (the list that will be passed to
        :meth:`apply`).  Every slot array must match its parameter's shape (it is cast to the
        parameter's dtype); raises ValueError naming the key and parameter on any mismatch,
        and leaves the optimizer unchanged then."""
        if not isinstance(state, dict):
            raise TypeError(f"state: expected a dict of arrays, got {type(state).__name__}")
        params = list(params)
        for i, p in enumerate(params):
            _check_param(p, i)
        signature = [(p.name, p.value.shape, p.value.dtype) for p in params]
        if "iterations" not in state:
            raise ValueError("state: missing 'iterations'")
        it = np.asarray(state["iterations"])
        if it.shape != () or it.dtype.kind not in "iu" or int(it) < 0:
            raise ValueError(f"state['iterations']: expected a non-negative integer scalar, got "
                             f"{it!r}")
        wanted = set(self._slot_names())
        slots = {}
        for key, arr in state.items():
            if key == "iterations":
                continue
            m = _SLOT_KEY.match(key) if isinstance(key, str) else None
            if m is None:
                raise ValueError(f"state: unexpected key {key!r} (expected 'iterations' or "
                                 f"'{self.kind}/<slot>/<position>')")
            kind, slot, pos = m.group(1), m.group(2), int(m.group(3))
            if kind != self.kind:
                raise ValueError(f"state: key {key!r} belongs to a {kind!r} optimizer, this is "
                                 f"{self.kind!r}")
            if slot not in wanted:
                raise ValueError(f"state: key {key!r}: {self.kind} with this configuration has "
                                 f"no slot {slot!r} (slots: {sorted(wanted)})")
            if pos >= len(params):
                raise ValueError(f"state: key {key!r} refers to parameter {pos}, but only "
                                 f"{len(params)} parameters were given")
            arr = np.asarray(arr)
            p = params[pos]
            if arr.dtype.kind != "f":
                raise ValueError(f"state[{key!r}] for {p.name}: expected a floating array, got "
                                 f"dtype {arr.dtype}")
            if arr.shape != p.value.shape:
                raise ValueError(f"state[{key!r}] for {p.name}: expected shape {p.value.shape}, "
                                 f"got {arr.shape}")
            slots.setdefault(pos, {})[slot] = np.array(arr, dtype=p.value.dtype, copy=True)
        for pos, got in slots.items():
            missing = wanted - set(got)
            if missing:
                raise ValueError(f"state: parameter {pos} ({params[pos].name}) lacks slot(s) "
                                 f"{sorted(missing)}")
        self._slots = slots
        self._iterations = int(it)
        self._signature = signature

    # -- config -------------------------------------------------------------------------------

    def get_config(self):
        """Hyperparameters as a JSON-serialisable dict (``cls.from_config`` rebuilds it,
        without state).  A schedule callable cannot be serialised: its current value is stored
        instead (a warning says so once); pass the schedule again after loading."""
        if callable(self._learning_rate):
            if not self._warned_schedule:
                warnings.warn(f"{type(self).__name__}.get_config: the learning-rate schedule is "
                              f"not serialisable; its current value is stored instead",
                              stacklevel=2)
                self._warned_schedule = True
        return {
            "name": self.name,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
        }

    def __repr__(self):
        lr = "schedule" if callable(self._learning_rate) else repr(self._learning_rate)
        return f"{type(self).__name__}(name={self.name!r}, learning_rate={lr}, " \
               f"iterations={self._iterations})"


def _check_unit(value, what, upper_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what}: expected a float, got {type(value).__name__}")
    value = float(value)
    ok = 0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0
    if not ok:
        interval = "[0, 1)" if upper_open else "[0, 1]"
        raise ValueError(f"{what}: expected a float in {interval}, got {value!r}")
    return value


def _check_epsilon(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"epsilon: expected a float, got {type(value).__name__}")
    value = float(value)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"epsilon: expected a non-negative finite float, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------
# Algorithms
# --------------------------------------------------------------------------------------------

class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum, Keras' form::

        momentum == 0:  w -= lr * g
        otherwise:      v = momentum * v - lr * g
                        w += v                              (nesterov=False)
                        w += momentum * v - lr * g          (nesterov=True)

    Slot: ``"momentum"`` (only when ``momentum > 0``).
    """

    kind = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.momentum = _check_unit(momentum, "momentum")
        self.nesterov = check_bool(nesterov, "nesterov")

    def _slot_names(self):
        return ("momentum",) if self.momentum != 0 else ()

    def _update(self, value, grad, slots, lr):
        if self.momentum == 0:
            value -= grad * lr
            return
        m = slots["momentum"]
        momentum = value.dtype.type(self.momentum)
        m[...] = m * momentum - grad * lr
        if self.nesterov:
            value += m * momentum - grad * lr
        else:
            value += m

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, nesterov=self.nesterov)
        return config


class Adam(Optimizer):
    """Adam (Kingma & Ba), Keras' form: at step ``t = iterations + 1``::

        m += (g - m) * (1 - beta_1)
        v += (g**2 - v) * (1 - beta_2)
        v_hat = max(v_hat, v)                     (amsgrad: v_hat is used below instead of v)
        alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        w -= m * alpha / (sqrt(v) + epsilon)

    ``epsilon`` is added after the bias correction is folded into ``alpha`` (Keras'
    "epsilon hat"), unlike PyTorch which adds it to ``sqrt(v / (1 - beta_2**t))``.
    Slots: ``"m"``, ``"v"`` and, with ``amsgrad``, ``"v_hat"``.
    """

    kind = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_1 = _check_unit(beta_1, "beta_1", upper_open=True)
        self.beta_2 = _check_unit(beta_2, "beta_2", upper_open=True)
        self.epsilon = _check_epsilon(epsilon)
        self.amsgrad = check_bool(amsgrad, "amsgrad")

    def _slot_names(self):
        return ("m", "v", "v_hat") if self.amsgrad else ("m", "v")

    def _update(self, value, grad, slots, lr):
        dt = value.dtype.type
        step = dt(self._iterations + 1)
        beta_1_power = dt(self.beta_1) ** step
        beta_2_power = dt(self.beta_2) ** step
        alpha = lr * np.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        m, v = slots["m"], slots["v"]
        # the formulas above, evaluated in place through one scratch array (same operations in
        # the same order as the textbook expressions, so the same bits, without ~7 temporaries)
        tmp = np.subtract(grad, m)
        tmp *= dt(1 - self.beta_1)
        m += tmp
        np.square(grad, out=tmp)
        tmp -= v
        tmp *= dt(1 - self.beta_2)
        v += tmp
        if self.amsgrad:
            v_hat = slots["v_hat"]
            np.maximum(v_hat, v, out=v_hat)
            v = v_hat
        np.sqrt(v, out=tmp)
        tmp += dt(self.epsilon)
        update = m * alpha
        update /= tmp
        value -= update

    def get_config(self):
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                      amsgrad=self.amsgrad)
        return config


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as Keras: before each Adam
    step, ``w -= w * weight_decay * lr``.  ``weight_decay`` must be a float (default 0.004)."""

    kind = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        if weight_decay is None:
            raise ValueError("weight_decay: AdamW needs a float, got None (use Adam for no "
                             "weight decay)")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, amsgrad=amsgrad, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm,
                         name=name)


class RMSprop(Optimizer):
    """RMSprop (Hinton), Keras' form::

        v = rho * v + (1 - rho) * g**2
        a = rho * a + (1 - rho) * g               (centered only)
        denominator = v - a**2 + epsilon          (centered) or  v + epsilon
        increment = lr * g / sqrt(denominator)
        mom = momentum * mom + increment; w -= mom     (momentum > 0)
        w -= increment                                 (momentum == 0)

    ``epsilon`` is inside the square root (PyTorch adds it outside).
    Slots: ``"velocity"``, ``"momentum"`` (momentum > 0), ``"average_gradient"`` (centered).
    """

    kind = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.rho = _check_unit(rho, "rho")
        self.momentum = _check_unit(momentum, "momentum")
        self.epsilon = _check_epsilon(epsilon)
        self.centered = check_bool(centered, "centered")

    def _slot_names(self):
        names = ["velocity"]
        if self.momentum > 0:
            names.append("momentum")
        if self.centered:
            names.append("average_gradient")
        return tuple(names)

    def _update(self, value, grad, slots, lr):
        dt = value.dtype.type
        rho = dt(self.rho)
        velocity = slots["velocity"]
        velocity[...] = rho * velocity + dt(1 - self.rho) * np.square(grad)
        if self.centered:
            average = slots["average_gradient"]
            average[...] = rho * average + dt(1 - self.rho) * grad
            denominator = velocity - np.square(average) + dt(self.epsilon)
        else:
            denominator = velocity + dt(self.epsilon)
        increment = (lr * grad) / np.sqrt(denominator)
        if self.momentum > 0:
            mom = slots["momentum"]
            mom[...] = dt(self.momentum) * mom + increment
            value -= mom
        else:
            value -= increment

    def get_config(self):
        config = super().get_config()
        config.update(rho=self.rho, momentum=self.momentum, epsilon=self.epsilon,
                      centered=self.centered)
        return config


# --------------------------------------------------------------------------------------------
# Lookup and serialization
# --------------------------------------------------------------------------------------------

_CLASSES = {cls.__name__: cls for cls in (SGD, Adam, AdamW, RMSprop)}
_NAMES = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def serialize(optimizer):
    """``{"class_name": ..., "config": ...}`` (JSON-serialisable, no state)."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer: expected a gatedrnn.optim.Optimizer, "
                        f"got {type(optimizer).__name__}")
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config):
    """Inverse of :func:`serialize`."""
    return deserialize_from(_CLASSES, config, "optimizer")


def get(identifier):
    """An :class:`Optimizer` from an instance (returned as is), a name (``"sgd"``, ``"adam"``,
    ``"adamw"``, ``"rmsprop"``, any case; default hyperparameters) or a :func:`serialize`
    dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"optimizer: unknown name {identifier!r}; expected one of "
                             f"{sorted(_NAMES)}")
        return cls()
    raise TypeError(f"optimizer: expected an Optimizer instance, a name or a config dict, "
                    f"got {type(identifier).__name__}")
