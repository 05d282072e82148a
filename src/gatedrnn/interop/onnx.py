"""Run ONNX models that contain RNN / GRU / LSTM nodes on gatedrnn's core.

    >>> from gatedrnn.interop import from_onnx
    >>> model = from_onnx("lstm.onnx")             # a path, an onnx.ModelProto or its bytes
    >>> y, h_n, c_n = model(x)                     # single-input graph; outputs in graph order
    >>> model.run(None, {"input": x})              # like onnxruntime.InferenceSession.run
    >>> model.recurrent_layers()                   # {node name: StackedRNN}, to train or reuse

The recurrent nodes run through :mod:`gatedrnn.functional`; the glue around them (transposes,
reshapes, slices of the initial states, shape arithmetic) is evaluated in NumPy by
:mod:`gatedrnn.interop.onnx_graph`. Everything that can be checked without input values is
checked by :func:`from_onnx`: an op type, attribute or activation gatedrnn cannot run is an
error at load time, naming the node.

Recurrent nodes (ONNX operator specification, the meaning of the file):

- ``W [D, G*H, I]``, ``R [D, G*H, H]``, ``B [D, 2*G*H] = [Wb | Rb]``, gate blocks in ONNX order
  (LSTM ``i, o, f, c``; GRU ``z, r, h``), converted to the canonical (PyTorch) layout once at
  load when they are constants (initializers), else on every call.
- ``direction``: forward, reverse (``reverse=True``), bidirectional (``bidirectional=True``).
- GRU ``linear_before_reset=1`` is ``reset_after=True``, ``0`` (the ONNX default) is
  ``reset_after=False``. RNN ``activations`` ``[Tanh]`` (default) or ``[Relu]``.
- ``layout=0``: ``X [T, B, I]``, ``Y [T, D, B, H]``, ``Y_h``/``Y_c [D, B, H]``; ``layout=1``:
  ``X [B, T, I]``, ``Y [B, T, D, H]``, ``Y_h``/``Y_c [B, D, H]``. Both are supported.
- Omitted optional inputs (``B``, ``sequence_lens``, ``initial_h``, ``initial_c``) are zeros /
  full lengths; omitted or fewer outputs are fine.
- ``sequence_lens``: outputs are zero past each length and ``Y_h``/``Y_c`` hold the state at the
  last valid step. **For a length of 0, ``Y_h`` and ``Y_c`` are zero** (what ONNX Runtime
  returns), not ``initial_h``/``initial_c`` (what ``gatedrnn.functional`` returns): the importer
  reproduces ONNX semantics.
- dtype: a float32 graph runs in float32, a float64 graph in float64 (ONNX Runtime itself runs
  these nodes in float32 only).

Not supported (an error at :func:`from_onnx` time): ``clip``, ``input_forget=1``, non-zero
peepholes ``P`` (a ``P`` computed at run time is checked on each call), ``activation_alpha`` /
``activation_beta``, activations other than the defaults listed above, a bidirectional RNN with
a different activation per direction, and any attribute the specification does not define.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, NamedTuple, Optional

import numpy as np

from .. import functional as F
from .onnx_graph import GLUE_OPS, Graph, Node, OpDef, ValueInfo, require_onnx

__all__ = ["from_onnx", "OnnxModel", "ValueInfo"]

_CELL_OF_OP = {"RNN": "rnn", "GRU": "gru", "LSTM": "lstm"}
_OP_OF_CELL = {cell: op for op, cell in _CELL_OF_OP.items()}
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
#: For each canonical gate block (LSTM i, f, g, o; GRU r, z, n), its position in ONNX's order
#: (LSTM i, o, f, c; GRU z, r, h).
_ONNX_BLOCK_OF_CANONICAL = {"rnn": (0,), "gru": (1, 0, 2), "lstm": (0, 2, 3, 1)}
#: For each ONNX gate block, its position in the canonical order (the inverse permutation).
_CANONICAL_BLOCK_OF_ONNX = {
    cell: tuple(int(i) for i in np.argsort(order))
    for cell, order in _ONNX_BLOCK_OF_CANONICAL.items()
}
_DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}
#: Activations per direction that gatedrnn runs (ONNX's defaults; RNN also Relu).
_ACTIVATIONS = {
    "lstm": [("sigmoid", "tanh", "tanh")],
    "gru": [("sigmoid", "tanh")],
    "rnn": [("tanh",), ("relu",)],
}
_COMMON_ATTRS = {"activation_alpha", "activation_beta", "activations", "clip", "direction",
                 "hidden_size", "layout"}
_CELL_ATTRS = {"rnn": set(), "gru": {"linear_before_reset"}, "lstm": {"input_forget"}}
#: Input names, by position, of the ONNX recurrent operators.
_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")


# --------------------------------------------------------------------------------------------
# ONNX node <-> canonical weights
# --------------------------------------------------------------------------------------------


def _rnn_settings(op_type: str, attrs: Mapping[str, Any], where: str) -> dict:
    """Validate a recurrent node's attributes; return what gatedrnn needs to run it.

    Returns ``cell``, ``hidden_size`` (None if the attribute is absent), ``direction``, ``D``,
    ``layout``, ``reset_after`` (GRU, else None) and ``nonlinearity`` (RNN, else None). Raises
    NotImplementedError for anything gatedrnn does not compute, ValueError for invalid values,
    each naming ``where`` and the attribute.
    """
    if op_type not in _CELL_OF_OP:
        raise ValueError(f"{where}: expected op type RNN, GRU or LSTM, got {op_type!r}")
    cell = _CELL_OF_OP[op_type]
    allowed = _COMMON_ATTRS | _CELL_ATTRS[cell]
    unknown = sorted(set(attrs) - allowed)
    if unknown:
        raise NotImplementedError(
            f"{where}: attribute(s) {unknown} are not supported ({op_type} attributes: "
            f"{sorted(allowed)})")

    def text(name, default):
        v = attrs.get(name, default)
        return v.decode() if isinstance(v, bytes) else v

    direction = text("direction", "forward")
    if direction not in _DIRECTIONS:
        raise ValueError(f"{where}: attribute 'direction': expected one of "
                         f"{list(_DIRECTIONS)}, got {direction!r}")
    D = _DIRECTIONS[direction]
    hidden_size = attrs.get("hidden_size")
    if hidden_size is not None and (not isinstance(hidden_size, (int, np.integer))
                                    or hidden_size < 1):
        raise ValueError(f"{where}: attribute 'hidden_size': expected an integer >= 1, got "
                         f"{hidden_size!r}")
    layout = attrs.get("layout", 0)
    if layout not in (0, 1):
        raise ValueError(f"{where}: attribute 'layout': expected 0 or 1, got {layout!r}")
    if "clip" in attrs:
        raise NotImplementedError(
            f"{where}: attribute 'clip' (= {attrs['clip']}) is not supported: gatedrnn does not "
            "clip gate pre-activations")
    for name in ("activation_alpha", "activation_beta"):
        if attrs.get(name):
            raise NotImplementedError(
                f"{where}: attribute {name!r} (= {attrs[name]}) is not supported: gatedrnn runs "
                "only parameter-free activations")
    if cell == "lstm" and attrs.get("input_forget", 0) != 0:
        raise NotImplementedError(
            f"{where}: attribute 'input_forget' = {attrs['input_forget']} is not supported "
            "(coupled input and forget gates); expected 0")
    reset_after = None
    if cell == "gru":
        lbr = attrs.get("linear_before_reset", 0)
        if lbr not in (0, 1):
            raise ValueError(f"{where}: attribute 'linear_before_reset': expected 0 or 1, got "
                             f"{lbr!r}")
        reset_after = lbr == 1

    choices = _ACTIVATIONS[cell]
    per_direction = len(choices[0])
    acts = attrs.get("activations")
    chosen = choices[0]
    if acts is not None:
        acts = [a.decode() if isinstance(a, bytes) else a for a in acts]
        lowered = tuple(str(a).lower() for a in acts)
        if len(lowered) == per_direction and D == 2:
            lowered = lowered * 2  # one list given for both directions
        groups = {lowered[k:k + per_direction] for k in range(0, len(lowered), per_direction)}
        if (len(lowered) != per_direction * D or len(groups) != 1
                or next(iter(groups)) not in choices):
            expected = " or ".join(str([a.capitalize() for a in c] * D) for c in choices)
            raise NotImplementedError(
                f"{where}: attribute 'activations' = {acts} is not supported; gatedrnn runs "
                f"{op_type} with activations {expected}"
                + (" (the same for both directions)" if cell == "rnn" and D == 2 else ""))
        chosen = next(iter(groups))
    nonlinearity = chosen[0] if cell == "rnn" else None
    return dict(cell=cell, hidden_size=None if hidden_size is None else int(hidden_size),
                direction=direction, D=D, layout=layout, reset_after=reset_after,
                nonlinearity=nonlinearity)


def _reorder_gates(a: np.ndarray, G: int, order) -> np.ndarray:
    """Permute the G gate blocks along axis 1 of ``a`` (D, G*H[, K]): block k of the result is
    block ``order[k]`` of ``a``."""
    D, GH = a.shape[:2]
    blocks = a.reshape((D, G, GH // G) + a.shape[2:])
    return np.ascontiguousarray(blocks[:, list(order)].reshape(a.shape))


def _float_array(value, name: str, where: str, dtype=None) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{where}: {name}: expected float32 or float64, got {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{where}: {name}: expected {np.dtype(dtype)} (the dtype of W), got "
                        f"{a.dtype}")
    return a


def _onnx_rnn_node_to_canonical(op_type: str, attrs: Mapping[str, Any], W, R, B=None, *,
                                where: Optional[str] = None) -> dict:
    """Convert an ONNX RNN/GRU/LSTM node's attributes and weights to gatedrnn's canonical form.

    ``attrs`` are the node's attributes as Python values (strings as str or bytes); ``W``
    ``[D, G*H, I]``, ``R [D, G*H, H]`` and ``B [D, 2*G*H]`` (or None: zero biases) its weight
    inputs. Returns a dict with ``cell`` ("rnn" | "gru" | "lstm"), ``hidden_size``,
    ``direction`` ("forward" | "reverse" | "bidirectional"), ``reset_after`` (GRU: bool, else
    None), ``nonlinearity`` (RNN: "tanh" | "relu", else None) and ``weight_ih (D, G*H, I)``,
    ``weight_hh (D, G*H, H)``, ``bias_ih (D, G*H)``, ``bias_hh (D, G*H)`` in the canonical
    (PyTorch) gate order (both biases None when ``B`` is None), new C-contiguous arrays in the
    dtype of ``W``. :func:`_canonical_to_onnx_rnn` is the inverse.

    Raises NotImplementedError for attributes gatedrnn cannot run, ValueError/TypeError for
    inconsistent shapes or dtypes, naming ``where`` (default: the op type).
    """
    where = where or f"{op_type} node"
    s = _rnn_settings(op_type, attrs, where)
    cell, D = s["cell"], s["D"]
    G = _GATES[cell]
    W = _float_array(W, "W", where)
    R = _float_array(R, "R", where, W.dtype)
    if R.ndim != 3 or R.shape[0] != D or R.shape[2] == 0 or R.shape[1] != G * R.shape[2]:
        raise ValueError(f"{where}: R: expected shape [D={D}, G*H, H] with G = {G} for "
                         f"{op_type}, got {R.shape}")
    H = R.shape[2]
    if s["hidden_size"] is not None and s["hidden_size"] != H:
        raise ValueError(f"{where}: attribute 'hidden_size' = {s['hidden_size']} does not match "
                         f"R of shape {R.shape} (H = {H})")
    if W.ndim != 3 or W.shape[:2] != (D, G * H):
        raise ValueError(f"{where}: W: expected shape [D={D}, G*H={G * H}, I], got {W.shape}")
    order = _ONNX_BLOCK_OF_CANONICAL[cell]
    out = dict(cell=cell, hidden_size=H, direction=s["direction"], reset_after=s["reset_after"],
               nonlinearity=s["nonlinearity"],
               weight_ih=_reorder_gates(W, G, order), weight_hh=_reorder_gates(R, G, order),
               bias_ih=None, bias_hh=None)
    if B is not None:
        B = _float_array(B, "B", where, W.dtype)
        if B.shape != (D, 2 * G * H):
            raise ValueError(f"{where}: B: expected shape [D={D}, 2*G*H={2 * G * H}], got "
                             f"{B.shape}")
        out["bias_ih"] = _reorder_gates(B[:, :G * H], G, order)
        out["bias_hh"] = _reorder_gates(B[:, G * H:], G, order)
    return out


def _canonical_to_onnx_rnn(cell: str, hidden_size: int, direction: str, weight_ih, weight_hh,
                           bias_ih=None, bias_hh=None, reset_after=None, nonlinearity=None):
    """The inverse of :func:`_onnx_rnn_node_to_canonical`: ``(W, R, B, attrs)`` of an ONNX node.

    Takes the canonical form (the keyword arguments are the keys of that function's result, so
    ``_canonical_to_onnx_rnn(**canonical)`` works): weights ``(D, G*H, I)``, ``(D, G*H, H)``,
    biases ``(D, G*H)`` or None, D = 2 for "bidirectional" else 1. Returns ``W [D, G*H, I]``,
    ``R [D, G*H, H]``, ``B [D, 2*G*H]`` (None when both biases are None; a single missing bias
    is zeros) in ONNX gate order, and the node's attributes: ``hidden_size``, ``direction``,
    GRU ``linear_before_reset`` (``reset_after`` True -> 1, the default None counts as True as
    in :func:`gatedrnn.functional.gru`), RNN ``activations`` when ``nonlinearity`` is "relu".
    The op type is ``{"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}[cell]``.
    """
    if cell not in _GATES:
        raise ValueError(f"cell: expected 'rnn', 'gru' or 'lstm', got {cell!r}")
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction: expected one of {list(_DIRECTIONS)}, got {direction!r}")
    G, D = _GATES[cell], _DIRECTIONS[direction]
    H = int(hidden_size)
    w_ih = _float_array(weight_ih, "weight_ih", "canonical weights")
    w_hh = _float_array(weight_hh, "weight_hh", "canonical weights", w_ih.dtype)
    if w_hh.shape != (D, G * H, H):
        raise ValueError(f"weight_hh: expected shape (D={D}, G*H={G * H}, H={H}), got "
                         f"{w_hh.shape}")
    if w_ih.ndim != 3 or w_ih.shape[:2] != (D, G * H):
        raise ValueError(f"weight_ih: expected shape (D={D}, G*H={G * H}, I), got {w_ih.shape}")
    order = _CANONICAL_BLOCK_OF_ONNX[cell]
    W = _reorder_gates(w_ih, G, order)
    R = _reorder_gates(w_hh, G, order)
    B = None
    if bias_ih is not None or bias_hh is not None:
        biases = []
        for name, b in (("bias_ih", bias_ih), ("bias_hh", bias_hh)):
            b = np.zeros((D, G * H), w_ih.dtype) if b is None else \
                _float_array(b, name, "canonical weights", w_ih.dtype)
            if b.shape != (D, G * H):
                raise ValueError(f"{name}: expected shape (D={D}, G*H={G * H}), got {b.shape}")
            biases.append(_reorder_gates(b, G, order))
        B = np.concatenate(biases, axis=1)
    attrs = {"hidden_size": H, "direction": direction}
    if cell == "gru":
        attrs["linear_before_reset"] = 0 if reset_after is False else 1
    elif cell == "rnn":
        if nonlinearity not in (None, "tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        if nonlinearity == "relu":
            attrs["activations"] = ["Relu"] * D
    return W, R, B, attrs


# --------------------------------------------------------------------------------------------
# Running a recurrent node
# --------------------------------------------------------------------------------------------


class _RecurrentState(NamedTuple):
    """What the load-time check of a recurrent node keeps for its calls."""

    settings: dict
    packed: Any  # PackedWeights when W, R, B are constants, else None
    dtype: Optional[np.dtype]  # of the packed weights
    input_size: Optional[int]
    hidden_size: Optional[int]
    check_peepholes: bool  # P is computed at run time: check it on every call


def _input_name(node: Node, k: int) -> str:
    return node.inputs[k] if k < len(node.inputs) else ""


def _check_recurrent(node: Node, constants: Mapping[str, np.ndarray]) -> _RecurrentState:
    s = _rnn_settings(node.op_type, node.attrs, node.label)
    n_inputs = 8 if s["cell"] == "lstm" else 6
    if len(node.inputs) > n_inputs:
        raise ValueError(f"{node.label}: expected at most {n_inputs} inputs "
                         f"{list(_INPUTS[:n_inputs])}, got {len(node.inputs)}")
    for k in range(3):
        if not _input_name(node, k):
            raise ValueError(f"{node.label}: input {_INPUTS[k]} is required")
    if len(node.outputs) > (3 if s["cell"] == "lstm" else 2):
        raise ValueError(f"{node.label}: too many outputs {list(node.outputs)}")
    check_peepholes = False
    p_name = _input_name(node, 7)
    if p_name:
        if p_name in constants:
            if np.any(constants[p_name] != 0):
                raise NotImplementedError(
                    f"{node.label}: input P (peepholes, {p_name!r}) is non-zero; LSTM peepholes "
                    "are not supported")
        else:
            check_peepholes = True

    names = [_input_name(node, k) for k in range(4)]
    if not all(n in constants for n in names[1:3]) or (names[3] and names[3] not in constants):
        return _RecurrentState(s, None, None, None, s["hidden_size"], check_peepholes)
    canon = _onnx_rnn_node_to_canonical(
        node.op_type, node.attrs, constants[names[1]], constants[names[2]],
        constants[names[3]] if names[3] else None, where=node.label)
    packed = F.pack_weights(canon["cell"], *_unstack(canon, s["D"]),
                            nonlinearity=s["nonlinearity"] or "tanh",
                            reset_after=bool(s["reset_after"]) if s["reset_after"] is not None
                            else True,
                            bidirectional=s["D"] == 2)
    return _RecurrentState(s, packed, canon["weight_ih"].dtype, canon["weight_ih"].shape[2],
                           canon["hidden_size"], check_peepholes)


def _unstack(canon: dict, D: int) -> list:
    """The canonical weights as gatedrnn.functional takes them: without the D axis when D = 1."""
    arrays = [canon[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    return [a if a is None or D == 2 else a[0] for a in arrays]


def _run_recurrent(node: Node, inputs: list) -> list:
    st: _RecurrentState = node.state
    s = st.settings
    where = node.label
    cell, D, layout = s["cell"], s["D"], s["layout"]
    X, W, R, B, seq, h0, c0, P = (list(inputs) + [None] * 8)[:8]

    X = _float_array(X, "X", where)
    if X.ndim != 3:
        want = "[T, B, I]" if layout == 0 else "[B, T, I]"
        raise ValueError(f"{where}: X: expected rank 3 ({want}, layout={layout}), got shape "
                         f"{X.shape}")
    if st.packed is not None:
        weights = [st.packed]
        dtype, I, H = st.dtype, st.input_size, st.hidden_size
    else:
        canon = _onnx_rnn_node_to_canonical(node.op_type, node.attrs, W, R, B, where=where)
        weights = _unstack(canon, D)
        dtype, I, H = canon["weight_ih"].dtype, canon["weight_ih"].shape[2], canon["hidden_size"]
    if X.dtype != dtype:
        raise TypeError(f"{where}: X: expected {dtype} (the dtype of W), got {X.dtype}")
    T, Bn = (X.shape[0], X.shape[1]) if layout == 0 else (X.shape[1], X.shape[0])
    if X.shape[2] != I:
        raise ValueError(f"{where}: X: expected input size I = {I} (from W) on the last axis, "
                         f"got shape {X.shape}")
    if st.check_peepholes and P is not None and np.any(P != 0):
        raise NotImplementedError(f"{where}: input P (peepholes) is non-zero; LSTM peepholes are "
                                  "not supported")

    state_shape = (D, Bn, H) if layout == 0 else (Bn, D, H)
    state_text = "[D, B, H]" if layout == 0 else "[B, D, H]"

    def initial(a, name):
        if a is None:
            return None
        a = _float_array(a, name, where, dtype)
        if a.shape != state_shape:
            raise ValueError(f"{where}: {name}: expected shape {state_text} = {state_shape} "
                             f"(layout={layout}), got {a.shape}")
        if layout == 1:
            a = a.transpose(1, 0, 2)
        return a[0] if D == 1 else a

    lengths = None
    if seq is not None:
        seq = np.asarray(seq)
        if seq.dtype.kind not in "iu":
            raise TypeError(f"{where}: sequence_lens: expected an integer tensor, got {seq.dtype}")
        if seq.shape != (Bn,):
            raise ValueError(f"{where}: sequence_lens: expected shape [B] = ({Bn},), got "
                             f"{seq.shape}")
        if seq.size and (seq.min() < 0 or seq.max() > T):
            raise ValueError(f"{where}: sequence_lens: expected values in [0, T={T}], got values "
                             f"in [{seq.min()}, {seq.max()}]")
        lengths = seq

    kwargs = dict(h0=initial(h0, "initial_h"), lengths=lengths, batch_first=layout == 1,
                  reverse=s["direction"] == "reverse", bidirectional=D == 2)
    if cell == "rnn":
        out = F.rnn(X, *weights, nonlinearity=s["nonlinearity"], **kwargs)
    elif cell == "gru":
        out = F.gru(X, *weights, reset_after=s["reset_after"], **kwargs)
    else:
        out = F.lstm(X, *weights, c0=initial(c0, "initial_c"), **kwargs)

    y = out.y.reshape((T, Bn, D, H) if layout == 0 else (Bn, T, D, H))
    if layout == 0:
        y = y.transpose(0, 2, 1, 3)
    zero_length = None if lengths is None else (lengths == 0)
    states = [out.h_n] + ([out.c_n] if cell == "lstm" else [])
    results = [y]
    for state in states:
        state = state.reshape(D, Bn, H)
        if zero_length is not None and zero_length.any():
            # ONNX semantics (ONNX Runtime): the state of an empty sequence is zero, not h0/c0
            state = np.array(state, copy=True)
            state[:, zero_length] = 0
        results.append(state.transpose(1, 0, 2) if layout == 1 else state)
    return results


#: Every op type from_onnx can run.
OPS: Mapping[str, OpDef] = {
    **GLUE_OPS,
    "RNN": OpDef(_run_recurrent, _check_recurrent),
    "GRU": OpDef(_run_recurrent, _check_recurrent),
    "LSTM": OpDef(_run_recurrent, _check_recurrent),
}


# --------------------------------------------------------------------------------------------
# The public API
# --------------------------------------------------------------------------------------------


class OnnxModel:
    """An ONNX model loaded by :func:`from_onnx`, run with gatedrnn.

    Attributes: ``input_names`` / ``output_names`` (the graph's, in order; initializers are not
    inputs), ``inputs`` / ``outputs`` (:class:`ValueInfo`: name, NumPy dtype, shape with ints for
    fixed and strings for named dimensions), ``opset`` (of the default domain).

    Call it like a function, ``model(x)`` or ``model(x, h0)`` (positional arguments in
    ``input_names`` order) or ``model(**{"input": x})``: it returns the only output, or a tuple
    of all outputs in ``output_names`` order. :meth:`run` mirrors
    ``onnxruntime.InferenceSession.run``. Inputs must have the dtype the graph declares
    (float32 stays float32: nothing is cast) and match its fixed dimensions. Outputs are new
    arrays the caller owns. A model can be called from several threads at once.
    """

    def __init__(self, graph: Graph, source: str = ""):
        self._graph = graph
        self._source = source

    @property
    def input_names(self) -> tuple:
        return self._graph.input_names

    @property
    def output_names(self) -> tuple:
        return self._graph.output_names

    @property
    def inputs(self) -> tuple:
        return self._graph.inputs

    @property
    def outputs(self) -> tuple:
        return self._graph.outputs

    @property
    def opset(self) -> int:
        return self._graph.opset

    def run(self, output_names=None, feeds: Optional[Mapping[str, Any]] = None) -> list:
        """Evaluate the graph like ``onnxruntime.InferenceSession.run(output_names, feeds)``.

        ``output_names``: a list of graph output names, or None for all of them (in graph
        order). ``feeds``: a dict of input name -> array, every graph input given. Returns a
        list of arrays in the order of ``output_names``. Only the nodes these outputs depend on
        run.
        """
        return self._graph.run(output_names, {} if feeds is None else feeds)

    def __call__(self, *args, **kwargs):
        names = self.input_names
        if len(args) > len(names):
            raise TypeError(f"expected at most {len(names)} positional input(s) {list(names)}, "
                            f"got {len(args)}")
        feeds = dict(zip(names, args))
        for name, value in kwargs.items():
            if name in feeds:
                raise TypeError(f"input {name!r} given both positionally and by name")
            feeds[name] = value
        outputs = self.run(None, feeds)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def recurrent_layers(self, strict: bool = True) -> dict:
        """The graph's RNN / GRU / LSTM nodes as gatedrnn layers, to train or reuse them.

        Returns ``{key: StackedRNN}`` in graph order, the key being the node's name (or
        ``"<op type>#<position>"`` for an unnamed node). Each layer is a one-layer
        :class:`gatedrnn.layers.StackedRNN` with the node's weights (canonical layout), cell,
        ``hidden_size``, ``bias`` (False when the node has no ``B``), ``bidirectional``
        (``direction="bidirectional"``), ``batch_first`` (``layout=1``), ``reset_after``
        (``linear_before_reset``), ``nonlinearity`` (RNN ``activations``) and the dtype of the
        weights. Called as ``layer(X, h0=initial_h, c0=initial_c, lengths=sequence_lens)`` it
        computes the node: its ``y`` is ``(T, B, D*H)`` where the node's ``Y`` is
        ``[T, D, B, H]`` (``y.reshape(T, B, D, H).transpose(0, 2, 1, 3)``; layout 1:
        ``(B, T, D*H)`` for ``[B, T, D, H]``), its ``h_n`` / ``c_n`` are ``[D, B, H]`` (layout 1:
        transpose to the node's ``[B, D, H]``), and for a length of 0 it returns the initial
        state where the ONNX node returns zeros.

        Nodes with no such layer: ``direction="reverse"`` (a StackedRNN's single direction
        runs forward; the node's output order has no one-layer equivalent) and nodes whose
        ``W``/``R``/``B`` are computed at run time rather than stored in the file. With
        ``strict`` (default) such a node raises NotImplementedError naming it and why; with
        ``strict=False`` it is left out of the dict with a warning saying the same.
        """
        import warnings

        from ..layers.stacked import StackedRNN

        graph = self._graph
        constants = dict(graph._initializers)
        constants.update(graph._constants)
        for name in graph._overridable:  # old-style initializers a caller may replace
            constants.pop(name, None)
        layers = {}
        for node in graph._nodes:
            if node.op_type not in _CELL_OF_OP:
                continue
            key = node.name or f"{node.op_type}#{node.index}"
            if key in layers:  # ONNX does not enforce unique node names
                key = f"{key}#{node.index}"
            s = node.state.settings
            names = [_input_name(node, k) for k in range(4)]
            problem = None
            if s["direction"] == "reverse":
                problem = ('direction="reverse" has no StackedRNN equivalent (its single '
                           "direction runs forward)")
            elif not all(n in constants for n in names[1:3]) or (names[3] and
                                                                 names[3] not in constants):
                runtime = [n for n in names[1:4] if n and n not in constants]
                problem = (f"its weights {runtime} are computed at run time, not stored in the "
                           "file")
            if problem is not None:
                msg = f"{node.label}: cannot be turned into a gatedrnn layer: {problem}"
                if strict:
                    raise NotImplementedError(msg + " (strict=False leaves it out)")
                warnings.warn(msg + "; left out", UserWarning, stacklevel=2)
                continue
            canon = _onnx_rnn_node_to_canonical(
                node.op_type, node.attrs, constants[names[1]], constants[names[2]],
                constants[names[3]] if names[3] else None, where=node.label)
            D = s["D"]
            dtype = canon["weight_ih"].dtype
            layer = StackedRNN(
                canon["cell"], int(canon["weight_ih"].shape[2]), canon["hidden_size"],
                num_layers=1, bias=canon["bias_ih"] is not None, batch_first=s["layout"] == 1,
                bidirectional=D == 2, nonlinearity=canon["nonlinearity"] or "tanh",
                reset_after=True if canon["reset_after"] is None else canon["reset_after"],
                dtype=dtype.name, name=key)
            state = {}
            for d, sfx in enumerate(("", "_reverse")[:D]):
                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    if canon[kind] is not None:
                        state[f"{kind}_l0{sfx}"] = canon[kind][d]
            layer.load_state_dict(state)
            layers[key] = layer
        return layers

    def __repr__(self):
        src = f" from {self._source}" if self._source else ""
        return (f"<gatedrnn OnnxModel{src}: opset {self.opset}, inputs {list(self.input_names)}, "
                f"outputs {list(self.output_names)}>")


def from_onnx(path_or_model) -> OnnxModel:
    """Load an ONNX model to run it with gatedrnn (see the module docstring for semantics).

    ``path_or_model``: a path to a ``.onnx`` file (external data next to it is loaded too), an
    ``onnx.ModelProto``, or its serialized bytes. Needs the ``onnx`` package (``pip install
    onnx``); ONNX Runtime is not needed.

    Every node is checked now: an op type outside the supported set (the glue ops of
    :mod:`gatedrnn.interop.onnx_graph` and RNN/GRU/LSTM), a node with a subgraph, a custom
    domain, or a recurrent node with an attribute gatedrnn cannot compute raises
    NotImplementedError naming the node (and its attribute); an inconsistent graph (undefined
    values, wrong weight shapes) raises ValueError.
    """
    onnx = require_onnx()
    if isinstance(path_or_model, onnx.ModelProto):
        model, source = path_or_model, ""
    elif isinstance(path_or_model, (str, os.PathLike)):
        source = os.fspath(path_or_model)
        model = onnx.load(source)
    elif isinstance(path_or_model, (bytes, bytearray, memoryview)):
        model, source = onnx.load_from_string(bytes(path_or_model)), ""
    else:
        raise TypeError("path_or_model: expected a path, an onnx.ModelProto or serialized bytes, "
                        f"got {type(path_or_model).__name__}")
    return OnnxModel(Graph(model, OPS), source)
