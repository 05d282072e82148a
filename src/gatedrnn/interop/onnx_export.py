"""Export gatedrnn layers and Sequential models to ONNX, with the same outputs in ONNX Runtime.

    >>> from gatedrnn.interop.onnx_export import to_onnx
    >>> proto = to_onnx(model, "model.onnx")          # an onnx.ModelProto, also written there
    >>> import onnxruntime as ort
    >>> y = ort.InferenceSession("model.onnx").run(None, {"x": tokens})[0]   # == model(tokens)

What is exported (inference only: ``Dropout`` and the recurrent layers' dropouts are the
identity, as in ``model(x)``):

- ``SimpleRNN`` (tanh, relu), ``GRU`` (``reset_after`` True -> ``linear_before_reset=1``, False
  -> 0), ``LSTM``: one ONNX ``RNN``/``GRU``/``LSTM`` node each, with every inference option:
  ``return_sequences``, ``return_state`` (extra graph outputs), ``go_backwards`` (ONNX
  ``direction="reverse"`` plus a reversal of the time axis, since gatedrnn returns the outputs
  in processing order as Keras does), ``zero_output_for_mask``, ``time_major``.
- ``Bidirectional`` with every merge mode (concat, sum, mul, ave, None): one
  ``direction="bidirectional"`` node when both directions have the same configuration, else
  one node per direction.
- ``StackedRNN`` (PyTorch-style, ``num_layers`` nodes; outputs ``y, h_n(, c_n)`` with
  ``return_state``).
- ``Dense`` (MatMul + Add + its activation: linear, relu, tanh, sigmoid, softmax on the last
  axis, softplus, elu), ``Activation``, ``Embedding`` (Gather), ``Dropout`` (nothing),
  ``RepeatVector`` (Unsqueeze + Expand), ``Masking``; ``Sequential`` models chaining them.

How the graph keeps gatedrnn's semantics:

- Layout: gatedrnn's layers are batch-major ``(batch, time, features)``; ONNX Runtime runs only
  ``layout=0`` (time-major) recurrent nodes, so each node is exported with ``layout=0`` and
  Transposes around it (consecutive ones cancel out).
- Masks: a model with ``Embedding(mask_zero=True)`` or ``Masking`` computes the time mask inside
  the graph (token != 0, or any feature != mask_value) and from it each sequence's length
  (``ReduceSum``), fed to the nodes' ``sequence_lens``. Outputs at masked steps follow
  gatedrnn/Keras exactly: the state is carried, masked outputs repeat the last valid output (zeros
  with ``zero_output_for_mask``, which ``Bidirectional`` sets), the last output is the state after
  the last valid step (zero for a sequence with no valid step).
  ``padding`` says where the padding is: ``"any"`` (default) handles any mask the layers accept
  (one contiguous run of valid steps per sequence: left- or right-padded, or both) by moving
  each run to the front before a node (``GatherND``) and back after it; ``"right"`` and
  ``"left"`` give a smaller graph that is exact only for that padding. A mask with holes, which
  gatedrnn's layers reject with a ValueError, gives meaningless outputs in the graph (it cannot
  raise). ``StackedRNN`` always assumes right padding, as the layer itself requires.
- A length of 0: ONNX Runtime returns a zero state where gatedrnn returns the initial state. The
  exported graphs start from zero states, so nothing differs, unless ``with_initial_state=True``
  makes the initial states graph inputs: then the graph selects ``initial state if length == 0
  else Y_h`` with a ``Where``.
- dtype: ONNX Runtime runs RNN/GRU/LSTM nodes in float32 only. ``dtype=None`` exports float32,
  casting float64 weights with a warning; ``dtype="float64"`` keeps float64 (valid ONNX, which
  :func:`gatedrnn.interop.from_onnx` runs but ONNX Runtime does not).
- Inputs: float ``[batch, time, features]`` (time-major layers and a StackedRNN without
  ``batch_first``: ``[time, batch, features]``), int64 ``[batch, time]`` tokens for a model
  starting with ``Embedding``. Batch and time are dynamic axes (``dim_param`` ``"batch"`` and
  ``"time"``) unless ``input_shape`` fixes the time axis (an ``Input((12, 3))`` does not: the
  model runs on any length, and so does the graph).
- Empty inputs: ONNX Runtime (1.31) aborts the whole process on a GRU node with T = 0 or
  B = 0 and an LSTM node with B = 0; do not feed it empty batches or sequences.

Every export uses only ops that :func:`gatedrnn.interop.from_onnx` also runs (the mask
arithmetic included), so it loads back into gatedrnn with the same outputs.

Not exported, each a clear error naming the layer and option: stateful layers, cells,
``return_state`` / ``merge_mode=None`` inside a Sequential, custom layer classes and activations.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Optional

import numpy as np

from .. import saving
from ..layers.base import Layer
from ..layers.core import Activation, Dense, Dropout, Embedding, Masking, RepeatVector
from ..layers.recurrent import Bidirectional, _Recurrent
from ..layers.stacked import StackedRNN
from .onnx import _canonical_to_onnx_rnn
from .onnx_graph import require_onnx

__all__ = ["to_onnx", "MIN_OPSET"]

#: The lowest opset of the default domain the exporter writes (Squeeze/Unsqueeze/ReduceSum with
#: axes as an input, Softmax on one axis).
MIN_OPSET = 13
_OP_OF_CELL = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
_ACTIVATION_OPS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "softplus": "Softplus",
                   "elu": "Elu", "softmax": "Softmax"}
_PADDINGS = ("any", "right", "left")
_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min
_SUPPORTED = ("SimpleRNN, GRU, LSTM, Bidirectional, StackedRNN, Dense, Embedding, Dropout, "
              "RepeatVector, Masking, Activation, and Sequential models of them")


# --------------------------------------------------------------------------------------------
# Graph building
# --------------------------------------------------------------------------------------------


class _Builder:
    """Collects nodes and initializers; names every value uniquely under the current scope."""

    def __init__(self, onnx, opset: int, dtype: np.dtype):
        self.onnx = onnx
        self.helper = onnx.helper
        self.opset = opset
        self.dtype = np.dtype(dtype)
        self.nodes = []
        self.initializers = {}  # name -> array
        self.inputs = []  # ValueInfoProto
        self._consts = {}  # (dtype, shape, bytes) -> name
        self._used_names = set()
        self._transposes = {}  # output name -> (input name, perm)
        self._scope = ""

    @contextlib.contextmanager
    def scope(self, name: str):
        outer, self._scope = self._scope, name
        try:
            yield
        finally:
            self._scope = outer

    def fresh(self, base: str) -> str:
        stem = f"{self._scope}/{base}" if self._scope else base
        name, k = stem, 1
        while name in self._used_names:
            name, k = f"{stem}_{k}", k + 1
        self._used_names.add(name)
        return name

    def reserve(self, name: str):
        if name in self._used_names:
            raise ValueError(f"the name {name!r} is used twice in the graph")
        self._used_names.add(name)

    # --- values -----------------------------------------------------------------------------
    def add_input(self, name: str, elem_dtype, shape):
        self.reserve(name)
        self.inputs.append(self.helper.make_tensor_value_info(
            name, self.helper.np_dtype_to_tensor_dtype(np.dtype(elem_dtype)), list(shape)))
        return name

    def weight(self, array, base: str) -> str:
        name = self.fresh(base)
        self.initializers[name] = np.array(array, self.dtype, order="C")
        return name

    def const(self, value, dtype) -> str:
        """A small constant (shared by every use of the same value)."""
        a = np.array(value, dtype, order="C")  # (ascontiguousarray would make 0-d 1-d)
        key = (a.dtype.str, a.shape, a.tobytes())
        name = self._consts.get(key)
        if name is None:
            with self.scope(""):
                name = self.fresh(f"const_{a.dtype.name}")
            self.initializers[name] = a
            self._consts[key] = name
        return name

    def ints(self, values) -> str:
        return self.const(np.asarray(values, np.int64).reshape(-1), np.int64)

    def scalar(self, value, dtype=None) -> str:
        return self.const(np.asarray(value, dtype or self.dtype).reshape(()), dtype or self.dtype)

    # --- nodes ------------------------------------------------------------------------------
    def op(self, op_type: str, inputs, outputs=1, base: Optional[str] = None, **attrs):
        """Add a node; returns its output name (or the list of them when ``outputs`` > 1)."""
        base = base or op_type.lower()
        names = [self.fresh(base if outputs == 1 else f"{base}_{k}") for k in range(outputs)] \
            if isinstance(outputs, int) else [self.fresh(o) for o in outputs]
        node_name = self.fresh(op_type)
        self.nodes.append(self.helper.make_node(op_type, list(inputs), names, name=node_name,
                                                **attrs))
        return names[0] if len(names) == 1 else names

    def transpose(self, x: str, perm) -> str:
        perm = [int(p) for p in perm]
        if perm == sorted(perm):
            return x
        if x in self._transposes:  # Transpose(Transpose(a, p1), p2) = Transpose(a, p1[p2])
            src, p1 = self._transposes[x]
            return self.transpose(src, [p1[p] for p in perm])
        out = self.op("Transpose", [x], base="transposed", perm=perm)
        self._transposes[out] = (x, perm)
        return out

    def unsqueeze(self, x: str, axes) -> str:
        return self.op("Unsqueeze", [x, self.ints(axes)], base="unsqueezed")

    def squeeze(self, x: str, axes) -> str:
        return self.op("Squeeze", [x, self.ints(axes)], base="squeezed")

    def reduce(self, op_type: str, x: str, axes, keepdims=0, base=None) -> str:
        # ReduceSum takes axes as an input from opset 13, the other reductions from opset 18
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.ints(axes)], base=base, keepdims=keepdims)
        return self.op(op_type, [x], base=base, axes=list(axes), keepdims=keepdims)

    def flip(self, x: str, axis: int) -> str:
        """``x`` reversed along ``axis`` (a Slice with step -1)."""
        return self.op("Slice", [x, self.ints([-1]), self.ints([_INT64_MIN]), self.ints([axis]),
                                 self.ints([-1])], base="reversed")

    def dim(self, x: str, axis: int) -> str:
        """The size of ``x`` along ``axis``, as an int64 tensor of shape [1]."""
        shape = self.op("Shape", [x], base="shape")
        return self.op("Slice", [shape, self.ints([axis]), self.ints([axis + 1])],
                       base=f"dim{axis}")

    def cast(self, x: str, dtype, base=None) -> str:
        to = self.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        return self.op("Cast", [x], base=base or "cast", to=to)

    def where(self, cond: str, a: str, b: str, base=None) -> str:
        return self.op("Where", [cond, a, b], base=base or "selected")

    def zeros_like_select(self, keep: str, x: str, base=None) -> str:
        """``x`` where ``keep`` (broadcast), else 0."""
        return self.where(keep, x, self.scalar(0), base=base)

    # --- the model --------------------------------------------------------------------------
    def finish(self, outputs, graph_name: str, doc: str):
        """``outputs``: list of (value name, graph output name, shape). Returns the ModelProto."""
        helper, onnx = self.helper, self.onnx
        # graph outputs: rename the producing node's output when possible, else an Identity
        input_names = {vi.name for vi in self.inputs}
        taken = set()
        renames = {}
        for value, out_name, _ in outputs:
            if (value in input_names or value in self.initializers or value in taken
                    or value in renames):
                self.nodes.append(helper.make_node("Identity", [value], [out_name],
                                                   name=self.fresh(f"{out_name}/Identity")))
            else:
                renames[value] = out_name
            taken.add(value)
        for node in self.nodes:
            for seq in (node.input, node.output):
                for k, name in enumerate(seq):
                    if name in renames:
                        seq[k] = renames[name]
        # keep only what the outputs need; omit unused optional outputs of recurrent nodes
        needed = {name for _, name, _ in outputs}
        kept = []
        for node in reversed(self.nodes):
            if not any(o in needed for o in node.output if o):
                continue
            if node.op_type in ("RNN", "GRU", "LSTM"):
                for k, o in enumerate(node.output):
                    if o not in needed:
                        node.output[k] = ""
                while node.output and node.output[-1] == "":
                    node.output.pop()
            needed.update(i for i in node.input if i)
            kept.append(node)
        kept.reverse()
        inits = [onnx.numpy_helper.from_array(a, name)
                 for name, a in self.initializers.items() if name in needed]
        outs = [helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(self.dtype), list(shape))
            for _, name, shape in outputs]
        graph = helper.make_graph(kept, graph_name, self.inputs, outs, initializer=inits,
                                  doc_string=doc)
        opsets = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="gatedrnn",
                                  producer_version=_version(),
                                  ir_version=helper.find_min_ir_version_for(opsets, True))
        onnx.checker.check_model(model)
        return model


def _version() -> str:
    try:
        from .. import __version__
        return str(__version__)
    except ImportError:  # pragma: no cover - a partially initialised package
        return "unknown"


# --------------------------------------------------------------------------------------------
# Masks: lengths and runs inside the graph
# --------------------------------------------------------------------------------------------


class _Mask:
    """A Keras-style time mask ``valid`` (bool ``[B, T]``) and what the nodes need from it.

    ``side`` is what the export may assume about every row: ``"right"`` (valid steps first),
    ``"left"`` (valid steps last) or ``"any"`` (one contiguous run anywhere). Derived values are
    built on first use (named under ``scope``) and shared by every layer that reads the mask.
    ``fronts`` maps a layer output to the same values with each run at the front (what a
    recurrent node computed before its outputs were moved back), which the next recurrent
    layer reads instead of moving the runs to the front again.
    """

    def __init__(self, b: _Builder, valid: str, side: str, scope: str,
                 lengths: Optional[str] = None):
        self.b, self.valid, self.side, self.scope = b, valid, side, scope
        self._cache = {} if lengths is None else {"lengths": lengths}
        self.fronts = {}

    def _cached(self, key, make):
        if key not in self._cache:
            with self.b.scope(self.scope):
                self._cache[key] = make()
        return self._cache[key]

    def lengths(self) -> str:
        """int64 [B]: the number of valid steps of each sequence."""
        b = self.b
        return self._cached("lengths", lambda: b.reduce(
            "ReduceSum", b.cast(self.valid, np.int64), [1], base="lengths"))

    def lengths32(self) -> str:
        """int32 [B], for ``sequence_lens``."""
        return self._cached("l32", lambda: self.b.cast(self.lengths(), np.int32,
                                                        base="sequence_lens"))

    def time(self) -> str:
        """int64 [1]: T."""
        return self._cached("T", lambda: self.b.dim(self.valid, 1))

    def positions(self) -> str:
        """int64 [1, T]: 0 .. T-1."""
        def make():
            b = self.b
            T = b.squeeze(self.time(), [0])
            r = b.op("Range", [b.scalar(0, np.int64), T, b.scalar(1, np.int64)], base="steps")
            return b.unsqueeze(r, [0])
        return self._cached("pos", make)

    def start(self) -> Optional[str]:
        """int64 [B]: the first valid step (0 for an empty row, as gatedrnn), None when 0."""
        if self.side == "right":
            return None

        def make():
            b = self.b
            if self.side == "left":
                return b.op("Sub", [self.time(), self.lengths()], base="start")
            return b.op("ArgMax", [b.cast(self.valid, np.int32)], base="start", axis=1,
                        keepdims=0)
        return self._cached("start", make)

    def end(self) -> str:
        """int64 [B]: start + length."""
        s = self.start()
        return self.lengths() if s is None else self._cached(
            "end", lambda: self.b.op("Add", [s, self.lengths()], base="end"))

    def length_is_zero(self) -> str:
        """bool [B]."""
        b = self.b
        return self._cached("empty", lambda: b.op("Equal", [self.lengths(),
                                                            b.scalar(0, np.int64)],
                                                  base="empty"))

    def after_run(self) -> Optional[str]:
        """bool [B, T]: steps after each run (None: no step, whatever the data)."""
        b = self.b
        if self.side == "left":
            return None
        if self.side == "right":
            return self._cached("after", lambda: b.op("Not", [self.valid], base="after_run"))
        return self._cached("after", lambda: b.op(
            "GreaterOrEqual", [self.positions(), b.unsqueeze(self.end(), [1])],
            base="after_run"))

    def before_run(self) -> Optional[str]:
        """bool [B, T]: steps before each run (None: no step, whatever the data)."""
        b = self.b
        if self.side == "right":
            return None
        if self.side == "left":
            return self._cached("before", lambda: b.op("Not", [self.valid], base="before_run"))
        return self._cached("before", lambda: b.op(
            "Less", [self.positions(), b.unsqueeze(self.start(), [1])], base="before_run"))

    def run_ends_at_last_step(self) -> str:
        """bool [B]: the run is non-empty and ends at step T-1."""
        b = self.b

        def make():
            if self.side == "left":
                return b.op("Not", [self.length_is_zero()], base="ends_last")
            T = self.time()
            return b.op("Equal", [self.end(), T], base="ends_last")
        return self._cached("ends_last", make)

    def run_starts_at_first_step(self) -> str:
        """bool [B]: the run is non-empty and starts at step 0."""
        b = self.b

        def make():
            if self.side == "right":
                return b.op("Not", [self.length_is_zero()], base="starts_first")
            if self.side == "left":
                return b.op("Equal", [self.lengths(), self.time()], base="starts_first")
            at0 = b.op("Equal", [self.start(), b.scalar(0, np.int64)])
            return b.op("And", [at0, b.op("Not", [self.length_is_zero()])],
                        base="starts_first")
        return self._cached("starts_first", make)

    # --- moving the runs -------------------------------------------------------------------
    def to_front(self, x: str) -> str:
        """Batch-major ``x`` [B, T, ...] with each run moved to step 0 (steps past a run hold
        clamped copies: never read by a node given ``sequence_lens``)."""
        s = self.start()
        if s is None:
            return x
        if x in self.fronts:
            return self.fronts[x]
        b = self.b

        def index():
            t_last = b.op("Sub", [self.time(), b.ints([1])])
            idx = b.op("Add", [b.unsqueeze(s, [1]), self.positions()])
            idx = b.op("Min", [idx, b.unsqueeze(t_last, [0])])
            return b.unsqueeze(idx, [2])
        idx = self._cached("front_index", index)
        return b.op("GatherND", [x, idx], base="runs_at_front", batch_dims=1)

    def from_front(self, y: str, rank: int) -> str:
        """The inverse of :meth:`to_front` for a node output [B, T, ...] (zero past each run):
        each run back at its place, zeros elsewhere."""
        s = self.start()
        if s is None:
            return y
        b = self.b

        def index():
            idx = b.op("Sub", [self.positions(), b.unsqueeze(s, [1])])
            idx = b.op("Max", [idx, b.scalar(0, np.int64)])
            return b.unsqueeze(idx, [2])
        idx = self._cached("back_index", index)
        moved = b.op("GatherND", [y, idx], base="runs_in_place", batch_dims=1)
        keep = b.unsqueeze(self.valid, list(range(2, rank)))
        return b.zeros_like_select(keep, moved, base="runs_in_place")


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------


class _Context:
    """Options of one export run."""

    def __init__(self, b: _Builder, padding: str):
        self.b = b
        self.padding = padding
        self.cast_layers = []  # names of float64 layers exported as float32


def _weights_as(ctx: _Context, layer, arrays):
    if layer.dtype != ctx.b.dtype and layer.dtype == np.float64 and layer.name not in \
            ctx.cast_layers:
        ctx.cast_layers.append(layer.name)
    return [None if a is None else np.asarray(a, ctx.b.dtype) for a in arrays]


def _rnn_node(ctx: _Context, cell: str, weights, direction: str, x_tm: str, seq_lens, init_h,
              init_c, reset_after=None, nonlinearity=None):
    """One ONNX recurrent node on time-major ``x_tm``; ``weights``: per direction (w_ih, w_hh,
    b_ih, b_hh) canonical arrays (biases None: no bias). Returns Y, Y_h, Y_c (None for rnn/gru)."""
    b = ctx.b
    stacked = [None if weights[0][k] is None else np.stack([w[k] for w in weights])
               for k in range(4)]
    H = stacked[1].shape[2]
    W, R, B, attrs = _canonical_to_onnx_rnn(cell, H, direction, *stacked,
                                            reset_after=reset_after, nonlinearity=nonlinearity)
    inputs = [x_tm, b.weight(W, "W"), b.weight(R, "R"), "" if B is None else b.weight(B, "B"),
              seq_lens or "", init_h or ""]
    if cell == "lstm":
        inputs.append(init_c or "")
    while inputs[-1] == "":
        inputs.pop()
    outs = ["Y", "Y_h"] + (["Y_c"] if cell == "lstm" else [])
    res = b.op(_OP_OF_CELL[cell], inputs, outputs=outs, **attrs)
    return res[0], res[1], (res[2] if cell == "lstm" else None)


def _cell_attrs(layer):
    if layer.cell == "gru":
        return {"reset_after": layer.reset_after}
    if layer.cell == "rnn":
        return {"nonlinearity": layer.activation}
    return {}


def _check_recurrent(layer):
    if getattr(layer, "stateful", False):
        raise ValueError(
            f"{layer.name}: stateful=True cannot be exported (an ONNX graph keeps no state "
            "between runs); export the layer with stateful=False and with_initial_state=True, "
            "and feed the carried state yourself")


def _states_out(ctx, mask, raw, init):
    """A returned state: the node's, or the initial state for a length of 0 (gatedrnn's
    semantics; ONNX Runtime returns zeros there). ``raw``/``init`` [B, H] or [D, B, H]."""
    if init is None or mask is None:
        return raw
    b = ctx.b
    empty = b.unsqueeze(mask.length_is_zero(), [1])
    return b.where(empty, init, raw, base="state")


def _nonempty(ctx, mask, value, init):
    """``value`` [B, H] (a node's Y_h), zero for an empty sequence (gatedrnn's last output).
    ONNX Runtime's node returns zeros there, and so does any runtime when it starts from zero
    states; with initial-state inputs the ONNX specification leaves it open, so select."""
    if init is None or mask is None:
        return value
    b = ctx.b
    empty = b.unsqueeze(mask.length_is_zero(), [1])
    return b.where(empty, b.scalar(0), value, base="last")


def _recurrent(ctx: _Context, layer, x: str, mask: Optional[_Mask], init=None,
               time_major=None):
    """A SimpleRNN/GRU/LSTM layer on ``x`` (batch-major, or time-major with ``time_major``).
    Returns (outputs list: [y] + states when return_state, output mask)."""
    _check_recurrent(layer)
    b = ctx.b
    time_major = layer.time_major if time_major is None else time_major
    xb = b.transpose(x, (1, 0, 2)) if time_major else x
    if mask is not None:
        xb = mask.to_front(xb)
    x_tm = b.transpose(xb, (1, 0, 2))
    w = _weights_as(ctx, layer, layer._weight_arrays())
    h0 = c0 = None
    if init is not None:
        h0 = b.unsqueeze(init[0], [0])
        c0 = b.unsqueeze(init[1], [0]) if layer.cell == "lstm" else None
    Y, Y_h, Y_c = _rnn_node(ctx, layer.cell, [w], "reverse" if layer.go_backwards else "forward",
                            x_tm, None if mask is None else mask.lengths32(), h0, c0,
                            **_cell_attrs(layer))
    h = b.squeeze(Y_h, [0])
    last = _nonempty(ctx, mask, h, None if init is None else init[0])
    if layer.return_sequences:
        y_front = y = b.transpose(b.squeeze(Y, [1]), (1, 0, 2))  # [B, T, H], zero past runs
        if mask is not None:
            y = mask.from_front(y, 3)
            if not layer.zero_output_for_mask:
                # masked steps after the run (in processing order) repeat its last output
                region = mask.before_run() if layer.go_backwards else mask.after_run()
                if region is not None:
                    y = b.where(b.unsqueeze(region, [2]), b.unsqueeze(last, [1]), y,
                                base="y_filled")
        if layer.go_backwards:
            y = b.flip(y, 1)
        elif mask is not None and not time_major:
            mask.fronts[y] = y_front  # equal on every run: all a recurrent node reads
        if time_major:
            y = b.transpose(y, (1, 0, 2))
    else:
        y = last
        if mask is not None and layer.zero_output_for_mask:
            # the last processing step's output, zero when that step is masked
            keep = mask.run_starts_at_first_step() if layer.go_backwards \
                else mask.run_ends_at_last_step()
            y = b.zeros_like_select(b.unsqueeze(keep, [1]), y, base="y")
    outputs = [y]
    if layer.return_state:
        outputs.append(_states_out(ctx, mask, h, None if init is None else init[0]))
        if layer.cell == "lstm":
            c = b.squeeze(Y_c, [0])
            outputs.append(_states_out(ctx, mask, c, None if init is None else init[1]))
    return outputs, _mask_after(layer, mask)


def _mask_after(layer, mask):
    """The mask the layer's output carries, as the layer's own ``compute_mask`` says (probed
    with an asymmetric mask, so this follows the layer's rule whatever it is)."""
    if mask is None:
        return None
    probe = np.array([[True, True, False]])
    try:
        got = layer.compute_mask(np.zeros((1, 3, 1)), probe)
    except Exception:  # noqa: BLE001 - a layer that cannot say: keep the mask as Keras does
        return mask
    if got is None:
        return None
    got = np.asarray(got)
    if got.shape == probe.shape and np.array_equal(got, probe):
        return mask
    if got.shape == probe.shape and np.array_equal(got, probe[:, ::-1]):
        flipped_side = {"right": "left", "left": "right", "any": "any"}[mask.side]
        with mask.b.scope(mask.scope):
            valid = mask.b.flip(mask.valid, 1)
        return _Mask(mask.b, valid, flipped_side, mask.scope + "_reversed", mask.lengths())
    raise NotImplementedError(f"{layer.name}: its output mask is neither its input mask nor "
                              "that mask reversed in time; the export cannot follow it")


def _fusable(layer: Bidirectional) -> bool:
    f, bw = layer.forward_layer, layer.backward_layer
    return (type(f) is type(bw) and f.units == bw.units and not f.go_backwards
            and bw.go_backwards and _cell_attrs(f) == _cell_attrs(bw)
            and f.use_bias == bw.use_bias and f.time_major == bw.time_major)


def _merge(ctx, mode, y_f, y_b, base="y"):
    b = ctx.b
    if mode == "concat":
        return [b.op("Concat", [y_f, y_b], base=base, axis=-1)]
    if mode == "sum":
        return [b.op("Add", [y_f, y_b], base=base)]
    if mode == "mul":
        return [b.op("Mul", [y_f, y_b], base=base)]
    if mode == "ave":
        return [b.op("Div", [b.op("Add", [y_f, y_b]), b.scalar(2)], base=base)]
    return [y_f, y_b]


def _bidirectional(ctx: _Context, layer: Bidirectional, x: str, mask: Optional[_Mask],
                   init=None):
    b = ctx.b
    f, bw = layer.forward_layer, layer.backward_layer
    _check_recurrent(f)
    _check_recurrent(bw)
    n = 2 if f.cell == "lstm" else 1
    init_f = init_b = None
    if init is not None:  # Keras's order: the forward layer's states, then the backward's
        init_f, init_b = init[:n], init[n:]
    xb = b.transpose(x, (1, 0, 2)) if layer.time_major else x
    if not _fusable(layer):
        # one node per direction: each sub-layer exactly as on its own, the backward one's
        # outputs flipped back to the original time order
        with b.scope(f.name):
            out_f, _ = _recurrent(ctx, f, xb, mask, init_f, time_major=False)
        with b.scope(bw.name):
            out_b, _ = _recurrent(ctx, bw, xb, mask, init_b, time_major=False)
        y_f, y_b = out_f[0], out_b[0]
        if layer.return_sequences:
            y_b = b.flip(y_b, 1)
        states_f, states_b = out_f[1:], out_b[1:]
        ys = _merge(ctx, layer.merge_mode, y_f, y_b)
    else:
        if mask is not None:
            xb = mask.to_front(xb)
        x_tm = b.transpose(xb, (1, 0, 2))
        wf = _weights_as(ctx, f, f._weight_arrays())
        wb = _weights_as(ctx, bw, bw._weight_arrays())
        h0 = c0 = None
        if init is not None:
            h0 = b.op("Concat", [b.unsqueeze(init_f[0], [0]), b.unsqueeze(init_b[0], [0])],
                      base="initial_h", axis=0)
            if n == 2:
                c0 = b.op("Concat", [b.unsqueeze(init_f[1], [0]), b.unsqueeze(init_b[1], [0])],
                          base="initial_c", axis=0)
        Y, Y_h, Y_c = _rnn_node(ctx, f.cell, [wf, wb], "bidirectional", x_tm,
                                None if mask is None else mask.lengths32(), h0, c0,
                                **_cell_attrs(f))
        h_f = b.op("Gather", [Y_h, b.scalar(0, np.int64)], base="h_fwd", axis=0)
        h_b = b.op("Gather", [Y_h, b.scalar(1, np.int64)], base="h_bwd", axis=0)
        if layer.return_sequences:
            yb = b.transpose(Y, (2, 0, 1, 3))  # [B, T, 2, H], zero past each run
            if layer.merge_mode == "concat":
                fronts = [b.op("Reshape", [yb, b.ints([0, 0, 2 * f.units])], base="y")]
            else:
                fronts = _merge(ctx, layer.merge_mode,
                                b.op("Gather", [yb, b.scalar(0, np.int64)], base="y_fwd", axis=2),
                                b.op("Gather", [yb, b.scalar(1, np.int64)], base="y_bwd", axis=2))
            # merged at the front (zeros past each run merge to zeros), then moved back
            ys = [y if mask is None else mask.from_front(y, 3) for y in fronts]
            if mask is not None and not layer.time_major:
                mask.fronts.update(zip(ys, fronts))
        else:
            ys = _merge(ctx, layer.merge_mode,
                        _nonempty(ctx, mask, h_f, None if init is None else init_f[0]),
                        _nonempty(ctx, mask, h_b, None if init is None else init_b[0]))
        states_f, states_b = [], []
        if layer.return_state:
            states_f.append(_states_out(ctx, mask, h_f, None if init is None else init_f[0]))
            states_b.append(_states_out(ctx, mask, h_b, None if init is None else init_b[0]))
            if n == 2:
                c_f = b.op("Gather", [Y_c, b.scalar(0, np.int64)], base="c_fwd", axis=0)
                c_b = b.op("Gather", [Y_c, b.scalar(1, np.int64)], base="c_bwd", axis=0)
                states_f.append(_states_out(ctx, mask, c_f, None if init is None
                                            else init_f[1]))
                states_b.append(_states_out(ctx, mask, c_b, None if init is None
                                            else init_b[1]))
    if layer.return_sequences and layer.time_major:
        ys = [b.transpose(y, (1, 0, 2)) for y in ys]
    outputs = ys + (states_f + states_b if layer.return_state else [])
    return outputs, _mask_after(layer, mask)


def _stacked(ctx: _Context, layer: StackedRNN, x: str, mask: Optional[_Mask], init=None):
    b = ctx.b
    if mask is not None and mask.side == "left":
        raise ValueError(f"{layer.name}: StackedRNN needs right-padded sequences, but "
                         "padding='left' was given")
    D, L, H = layer.num_directions, layer.num_layers, layer.hidden_size
    inp = x if not layer.batch_first else b.transpose(x, (1, 0, 2))  # [T, B, I]
    seq_lens = None if mask is None else mask.lengths32()
    direction = "bidirectional" if D == 2 else "forward"
    sfxs = ("", "_reverse")[:D]
    p = layer._params
    hs, cs = [], []
    for k in range(L):
        weights = []
        for sfx in sfxs:
            arrays = [p[f"{kind}_l{k}{sfx}"].value if f"{kind}_l{k}{sfx}" in p else None
                      for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            weights.append(_weights_as(ctx, layer, arrays))
        h0 = c0 = None
        if init is not None:
            rows = [b.ints([k * D]), b.ints([(k + 1) * D])]
            h0 = b.op("Slice", [init[0]] + rows, base=f"h0_l{k}")
            if layer.cell == "lstm":
                c0 = b.op("Slice", [init[1]] + rows, base=f"c0_l{k}")
        opts = {"reset_after": layer.reset_after} if layer.cell == "gru" else \
            {"nonlinearity": layer.nonlinearity} if layer.cell == "rnn" else {}
        with b.scope(f"{layer.name}/l{k}"):
            Y, Y_h, Y_c = _rnn_node(ctx, layer.cell, weights, direction, inp, seq_lens, h0, c0,
                                    **opts)
            # [T, D, B, H] -> [T, B, D*H]
            inp = b.op("Reshape", [b.transpose(Y, (0, 2, 1, 3)), b.ints([0, 0, D * H])],
                       base="y")
        hs.append(Y_h)
        cs.append(Y_c)
    y = b.transpose(inp, (1, 0, 2)) if layer.batch_first else inp
    outputs = [y]
    if layer.return_state:
        kinds = [("h_n", hs)] + ([("c_n", cs)] if layer.cell == "lstm" else [])
        for k, (base, states) in enumerate(kinds):
            s = states[0] if L == 1 else b.op("Concat", states, base=base, axis=0)
            if init is not None and mask is not None:
                # gatedrnn returns the initial state for a length of 0 (ONNX Runtime: zeros)
                empty = b.unsqueeze(mask.length_is_zero(), [0, 2])
                s = b.where(empty, init[k], s, base=base)
            outputs.append(s)
    return outputs, mask


def _activation(ctx: _Context, act, x: str, owner: str) -> str:
    name = getattr(act, "name", None)
    if name == "linear":
        return x
    op = _ACTIVATION_OPS.get(name)
    if op is None or type(act).__module__ != "gatedrnn.activations":
        raise NotImplementedError(
            f"{owner}: activation {name or type(act).__name__!r} cannot be exported; supported: "
            f"linear, {', '.join(sorted(_ACTIVATION_OPS))}")
    if op == "Softmax":
        return ctx.b.op(op, [x], base=name, axis=-1)
    if op == "Elu":
        return ctx.b.op(op, [x], base=name, alpha=1.0)
    return ctx.b.op(op, [x], base=name)


def _dense(ctx: _Context, layer: Dense, x: str, mask):
    b = ctx.b
    w, bias = _weights_as(ctx, layer, [layer._params["weight"].value,
                                       layer._params["bias"].value if layer.use_bias else None])
    z = b.op("MatMul", [x, b.weight(w.T, "kernel")], base="matmul")
    if bias is not None:
        z = b.op("Add", [z, b.weight(bias, "bias")], base="z")
    return [_activation(ctx, layer.activation, z, layer.name)], mask


def _embedding(ctx: _Context, layer: Embedding, x: str, mask):
    b = ctx.b
    (table,) = _weights_as(ctx, layer, [layer._params["embeddings"].value])
    y = b.op("Gather", [b.weight(table, "embeddings"), x], base="embedded", axis=0)
    out_mask = None
    if layer.mask_zero:
        valid = b.op("Not", [b.op("Equal", [x, b.scalar(0, np.int64)])], base="mask")
        out_mask = _Mask(b, valid, ctx.padding, f"{layer.name}/mask")
    return [y], out_mask


def _masking(ctx: _Context, layer: Masking, x: str, mask):
    b = ctx.b
    differs = b.cast(b.op("Not", [b.op("Equal", [x, b.scalar(layer.mask_value)])]), b.dtype)
    any_differs = b.reduce("ReduceMax", differs, [-1], keepdims=0)
    valid = b.cast(any_differs, np.bool_, base="mask")
    y = b.op("Mul", [x, b.unsqueeze(b.cast(valid, b.dtype), [-1])], base="masked")
    return [y], _Mask(b, valid, ctx.padding, f"{layer.name}/mask")


def _repeat_vector(ctx: _Context, layer: RepeatVector, x: str, mask):
    b = ctx.b
    y = b.op("Expand", [b.unsqueeze(x, [1]), b.ints([1, layer.n, 1])], base="repeated")
    return [y], None


def _activation_layer(ctx: _Context, layer: Activation, x: str, mask):
    return [_activation(ctx, layer.activation, x, layer.name)], mask


def _dropout(ctx: _Context, layer: Dropout, x: str, mask):
    return [x], mask


_EXPORTERS = [
    (_Recurrent, _recurrent), (Bidirectional, _bidirectional), (StackedRNN, _stacked),
    (Dense, _dense), (Embedding, _embedding), (Masking, _masking),
    (RepeatVector, _repeat_vector), (Activation, _activation_layer), (Dropout, _dropout),
]


def _exporter(layer):
    for cls, fn in _EXPORTERS:
        if isinstance(layer, cls):
            return fn
    raise NotImplementedError(
        f"{getattr(layer, 'name', layer)!r}: layer type {type(layer).__qualname__} cannot be "
        f"exported to ONNX; supported: {_SUPPORTED}")


def _export_layer(ctx: _Context, layer, x: str, mask, init=None):
    fn = _exporter(layer)
    if not layer.built:
        raise ValueError(f"{layer.name}: the layer is not built (no weights yet); call it on "
                         "data or give input_shape")
    with ctx.b.scope(layer.name):
        if fn in (_recurrent, _bidirectional, _stacked):
            return fn(ctx, layer, x, mask, init)
        return fn(ctx, layer, x, mask)


# --------------------------------------------------------------------------------------------
# Inputs, outputs, names
# --------------------------------------------------------------------------------------------


def _default_output_names(layer) -> list:
    if isinstance(layer, StackedRNN):
        if not layer.return_state:
            return ["y"]
        return ["y", "h_n", "c_n"] if layer.cell == "lstm" else ["y", "h_n"]
    if isinstance(layer, Bidirectional):
        ys = ["y"] if layer.merge_mode is not None else ["y_fwd", "y_bwd"]
        if not layer.return_state:
            return ys
        for sub, sfx in ((layer.forward_layer, "_fwd"), (layer.backward_layer, "_bwd")):
            ys += ["h" + sfx] + (["c" + sfx] if sub.cell == "lstm" else [])
        return ys
    if isinstance(layer, _Recurrent) and layer.return_state:
        return ["y", "h", "c"] if layer.cell == "lstm" else ["y", "h"]
    return ["y"]


def _initial_state_inputs(layer) -> list:
    """(name, shape) of the initial-state graph inputs of a recurrent layer."""
    if isinstance(layer, StackedRNN):
        shape = [layer.num_layers * layer.num_directions, "batch", layer.hidden_size]
        return [("h0", shape)] + ([("c0", shape)] if layer.cell == "lstm" else [])
    if isinstance(layer, Bidirectional):
        names = []
        for sub, sfx in ((layer.forward_layer, "_fwd"), (layer.backward_layer, "_bwd")):
            names += [("h0" + sfx, ["batch", sub.units])]
            if sub.cell == "lstm":
                names += [("c0" + sfx, ["batch", sub.units])]
        return names
    names = [("h0", ["batch", layer.units])]
    return names + ([("c0", ["batch", layer.units])] if layer.cell == "lstm" else [])


def _is_recurrent(layer) -> bool:
    return isinstance(layer, (_Recurrent, Bidirectional, StackedRNN))


def _symbolic_shape(first, shape, fixed_time: bool, time_major_input: bool) -> list:
    """Graph input dims: batch and time named, the rest from the model."""
    dims = []
    batch_axis, time_axis = (1, 0) if time_major_input else (0, 1)
    has_time = len(shape) >= 3 or (isinstance(first, Embedding) and len(shape) == 2)
    for k, d in enumerate(shape):
        if k == batch_axis:
            dims.append("batch")
        elif k == time_axis and has_time and not (fixed_time and d is not None):
            dims.append("time")
        elif d is None:
            dims.append(f"dim{k}")
        else:
            dims.append(int(d))
    return dims


def _output_shape(layer, shape):
    """``layer.compute_output_shape``, except for a Bidirectional whose backward layer has other
    units (its own method assumes equal sizes)."""
    if not isinstance(layer, Bidirectional):
        return layer.compute_output_shape(shape)
    outs = []
    for sub in (layer.forward_layer, layer.backward_layer):
        out = sub.compute_output_shape(shape)
        outs.append((out[0], list(out[1:])) if layer.return_state else (out, []))
    (y_f, states_f), (y_b, states_b) = outs
    if layer.merge_mode == "concat":
        ys = [tuple(y_f[:-1]) + (y_f[-1] + y_b[-1],)]
    elif layer.merge_mode is None:
        ys = [y_f, y_b]
    else:
        ys = [y_f]
    if layer.return_state:
        return ys + states_f + states_b
    return ys[0] if len(ys) == 1 else ys


def _check_names(names, what):
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise TypeError(f"{what}: expected a list of non-empty str, got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: names must be unique, got {list(names)}")


# --------------------------------------------------------------------------------------------
# The public function
# --------------------------------------------------------------------------------------------


def to_onnx(layer_or_model, path=None, *, opset: int = 17, input_shape=None, dtype=None,
            input_name: str = "x", output_names=None, with_lengths=False,
            with_initial_state: bool = False, padding: str = "any"):
    """Export a gatedrnn layer or Sequential model to ONNX (semantics: the module docstring).

    Arguments:

    - ``layer_or_model``: a built ``gatedrnn.Sequential`` or layer (see the module docstring for
      the supported ones). An unbuilt one is built for ``input_shape`` first (random weights).
    - ``path``: where to write the model (written to a temporary file and moved into place, so
      an existing file is never half-overwritten); None writes nothing.
    - ``opset``: the ONNX opset of the default domain, ``MIN_OPSET`` (13) or later (default 17).
    - ``input_shape``: the input's shape without the batch axis, as ``gr.Input(shape)`` (None for
      a dynamic size). Default: what the model or layer was built for, with the time axis
      dynamic. A fixed time size here is written into the graph.
    - ``dtype``: ``"float32"`` (default; float64 weights are cast, with a warning) or
      ``"float64"`` (ONNX Runtime cannot run recurrent nodes in float64).
    - ``input_name`` (default ``"x"``): the data input, float ``[batch, time, features]`` (or
      ``[batch, features]`` for a model starting with ``RepeatVector`` or ``Dense``; int64
      ``[batch, time]`` tokens for one starting with ``Embedding``).
    - ``output_names``: the graph outputs' names; default ``["y"]``, and for a recurrent layer
      with ``return_state`` ``["y", "h"(, "c")]``, a Bidirectional ``["y", "h_fwd"(, "c_fwd"),
      "h_bwd"(, "c_bwd")]`` (``"y_fwd", "y_bwd"`` for ``merge_mode=None``), a StackedRNN
      ``["y", "h_n"(, "c_n")]``; the order of the layer's own outputs.
    - ``with_lengths``: for a single recurrent layer (SimpleRNN, GRU, LSTM, Bidirectional,
      StackedRNN): add a graph input ``"lengths"`` ``[batch]`` (int64 for True or ``"int64"``,
      int32 for ``"int32"``): the first ``lengths[b]`` steps of sequence b are valid, as calling
      the layer with ``mask = arange(T) < lengths[:, None]`` (a StackedRNN: ``lengths=``).
    - ``with_initial_state``: for a single recurrent layer: add the initial states as graph
      inputs: ``"h0"`` (, ``"c0"``) ``[batch, units]``; a Bidirectional ``"h0_fwd"``
      (, ``"c0_fwd"``), ``"h0_bwd"`` (, ``"c0_bwd"``); a StackedRNN ``"h0"`` (, ``"c0"``)
      ``[layers*directions, batch, hidden]``: the layer's ``initial_state`` / ``h0, c0``.
    - ``padding``: ``"any"`` (default), ``"right"`` or ``"left"``: where masked inputs may be
      padded (see the module docstring).

    Returns the ``onnx.ModelProto`` (checked with ``onnx.checker``). Needs the ``onnx`` package.
    Raises TypeError/ValueError for bad arguments and NotImplementedError for a layer or option
    that has no export, each naming the layer, the option, what is supported and what was given.
    """
    from ..models import Sequential

    onnx = require_onnx()
    # --- arguments --------------------------------------------------------------------------
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset: expected an int, got {type(opset).__name__}")
    max_opset = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= max_opset:
        raise ValueError(f"opset: expected an int in [{MIN_OPSET}, {max_opset}] (the installed "
                         f"onnx {onnx.__version__} knows up to {max_opset}), got {opset}")
    if dtype is None:
        out_dtype, warn_cast = np.dtype(np.float32), True
    else:
        try:
            out_dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype: expected 'float32' or 'float64', got {dtype!r}") from None
        if out_dtype.name not in ("float32", "float64"):
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {out_dtype.name}")
        warn_cast = False
    if padding not in _PADDINGS:
        raise ValueError(f"padding: expected one of {list(_PADDINGS)}, got {padding!r}")
    if not isinstance(input_name, str) or not input_name:
        raise TypeError(f"input_name: expected a non-empty str, got {input_name!r}")
    lengths_dtype = None
    if with_lengths is True or with_lengths == "int64":
        lengths_dtype = np.dtype(np.int64)
    elif with_lengths == "int32":
        lengths_dtype = np.dtype(np.int32)
    elif with_lengths not in (False, None):
        raise ValueError(f"with_lengths: expected False, True, 'int64' or 'int32', got "
                         f"{with_lengths!r}")

    if isinstance(layer_or_model, Sequential):
        model, layers = layer_or_model, layer_or_model.layers
        if not layers:
            raise ValueError(f"{model.name}: the model has no layers")
        for opt, given in (("with_lengths", lengths_dtype is not None),
                           ("with_initial_state", with_initial_state)):
            if given:
                raise ValueError(f"{opt}: applies to a single recurrent layer, not to a "
                                 f"Sequential model ({model.name!r}); masks in a model come from "
                                 "Embedding(mask_zero=True) or Masking")
        name = model.name
        built_shape = getattr(model, "_input_shape", None)
        standalone = False
    elif isinstance(layer_or_model, Layer):
        model, layers = None, [layer_or_model]
        name = layer_or_model.name
        built_shape = layer_or_model.input_shape
        standalone = True
        if not _is_recurrent(layer_or_model):
            for opt, given in (("with_lengths", lengths_dtype is not None),
                               ("with_initial_state", with_initial_state)):
                if given:
                    raise ValueError(f"{opt}: applies to a recurrent layer (SimpleRNN, GRU, "
                                     f"LSTM, Bidirectional, StackedRNN), got "
                                     f"{type(layer_or_model).__name__} {name!r}")
    else:
        raise TypeError(f"layer_or_model: expected a gatedrnn layer or Sequential model, got "
                        f"{type(layer_or_model).__qualname__}")
    for layer in layers:
        _exporter(layer)  # unsupported types fail before anything is built
        if not standalone and isinstance(layer, StackedRNN) and not layer.batch_first:
            raise ValueError(f"{layer.name}: a StackedRNN inside a Sequential needs "
                             "batch_first=True (the model's data is batch-major), got "
                             "batch_first=False")
        if not standalone:
            outs = _default_output_names(layer)
            if len(outs) > 1:
                what = "merge_mode=None" if getattr(layer, "merge_mode", "") is None \
                    else "return_state=True"
                raise ValueError(f"{layer.name}: {what} gives {len(outs)} outputs, which a "
                                 "Sequential model cannot pass on; export the layer on its own")

    # --- input shape ------------------------------------------------------------------------
    first = layers[0]
    time_major_input = standalone and (getattr(first, "time_major", False))
    if input_shape is not None:
        if not isinstance(input_shape, (tuple, list)) or not all(
                d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                              and d >= 0) for d in input_shape):
            raise TypeError(f"input_shape: expected a tuple of ints or None, without the batch "
                            f"axis, got {input_shape!r}")
        rest = tuple(None if d is None else int(d) for d in input_shape)
        shape = (rest[0], None) + rest[1:] if time_major_input and rest else (None,) + rest
        if model is not None and not model.built:
            model.build(shape)
        elif model is None and not first.built:
            first.build(shape)
        elif built_shape is not None:
            built = tuple(built_shape)
            feature_axes = range(2 if len(shape) >= 3 else 1, len(shape))
            if isinstance(first, Embedding):
                feature_axes = range(len(shape), len(shape))  # tokens: no feature axis
            if len(built) != len(shape) or any(
                    built[k] is not None and shape[k] is not None and built[k] != shape[k]
                    for k in feature_axes):
                raise ValueError(f"input_shape: {name!r} was built for inputs of shape "
                                 f"{built}, got input_shape {tuple(input_shape)} (without the "
                                 "batch axis)")
        fixed_time = True
    else:
        if built_shape is None or not all(l.built for l in layers):
            raise ValueError(f"{name}: not built (no weights and no known input shape); call it "
                             "on data, or give input_shape (without the batch axis)")
        shape = tuple(built_shape)
        fixed_time = False
    if isinstance(first, StackedRNN) and not first.batch_first:
        time_major_input = True
    if any(d is not None and not isinstance(d, (int, np.integer)) for d in shape):
        raise ValueError(f"{name}: input shape {shape} is not a shape")
    dims = _symbolic_shape(first, shape, fixed_time, time_major_input)

    # --- names ------------------------------------------------------------------------------
    names = _default_output_names(first) if standalone else ["y"]
    if output_names is not None:
        _check_names(output_names, "output_names")
        if len(output_names) != len(names):
            raise ValueError(f"output_names: {name!r} has {len(names)} output(s) {names}, got "
                             f"{len(output_names)} name(s) {list(output_names)}")
        names = list(output_names)
    input_names = [input_name]
    if standalone and lengths_dtype is not None:
        input_names.append("lengths")
    if standalone and with_initial_state:
        input_names += [n for n, _ in _initial_state_inputs(first)]
    clash = [n for n in names if n in input_names]
    if clash or len(set(input_names)) != len(input_names):
        raise ValueError(f"output_names / input_name: {clash or [input_name]} would name both an "
                         f"input and an output (inputs: {input_names}, outputs: {names})")

    # --- build ------------------------------------------------------------------------------
    b = _Builder(onnx, int(opset), out_dtype)
    for n in names:
        b.reserve(n)  # no generated value may take an output's name
    ctx = _Context(b, padding)
    in_dtype = np.int64 if isinstance(first, Embedding) else out_dtype
    x = b.add_input(input_name, in_dtype, dims)
    mask, init = None, None
    if standalone and lengths_dtype is not None:
        # the first lengths[b] steps are valid: the mask arange(T) < lengths[:, None]
        lengths = b.add_input("lengths", lengths_dtype, ["batch"])
        with b.scope("lengths"):
            T = b.dim(x, 0 if time_major_input else 1)
            lengths64 = lengths if lengths_dtype == np.int64 else b.cast(lengths, np.int64)
            r = b.op("Range", [b.scalar(0, np.int64), b.squeeze(T, [0]), b.scalar(1, np.int64)],
                     base="steps")
            valid = b.op("Less", [b.unsqueeze(r, [0]), b.unsqueeze(lengths64, [1])],
                         base="mask")
            mask = _Mask(b, valid, "right", "lengths", lengths64)
    if standalone and with_initial_state:
        init = [b.add_input(n, out_dtype, s) for n, s in _initial_state_inputs(first)]

    value, outputs = x, None
    for layer in layers:
        outputs, mask = _export_layer(ctx, layer, value, mask, init)
        value = outputs[0]
    if len(outputs) != len(names):  # pragma: no cover - an exporter bug
        raise AssertionError(f"{name}: {len(outputs)} outputs for names {names}")

    # output shapes, with the input's symbolic dims
    shape = tuple(dims)
    for layer in layers:
        shape = _output_shape(layer, shape)
    out_shapes = [tuple(s) for s in (shape if isinstance(shape, list) else [shape])]

    if ctx.cast_layers and warn_cast:
        warnings.warn(f"to_onnx: float64 weights of {ctx.cast_layers} exported as float32 (ONNX "
                      "Runtime runs recurrent nodes in float32 only); pass dtype='float64' to "
                      "keep float64", UserWarning, stacklevel=2)
    doc = (f"Exported by gatedrnn {_version()} from {type(layer_or_model).__name__} {name!r}. "
           f"Masked inputs: padding={padding!r}.")
    proto = b.finish(list(zip(outputs, names, out_shapes)), name, doc)
    if path is not None:
        data = proto.SerializeToString()
        saving._atomic_write(os.fspath(path), lambda f: f.write(data))
    return proto
