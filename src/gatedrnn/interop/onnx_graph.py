"""A small NumPy interpreter for the ONNX graphs that exporters wrap around recurrent nodes.

:func:`gatedrnn.interop.onnx.from_onnx` uses it to run a whole ``.onnx`` file: the recurrent
nodes (RNN, GRU, LSTM) run on gatedrnn's core, everything else ("glue": transposes, reshapes,
slices of the initial states, shape arithmetic) is evaluated here in NumPy on every call. The
interpreter knows nothing about recurrent nodes; the caller passes the table of operators it
may run (:data:`GLUE_OPS` plus its own).

What is checked when a model is loaded (:class:`Graph`), so that an unusable model fails at once
and never half-way through a call:

- every node's op type is in the table, in the default ONNX domain, and carries no subgraph
  attribute (If, Loop, Scan: subgraphs are not supported);
- every node's inputs are defined by an earlier node, a graph input or an initializer (ONNX
  requires topological order), and no value is defined twice;
- every operator's own load-time check (attributes it does not support, Cast targets, ...);
- ``Constant`` nodes are evaluated once, at load.

Supported op types (default domain), besides the recurrent ones the caller adds:

- shapes and indexing: Identity, Transpose, Reshape, Flatten, Squeeze, Unsqueeze, Concat, Split,
  Slice, Gather, GatherND, Expand, Tile, Shape, Range, Constant, ConstantOfShape, Cast;
- arithmetic: Add, Sub, Mul, Div, Pow, Neg, Abs, Min, Max, MatMul;
- logic and comparisons: Equal, Less, LessOrEqual, Greater, GreaterOrEqual, Not, And, Or, Xor,
  Where;
- reductions: ReduceSum, ReduceMax, ReduceMin, ReduceMean, ArgMax, ArgMin;
- activations and maths: Relu, Sigmoid, Tanh, Elu, Softplus, Softmax, LogSoftmax, Exp, Log,
  Sqrt.

That covers everything :func:`gatedrnn.interop.onnx_export.to_onnx` writes, masks included.

Semantics follow the ONNX operator specification for the model's opset of the default domain
(``ai.onnx``), checked from opset 11 on: Squeeze/Unsqueeze/Split take their axes/sizes as an
attribute before opset 13 and as an input from 13 on, Slice takes attributes before opset 10,
Reshape's ``allowzero`` exists from opset 14, Shape's ``start``/``end`` from 15, Split's
``num_outputs`` from 18. ReduceSum takes its axes as an input from opset 13 and ReduceMax/Min/
Mean from 18 (an attribute before; ``noop_with_empty_axes`` comes with the input); a repeated
axis is reduced once. Softmax/LogSoftmax normalise one ``axis`` (default -1) from opset 13 and,
before, the input coerced to 2-D ``[prod(shape[:axis]), prod(shape[axis:])]`` (default axis 1).
ArgMax/ArgMin's ``select_last_index`` exists from 12, GatherND's ``batch_dims`` from 12,
LessOrEqual/GreaterOrEqual from 12; Min/Max take float inputs only before opset 12, integers
too from 12; Pow takes one float type before 12 and an int32/int64/float base with any numeric
exponent from 12. For these ops an attribute the model's version of the operator does not
define is an error at load, and so is an op that does not exist yet at the model's opset; an
element type the version does not allow is a TypeError at run time. Range produces
``start + i * delta`` (the specification's formula).

Where the specification is silent this follows ONNX Runtime: integer Div truncates toward zero
and an integer division by zero is a ValueError; an integer ReduceMean truncates toward zero
and the mean of an empty set is 0; the maximum of an empty set is -inf (the dtype's minimum for
integers, False for bool) and the minimum +inf (maximum, True), as the specification says from
opset 18; integer Pow and Pow with an exponent of another type compute in float64 and convert
(truncating); Min and Max propagate NaN; ArgMax/ArgMin skip a NaN unless it is the first
element (then the result is 0), like ONNX Runtime's sequential scan.

The ``onnx`` package is only needed to read the model (``onnx.numpy_helper`` for tensors); it is
imported lazily, on first use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import numpy as np

__all__ = ["Graph", "Node", "OpDef", "ValueInfo", "GLUE_OPS", "require_onnx"]

#: The default ONNX operator domain, under both of its spellings.
DEFAULT_DOMAINS = ("", "ai.onnx")


def require_onnx():
    """Import and return the ``onnx`` package, or raise an ImportError that says how to get it."""
    try:
        import onnx
        import onnx.numpy_helper  # noqa: F401  (a submodule; make sure it is loaded)
    except ImportError as exc:
        raise ImportError(
            "reading ONNX models needs the optional dependency 'onnx', which cannot be imported "
            f"({exc}); install it with: pip install onnx") from exc
    return onnx


# --------------------------------------------------------------------------------------------
# Nodes, operator definitions, value descriptions
# --------------------------------------------------------------------------------------------


@dataclass
class Node:
    """One node of a loaded graph, with its attributes already converted to Python values.

    ``inputs``/``outputs`` are value names, ``""`` for an omitted optional one. ``opset`` is the
    model's version of the default domain. ``state`` is whatever the operator's load-time check
    returned (e.g. pre-packed weights), ``None`` by default.
    """

    op_type: str
    name: str
    index: int
    inputs: tuple
    outputs: tuple
    attrs: dict
    opset: int
    state: Any = None

    @property
    def label(self) -> str:
        """How error messages name the node: op type and name (or position when unnamed)."""
        if self.name:
            return f"{self.op_type} node {self.name!r}"
        return f"{self.op_type} node #{self.index} (unnamed, outputs {list(self.outputs)})"

    def attr(self, name, default=None):
        return self.attrs.get(name, default)


class OpDef(NamedTuple):
    """How to run one op type.

    ``run(node, inputs)`` takes the input arrays (``None`` for an omitted optional input; the list
    is as long as ``node.inputs``) and returns a sequence of output arrays, one per entry of
    ``node.outputs`` (values for omitted outputs may be anything, they are dropped).
    ``check(node, constants)``, optional, runs once at load time with the values known then
    (initializers and Constant outputs, by name); it raises for anything unsupported and its
    return value becomes ``node.state``.
    """

    run: Callable[[Node, list], Sequence[np.ndarray]]
    check: Optional[Callable[[Node, Mapping[str, np.ndarray]], Any]] = None


class ValueInfo(NamedTuple):
    """A graph input or output: name, NumPy dtype (None if the model does not say) and shape
    (a tuple of ints for fixed dimensions, strings for named symbolic ones, None for unknown
    ones; the whole shape is None when the model gives no rank)."""

    name: str
    dtype: Optional[np.dtype]
    shape: Optional[tuple]


def _fail(node: Node, message: str, cls=ValueError):
    raise cls(f"{node.label}: {message}")


def _np_dtype_of(onnx, elem_type: int):
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:  # noqa: BLE001 - unknown / undefined element type
        return None


def _value_info(onnx, vi) -> ValueInfo:
    kind = vi.type.WhichOneof("value")
    if kind is None:  # untyped (allowed for outputs): whatever the graph computes
        return ValueInfo(vi.name, None, None)
    if kind != "tensor_type":
        raise NotImplementedError(
            f"graph value {vi.name!r}: only tensor inputs and outputs are supported, got a "
            f"{kind} value")
    tt = vi.type.tensor_type
    dtype = _np_dtype_of(onnx, tt.elem_type) if tt.elem_type else None
    shape = None
    if tt.HasField("shape"):
        dims = []
        for d in tt.shape.dim:
            which = d.WhichOneof("value")
            dims.append(d.dim_value if which == "dim_value" else
                        (d.dim_param or None) if which == "dim_param" else None)
        shape = tuple(dims)
    return ValueInfo(vi.name, dtype, shape)


def _attribute_value(onnx, node_label: str, attr):
    """A node attribute as a Python value: int, float, str, list, or np.ndarray (tensors)."""
    A = onnx.AttributeProto
    numpy_helper = onnx.numpy_helper
    t = attr.type
    if t == A.FLOAT:
        return float(attr.f)
    if t == A.INT:
        return int(attr.i)
    if t == A.STRING:
        return attr.s.decode("utf-8", errors="replace")
    if t == A.TENSOR:
        return numpy_helper.to_array(attr.t)
    if t == A.FLOATS:
        return [float(v) for v in attr.floats]
    if t == A.INTS:
        return [int(v) for v in attr.ints]
    if t == A.STRINGS:
        return [s.decode("utf-8", errors="replace") for s in attr.strings]
    if t == A.TENSORS:
        return [numpy_helper.to_array(v) for v in attr.tensors]
    if t in (A.GRAPH, A.GRAPHS):
        raise NotImplementedError(
            f"{node_label}: attribute {attr.name!r} is a subgraph; graphs with subgraphs "
            "(If, Loop, Scan, ...) are not supported")
    raise NotImplementedError(
        f"{node_label}: attribute {attr.name!r} has type "
        f"{A.AttributeType.Name(t) if t in A.AttributeType.values() else t}, which is not "
        "supported")


# --------------------------------------------------------------------------------------------
# Helpers shared by the kernels
# --------------------------------------------------------------------------------------------


def _int_list(node: Node, value, what: str, *, scalar_ok=False) -> list:
    """A 1-D integer tensor (shape, axes, starts, ...) as a list of Python ints."""
    a = np.asarray(value)
    if a.dtype.kind not in "iu":
        _fail(node, f"{what}: expected an integer tensor, got dtype {a.dtype}", TypeError)
    if a.ndim == 0 and scalar_ok:
        return [int(a)]
    if a.ndim != 1:
        _fail(node, f"{what}: expected a 1-D tensor, got shape {a.shape}")
    return [int(v) for v in a]


def _optional_input(node: Node, inputs, k: int, what: str) -> Optional[list]:
    """Optional integer-list input ``k`` (axes, steps, split sizes), None when omitted."""
    if len(inputs) > k and inputs[k] is not None:
        return _int_list(node, inputs[k], what)
    return None


def _scalar(node: Node, value, what: str):
    a = np.asarray(value)
    if a.size != 1 or a.ndim > 1:
        _fail(node, f"{what}: expected a scalar, got shape {a.shape}")
    return a.reshape(())


def _axis(node: Node, axis: int, rank: int, what="axis") -> int:
    if not -rank <= axis < rank:
        _fail(node, f"{what} {axis} is out of range for a tensor of rank {rank} "
                    f"(expected {-rank} <= {what} < {rank})")
    return axis + rank if axis < 0 else axis


def _axes(node: Node, axes, rank: int, what="axes") -> list:
    out = [_axis(node, a, rank, what) for a in axes]
    if len(set(out)) != len(out):
        _fail(node, f"{what} {list(axes)} repeat an axis")
    return out


def _same_dtype(node: Node, arrays, names):
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) > 1:
        got = ", ".join(f"{n} {a.dtype}" for n, a in zip(names, arrays))
        _fail(node, f"inputs must have one dtype, got {got}", TypeError)


def _required(node: Node, inputs, count):
    for i in range(count):
        if i >= len(inputs) or inputs[i] is None:
            _fail(node, f"input {i} is required but missing "
                        f"(the node has inputs {list(node.inputs)})")


# --------------------------------------------------------------------------------------------
# Glue kernels: run(node, inputs) -> outputs
# --------------------------------------------------------------------------------------------


def _identity(node, inputs):
    _required(node, inputs, 1)
    return [inputs[0]]


def _transpose(node, inputs):
    _required(node, inputs, 1)
    x = inputs[0]
    perm = node.attr("perm")
    if perm is None:
        perm = list(range(x.ndim))[::-1]
    if sorted(perm) != list(range(x.ndim)):
        _fail(node, f"perm {perm} is not a permutation of the {x.ndim} axes of the input "
                    f"(shape {x.shape})")
    return [np.transpose(x, perm)]


def _reshape(node, inputs):
    _required(node, inputs, 2)
    x = inputs[0]
    shape = _int_list(node, inputs[1], "shape")
    allowzero = bool(node.attr("allowzero", 0)) if node.opset >= 14 else False
    if allowzero and 0 in shape and -1 in shape:
        _fail(node, f"shape {shape}: with allowzero=1 a 0 and a -1 cannot both appear")
    if shape.count(-1) > 1:
        _fail(node, f"shape {shape}: at most one dimension may be -1")
    out = []
    for i, d in enumerate(shape):
        if d < -1:
            _fail(node, f"shape {shape}: dimension {i} is {d}, expected >= -1")
        if d == 0 and not allowzero:
            if i >= x.ndim:
                _fail(node, f"shape {shape}: dimension {i} is 0 (copy the input's), but the "
                            f"input has only {x.ndim} dimensions (shape {x.shape})")
            d = x.shape[i]
        out.append(d)
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        if known == 0 or x.size % known:
            _fail(node, f"shape {shape}: cannot infer the -1 dimension for an input of shape "
                        f"{x.shape} ({x.size} elements)")
        out[out.index(-1)] = x.size // known
    if math.prod(out) != x.size:
        _fail(node, f"cannot reshape an input of shape {x.shape} ({x.size} elements) to "
                    f"{tuple(out)} (from shape {shape})")
    return [x.reshape(out)]


def _concat(node, inputs):
    if not inputs or any(a is None for a in inputs):
        _fail(node, f"every input must be given, got {list(node.inputs)}")
    axis = node.attr("axis")
    if axis is None:
        _fail(node, "the 'axis' attribute is required")
    rank = inputs[0].ndim
    if rank == 0 or any(a.ndim != rank for a in inputs):
        _fail(node, f"inputs must have one rank >= 1, got shapes {[a.shape for a in inputs]}")
    _same_dtype(node, inputs, node.inputs)
    axis = _axis(node, axis, rank)
    def outside(shape):
        return shape[:axis] + shape[axis + 1:]
    for a in inputs[1:]:
        if outside(a.shape) != outside(inputs[0].shape):
            _fail(node, f"input shapes {[x.shape for x in inputs]} differ outside axis {axis}")
    return [np.concatenate(inputs, axis=axis)]


def _gather(node, inputs):
    _required(node, inputs, 2)
    data, indices = inputs
    if indices.dtype.kind not in "iu":
        _fail(node, f"indices: expected an integer tensor, got dtype {indices.dtype}", TypeError)
    if data.ndim == 0:
        _fail(node, "data must have rank >= 1, got a scalar")
    axis = _axis(node, node.attr("axis", 0), data.ndim)
    n = data.shape[axis]
    if indices.size and (indices.min() < -n or indices.max() >= n):
        _fail(node, f"indices must be in [{-n}, {n - 1}] (axis {axis} of data shape "
                    f"{data.shape}), got values in [{indices.min()}, {indices.max()}]")
    return [np.take(data, indices.astype(np.int64), axis=axis)]


def _shape(node, inputs):
    _required(node, inputs, 1)
    dims = inputs[0].shape
    rank = len(dims)
    start, end = 0, rank
    if node.opset >= 15:
        start = node.attr("start", 0)
        end = node.attr("end", rank)

        def clamp(v):
            v = v + rank if v < 0 else v
            return min(max(v, 0), rank)
        start, end = clamp(start), clamp(end)
    return [np.array(dims[start:end], dtype=np.int64)]


def _expand(node, inputs):
    _required(node, inputs, 2)
    x = inputs[0]
    shape = _int_list(node, inputs[1], "shape")
    try:
        out = np.broadcast_shapes(x.shape, tuple(shape))
    except ValueError:
        _fail(node, f"cannot broadcast an input of shape {x.shape} with shape {tuple(shape)}")
    return [np.broadcast_to(x, out)]


def _axes_from(node, inputs, *, since: int, required: bool):
    """Axes of Squeeze/Unsqueeze: the attribute before opset ``since``, input 1 from then on."""
    if node.opset >= since:
        if len(inputs) > 1 and inputs[1] is not None:
            return _int_list(node, inputs[1], "axes")
        if node.attr("axes") is not None:
            _fail(node, f"from opset {since} on, axes are an input, not an attribute")
    else:
        axes = node.attr("axes")
        if axes is not None:
            return list(axes)
    if required:
        _fail(node, "axes are required")
    return None


def _unsqueeze(node, inputs):
    _required(node, inputs, 1)
    x = inputs[0]
    axes = _axes_from(node, inputs, since=13, required=True)
    rank = x.ndim + len(axes)
    axes = _axes(node, axes, rank)
    return [np.expand_dims(x, tuple(axes))]


def _squeeze(node, inputs):
    _required(node, inputs, 1)
    x = inputs[0]
    axes = _axes_from(node, inputs, since=13, required=False)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    else:
        axes = _axes(node, axes, x.ndim)
        bad = [a for a in axes if x.shape[a] != 1]
        if bad:
            _fail(node, f"cannot squeeze axes {bad} of an input of shape {x.shape}: "
                        "their size is not 1")
    return [np.squeeze(x, axis=tuple(axes))]


def _slice(node, inputs):
    _required(node, inputs, 1)
    x = inputs[0]
    if node.opset < 10:
        starts, ends = node.attr("starts"), node.attr("ends")
        if starts is None or ends is None:
            _fail(node, "the 'starts' and 'ends' attributes are required before opset 10")
        axes, steps = node.attr("axes"), None
    else:
        _required(node, inputs, 3)
        starts = _int_list(node, inputs[1], "starts")
        ends = _int_list(node, inputs[2], "ends")
        axes = _optional_input(node, inputs, 3, "axes")
        steps = _optional_input(node, inputs, 4, "steps")
    n = len(starts)
    if axes is None:
        axes = list(range(n))
    if steps is None:
        steps = [1] * n
    if not len(ends) == len(axes) == len(steps) == n:
        _fail(node, f"starts, ends, axes and steps must have one length, got {len(starts)}, "
                    f"{len(ends)}, {len(axes)}, {len(steps)}")
    axes = _axes(node, axes, x.ndim)
    index = [slice(None)] * x.ndim
    for axis, start, end, step in zip(axes, starts, ends, steps):
        dim = x.shape[axis]
        if step == 0:
            _fail(node, f"steps: a step of 0 (axis {axis})")
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start = min(max(start, 0), dim)
            end = min(max(end, 0), dim)
            index[axis] = slice(start, end, step)
        else:
            # the specification clamps start to [0, dim-1] and end to [-1, dim-1], where an end
            # of -1 means "through index 0" (Python would read -1 as the last element)
            if dim == 0:
                index[axis] = slice(0, 0)
                continue
            start = min(max(start, 0), dim - 1)
            end = min(max(end, -1), dim - 1)
            index[axis] = slice(start, None if end == -1 else end, step)
    return [x[tuple(index)]]


def _constant_value(node: Node) -> np.ndarray:
    """The value of a Constant node (evaluated once, at load)."""
    supported = {"value", "value_float", "value_floats", "value_int", "value_ints"}
    given = sorted(node.attrs)
    if len(given) != 1:
        _fail(node, f"expected exactly one value attribute, got {given}")
    (key,) = given
    if key not in supported:
        _fail(node, f"attribute {key!r} is not supported (supported: {sorted(supported)})",
              NotImplementedError)
    v = node.attrs[key]
    if key == "value":
        if v.dtype.kind in "OSU":
            _fail(node, "string tensors are not supported", NotImplementedError)
        return v
    if key in ("value_float", "value_floats"):
        return np.array(v, dtype=np.float32)
    return np.array(v, dtype=np.int64)


def _constant(node, inputs):
    return [_constant_value(node)]


def _check_constant(node, constants):
    _constant_value(node)


def _constant_of_shape(node, inputs):
    _required(node, inputs, 1)
    shape = _int_list(node, inputs[0], "shape")
    if any(d < 0 for d in shape):
        _fail(node, f"shape {shape} has a negative dimension")
    value = node.attr("value")
    if value is None:
        value = np.zeros(1, np.float32)
    return [np.full(shape, value.reshape(()), dtype=value.dtype)]


def _check_constant_of_shape(node, constants):
    value = node.attr("value")
    if value is not None and (not isinstance(value, np.ndarray) or value.size != 1):
        _fail(node, f"the 'value' attribute must be a one-element tensor, got "
                    f"{getattr(value, 'shape', type(value).__name__)}")


#: What Cast converts between: bool, signed and unsigned integers, float16/32/64.
_CAST_DTYPES = frozenset(np.dtype(t) for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64))


def _cast_target(node: Node) -> np.dtype:
    onnx = require_onnx()
    to = node.attr("to")
    if to is None:
        _fail(node, "the 'to' attribute is required")
    dtype = _np_dtype_of(onnx, to)
    if dtype not in _CAST_DTYPES:
        values = onnx.TensorProto.DataType.values()
        name = onnx.TensorProto.DataType.Name(to) if to in values else f"type code {to}"
        _fail(node, f"casting to {name} is not supported (supported: BOOL, INT8-64, UINT8-64, "
                    "FLOAT16, FLOAT, DOUBLE)", NotImplementedError)
    return dtype


def _cast(node, inputs):
    _required(node, inputs, 1)
    x = inputs[0]
    if x.dtype not in _CAST_DTYPES:
        _fail(node, f"casting from {x.dtype} is not supported", NotImplementedError)
    with np.errstate(invalid="ignore", over="ignore"):
        return [x.astype(node.state)]


def _check_cast(node, constants):
    return _cast_target(node)


def _numeric_binary(ufunc):
    def run(node, inputs):
        _required(node, inputs, 2)
        a, b = inputs
        _same_dtype(node, (a, b), node.inputs)
        if a.dtype.kind not in "iuf":
            _fail(node, f"expected numeric inputs, got {a.dtype}", TypeError)
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            _fail(node, f"input shapes {a.shape} and {b.shape} do not broadcast")
        with np.errstate(all="ignore"):
            return [ufunc(a, b)]
    return run


def _div(node, inputs):
    _required(node, inputs, 2)
    a, b = inputs
    _same_dtype(node, (a, b), node.inputs)
    if a.dtype.kind == "f":
        return _numeric_binary(np.divide)(node, inputs)
    if a.dtype.kind not in "iu":
        _fail(node, f"expected numeric inputs, got {a.dtype}", TypeError)
    if np.any(b == 0):
        _fail(node, "integer division by zero")
    # ONNX Runtime (C++ semantics) truncates toward zero; NumPy's // floors
    q = np.floor_divide(a, b)
    if a.dtype.kind == "i":
        q = q + ((np.remainder(a, b) != 0) & ((a < 0) != (b < 0))).astype(a.dtype)
    return [q]


def _equal(node, inputs):
    _required(node, inputs, 2)
    a, b = inputs
    _same_dtype(node, (a, b), node.inputs)
    return [np.equal(a, b)]


def _where(node, inputs):
    _required(node, inputs, 3)
    cond, x, y = inputs
    if cond.dtype != np.bool_:
        _fail(node, f"condition: expected a bool tensor, got dtype {cond.dtype}", TypeError)
    _same_dtype(node, (x, y), node.inputs[1:])
    return [np.where(cond, x, y)]


def _split(node, inputs):
    _required(node, inputs, 1)
    x = inputs[0]
    if x.ndim == 0:
        _fail(node, "the input must have rank >= 1, got a scalar")
    axis = _axis(node, node.attr("axis", 0), x.ndim)
    dim = x.shape[axis]
    n = len(node.outputs)
    if node.opset >= 13:
        sizes = _optional_input(node, inputs, 1, "split")
    else:
        sizes = node.attr("split")
    num_outputs = node.attr("num_outputs") if node.opset >= 18 else None
    if sizes is not None and num_outputs is not None:
        _fail(node, "give either the 'split' input or the 'num_outputs' attribute, not both")
    if sizes is None:
        if num_outputs is not None:
            if num_outputs != n:
                _fail(node, f"num_outputs is {num_outputs} but the node has {n} outputs")
            chunk = -(-dim // n) if n else 0
            sizes = [chunk] * (n - 1) + [dim - chunk * (n - 1)]
            if sizes and sizes[-1] < 0:
                _fail(node, f"cannot split axis {axis} of size {dim} into {n} chunks of "
                            f"{chunk}")
        else:
            if n == 0 or dim % n:
                _fail(node, f"cannot split axis {axis} of size {dim} evenly into {n} outputs")
            sizes = [dim // n] * n
    if len(sizes) != n or any(s < 0 for s in sizes) or sum(sizes) != dim:
        _fail(node, f"split sizes {list(sizes)} must be {n} non-negative numbers summing to "
                    f"{dim} (axis {axis} of input shape {x.shape})")
    bounds = np.cumsum(sizes)[:-1]
    return np.split(x, bounds, axis=axis)


def _range(node, inputs):
    _required(node, inputs, 3)
    start, limit, delta = (_scalar(node, v, w) for v, w in zip(inputs, ("start", "limit", "delta")))
    _same_dtype(node, (start, limit, delta), node.inputs)
    dtype = start.dtype
    if dtype.kind not in "iuf":
        _fail(node, f"expected numeric inputs, got {dtype}", TypeError)
    if delta == 0:
        _fail(node, "delta must not be 0")
    if dtype.kind in "iu":
        s, lim, d = int(start), int(limit), int(delta)
        count = max(-((s - lim) // d), 0)  # ceil((lim - s) / d) in exact integer arithmetic
    else:
        with np.errstate(all="ignore"):
            diff = np.asarray(limit - start)
        count = max(math.ceil(float(diff) / float(delta)), 0)
    with np.errstate(all="ignore"):
        return [(start + np.arange(count, dtype=dtype) * delta).astype(dtype)]


def _matmul(node, inputs):
    _required(node, inputs, 2)
    a, b = inputs
    _same_dtype(node, (a, b), node.inputs)
    if a.ndim == 0 or b.ndim == 0:
        _fail(node, f"inputs must have rank >= 1, got shapes {a.shape} and {b.shape}")
    try:
        return [np.matmul(a, b)]
    except ValueError:
        _fail(node, f"input shapes {a.shape} and {b.shape} do not match for a matrix product")


def _float_unary(fn):
    def run(node, inputs):
        _required(node, inputs, 1)
        x = inputs[0]
        if x.dtype.kind != "f":
            _fail(node, f"expected a floating-point input, got dtype {x.dtype}", TypeError)
        with np.errstate(all="ignore"):
            return [fn(x)]
    return run


def _sigmoid(x):
    # exp of a non-positive number only: no overflow for large |x|
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _relu(node, inputs):
    _required(node, inputs, 1)
    x = inputs[0]
    if x.dtype.kind not in "if":
        _fail(node, f"expected a signed numeric input, got dtype {x.dtype}", TypeError)
    return [np.maximum(x, x.dtype.type(0))]


# --------------------------------------------------------------------------------------------
# Logic, comparisons, element-wise maths, reductions, GatherND, Softmax (the ops of masked
# exports and of the activations after a recurrent stack)
# --------------------------------------------------------------------------------------------

_FLOAT_TYPES = ("float16", "float32", "float64")
_SIGNED_TYPES = ("int8", "int16", "int32", "int64")
_UNSIGNED_TYPES = ("uint8", "uint16", "uint32", "uint64")
_NUMERIC_TYPES = _UNSIGNED_TYPES + _SIGNED_TYPES + _FLOAT_TYPES
#: The element types of ReduceSum/ReduceMean (and of ReduceMax/ReduceMin before opset 12).
_REDUCE_TYPES = ("uint32", "uint64", "int32", "int64") + _FLOAT_TYPES


def _check_schema(node: Node, constants):
    """Load-time check against the operator's version at the model's opset (the ``onnx``
    package's schema): the op must exist at that opset, carry only the attributes that version
    defines (``axes`` of ReduceSum is an input from opset 13, ``select_last_index`` exists from
    12, ...) and have as many inputs as it allows."""
    onnx = require_onnx()
    try:
        schema = onnx.defs.get_schema(node.op_type, node.opset, "")
    except Exception:  # noqa: BLE001 - onnx raises SchemaError: no version at this opset
        _fail(node, f"op type {node.op_type!r} does not exist at opset {node.opset} of the "
                    "default domain")
    unknown = sorted(set(node.attrs) - set(schema.attributes))
    if unknown:
        _fail(node, f"attribute(s) {unknown} are not defined for {node.op_type} at opset "
                    f"{node.opset} (version {schema.since_version} of the operator has "
                    f"{sorted(schema.attributes) or 'no attributes'})")
    n_in = len(node.inputs)
    if n_in < schema.min_input or n_in > schema.max_input:
        _fail(node, f"has {n_in} inputs, expected {schema.min_input} to {schema.max_input} at "
                    f"opset {node.opset}")
    for name in ("axis", "keepdims", "select_last_index", "batch_dims",
                 "noop_with_empty_axes"):
        value = node.attr(name)
        if value is not None and not isinstance(value, int):
            _fail(node, f"attribute {name!r} must be an int, got {value!r}")


def _dtype_in(node: Node, a: np.ndarray, allowed, what="input"):
    if a.dtype.name not in allowed:
        _fail(node, f"{what}: dtype {a.dtype} is not allowed for {node.op_type} at opset "
                    f"{node.opset} (expected one of {', '.join(allowed)})", TypeError)


def _broadcast_shape(node: Node, arrays) -> tuple:
    try:
        return np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        _fail(node, f"input shapes {[a.shape for a in arrays]} do not broadcast")


def _not(node, inputs):
    _required(node, inputs, 1)
    _dtype_in(node, inputs[0], ("bool",))
    return [np.logical_not(inputs[0])]


def _logical_binary(ufunc):
    def run(node, inputs):
        _required(node, inputs, 2)
        for a, name in zip(inputs, node.inputs):
            _dtype_in(node, a, ("bool",), f"input {name!r}")
        _broadcast_shape(node, inputs[:2])
        return [ufunc(inputs[0], inputs[1])]
    return run


def _comparison(ufunc):
    def run(node, inputs):
        _required(node, inputs, 2)
        a, b = inputs
        _same_dtype(node, (a, b), node.inputs)
        _dtype_in(node, a, _NUMERIC_TYPES)
        _broadcast_shape(node, (a, b))
        return [ufunc(a, b)]
    return run


def _variadic_extreme(ufunc):
    """Min / Max: one or more inputs of one dtype, broadcast together; a NaN wins (as in ONNX
    Runtime)."""
    def run(node, inputs):
        if not inputs or any(a is None for a in inputs):
            _fail(node, f"every input must be given (at least one), got {list(node.inputs)}")
        _same_dtype(node, inputs, node.inputs)
        # float only before opset 12, every numeric type from 12 on
        _dtype_in(node, inputs[0], _NUMERIC_TYPES if node.opset >= 12 else _FLOAT_TYPES)
        shape = _broadcast_shape(node, inputs)
        out = inputs[0]
        for a in inputs[1:]:
            out = ufunc(out, a)
        return [np.broadcast_to(out, shape)]
    return run


def _arg_extreme(largest: bool):
    """ArgMax / ArgMin. Ties: the first index, the last with ``select_last_index=1`` (opset 12
    on). NaN (which the specification leaves open) as ONNX Runtime's sequential scan treats it:
    a NaN at index 0 gives 0, any other NaN is skipped."""
    def run(node, inputs):
        _required(node, inputs, 1)
        x = inputs[0]
        _dtype_in(node, x, _NUMERIC_TYPES, "data")
        if x.ndim == 0:
            _fail(node, "data must have rank >= 1, got a scalar")
        axis = _axis(node, node.attr("axis", 0), x.ndim)
        keepdims = bool(node.attr("keepdims", 1))
        last = bool(node.attr("select_last_index", 0))
        n = x.shape[axis]
        if n == 0:
            _fail(node, f"cannot take the {'ArgMax' if largest else 'ArgMin'} of axis {axis} of "
                        f"size 0 (data shape {x.shape})")
        if x.dtype.kind == "f":
            nan = np.isnan(x)
            filled = np.where(nan, -np.inf if largest else np.inf, x)
            best = filled.max(axis, keepdims=True) if largest else filled.min(axis, keepdims=True)
            hit = x == best
            first = np.arange(n).reshape((n,) + (1,) * (x.ndim - axis - 1)) == 0
            hit = np.where(np.take(nan, [0], axis=axis), first, hit)
        else:
            best = x.max(axis, keepdims=True) if largest else x.min(axis, keepdims=True)
            hit = x == best
        if last:
            index = n - 1 - np.argmax(np.flip(hit, axis), axis=axis)
        else:
            index = np.argmax(hit, axis=axis)
        index = index.astype(np.int64)
        return [np.expand_dims(index, axis) if keepdims else index]
    return run


def _reduction_axes(node: Node, inputs, since: int):
    """The axes of a Reduce* node (attribute before opset ``since``, input from then on), as a
    tuple of non-negative axes; None for "no reduction" (``noop_with_empty_axes=1`` and no
    axes)."""
    x = inputs[0]
    if node.opset >= since:
        axes = _optional_input(node, inputs, 1, "axes")
        noop = bool(node.attr("noop_with_empty_axes", 0))
    else:
        if len(inputs) > 1:  # (the load-time check rejects a second input; defensive)
            _fail(node, f"before opset {since} the axes are an attribute, not an input")
        axes = node.attr("axes")
        noop = False
    if not axes:  # omitted or empty: every axis, unless noop_with_empty_axes
        return None if noop else tuple(range(x.ndim))
    # a repeated axis is reduced once (as ONNX Runtime does)
    return tuple(sorted({_axis(node, a, x.ndim, "axes") for a in axes}))


def _reduction(kind: str, since: int):
    """ReduceSum (axes input from opset 13), ReduceMax/ReduceMin/ReduceMean (from 18).

    The value over an empty set: 0 for ReduceSum, -inf / the dtype's minimum (False for bool)
    for ReduceMax and +inf / the maximum (True) for ReduceMin, as the specification says from
    opset 18 (and ONNX Runtime does at every opset); 0 for ReduceMean, as ONNX Runtime returns
    (the specification leaves it undefined). An integer ReduceMean truncates toward zero and
    integer sums wrap around, as in ONNX Runtime.
    """
    def allowed(opset):
        if kind in ("max", "min"):
            extra = ("uint8", "int8") if opset >= 12 else ()
            return _REDUCE_TYPES + extra + (("bool",) if opset >= 20 else ())
        return _REDUCE_TYPES

    def run(node, inputs):
        _required(node, inputs, 1)
        x = inputs[0]
        _dtype_in(node, x, allowed(node.opset), "data")
        axes = _reduction_axes(node, inputs, since)
        if axes is None:
            return [x]
        keepdims = bool(node.attr("keepdims", 1))
        dt = x.dtype
        with np.errstate(all="ignore"):
            if kind in ("sum", "mean"):
                acc = np.dtype(np.float32) if dt == np.float16 else dt  # float16 sums in float32
                s = np.asarray(np.sum(x, axis=axes, keepdims=keepdims, dtype=acc))
                if kind == "mean":
                    count = math.prod(x.shape[a] for a in axes)
                    if count == 0:
                        s = np.zeros_like(s)
                    elif dt.kind == "f":
                        s = s / acc.type(count)
                    else:  # integer mean: truncate toward zero
                        n = dt.type(count)
                        q = np.floor_divide(s, n)
                        if dt.kind == "i":
                            q = q + ((np.remainder(s, n) != 0) & (s < 0)).astype(dt)
                        s = q
                return [s.astype(dt, copy=False)]
            largest = kind == "max"
            if dt.kind == "f":
                initial = -np.inf if largest else np.inf
            elif dt.kind == "b":
                initial = not largest
            else:
                info = np.iinfo(dt)
                initial = info.min if largest else info.max
            fn = np.max if largest else np.min
            return [np.asarray(fn(x, axis=axes, keepdims=keepdims, initial=initial))
                    .astype(dt, copy=False)]
    return run


def _gather_nd(node, inputs):
    _required(node, inputs, 2)
    data, indices = inputs
    if indices.dtype != np.int64:
        _fail(node, f"indices: expected an int64 tensor, got dtype {indices.dtype}", TypeError)
    b = node.attr("batch_dims", 0)
    r, q = data.ndim, indices.ndim
    if r < 1 or q < 1:
        _fail(node, f"data and indices must have rank >= 1, got shapes {data.shape} and "
                    f"{indices.shape}")
    if not 0 <= b < min(r, q):
        _fail(node, f"batch_dims {b} must be in [0, {min(r, q) - 1}] (less than the ranks of "
                    f"data {data.shape} and indices {indices.shape})")
    if data.shape[:b] != indices.shape[:b]:
        _fail(node, f"the first batch_dims={b} dimensions of data {data.shape} and indices "
                    f"{indices.shape} differ")
    k = indices.shape[-1]
    if k > r - b:
        _fail(node, f"the last dimension of indices {indices.shape} is {k}, more than "
                    f"rank(data) - batch_dims = {r - b} (data shape {data.shape})")
    dims = data.shape[b:b + k]
    n_batch = math.prod(data.shape[:b])
    n_index = math.prod(indices.shape[b:-1])
    idx = indices.reshape(n_batch, n_index, k)
    for j, dim in enumerate(dims):
        col = idx[..., j]
        if col.size and (col.min() < -dim or col.max() >= dim):
            _fail(node, f"indices along dimension {b + j} of data (size {dim}, data shape "
                        f"{data.shape}) must be in [{-dim}, {dim - 1}], got values in "
                        f"[{col.min()}, {col.max()}]")
    flat = data.reshape((n_batch,) + data.shape[b:])
    batch = np.broadcast_to(np.arange(n_batch)[:, None], (n_batch, n_index))
    # (NumPy reads the negative indices, checked above, from the end as ONNX does)
    out = flat[(batch,) + tuple(idx[..., j] for j in range(k))]
    return [out.reshape(indices.shape[:-1] + data.shape[b + k:])]


def _softmax(log: bool):
    """Softmax / LogSoftmax. From opset 13 along ``axis`` (default -1); before, the input is
    coerced to 2-D ``[prod(shape[:axis]), prod(shape[axis:])]`` (default axis 1) and normalised
    over its second dimension."""
    def run(node, inputs):
        _required(node, inputs, 1)
        x = inputs[0]
        _dtype_in(node, x, _FLOAT_TYPES)
        if x.ndim == 0:
            _fail(node, "the input must have rank >= 1, got a scalar")
        if node.opset >= 13:
            axis = _axis(node, node.attr("axis", -1), x.ndim)
            z, over = x, axis
        else:
            axis = _axis(node, node.attr("axis", 1), x.ndim)
            z = x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))
            over = 1
        if z.size == 0:
            return [x.copy()]
        if z.dtype == np.float16:
            z = z.astype(np.float32)
        with np.errstate(all="ignore"):
            shifted = z - z.max(axis=over, keepdims=True)
            e = np.exp(shifted)
            s = e.sum(axis=over, keepdims=True)
            y = shifted - np.log(s) if log else e / s
        return [y.reshape(x.shape).astype(x.dtype, copy=False)]
    return run


def _typed_unary(fn, allowed):
    def run(node, inputs):
        _required(node, inputs, 1)
        x = inputs[0]
        _dtype_in(node, x, allowed)
        with np.errstate(all="ignore"):
            return [np.asarray(fn(node, x)).astype(x.dtype, copy=False)]
    return run


def _ufunc(fn):
    return lambda node, x: fn(x)


def _softplus(node, x):
    return np.logaddexp(x.dtype.type(0), x)  # log(1 + exp(x)) without overflow


def _elu(node, x):
    alpha = x.dtype.type(node.attr("alpha", 1.0))
    return np.where(x < 0, alpha * np.expm1(np.minimum(x, 0)), x)


def _tile(node, inputs):
    _required(node, inputs, 2)
    x = inputs[0]
    if inputs[1].dtype != np.int64:
        _fail(node, f"repeats: expected an int64 tensor, got dtype {inputs[1].dtype}", TypeError)
    repeats = _int_list(node, inputs[1], "repeats")
    if len(repeats) != x.ndim or any(r < 0 for r in repeats):
        _fail(node, f"repeats {repeats} must be {x.ndim} non-negative numbers, one per "
                    f"dimension of the input (shape {x.shape})")
    return [np.tile(x, repeats) if x.ndim else x]


def _pow(node, inputs):
    """Pow: before opset 12 base and exponent share a float type; from 12 the base is int32,
    int64 or float and the exponent any numeric type. The result has the base's type; mixed
    types and integer bases are computed in float64 and converted (truncated) as ONNX Runtime
    does (``static_cast<T>(std::pow(x, y))``)."""
    _required(node, inputs, 2)
    a, b = inputs
    if node.opset < 12:
        _same_dtype(node, (a, b), node.inputs)
        _dtype_in(node, a, _FLOAT_TYPES, "X")
    else:
        _dtype_in(node, a, ("int32", "int64") + _FLOAT_TYPES, "X")
        _dtype_in(node, b, _NUMERIC_TYPES, "Y")
    _broadcast_shape(node, (a, b))
    with np.errstate(all="ignore"):
        if a.dtype == b.dtype and a.dtype.kind == "f":
            return [np.power(a, b)]
        return [np.power(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)]


def _flatten(node, inputs):
    _required(node, inputs, 1)
    x = inputs[0]
    axis = node.attr("axis", 1)
    r = x.ndim
    if not -r <= axis <= r:
        _fail(node, f"axis {axis} is out of range for a tensor of rank {r} (expected {-r} <= "
                    f"axis <= {r})")
    axis = axis + r if axis < 0 else axis
    return [x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))]


#: The glue operators, by op type. The recurrent ones are added by gatedrnn.interop.onnx.
GLUE_OPS: Mapping[str, OpDef] = {
    "Add": OpDef(_numeric_binary(np.add)),
    "Cast": OpDef(_cast, _check_cast),
    "Concat": OpDef(_concat),
    "Constant": OpDef(_constant, _check_constant),
    "ConstantOfShape": OpDef(_constant_of_shape, _check_constant_of_shape),
    "Div": OpDef(_div),
    "Equal": OpDef(_equal),
    "Expand": OpDef(_expand),
    "Gather": OpDef(_gather),
    "Identity": OpDef(_identity),
    "MatMul": OpDef(_matmul),
    "Mul": OpDef(_numeric_binary(np.multiply)),
    "Range": OpDef(_range),
    "Relu": OpDef(_relu),
    "Reshape": OpDef(_reshape),
    "Shape": OpDef(_shape),
    "Sigmoid": OpDef(_float_unary(_sigmoid)),
    "Slice": OpDef(_slice),
    "Split": OpDef(_split),
    "Squeeze": OpDef(_squeeze),
    "Sub": OpDef(_numeric_binary(np.subtract)),
    "Tanh": OpDef(_float_unary(np.tanh)),
    "Transpose": OpDef(_transpose),
    "Unsqueeze": OpDef(_unsqueeze),
    "Where": OpDef(_where),
    # logic and comparisons (masks)
    "Not": OpDef(_not, _check_schema),
    "And": OpDef(_logical_binary(np.logical_and), _check_schema),
    "Or": OpDef(_logical_binary(np.logical_or), _check_schema),
    "Xor": OpDef(_logical_binary(np.logical_xor), _check_schema),
    "Less": OpDef(_comparison(np.less), _check_schema),
    "LessOrEqual": OpDef(_comparison(np.less_equal), _check_schema),
    "Greater": OpDef(_comparison(np.greater), _check_schema),
    "GreaterOrEqual": OpDef(_comparison(np.greater_equal), _check_schema),
    "Min": OpDef(_variadic_extreme(np.minimum), _check_schema),
    "Max": OpDef(_variadic_extreme(np.maximum), _check_schema),
    "ArgMax": OpDef(_arg_extreme(True), _check_schema),
    "ArgMin": OpDef(_arg_extreme(False), _check_schema),
    # reductions, indexing, shapes
    "ReduceSum": OpDef(_reduction("sum", since=13), _check_schema),
    "ReduceMean": OpDef(_reduction("mean", since=18), _check_schema),
    "ReduceMax": OpDef(_reduction("max", since=18), _check_schema),
    "ReduceMin": OpDef(_reduction("min", since=18), _check_schema),
    "GatherND": OpDef(_gather_nd, _check_schema),
    "Tile": OpDef(_tile, _check_schema),
    "Flatten": OpDef(_flatten, _check_schema),
    # element-wise maths and activations
    "Softmax": OpDef(_softmax(log=False), _check_schema),
    "LogSoftmax": OpDef(_softmax(log=True), _check_schema),
    "Elu": OpDef(_typed_unary(_elu, _FLOAT_TYPES), _check_schema),
    "Softplus": OpDef(_typed_unary(_softplus, _FLOAT_TYPES), _check_schema),
    "Exp": OpDef(_typed_unary(_ufunc(np.exp), _FLOAT_TYPES), _check_schema),
    "Log": OpDef(_typed_unary(_ufunc(np.log), _FLOAT_TYPES), _check_schema),
    "Sqrt": OpDef(_typed_unary(_ufunc(np.sqrt), _FLOAT_TYPES), _check_schema),
    "Neg": OpDef(_typed_unary(_ufunc(np.negative), _SIGNED_TYPES + _FLOAT_TYPES), _check_schema),
    "Abs": OpDef(_typed_unary(_ufunc(np.abs), _NUMERIC_TYPES), _check_schema),
    "Pow": OpDef(_pow, _check_schema),
}


# --------------------------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """The nodes to run for one set of requested outputs, and when each value dies."""

    nodes: list
    frees: list = field(default_factory=list)  # frees[k]: names no longer needed after node k


class Graph:
    """A loaded, checked ONNX graph that runs its nodes with the kernels of ``ops``.

    ``model`` is an ``onnx.ModelProto``. Everything that can be checked without input values is
    checked here (see the module docstring); :meth:`run` evaluates the graph.
    """

    def __init__(self, model, ops: Mapping[str, OpDef]):
        onnx = require_onnx()
        numpy_helper = onnx.numpy_helper
        self.opset = self._default_opset(model)
        graph = model.graph
        self.name = graph.name

        if len(graph.sparse_initializer):
            raise NotImplementedError(
                f"sparse initializers are not supported (graph has "
                f"{[s.values.name for s in graph.sparse_initializer]})")
        initializers = {}
        for t in graph.initializer:
            a = numpy_helper.to_array(t)
            a.flags.writeable = False  # shared by every call: no kernel may change it
            initializers[t.name] = a
        self._initializers = initializers

        declared = [_value_info(onnx, vi) for vi in graph.input]
        # Before IR version 4 initializers were also listed as inputs; like ONNX Runtime we
        # treat those as optional inputs whose default is the initializer.
        self.inputs = tuple(v for v in declared if v.name not in initializers)
        self._overridable = {v.name: v for v in declared if v.name in initializers}
        self.outputs = tuple(_value_info(onnx, vi) for vi in graph.output)
        self.input_names = tuple(v.name for v in self.inputs)
        self.output_names = tuple(v.name for v in self.outputs)

        # Values fixed at load: initializers nobody may override, and Constant node outputs.
        constants = {k: v for k, v in initializers.items() if k not in self._overridable}
        defined = set(initializers) | set(self.input_names)
        problems = []
        nodes = []
        for index, proto in enumerate(graph.node):
            node = self._convert_node(onnx, index, proto, ops, problems)
            if node is None:
                # unsupported: reported below; its outputs count as defined so the nodes that
                # use them do not hide the real problem behind a topological-order error
                defined.update(name for name in proto.output if name)
                continue
            for name in node.inputs:
                if name and name not in defined:
                    raise ValueError(
                        f"{node.label}: input {name!r} is not a graph input, an initializer or "
                        "the output of an earlier node (ONNX requires nodes in topological "
                        "order)")
            for name in node.outputs:
                if name and name in defined:
                    raise ValueError(f"{node.label}: output {name!r} is defined twice")
                if name:
                    defined.add(name)
            nodes.append(node)
        if problems:
            raise NotImplementedError(
                f"this ONNX model cannot be run by gatedrnn: {'; '.join(problems)}. "
                f"Supported op types (default domain): {', '.join(sorted(ops))}")
        for name in self.output_names:
            if name not in defined:
                raise ValueError(f"graph output {name!r} is not produced by any node, input or "
                                 "initializer")

        # Operator checks, and Constant nodes evaluated once.
        self._nodes = []
        for node in nodes:
            opdef = ops[node.op_type]
            if opdef.check is not None:
                node.state = opdef.check(node, constants)
            if node.op_type == "Constant":
                value = _constant_value(node)
                value.flags.writeable = False
                if node.outputs and node.outputs[0]:
                    constants[node.outputs[0]] = value
                continue
            self._nodes.append(node)
        self._constants = {k: v for k, v in constants.items()
                           if k not in self._initializers}
        self._ops = {k: ops[k] for k in {n.op_type for n in self._nodes}}
        self._plans: dict = {}

    # ----------------------------------------------------------------------------------------

    @staticmethod
    def _default_opset(model) -> int:
        versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
        if not versions:
            imports = [(o.domain, o.version) for o in model.opset_import]
            raise ValueError("the model imports no version of the default ONNX domain "
                             f"(opset_import: {imports})")
        return int(max(versions))

    def _convert_node(self, onnx, index, proto, ops, problems) -> Optional[Node]:
        label = (f"{proto.op_type} node {proto.name!r}" if proto.name
                 else f"{proto.op_type} node #{index} (unnamed)")
        if proto.domain not in DEFAULT_DOMAINS:
            problems.append(f"{label} is in domain {proto.domain!r} (only the default ONNX "
                            "domain is supported)")
            return None
        graph_attrs = [a.name for a in proto.attribute
                       if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)]
        if graph_attrs:
            problems.append(f"{label} has subgraph attribute(s) {graph_attrs} (graphs with "
                            "subgraphs, e.g. If/Loop/Scan, are not supported)")
            return None
        if proto.op_type not in ops:
            problems.append(f"{label}: op type {proto.op_type!r} is not supported")
            return None
        attrs = {a.name: _attribute_value(onnx, label, a) for a in proto.attribute}
        return Node(proto.op_type, proto.name, index, tuple(proto.input), tuple(proto.output),
                    attrs, self.opset)

    # ----------------------------------------------------------------------------------------

    def _plan(self, output_names: tuple) -> _Plan:
        """Only the nodes that the requested outputs depend on, with each value's last use."""
        plan = self._plans.get(output_names)
        if plan is not None:
            return plan
        needed = set(output_names)
        selected = []
        for node in reversed(self._nodes):
            if any(o and o in needed for o in node.outputs):
                selected.append(node)
                needed.update(i for i in node.inputs if i)
        selected.reverse()
        last_use = {}
        for k, node in enumerate(selected):
            for name in node.inputs:
                if name:
                    last_use[name] = k
        frees = [[] for _ in selected]
        keep = set(output_names)
        for name, k in last_use.items():
            if name not in keep:
                frees[k].append(name)
        plan = _Plan(selected, frees)
        self._plans[output_names] = plan
        return plan

    def _check_feed(self, info: ValueInfo, value) -> np.ndarray:
        a = np.asarray(value)
        if info.dtype is not None and a.dtype != info.dtype:
            raise TypeError(f"input {info.name!r}: expected dtype {info.dtype}, got {a.dtype}")
        if info.shape is not None:
            ok = a.ndim == len(info.shape) and all(
                not isinstance(d, int) or d == n for d, n in zip(info.shape, a.shape))
            if not ok:
                want = tuple(d if d is not None else "?" for d in info.shape)
                raise ValueError(f"input {info.name!r}: expected shape {want}, got {a.shape}")
        return a

    def run(self, output_names, feeds: Mapping[str, Any]) -> list:
        """Evaluate the graph; return the arrays of ``output_names`` (all outputs if None)."""
        if output_names is None:
            output_names = self.output_names
        elif isinstance(output_names, str):
            raise TypeError("output_names: expected a list of names or None, got a str "
                            f"({output_names!r})")
        output_names = tuple(output_names)
        unknown = [n for n in output_names if n not in self.output_names]
        if unknown:
            raise ValueError(f"output_names: {unknown} are not outputs of the graph; its outputs "
                             f"are {list(self.output_names)}")
        if not isinstance(feeds, Mapping):
            raise TypeError(f"feeds: expected a dict of input name -> array, got "
                            f"{type(feeds).__name__}")
        infos = {v.name: v for v in self.inputs}
        infos.update(self._overridable)
        unknown = [k for k in feeds if k not in infos]
        if unknown:
            raise ValueError(f"feeds: {unknown} are not inputs of the graph; its inputs are "
                             f"{list(self.input_names)}")
        missing = [k for k in self.input_names if k not in feeds]
        if missing:
            raise ValueError(f"feeds: missing input(s) {missing}; the graph's inputs are "
                             f"{list(self.input_names)}")

        env = dict(self._initializers)
        env.update(self._constants)
        fed = {}
        for name, value in feeds.items():
            a = self._check_feed(infos[name], value)
            env[name] = a
            fed[id(a)] = a

        plan = self._plan(output_names)
        for node, frees in zip(plan.nodes, plan.frees):
            args = [env[name] if name else None for name in node.inputs]
            try:
                results = self._ops[node.op_type].run(node, args)
            except (ValueError, TypeError, NotImplementedError) as exc:
                if str(exc).startswith(node.label):
                    raise
                cls = type(exc) if type(exc) in (ValueError, TypeError, NotImplementedError) \
                    else (TypeError if isinstance(exc, TypeError) else ValueError)
                raise cls(f"{node.label}: {exc}") from exc
            except (IndexError, ArithmeticError) as exc:
                raise ValueError(f"{node.label}: {exc}") from exc
            for name, value in zip(node.outputs, results):
                if name:
                    env[name] = np.asarray(value)
            for name in node.outputs:
                if name and name not in env:
                    raise RuntimeError(f"{node.label} did not produce its output {name!r}")
            for name in frees:
                env.pop(name, None)
        return [self._fresh(env[name], fed) for name in output_names]

    def _fresh(self, a: np.ndarray, fed: dict) -> np.ndarray:
        """An output the caller may keep and modify: never a view of an initializer, a constant,
        a fed array or a broadcast, always C-contiguous (as ONNX Runtime returns them)."""
        if (a.flags.owndata and a.flags.writeable and a.flags.c_contiguous
                and id(a) not in fed):
            return a
        return np.array(a, order="C", copy=True)
