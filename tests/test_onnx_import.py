"""gatedrnn.interop.onnx (from_onnx): the glue-op interpreter, RNN/GRU/LSTM nodes and files
exported by torch.onnx.export, each run by gatedrnn and compared with ONNX Runtime on the same
model (and with the torch module for exports).

The oracles are independent of the code under test: ONNX Runtime for every graph; the torch
module for exports; torch's own parameters (canonical layout by definition) for the weight
conversion; gatedrnn.reference fed canonical weights for the inverse conversion.

Tolerances:
- glue ops: integer, bool and shape results must be identical; float results within 1e-6
  (rtol and atol): Add/Sub/Mul/Div round identically, MatMul and the transcendental functions
  differ by summation order or a few ulp of ONNX Runtime's vectorised approximations.
- recurrent nodes (float32): ``|ours - ort| <= 1e-5 * |ort| + 1e-5 * scale``, scale = max |ort|
  of that output. Each pre-activation is a float32 sum of K = I + H products (K <= 20 here,
  ~40 for the second layer of an export), computed by two different GEMMs in different orders;
  its rounding error is a random walk of about sqrt(K) * eps32 * scale ~ 5e-7 * scale, carried
  and mildly amplified through the T <= 9 steps of a contractive recurrence (PyTorch-style init,
  so gates are not saturated). 1e-5 leaves a factor ~20 of margin, while a wrong gate order,
  bias split or time step gives errors of 1e-2 .. 1.
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings

import numpy as np
import pytest

from conftest import require_peer, seed_of

pytestmark = pytest.mark.peers

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


# --------------------------------------------------------------------------------------------
# Model building and running helpers
# --------------------------------------------------------------------------------------------


def make_model(onnx, nodes, feeds, outputs, opset=17, initializers=None):
    """A model of ``nodes``: graph inputs typed and shaped like ``feeds``, untyped outputs (ONNX
    Runtime infers them), ``initializers`` a dict name -> array."""
    from onnx import helper, numpy_helper

    inputs = [helper.make_tensor_value_info(
        name, helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype), list(np.shape(v)))
        for name, v in feeds.items()]
    outs = [onnx.ValueInfoProto(name=n) for n in outputs]
    inits = [numpy_helper.from_array(np.asarray(v), name)
             for name, v in (initializers or {}).items()]
    graph = helper.make_graph(nodes, "test", inputs, outs, initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=opsets,
                             ir_version=helper.find_min_ir_version_for(opsets))


def ort_run(ort, model, feeds, output_names=None):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(output_names, feeds)


def ours_run(model, feeds, output_names=None):
    from gatedrnn.interop import from_onnx
    return from_onnx(model).run(output_names, feeds)


def assert_glue_equal(got, want, name):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=name)
    else:
        np.testing.assert_array_equal(got, want, err_msg=name)


def assert_rnn_close(got, want, name):
    """The float32 recurrent-node tolerance of the module docstring."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-3)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                               rtol=1e-5, atol=1e-5 * scale, err_msg=name)


# --------------------------------------------------------------------------------------------
# Glue ops: one tiny graph per op and form, ours vs ONNX Runtime
# --------------------------------------------------------------------------------------------

_rng = np.random.default_rng(seed_of("onnx_import", "glue"))


def f32(*shape):
    return _rng.standard_normal(shape).astype(np.float32)


def i64(*values):
    return np.array(values, dtype=np.int64)


def node(op, inputs, outputs, **attrs):
    """A node named after its op type and first output (names must be unique in a graph)."""
    from onnx import helper
    return helper.make_node(op, inputs, outputs, name=f"{op.lower()}_{outputs[0]}", **attrs)


def _tensor(name, array):
    from onnx import numpy_helper
    return numpy_helper.from_array(np.asarray(array), name)


# Each case: (nodes factory, feeds, outputs, opset, initializers). Factories run lazily (after
# onnx is known to import) so that collecting this file never needs onnx.
GLUE_CASES = {
    "Transpose-perm": (lambda: [node("Transpose", ["x"], ["y"], perm=[2, 0, 1])],
                       {"x": f32(2, 3, 4)}, ["y"], 17, None),
    "Transpose-default": (lambda: [node("Transpose", ["x"], ["y"])],
                          {"x": f32(2, 3, 4)}, ["y"], 17, None),
    "Reshape-zero-minus-one": (lambda: [node("Reshape", ["x", "s"], ["y"])],
                               {"x": f32(2, 3, 4), "s": i64(0, -1)}, ["y"], 13, None),
    "Reshape-copy-dims": (lambda: [node("Reshape", ["x", "s"], ["y"])],
                          {"x": f32(2, 3, 4), "s": i64(0, 0, -1, 2)}, ["y"], 17, None),
    "Reshape-allowzero": (lambda: [node("Reshape", ["x", "s"], ["y"], allowzero=1)],
                          {"x": np.zeros((0, 3), np.float32), "s": i64(3, 0)}, ["y"], 14, None),
    "Concat-float": (lambda: [node("Concat", ["a", "b", "c"], ["y"], axis=-1)],
                     {"a": f32(2, 1), "b": f32(2, 3), "c": f32(2, 2)}, ["y"], 17, None),
    "Concat-int": (lambda: [node("Concat", ["a", "b"], ["y"], axis=0)],
                   {"a": i64(2), "b": i64(5, -1)}, ["y"], 11, None),
    "Gather-scalar": (lambda: [node("Gather", ["x", "i"], ["y"], axis=0)],
                      {"x": i64(7, 3, 5)}, ["y"], 13, {"i": np.array(1, np.int64)}),
    "Gather-axis1-negative": (lambda: [node("Gather", ["x", "i"], ["y"], axis=1)],
                              {"x": f32(3, 4, 2), "i": np.array([[0, -1], [2, 1]], np.int32)},
                              ["y"], 13, None),
    "Shape": (lambda: [node("Shape", ["x"], ["y"])], {"x": f32(2, 3, 4, 5)}, ["y"], 13, None),
    "Shape-start": (lambda: [node("Shape", ["x"], ["y"], start=1)],
                    {"x": f32(2, 3, 4, 5)}, ["y"], 15, None),
    "Shape-start-end-negative": (lambda: [node("Shape", ["x"], ["y"], start=-3, end=-1)],
                                 {"x": f32(2, 3, 4, 5)}, ["y"], 15, None),
    "Shape-clamped": (lambda: [node("Shape", ["x"], ["y"], start=-10, end=10)],
                      {"x": f32(2, 3)}, ["y"], 19, None),
    "Expand-both-ways": (lambda: [node("Expand", ["x", "s"], ["y"])],
                         {"x": f32(3, 1), "s": i64(2, 1, 4)}, ["y"], 13, None),
    "Expand-smaller-shape": (lambda: [node("Expand", ["x", "s"], ["y"])],
                             {"x": i64(4, 5, 6).reshape(3, 1), "s": i64(2)}, ["y"], 13, None),
    "Unsqueeze-attr": (lambda: [node("Unsqueeze", ["x"], ["y"], axes=[0, -1])],
                       {"x": f32(2, 3)}, ["y"], 11, None),
    "Unsqueeze-input": (lambda: [node("Unsqueeze", ["x", "a"], ["y"])],
                        {"x": f32(2, 3), "a": i64(-1, 1)}, ["y"], 13, None),
    "Squeeze-attr": (lambda: [node("Squeeze", ["x"], ["y"], axes=[0, -2])],
                     {"x": f32(1, 2, 1, 3)}, ["y"], 11, None),
    "Squeeze-input": (lambda: [node("Squeeze", ["x", "a"], ["y"])],
                      {"x": f32(1, 2, 1, 3), "a": i64(2)}, ["y"], 13, None),
    "Squeeze-all": (lambda: [node("Squeeze", ["x"], ["y"])],
                    {"x": f32(1, 2, 1, 3, 1)}, ["y"], 13, None),
    "Slice-attr-opset9": (lambda: [node("Slice", ["x"], ["y"], starts=[1, 0], ends=[1000, -1],
                                        axes=[0, 2])],
                          {"x": f32(3, 4, 5)}, ["y"], 9, None),
    "Slice-attr-opset9-no-axes": (lambda: [node("Slice", ["x"], ["y"], starts=[-2, 1],
                                                ends=[INT64_MAX, 3])],
                                  {"x": f32(3, 4)}, ["y"], 9, None),
    "Slice-negative-steps": (lambda: [node("Slice", ["x", "s", "e", "a", "t"], ["y"])],
                             {"x": f32(3, 4, 6), "s": i64(-1, 0), "e": i64(INT64_MIN, 5),
                              "a": i64(1, -1), "t": i64(-1, 2)}, ["y"], 13, None),
    "Slice-clamped-reverse": (lambda: [node("Slice", ["x", "s", "e", "a", "t"], ["y"])],
                              {"x": f32(7, 2), "s": i64(INT64_MAX), "e": i64(INT64_MIN),
                               "a": i64(0), "t": i64(-2)}, ["y"], 13, None),
    "Slice-no-axes-no-steps": (lambda: [node("Slice", ["x", "s", "e"], ["y"])],
                               {"x": f32(4, 5), "s": i64(1, -3), "e": i64(3, INT64_MAX)},
                               ["y"], 10, None),
    "Slice-torch-states": (lambda: [node("Slice", ["h", "s", "e", "a"], ["y"])],
                           {"h": f32(4, 3, 6)}, ["y"], 17,
                           {"s": i64(2), "e": i64(4), "a": i64(0)}),
    "Constant-value": (lambda: [node("Constant", [], ["y"], value=_tensor(
                           "v", np.arange(6, dtype=np.int32).reshape(2, 3)))],
                       {}, ["y"], 13, None),
    "Constant-value_float": (lambda: [node("Constant", [], ["y"], value_float=2.5)],
                             {}, ["y"], 13, None),
    "Constant-value_floats": (lambda: [node("Constant", [], ["y"], value_floats=[1.5, -2.0])],
                              {}, ["y"], 13, None),
    "Constant-value_int": (lambda: [node("Constant", [], ["y"], value_int=-7)],
                           {}, ["y"], 13, None),
    "Constant-value_ints": (lambda: [node("Constant", [], ["y"], value_ints=[3, 0, -2])],
                            {}, ["y"], 13, None),
    "ConstantOfShape-default": (lambda: [node("ConstantOfShape", ["s"], ["y"])],
                                {"s": i64(2, 3)}, ["y"], 13, None),
    "ConstantOfShape-int": (lambda: [node("ConstantOfShape", ["s"], ["y"],
                                          value=_tensor("v", i64(7)))],
                            {"s": i64(3)}, ["y"], 13, None),
    "ConstantOfShape-float-scalar": (lambda: [node("ConstantOfShape", ["s"], ["y"], value=_tensor(
                                         "v", np.array([1.5], np.float32)))],
                                     {"s": np.zeros(0, np.int64)}, ["y"], 13, None),
    "Identity": (lambda: [node("Identity", ["x"], ["y"])], {"x": f32(2, 3)}, ["y"], 13, None),
    "Cast-float-to-int32": (lambda: [node("Cast", ["x"], ["y"], to=6)],
                            {"x": np.array([-2.7, -0.5, 0.0, 0.5, 2.7, 100.2], np.float32)},
                            ["y"], 13, None),
    "Cast-int-to-float": (lambda: [node("Cast", ["x"], ["y"], to=1)],
                          {"x": i64(-3, 0, 5)}, ["y"], 13, None),
    "Cast-float-to-bool": (lambda: [node("Cast", ["x"], ["y"], to=9)],
                           {"x": np.array([0.0, -0.0, 0.1, -3.0], np.float32)}, ["y"], 13, None),
    "Cast-bool-to-float64": (lambda: [node("Cast", ["x"], ["y"], to=11)],
                             {"x": np.array([True, False, True])}, ["y"], 13, None),
    "Cast-int32-to-int64": (lambda: [node("Cast", ["x"], ["y"], to=7)],
                            {"x": np.array([-5, 7], np.int32)}, ["y"], 19, None),
    "Add-broadcast": (lambda: [node("Add", ["a", "b"], ["y"])],
                      {"a": f32(2, 3, 1), "b": f32(3, 4)}, ["y"], 13, None),
    "Sub-broadcast": (lambda: [node("Sub", ["a", "b"], ["y"])],
                      {"a": f32(2, 3, 1), "b": f32(4)}, ["y"], 13, None),
    "Mul-broadcast": (lambda: [node("Mul", ["a", "b"], ["y"])],
                      {"a": f32(2, 1), "b": f32(1, 5)}, ["y"], 13, None),
    "Div-float": (lambda: [node("Div", ["a", "b"], ["y"])],
                  {"a": f32(2, 3), "b": f32(3) + 3.0}, ["y"], 13, None),
    "Add-int": (lambda: [node("Add", ["a", "b"], ["y"])],
                {"a": i64(1, -2, 3), "b": np.array(4, np.int64)}, ["y"], 13, None),
    "Mul-int": (lambda: [node("Mul", ["a", "b"], ["y"])], {"a": i64(3, -2), "b": i64(4, 5)},
                ["y"], 13, None),
    "Sub-int": (lambda: [node("Sub", ["a", "b"], ["y"])], {"a": i64(3, -2), "b": i64(4, 5)},
                ["y"], 13, None),
    "Div-int-truncates": (lambda: [node("Div", ["a", "b"], ["y"])],
                          {"a": i64(7, -7, 7, -7, 6, 0), "b": i64(2, 2, -2, -2, 3, 5)},
                          ["y"], 13, None),
    "Equal-int": (lambda: [node("Equal", ["a", "b"], ["y"])],
                  {"a": i64(1, 2, 3), "b": i64(1, 0, 3)}, ["y"], 13, None),
    "Equal-float-broadcast": (lambda: [node("Equal", ["a", "b"], ["y"])],
                              {"a": np.array([[0.5], [1.0]], np.float32),
                               "b": np.array([1.0, 0.5, 2.0], np.float32)}, ["y"], 13, None),
    "Where-broadcast": (lambda: [node("Where", ["c", "x", "y"], ["z"])],
                        {"c": _rng.random((2, 1, 3)) < 0.5, "x": f32(1, 4, 3), "y": f32(2, 4, 1)},
                        ["z"], 13, None),
    "Split-attr": (lambda: [node("Split", ["x"], ["a", "b"], axis=1, split=[1, 2])],
                   {"x": f32(2, 3)}, ["a", "b"], 11, None),
    "Split-input": (lambda: [node("Split", ["x", "s"], ["a", "b", "c"], axis=-1)],
                    {"x": f32(2, 4), "s": i64(2, 1, 1)}, ["a", "b", "c"], 13, None),
    "Split-equal": (lambda: [node("Split", ["x"], ["a", "b", "c"])],
                    {"x": f32(6, 2)}, ["a", "b", "c"], 13, None),
    "Split-num_outputs-uneven": (lambda: [node("Split", ["x"], ["a", "b", "c"], num_outputs=3)],
                                 {"x": f32(7)}, ["a", "b", "c"], 18, None),
    "Range-int": (lambda: [node("Range", ["s", "l", "d"], ["y"])],
                  {"s": np.array(2, np.int64), "l": np.array(11, np.int64),
                   "d": np.array(3, np.int64)}, ["y"], 13, None),
    "Range-int32-negative": (lambda: [node("Range", ["s", "l", "d"], ["y"])],
                             {"s": np.array(10, np.int32), "l": np.array(1, np.int32),
                              "d": np.array(-2, np.int32)}, ["y"], 13, None),
    "Range-float": (lambda: [node("Range", ["s", "l", "d"], ["y"])],
                    {"s": np.array(0.5, np.float32), "l": np.array(3.0, np.float32),
                     "d": np.array(0.25, np.float32)}, ["y"], 13, None),
    "Range-empty": (lambda: [node("Range", ["s", "l", "d"], ["y"])],
                    {"s": np.array(5, np.int64), "l": np.array(1, np.int64),
                     "d": np.array(1, np.int64)}, ["y"], 13, None),
    "MatMul-2d": (lambda: [node("MatMul", ["a", "b"], ["y"])],
                  {"a": f32(3, 4), "b": f32(4, 5)}, ["y"], 13, None),
    "MatMul-batched": (lambda: [node("MatMul", ["a", "b"], ["y"])],
                       {"a": f32(2, 3, 4), "b": f32(4, 6)}, ["y"], 13, None),
    "MatMul-vector": (lambda: [node("MatMul", ["a", "b"], ["y"])],
                      {"a": f32(4), "b": f32(2, 4, 3)}, ["y"], 13, None),
    "Tanh": (lambda: [node("Tanh", ["x"], ["y"])],
             {"x": np.concatenate([f32(20) * 3, np.array([-40, 40], np.float32)])},
             ["y"], 13, None),
    "Sigmoid": (lambda: [node("Sigmoid", ["x"], ["y"])],
                {"x": np.concatenate([f32(20) * 3, np.array([-100, 100], np.float32)])},
                ["y"], 13, None),
    "Relu": (lambda: [node("Relu", ["x"], ["y"])], {"x": f32(4, 5)}, ["y"], 14, None),
    # the legacy torch exporter's zero initial state: Shape -> Gather -> Unsqueeze -> Concat ->
    # Expand of a constant, opset 9 (axes as attributes) and 13 (axes as inputs)
    "chain-torch-zero-state-opset9": (lambda: [
        node("Shape", ["x"], ["shape"]),
        node("Gather", ["shape", "one"], ["batch"], axis=0),
        node("Unsqueeze", ["batch"], ["batch1"], axes=[0]),
        node("Concat", ["two", "batch1", "six"], ["target"], axis=0),
        node("Expand", ["zeros", "target"], ["h0"]),
    ],
        {"x": f32(7, 3, 5)}, ["h0", "target"], 9,
        {"one": np.array(1, np.int64), "two": i64(2), "six": i64(6),
         "zeros": np.zeros((2, 1, 6), np.float32)}),
    "chain-torch-zero-state-opset13": (lambda: [
        node("Shape", ["x"], ["shape"]),
        node("Gather", ["shape", "one"], ["batch"], axis=0),
        node("Unsqueeze", ["batch", "zero"], ["batch1"]),
        node("Concat", ["two", "batch1", "six"], ["target"], axis=0),
        node("ConstantOfShape", ["target"], ["h0"]),
    ], {"x": f32(7, 3, 5)}, ["h0", "target"], 13,
        {"one": np.array(1, np.int64), "zero": i64(0), "two": i64(2), "six": i64(6)}),
}


# The ops of masked exports (to_onnx's mask arithmetic and activations) and their relatives,
# each opset form from 11 on: logic, comparisons, Min/Max, ArgMax/ArgMin, reductions (axes as
# an attribute or an input), GatherND (batch_dims), Softmax/LogSoftmax (2-D coercion before
# opset 13), element-wise maths, Tile, Pow, Flatten.

NAN, INF = np.nan, np.inf


def f32v(*values):
    return np.array(values, dtype=np.float32)


def boolean(*shape):
    return _rng.random(shape) < 0.5


def ties(*shape):
    """Small integer-valued floats: comparisons and arg-extremes meet equal values."""
    return np.round(_rng.standard_normal(shape) * 1.5).astype(np.float32)


NAN_ROWS = f32v(NAN, 1, 2, 2,  1, NAN, 3, 3,  1, NAN, 0, 0,  NAN, NAN, NAN, NAN,
                -INF, NAN, -INF, NAN).reshape(5, 4)

GLUE_CASES.update({
    # --- logic -------------------------------------------------------------------------------
    "Not": (lambda: [node("Not", ["x"], ["y"])], {"x": boolean(2, 3)}, ["y"], 11, None),
    "And-broadcast": (lambda: [node("And", ["a", "b"], ["y"])],
                      {"a": boolean(2, 1, 3), "b": boolean(4, 1)}, ["y"], 13, None),
    "Or-broadcast": (lambda: [node("Or", ["a", "b"], ["y"])],
                     {"a": boolean(2, 1, 3), "b": boolean(3)}, ["y"], 11, None),
    "Xor-broadcast": (lambda: [node("Xor", ["a", "b"], ["y"])],
                      {"a": boolean(3, 1), "b": boolean(1, 4)}, ["y"], 21, None),
    # --- comparisons (Less/Greater: versions 9 and 13; ...OrEqual: 12 and 16) ----------------
    "Less-float-opset11": (lambda: [node("Less", ["a", "b"], ["y"])],
                           {"a": ties(2, 3, 1), "b": ties(3, 4)}, ["y"], 11, None),
    "Less-int64-opset13": (lambda: [node("Less", ["a", "b"], ["y"])],
                           {"a": np.arange(6).reshape(1, 6), "b": i64(0, 3, 5).reshape(3, 1)},
                           ["y"], 13, None),
    "Greater-int32-opset11": (lambda: [node("Greater", ["a", "b"], ["y"])],
                              {"a": np.array([[-2, 0, 7]], np.int32),
                               "b": np.array([[0], [7]], np.int32)}, ["y"], 11, None),
    "Greater-float-opset13": (lambda: [node("Greater", ["a", "b"], ["y"])],
                              {"a": ties(4, 3), "b": ties(3)}, ["y"], 13, None),
    "LessOrEqual-opset12": (lambda: [node("LessOrEqual", ["a", "b"], ["y"])],
                            {"a": ties(4, 3), "b": ties(4, 1)}, ["y"], 12, None),
    "LessOrEqual-uint8-opset16": (lambda: [node("LessOrEqual", ["a", "b"], ["y"])],
                                  {"a": np.array([0, 3, 255], np.uint8),
                                   "b": np.array([1, 3, 254], np.uint8)}, ["y"], 16, None),
    "GreaterOrEqual-opset12": (lambda: [node("GreaterOrEqual", ["a", "b"], ["y"])],
                               {"a": ties(2, 5), "b": ties(5)}, ["y"], 12, None),
    "GreaterOrEqual-int64-opset16": (lambda: [node("GreaterOrEqual", ["a", "b"], ["y"])],
                                     {"a": np.arange(5).reshape(1, 5),
                                      "b": i64(2, 4).reshape(2, 1)}, ["y"], 16, None),
    # --- Min / Max (version 8: float only; 12 and 13: every numeric type) ---------------------
    "Max-three-broadcast-opset11": (lambda: [node("Max", ["a", "b", "c"], ["y"])],
                                    {"a": f32(2, 1, 3), "b": f32(4, 1), "c": f32(3)},
                                    ["y"], 11, None),
    "Min-three-broadcast-opset11": (lambda: [node("Min", ["a", "b", "c"], ["y"])],
                                    {"a": f32(2, 1, 3), "b": f32(4, 1), "c": f32(3)},
                                    ["y"], 11, None),
    "Min-one-input": (lambda: [node("Min", ["a"], ["y"])], {"a": f32(2, 3)}, ["y"], 13, None),
    "Max-int32-opset12": (lambda: [node("Max", ["a", "b"], ["y"])],
                          {"a": np.array([[-5, 2, 9]], np.int32),
                           "b": np.array([[0], [3]], np.int32)}, ["y"], 12, None),
    "Min-uint8-opset12": (lambda: [node("Min", ["a", "b"], ["y"])],
                          {"a": np.array([0, 200, 7], np.uint8),
                           "b": np.array([1, 100, 7], np.uint8)}, ["y"], 12, None),
    "Min-int64-export-index": (lambda: [node("Min", ["a", "b"], ["y"])],
                               {"a": np.arange(12).reshape(3, 4) - 2, "b": i64(6)},
                               ["y"], 17, None),
    "Max-int64-scalar": (lambda: [node("Max", ["a", "b"], ["y"])],
                         {"a": i64(-3, 0, 4).reshape(1, 3), "b": np.array(0, np.int64)},
                         ["y"], 13, None),
    "Max-nan-propagates": (lambda: [node("Max", ["a", "b"], ["y"])],
                           {"a": f32v(1, NAN, 3, -2), "b": f32v(NAN, 2, 1, 5)}, ["y"], 13, None),
    "Min-nan-propagates": (lambda: [node("Min", ["a", "b"], ["y"])],
                           {"a": f32v(1, NAN, 3, -2), "b": f32v(NAN, 2, 1, 5)}, ["y"], 13, None),
    # --- ArgMax / ArgMin (version 11: axis, keepdims; 12 and 13: select_last_index) ----------
    "ArgMax-opset11-defaults": (lambda: [node("ArgMax", ["x"], ["y"])],
                                {"x": ties(4, 3, 2)}, ["y"], 11, None),
    "ArgMin-opset11-axis-keepdims0": (lambda: [node("ArgMin", ["x"], ["y"], axis=-1,
                                                    keepdims=0)],
                                      {"x": ties(4, 3, 5)}, ["y"], 11, None),
    "ArgMax-opset12-last": (lambda: [node("ArgMax", ["x"], ["y"], axis=1,
                                          select_last_index=1)],
                            {"x": ties(4, 6)}, ["y"], 12, None),
    "ArgMin-opset12-last": (lambda: [node("ArgMin", ["x"], ["y"], axis=0,
                                          select_last_index=1, keepdims=0)],
                            {"x": ties(5, 3)}, ["y"], 12, None),
    "ArgMax-int32-export-start": (lambda: [node("ArgMax", ["x"], ["y"], axis=1, keepdims=0)],
                                  {"x": np.array([[0, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]],
                                                 np.int32)}, ["y"], 13, None),
    "ArgMin-int64-last-opset13": (lambda: [node("ArgMin", ["x"], ["y"], axis=1,
                                                select_last_index=1)],
                                  {"x": np.array([[3, 1, 1, 2], [5, 5, 5, 5]], np.int64)},
                                  ["y"], 13, None),
    "ArgMax-nan": (lambda: [node("ArgMax", ["x"], ["y"], axis=1)], {"x": NAN_ROWS},
                   ["y"], 13, None),
    "ArgMax-nan-last": (lambda: [node("ArgMax", ["x"], ["y"], axis=1, select_last_index=1)],
                        {"x": NAN_ROWS}, ["y"], 13, None),
    "ArgMin-nan": (lambda: [node("ArgMin", ["x"], ["y"], axis=1)], {"x": NAN_ROWS},
                   ["y"], 13, None),
    "ArgMin-nan-last": (lambda: [node("ArgMin", ["x"], ["y"], axis=1, select_last_index=1)],
                        {"x": NAN_ROWS}, ["y"], 21, None),
    # --- ReduceSum (axes: attribute at 11, input from 13, with noop_with_empty_axes) ----------
    "ReduceSum-attr-opset11": (lambda: [node("ReduceSum", ["x"], ["y"], axes=[0, -1])],
                               {"x": f32(2, 3, 4)}, ["y"], 11, None),
    "ReduceSum-all-opset11": (lambda: [node("ReduceSum", ["x"], ["y"], keepdims=0)],
                              {"x": np.arange(12, dtype=np.int32).reshape(3, 4)}, ["y"], 11,
                              None),
    "ReduceSum-input-export-lengths": (lambda: [node("ReduceSum", ["x", "a"], ["y"],
                                                     keepdims=0)],
                                       {"x": (_rng.random((4, 6)) < 0.5).astype(np.int64)},
                                       ["y"], 13, {"a": i64(1)}),
    "ReduceSum-input-negative-axes": (lambda: [node("ReduceSum", ["x", "a"], ["y"])],
                                      {"x": f32(2, 3, 4), "a": i64(-1, 0)}, ["y"], 13, None),
    "ReduceSum-no-axes": (lambda: [node("ReduceSum", ["x"], ["y"], keepdims=0)],
                          {"x": f32(2, 3)}, ["y"], 13, None),
    "ReduceSum-empty-axes": (lambda: [node("ReduceSum", ["x", "a"], ["y"])],
                             {"x": f32(2, 3)}, ["y"], 13, {"a": np.zeros(0, np.int64)}),
    "ReduceSum-noop-no-axes": (lambda: [node("ReduceSum", ["x"], ["y"],
                                             noop_with_empty_axes=1)],
                               {"x": f32(2, 3)}, ["y"], 13, None),
    "ReduceSum-noop-empty-axes": (lambda: [node("ReduceSum", ["x", "a"], ["y"],
                                                noop_with_empty_axes=1)],
                                  {"x": i64(1, 2, 3)}, ["y"], 18, {"a": np.zeros(0, np.int64)}),
    "ReduceSum-noop-with-axes": (lambda: [node("ReduceSum", ["x", "a"], ["y"],
                                               noop_with_empty_axes=1)],
                                 {"x": f32(2, 3)}, ["y"], 13, {"a": i64(1)}),
    "ReduceSum-empty-set": (lambda: [node("ReduceSum", ["x", "a"], ["y"], keepdims=0)],
                            {"x": np.zeros((2, 0), np.float32)}, ["y"], 13, {"a": i64(1)}),
    # --- ReduceMax / ReduceMin / ReduceMean (attribute before 18, input from 18; bool at 20) ---
    "ReduceMax-attr-opset11": (lambda: [node("ReduceMax", ["x"], ["y"], axes=[1])],
                               {"x": f32(2, 3, 4)}, ["y"], 11, None),
    "ReduceMin-attr-opset11-all": (lambda: [node("ReduceMin", ["x"], ["y"], keepdims=0)],
                                   {"x": f32(2, 3, 4)}, ["y"], 11, None),
    "ReduceMean-attr-opset11": (lambda: [node("ReduceMean", ["x"], ["y"], axes=[0, 2])],
                                {"x": f32(2, 3, 4)}, ["y"], 11, None),
    "ReduceMax-int8-opset12": (lambda: [node("ReduceMax", ["x"], ["y"], axes=[-1], keepdims=0)],
                               {"x": np.array([[-128, 5, 3], [-7, -9, -128]], np.int8)},
                               ["y"], 12, None),
    "ReduceMin-uint8-opset13": (lambda: [node("ReduceMin", ["x"], ["y"], axes=[0])],
                                {"x": np.array([[255, 5], [7, 0]], np.uint8)}, ["y"], 13, None),
    "ReduceMax-attr-export-mask-opset17": (lambda: [node("ReduceMax", ["x"], ["y"], axes=[-1],
                                                         keepdims=0)],
                                           {"x": (_rng.random((3, 5, 4)) < 0.3).astype(
                                               np.float32)}, ["y"], 17, None),
    "ReduceMax-input-export-mask-opset18": (lambda: [node("ReduceMax", ["x", "a"], ["y"],
                                                          keepdims=0)],
                                            {"x": (_rng.random((3, 5, 4)) < 0.3).astype(
                                                np.float32)}, ["y"], 18, {"a": i64(-1)}),
    "ReduceMin-input-opset18": (lambda: [node("ReduceMin", ["x", "a"], ["y"])],
                                {"x": f32(2, 3, 4), "a": i64(0, 1)}, ["y"], 18, None),
    "ReduceMean-input-opset18": (lambda: [node("ReduceMean", ["x", "a"], ["y"], keepdims=0)],
                                 {"x": f32(2, 3, 4)}, ["y"], 18, {"a": i64(1)}),
    "ReduceMean-no-axes-opset18": (lambda: [node("ReduceMean", ["x"], ["y"])],
                                   {"x": f32(2, 3, 4)}, ["y"], 18, None),
    "ReduceMax-noop-opset18": (lambda: [node("ReduceMax", ["x"], ["y"], noop_with_empty_axes=1)],
                               {"x": f32(2, 3)}, ["y"], 18, None),
    "ReduceMax-bool-opset20": (lambda: [node("ReduceMax", ["x", "a"], ["y"], keepdims=0)],
                               {"x": boolean(4, 3)}, ["y"], 20, {"a": i64(1)}),
    "ReduceMin-bool-opset20": (lambda: [node("ReduceMin", ["x", "a"], ["y"], keepdims=0)],
                               {"x": boolean(4, 3)}, ["y"], 20, {"a": i64(1)}),
    "ReduceMean-int-truncates": (lambda: [node("ReduceMean", ["x"], ["y"], axes=[1],
                                               keepdims=0)],
                                 {"x": i64(1, 2, 2, 2, -3, 0, -7, 2).reshape(4, 2)},
                                 ["y"], 13, None),
    "ReduceMax-empty-set-float": (lambda: [node("ReduceMax", ["x"], ["y"], axes=[1])],
                                  {"x": np.zeros((2, 0), np.float32)}, ["y"], 13, None),
    "ReduceMax-empty-set-int": (lambda: [node("ReduceMax", ["x", "a"], ["y"], keepdims=0)],
                                {"x": np.zeros((2, 0), np.int32)}, ["y"], 18, {"a": i64(1)}),
    "ReduceMin-empty-set-float": (lambda: [node("ReduceMin", ["x", "a"], ["y"], keepdims=0)],
                                  {"x": np.zeros((2, 0), np.float32)}, ["y"], 18, {"a": i64(1)}),
    "ReduceMean-empty-set": (lambda: [node("ReduceMean", ["x"], ["y"], axes=[1], keepdims=0)],
                             {"x": np.zeros((2, 0), np.float32)}, ["y"], 13, None),
    # --- GatherND (version 11; batch_dims from 12) -------------------------------------------
    "GatherND-opset11": (lambda: [node("GatherND", ["x", "i"], ["y"])],
                         {"x": f32(3, 4, 5), "i": i64(0, 1, 2, -1, -3, 0).reshape(3, 2)},
                         ["y"], 11, None),
    "GatherND-full-index": (lambda: [node("GatherND", ["x", "i"], ["y"])],
                            {"x": np.arange(24).reshape(2, 3, 4),
                             "i": i64(1, 2, 3, 0, 0, -1).reshape(2, 1, 3)}, ["y"], 12, None),
    "GatherND-batch-export-runs": (lambda: [node("GatherND", ["x", "i"], ["y"], batch_dims=1)],
                                   {"x": f32(3, 5, 4),
                                    "i": np.minimum(np.arange(5)[None, :] + i64(0, 2, 4)[:, None],
                                                    4)[:, :, None]},
                                   ["y"], 13, None),
    "GatherND-batch-dims-2": (lambda: [node("GatherND", ["x", "i"], ["y"], batch_dims=2)],
                              {"x": f32(2, 3, 4, 5),
                               "i": _rng.integers(-4, 4, (2, 3, 2, 1))}, ["y"], 13, None),
    "GatherND-bool": (lambda: [node("GatherND", ["x", "i"], ["y"], batch_dims=1)],
                      {"x": boolean(2, 3), "i": i64(2, 0, 1, 1).reshape(2, 2, 1)},
                      ["y"], 17, None),
    # --- Softmax / LogSoftmax (2-D coercion before 13, default axis 1; one axis from 13) ------
    "Softmax-opset11-default": (lambda: [node("Softmax", ["x"], ["y"])],
                                {"x": f32(2, 3, 4)}, ["y"], 11, None),
    "Softmax-opset11-axis0": (lambda: [node("Softmax", ["x"], ["y"], axis=0)],
                              {"x": f32(2, 3, 4)}, ["y"], 11, None),
    "Softmax-opset11-axis-negative": (lambda: [node("Softmax", ["x"], ["y"], axis=-1)],
                                      {"x": f32(2, 3, 4) * 20}, ["y"], 11, None),
    "LogSoftmax-opset11-default": (lambda: [node("LogSoftmax", ["x"], ["y"])],
                                   {"x": f32(2, 3, 4)}, ["y"], 11, None),
    "LogSoftmax-opset11-axis2": (lambda: [node("LogSoftmax", ["x"], ["y"], axis=2)],
                                 {"x": f32(2, 3, 4)}, ["y"], 11, None),
    "Softmax-opset13-default": (lambda: [node("Softmax", ["x"], ["y"])],
                                {"x": np.concatenate([f32(2, 3, 4),
                                                      np.full((1, 3, 4), 80, np.float32)])},
                                ["y"], 13, None),
    "Softmax-opset13-axis1": (lambda: [node("Softmax", ["x"], ["y"], axis=1)],
                              {"x": f32(2, 3, 4)}, ["y"], 13, None),
    "LogSoftmax-opset13-default": (lambda: [node("LogSoftmax", ["x"], ["y"])],
                                   {"x": f32v(-INF, 0, 1, 100, -100, 3).reshape(2, 3)},
                                   ["y"], 13, None),
    "LogSoftmax-opset13-axis-3": (lambda: [node("LogSoftmax", ["x"], ["y"], axis=-3)],
                                  {"x": f32(2, 3, 4).astype(np.float64)}, ["y"], 21, None),
    # --- element-wise ------------------------------------------------------------------------
    "Elu-default": (lambda: [node("Elu", ["x"], ["y"])],
                    {"x": np.concatenate([f32(20) * 3, f32v(-50, 0, -1e-6, 50)])},
                    ["y"], 11, None),
    "Elu-alpha": (lambda: [node("Elu", ["x"], ["y"], alpha=0.3)],
                  {"x": f32(3, 4) * 3}, ["y"], 13, None),
    "Softplus": (lambda: [node("Softplus", ["x"], ["y"])],
                 {"x": np.concatenate([f32(20) * 3, f32v(-100, -20, 0, 20, 100)])},
                 ["y"], 13, None),
    "Softplus-opset11": (lambda: [node("Softplus", ["x"], ["y"])],
                         {"x": f32(3, 4) * 5}, ["y"], 11, None),
    "Exp": (lambda: [node("Exp", ["x"], ["y"])], {"x": f32(3, 4) * 3}, ["y"], 13, None),
    "Exp-opset11": (lambda: [node("Exp", ["x"], ["y"])], {"x": f32v(-200, 0, 5, 100)},
                    ["y"], 11, None),
    "Log": (lambda: [node("Log", ["x"], ["y"])], {"x": f32v(0.5, 1, 3, 1e-20, 0, -1)},
            ["y"], 13, None),
    "Sqrt": (lambda: [node("Sqrt", ["x"], ["y"])], {"x": f32v(0, 0.25, 2, 1e6, -1)},
             ["y"], 13, None),
    "Neg-float": (lambda: [node("Neg", ["x"], ["y"])], {"x": f32(2, 3)}, ["y"], 11, None),
    "Neg-int8-wraps": (lambda: [node("Neg", ["x"], ["y"])],
                       {"x": np.array([-128, -1, 0, 127], np.int8)}, ["y"], 13, None),
    "Neg-int64": (lambda: [node("Neg", ["x"], ["y"])], {"x": i64(-3, 0, 5)}, ["y"], 13, None),
    "Abs-float": (lambda: [node("Abs", ["x"], ["y"])], {"x": f32(2, 3)}, ["y"], 11, None),
    "Abs-int": (lambda: [node("Abs", ["x"], ["y"])],
                {"x": np.array([-128, -1, 0, 127], np.int8)}, ["y"], 13, None),
    "Abs-uint": (lambda: [node("Abs", ["x"], ["y"])],
                 {"x": np.array([0, 7, 65535], np.uint16)}, ["y"], 13, None),
    # --- Tile (versions 6 and 13) -------------------------------------------------------------
    "Tile-opset11": (lambda: [node("Tile", ["x", "r"], ["y"])],
                     {"x": f32(2, 3), "r": i64(2, 3)}, ["y"], 11, None),
    "Tile-int-zero-repeat": (lambda: [node("Tile", ["x", "r"], ["y"])],
                             {"x": i64(1, 2, 3).reshape(1, 3, 1), "r": i64(2, 0, 3)},
                             ["y"], 13, None),
    "Tile-bool": (lambda: [node("Tile", ["x", "r"], ["y"])],
                  {"x": boolean(2, 2)}, ["y"], 17, {"r": i64(1, 3)}),
    # --- Pow (version 7: one float type; 12, 13, 15: int32/int64/float base, any exponent) ---
    "Pow-opset11": (lambda: [node("Pow", ["a", "b"], ["y"])],
                    {"a": f32v(2, -2, 0.5, 3, 0, -1.5).reshape(2, 3),
                     "b": f32v(3, 2, -1)}, ["y"], 11, None),
    "Pow-float-fractional": (lambda: [node("Pow", ["a", "b"], ["y"])],
                             {"a": np.abs(f32(3, 4)) + 0.1, "b": f32(4)}, ["y"], 13, None),
    "Pow-float-int-exponent": (lambda: [node("Pow", ["a", "b"], ["y"])],
                               {"a": f32v(2, 3, -2, 0.1), "b": i64(3, -1, 3, 7)},
                               ["y"], 12, None),
    "Pow-float-special": (lambda: [node("Pow", ["a", "b"], ["y"])],
                          {"a": f32v(-2, 0, 0, 1, INF), "b": f32v(0.5, -1, 0, NAN, -1)},
                          ["y"], 15, None),
    "Pow-int-base": (lambda: [node("Pow", ["a", "b"], ["y"])],
                     {"a": i64(2, 3, -2, 0, 2, 3), "b": i64(3, -1, 3, 0, 10, 20)},
                     ["y"], 15, None),
    "Pow-int32-float-exponent": (lambda: [node("Pow", ["a", "b"], ["y"])],
                                 {"a": np.array([2, 3, -2, 4], np.int32),
                                  "b": f32v(0.5, 1.5, 2, -0.5)}, ["y"], 13, None),
    "Pow-float64-float32-exponent": (lambda: [node("Pow", ["a", "b"], ["y"])],
                                     {"a": np.array([2.5, 3.0]), "b": f32v(1.5, -2)},
                                     ["y"], 13, None),
    # --- Flatten (versions 11, 13, 21) --------------------------------------------------------
    "Flatten-default": (lambda: [node("Flatten", ["x"], ["y"])], {"x": f32(2, 3, 4)},
                        ["y"], 11, None),
    "Flatten-axis0": (lambda: [node("Flatten", ["x"], ["y"], axis=0)], {"x": f32(2, 3, 4)},
                      ["y"], 13, None),
    "Flatten-axis-rank": (lambda: [node("Flatten", ["x"], ["y"], axis=3)],
                          {"x": i64(*range(24)).reshape(2, 3, 4)}, ["y"], 13, None),
    "Flatten-axis-negative": (lambda: [node("Flatten", ["x"], ["y"], axis=-1)],
                              {"x": f32(2, 3, 4, 1)}, ["y"], 21, None),
    # --- to_onnx's mask from Masking and the run starts (opset 13 forms) ---------------------
    "chain-export-masking-mask": (lambda: [
        node("Equal", ["x", "zero"], ["eq"]),
        node("Not", ["eq"], ["differs"]),
        node("Cast", ["differs"], ["differs_f"], to=1),
        node("ReduceMax", ["differs_f"], ["any_f"], axes=[-1], keepdims=0),
        node("Cast", ["any_f"], ["valid"], to=9),
        node("Cast", ["valid"], ["valid64"], to=7),
        node("ReduceSum", ["valid64", "one"], ["lengths"], keepdims=0),
        node("Cast", ["valid"], ["valid32"], to=6),
        node("ArgMax", ["valid32"], ["start"], axis=1, keepdims=0),
        node("Add", ["start", "lengths"], ["end"]),
    ], {"x": (f32(4, 6, 3) * (_rng.random((4, 6, 1)) < 0.6)).astype(np.float32)},
        ["valid", "lengths", "start", "end"], 13,
        {"zero": np.array(0, np.float32), "one": i64(1)}),
})


@pytest.mark.parametrize("case", list(GLUE_CASES), ids=list(GLUE_CASES))
def test_glue_op_matches_onnxruntime(onnx, onnxruntime, case):
    make_nodes, feeds, outputs, opset, inits = GLUE_CASES[case]
    model = make_model(onnx, make_nodes(), feeds, outputs, opset, inits)
    want = ort_run(onnxruntime, model, feeds)
    got = ours_run(model, feeds)
    assert len(got) == len(want) == len(outputs)
    for name, g, w in zip(outputs, got, want):
        assert_glue_equal(g, w, f"{case}: {name}")


def test_outputs_are_fresh_arrays(onnx):
    """Identity of an input or an initializer must not hand back the caller's (or the model's)
    array: outputs are new, writable, C-contiguous arrays, as ONNX Runtime returns them."""
    x = f32(2, 3)
    model = make_model(onnx, [node("Identity", ["x"], ["y"]), node("Identity", ["w"], ["z"]),
                              node("Expand", ["w", "s"], ["e"])],
                       {"x": x}, ["y", "z", "e"], 13,
                       {"w": np.ones((1, 3), np.float32), "s": i64(4, 3)})
    from gatedrnn.interop import from_onnx
    m = from_onnx(model)
    y, z, e = m(x)
    for a in (y, z, e):
        assert a.flags.writeable and a.flags.c_contiguous and a.flags.owndata
    assert not np.shares_memory(y, x)
    z[:] = 5  # must not change the model
    np.testing.assert_array_equal(m(x)[1], np.ones((1, 3), np.float32))


# --------------------------------------------------------------------------------------------
# Recurrent nodes built with onnx.helper, random ONNX-layout weights
# --------------------------------------------------------------------------------------------

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
D_OF = {"forward": 1, "reverse": 1, "bidirectional": 2}

# op type, extra attributes (activations are given per direction by attrs_for)
NODE_VARIANTS = {
    "rnn_tanh": ("RNN", {}),
    "rnn_relu": ("RNN", {"activations": ["Relu"]}),
    "gru_lbr0": ("GRU", {"linear_before_reset": 0}),
    "gru_lbr1": ("GRU", {"linear_before_reset": 1}),
    "lstm": ("LSTM", {}),
}


def attrs_for(variant, direction, H, layout=0):
    op, extra = NODE_VARIANTS[variant]
    attrs = dict(extra, hidden_size=H, direction=direction)
    if "activations" in attrs:
        attrs["activations"] = attrs["activations"] * D_OF[direction]
    if layout:
        attrs["layout"] = layout
    return op, attrs


def rnn_data(rng, op, D, T, B, I, H, dtype=np.float32, lengths="zero"):
    """ONNX-layout weights (PyTorch-style init U(-1/sqrt(H), 1/sqrt(H))), X, states, lengths."""
    G = GATES[op]
    k = 1.0 / np.sqrt(H)
    u = lambda *s: rng.uniform(-k, k, s).astype(dtype)  # noqa: E731
    d = dict(W=u(D, G * H, I), R=u(D, G * H, H), B=u(D, 2 * G * H),
             X=rng.standard_normal((T, B, I)).astype(dtype),
             initial_h=(0.5 * rng.standard_normal((D, B, H))).astype(dtype))
    if op == "LSTM":
        d["initial_c"] = (0.5 * rng.standard_normal((D, B, H))).astype(dtype)
    if lengths is not None:
        seq = rng.integers(1, T + 1, size=B).astype(np.int32)
        if lengths == "zero":
            seq[0], seq[-1] = 0, T  # a zero length, a full length, the rest random
        d["sequence_lens"] = seq
    return d


def rnn_model(onnx, op, attrs, data, *, fed=("X", "sequence_lens", "initial_h", "initial_c"),
              outputs=None, weights_as_inputs=False, opset=17, extra_inits=None):
    """One recurrent node: ``fed`` entries of ``data`` are graph inputs, W/R/B initializers
    (graph inputs with ``weights_as_inputs``), absent entries are empty input names."""
    from onnx import helper
    order = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    if op != "LSTM":
        order = order[:6]
    weight_names = ("W", "R", "B")
    feeds = {k: data[k] for k in order if k in data and (k in fed or
                                                         (weights_as_inputs and k in weight_names))}
    inits = {k: data[k] for k in weight_names if k in data and not weights_as_inputs}
    inits.update(extra_inits or {})
    names = [n if n in feeds or n in inits else "" for n in order]
    while names and names[-1] == "":
        names.pop()
    if outputs is None:
        outputs = ["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"]
    n = helper.make_node(op, names, outputs, name=f"{op.lower()}_node", **attrs)
    return make_model(onnx, [n], feeds, [o for o in outputs if o], opset, inits), feeds


@pytest.mark.parametrize("lengths", [None, "zero"], ids=["no_lengths", "lengths_with_zero"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("variant", list(NODE_VARIANTS))
def test_recurrent_node_matches_onnxruntime(onnx, onnxruntime, variant, direction, lengths):
    T, B, I, H = 7, 5, 4, 6
    op, attrs = attrs_for(variant, direction, H)
    rng = np.random.default_rng(seed_of("node", variant, direction, lengths))
    data = rnn_data(rng, op, D_OF[direction], T, B, I, H, lengths=lengths)
    model, feeds = rnn_model(onnx, op, attrs, data)
    want = ort_run(onnxruntime, model, feeds)
    got = ours_run(model, feeds)
    names = ["Y", "Y_h", "Y_c"]
    for name, g, w in zip(names, got, want):
        assert g.dtype == np.float32, name
        assert_rnn_close(g, w, f"{variant} {direction} {name}")
    if lengths == "zero":
        # ONNX semantics: an empty sequence has zero outputs AND a zero state, although
        # initial_h / initial_c are not zero
        for g in got[1:]:
            assert np.all(g[:, 0] == 0)
        assert np.all(got[0][:, :, 0] == 0)
        assert np.any(data["initial_h"][:, 0] != 0)


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("variant", list(NODE_VARIANTS))
def test_layout_1_matches_layout_0_transposed(onnx, onnxruntime, variant, direction):
    """ONNX Runtime rejects layout=1, so the layout-1 graph is checked against ONNX Runtime on
    the equivalent layout-0 graph, with inputs and outputs transposed."""
    T, B, I, H = 6, 4, 3, 5
    op, attrs0 = attrs_for(variant, direction, H)
    _, attrs1 = attrs_for(variant, direction, H, layout=1)
    rng = np.random.default_rng(seed_of("layout", variant, direction))
    data0 = rnn_data(rng, op, D_OF[direction], T, B, I, H)
    model0, feeds0 = rnn_model(onnx, op, attrs0, data0)
    want = ort_run(onnxruntime, model0, feeds0)

    data1 = dict(data0)
    data1["X"] = np.ascontiguousarray(data0["X"].transpose(1, 0, 2))              # [B, T, I]
    for k in ("initial_h", "initial_c"):
        if k in data0:
            data1[k] = np.ascontiguousarray(data0[k].transpose(1, 0, 2))          # [B, D, H]
    model1, feeds1 = rnn_model(onnx, op, attrs1, data1)
    got = ours_run(model1, feeds1)
    assert_rnn_close(got[0], want[0].transpose(2, 0, 1, 3), "Y [B, T, D, H]")
    for g, w, name in zip(got[1:], want[1:], ["Y_h", "Y_c"]):
        assert_rnn_close(g, w.transpose(1, 0, 2), f"{name} [B, D, H]")


@pytest.mark.parametrize("variant", list(NODE_VARIANTS))
def test_recurrent_node_without_optional_inputs_and_outputs(onnx, onnxruntime, variant):
    """No B, sequence_lens or initial states (zeros / full lengths), and the Y output omitted
    with an empty name: only Y_h is produced."""
    T, B, I, H = 5, 3, 4, 6
    op, attrs = attrs_for(variant, "bidirectional", H)
    rng = np.random.default_rng(seed_of("optional", variant))
    data = rnn_data(rng, op, 2, T, B, I, H, lengths=None)
    for k in ("B", "initial_h", "initial_c"):
        data.pop(k, None)
    model, feeds = rnn_model(onnx, op, attrs, data, outputs=["", "Y_h"])
    want = ort_run(onnxruntime, model, feeds)
    got = ours_run(model, feeds)
    assert len(got) == 1
    assert_rnn_close(got[0], want[0], "Y_h")


@pytest.mark.parametrize("variant", ["gru_lbr0", "lstm"])
def test_weights_computed_at_run_time(onnx, onnxruntime, variant):
    """W, R, B as graph inputs: converted on every call instead of packed at load."""
    T, B, I, H = 5, 3, 4, 6
    op, attrs = attrs_for(variant, "reverse", H)
    rng = np.random.default_rng(seed_of("dynamic", variant))
    data = rnn_data(rng, op, 1, T, B, I, H)
    model, feeds = rnn_model(onnx, op, attrs, data, weights_as_inputs=True)
    assert {"W", "R", "B"} <= set(feeds)
    want = ort_run(onnxruntime, model, feeds)
    got = ours_run(model, feeds)
    for name, g, w in zip(["Y", "Y_h", "Y_c"], got, want):
        assert_rnn_close(g, w, name)


@pytest.mark.parametrize("variant", list(NODE_VARIANTS))
def test_float64_graph_runs_in_float64(onnx, onnxruntime, variant):
    """ONNX Runtime runs recurrent nodes in float32 only: the float64 graph must give float64
    outputs that agree with ONNX Runtime's float32 run of the same numbers."""
    T, B, I, H = 6, 4, 3, 5
    op, attrs = attrs_for(variant, "bidirectional", H)
    rng = np.random.default_rng(seed_of("float64", variant))
    data64 = rnn_data(rng, op, 2, T, B, I, H, dtype=np.float64)
    data32 = {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in data64.items()}
    model32, feeds32 = rnn_model(onnx, op, attrs, data32)
    model64, feeds64 = rnn_model(onnx, op, attrs, data64)
    want = ort_run(onnxruntime, model32, feeds32)
    got = ours_run(model64, feeds64)
    for name, g, w in zip(["Y", "Y_h", "Y_c"], got, want):
        assert g.dtype == np.float64, name
        assert_rnn_close(g, w, name)


def test_zero_peepholes_are_accepted(onnx, onnxruntime):
    T, B, I, H = 5, 3, 4, 6
    rng = np.random.default_rng(seed_of("peepholes"))
    data = rnn_data(rng, "LSTM", 1, T, B, I, H)
    P = np.zeros((1, 3 * H), np.float32)
    model, feeds = rnn_model(onnx, "LSTM", dict(hidden_size=H), data, extra_inits={"P": P})
    assert list(model.graph.node[0].input)[-1] == "P"
    want = ort_run(onnxruntime, model, feeds)
    got = ours_run(model, feeds)
    for name, g, w in zip(["Y", "Y_h", "Y_c"], got, want):
        assert_rnn_close(g, w, name)


def test_recurrent_node_inside_glue(onnx, onnxruntime):
    """A GRU between glue ops: batch-first input transposed in, Y reshaped to [T, B, D*H] and
    transposed back, as the exporters write it; the zero initial state built from Shape."""
    from onnx import helper
    T, B, I, H = 7, 3, 5, 6
    rng = np.random.default_rng(seed_of("inside"))
    data = rnn_data(rng, "GRU", 2, T, B, I, H, lengths=None)
    x = np.ascontiguousarray(data["X"].transpose(1, 0, 2))
    nodes = [
        node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        node("Shape", ["xt"], ["shape"]),
        node("Gather", ["shape", "one"], ["batch"], axis=0),
        node("Unsqueeze", ["batch", "zero"], ["batch1"]),
        node("Concat", ["two", "batch1", "hid"], ["target"], axis=0),
        node("ConstantOfShape", ["target"], ["h0"]),
        helper.make_node("GRU", ["xt", "W", "R", "B", "", "h0"], ["Y", "Y_h"], name="gru",
                         hidden_size=H, direction="bidirectional", linear_before_reset=1),
        node("Transpose", ["Y"], ["Yt"], perm=[0, 2, 1, 3]),
        node("Reshape", ["Yt", "flat"], ["Yr"]),
        node("Transpose", ["Yr"], ["out"], perm=[1, 0, 2]),
    ]
    inits = {"W": data["W"], "R": data["R"], "B": data["B"], "one": np.array(1, np.int64),
             "zero": i64(0), "two": i64(2), "hid": i64(H), "flat": i64(0, 0, -1)}
    model = make_model(onnx, nodes, {"x": x}, ["out", "Y_h"], 17, inits)
    want = ort_run(onnxruntime, model, {"x": x})
    from gatedrnn.interop import from_onnx
    m = from_onnx(model)
    got = m(x)
    assert got[0].shape == (B, T, 2 * H)
    for name, g, w in zip(["out", "Y_h"], got, want):
        assert_rnn_close(g, w, name)
    # asking for one output runs only what it needs and returns just it
    (h,) = m.run(["Y_h"], {"x": x})
    assert_rnn_close(h, want[1], "Y_h alone")


# --------------------------------------------------------------------------------------------
# Canonical conversion: inverse, round trips, and torch's own parameters
# --------------------------------------------------------------------------------------------

CANONICAL_VARIANTS = {
    "rnn_tanh": ("rnn", {"nonlinearity": "tanh"}),
    "rnn_relu": ("rnn", {"nonlinearity": "relu"}),
    "gru_reset_after": ("gru", {"reset_after": True}),
    "gru_reset_before": ("gru", {"reset_after": False}),
    "lstm": ("lstm", {}),
}
CELL_G = {"rnn": 1, "gru": 3, "lstm": 4}


def random_canonical(rng, cell, opts, direction, H=4, I=3, bias=True, dtype=np.float32):
    D, G = D_OF[direction], CELL_G[cell]
    c = dict(cell=cell, hidden_size=H, direction=direction,
             reset_after=opts.get("reset_after"), nonlinearity=opts.get("nonlinearity"),
             weight_ih=rng.standard_normal((D, G * H, I)).astype(dtype),
             weight_hh=rng.standard_normal((D, G * H, H)).astype(dtype),
             bias_ih=rng.standard_normal((D, G * H)).astype(dtype) if bias else None,
             bias_hh=rng.standard_normal((D, G * H)).astype(dtype) if bias else None)
    return c


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("variant", list(CANONICAL_VARIANTS))
def test_canonical_round_trip(variant, direction, bias):
    from gatedrnn.interop.onnx import (
        _OP_OF_CELL, _canonical_to_onnx_rnn, _onnx_rnn_node_to_canonical,
    )
    cell, opts = CANONICAL_VARIANTS[variant]
    rng = np.random.default_rng(seed_of("round", variant, direction, bias))
    canon = random_canonical(rng, cell, opts, direction, bias=bias)
    W, R, B, attrs = _canonical_to_onnx_rnn(**canon)
    D, G, H = D_OF[direction], CELL_G[cell], canon["hidden_size"]
    assert W.shape == (D, G * H, 3) and R.shape == (D, G * H, H)
    assert (B is None) == (not bias) and (B is None or B.shape == (D, 2 * G * H))
    back = _onnx_rnn_node_to_canonical(_OP_OF_CELL[cell], attrs, W, R, B)
    assert back.keys() == canon.keys()
    for k, v in canon.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(back[k], v, err_msg=k)
        elif k == "nonlinearity" and v is None:
            assert back[k] in (None, "tanh") if cell == "rnn" else back[k] is None
        else:
            assert back[k] == v, k
    # and the other way: ONNX -> canonical -> ONNX
    W2, R2, B2, attrs2 = _canonical_to_onnx_rnn(**back)
    np.testing.assert_array_equal(W2, W)
    np.testing.assert_array_equal(R2, R)
    if bias:
        np.testing.assert_array_equal(B2, B)
    assert attrs2 == attrs


@pytest.mark.parametrize("variant", list(CANONICAL_VARIANTS))
def test_canonical_to_onnx_runs_like_reference(onnx, onnxruntime, variant):
    """The inverse conversion on its own: canonical weights written as an ONNX node by
    _canonical_to_onnx_rnn must make ONNX Runtime compute what gatedrnn.reference computes with
    the canonical weights."""
    import gatedrnn.reference as ref
    from gatedrnn.interop.onnx import _OP_OF_CELL, _canonical_to_onnx_rnn
    from onnx import helper
    cell, opts = CANONICAL_VARIANTS[variant]
    T, B, I, H = 6, 3, 4, 5
    rng = np.random.default_rng(seed_of("inverse", variant))
    canon = random_canonical(rng, cell, opts, "bidirectional", H=H, I=I)
    k = 1.0 / np.sqrt(H)
    for key in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        canon[key] = (canon[key] * k / 2).astype(np.float32)
    W, R, Bv, attrs = _canonical_to_onnx_rnn(**canon)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    op = _OP_OF_CELL[cell]
    n = helper.make_node(op, ["X", "W", "R", "B"], ["Y", "Y_h"], **attrs)
    model = make_model(onnx, [n], {"X": x}, ["Y", "Y_h"], 17, {"W": W, "R": R, "B": Bv})
    Y, Y_h = ort_run(onnxruntime, model, {"X": x})
    fn = getattr(ref, cell)
    ys, hs = [], []
    for d in range(2):  # the reference runs one direction per call
        out = fn(x.astype(np.float64), *(canon[key][d].astype(np.float64) for key in
                                         ("weight_ih", "weight_hh", "bias_ih", "bias_hh")),
                 reverse=d == 1, **opts)
        ys.append(out.y)
        hs.append(out.h_n)
    assert_rnn_close(Y, np.stack(ys, axis=1), "Y [T, D, B, H]")
    assert_rnn_close(Y_h, np.stack(hs), "Y_h [D, B, H]")


def _torch_export(torch, module, args, path, dynamo):
    """torch.onnx.export quietly (the dynamo exporter prints progress, both exporters warn about
    fixed batch sizes and tracing)."""
    kwargs = {} if dynamo else {"opset_version": 17}
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=dynamo, **kwargs)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_canonical_weights_equal_torch_parameters(torch, onnx, tmp_path, cls):
    """The legacy exporter writes torch's parameters as W/R/B; converting them back must give
    torch's parameters exactly (torch's layout is the canonical one), layer by layer."""
    from gatedrnn.interop.onnx import _onnx_rnn_node_to_canonical
    from onnx import numpy_helper
    torch.manual_seed(seed_of("torch_weights", cls) % 2**31)
    T, B, I, H = 4, 2, 3, 5
    m = getattr(torch.nn, cls)(I, H, num_layers=2, bidirectional=True).eval()
    _torch_export(torch, m, (torch.randn(T, B, I),), tmp_path / "m.onnx", dynamo=False)
    proto = onnx.load(str(tmp_path / "m.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    nodes = [n for n in proto.graph.node if n.op_type == cls]
    assert len(nodes) == 2
    for layer, n in enumerate(nodes):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        W, R, Bv = (inits[name] for name in n.input[1:4])
        canon = _onnx_rnn_node_to_canonical(cls, attrs, W, R, Bv)
        assert canon["direction"] == "bidirectional"
        if cls == "GRU":
            assert canon["reset_after"] is True
        for key in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            want = np.stack([getattr(m, f"{key}_l{layer}").detach().numpy(),
                             getattr(m, f"{key}_l{layer}_reverse").detach().numpy()])
            np.testing.assert_array_equal(canon[key], want, err_msg=f"layer {layer} {key}")


# --------------------------------------------------------------------------------------------
# Files exported by torch.onnx.export
# --------------------------------------------------------------------------------------------

EXPORT_CASES = (
    # legacy exporter: every combination (fast)
    [(cls, bf, st, False) for cls in ("LSTM", "GRU", "RNN") for bf in (False, True)
     for st in (False, True)]
    # dynamo exporter (~2 s per export): both batch_first values and both state options
    + [(cls, bf, bf, True) for cls in ("LSTM", "GRU", "RNN") for bf in (False, True)]
)


@pytest.mark.parametrize(
    "cls,batch_first,with_state,dynamo", EXPORT_CASES,
    ids=[f"{c}-{'batch_first' if bf else 'time_major'}-{'h0' if st else 'no_h0'}-"
         f"{'dynamo' if dy else 'legacy'}" for c, bf, st, dy in EXPORT_CASES])
def test_torch_export(torch, onnx, onnxruntime, tmp_path, cls, batch_first, with_state, dynamo):
    if dynamo:
        # torch.onnx.export(dynamo=True) needs onnxscript (fails instead of skipping in CI)
        require_peer("onnxscript")
    T, B, I, H = 7, 3, 5, 6
    torch.manual_seed(seed_of("export", cls, batch_first, with_state, dynamo) % 2**31)
    m = getattr(torch.nn, cls)(I, H, num_layers=2, bidirectional=True,
                               batch_first=batch_first).eval()
    x = torch.randn(B, T, I) if batch_first else torch.randn(T, B, I)
    h0 = 0.5 * torch.randn(4, B, H)
    c0 = 0.5 * torch.randn(4, B, H)
    state = ((h0, c0) if cls == "LSTM" else h0) if with_state else None
    args = (x, state) if with_state else (x,)
    path = tmp_path / f"{cls}.onnx"
    _torch_export(torch, m, args, path, dynamo)

    from gatedrnn.interop import from_onnx
    model = from_onnx(path)
    arrays = [x.numpy()] + ([h0.numpy()] + ([c0.numpy()] if cls == "LSTM" else [])
                            if with_state else [])
    assert len(model.input_names) == len(arrays), model
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    if cls != "RNN":
        assert cls in ops, f"expected {cls} nodes (run on gatedrnn's core), got {sorted(ops)}"

    got = model(*arrays)
    want = ort_run(onnxruntime, onnx.load(str(path)), dict(zip(model.input_names, arrays)))
    with torch.no_grad():
        ty, tstate = m(*args)
    torch_out = [ty.numpy()] + ([t.numpy() for t in tstate] if cls == "LSTM"
                                else [tstate.numpy()])
    assert len(got) == len(want) == len(torch_out)
    for k, (g, w, t) in enumerate(zip(got, want, torch_out)):
        assert g.dtype == np.float32
        assert_rnn_close(g, w, f"output {k} vs onnxruntime")
        assert_rnn_close(g, t, f"output {k} vs torch")


# --------------------------------------------------------------------------------------------
# Errors name what they are about
# --------------------------------------------------------------------------------------------


def _from_onnx(model):
    from gatedrnn.interop import from_onnx
    return from_onnx(model)


def test_unsupported_op_named_at_load(onnx):
    from onnx import helper
    nodes = [node("Identity", ["x"], ["a"]),
             helper.make_node("HardSigmoid", ["a"], ["b"], name="my_hard_sigmoid"),
             helper.make_node("Erf", ["b"], ["y"])]
    model = make_model(onnx, nodes, {"x": f32(2, 3)}, ["y"])
    with pytest.raises(NotImplementedError) as e:
        _from_onnx(model)
    msg = str(e.value)
    assert "'HardSigmoid'" in msg and "'my_hard_sigmoid'" in msg
    assert "'Erf'" in msg and "#2" in msg  # an unnamed node is named by position


def test_subgraph_node_named_at_load(onnx):
    from onnx import TensorProto, helper
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["o"])], "branch", [],
                               [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)])
    n = helper.make_node("If", ["c"], ["y"], name="the_if", then_branch=branch,
                         else_branch=branch)
    model = make_model(onnx, [n], {"c": np.array(True), "x": f32(2)}, ["y"])
    with pytest.raises(NotImplementedError, match=r"If node 'the_if'.*subgraph"):
        _from_onnx(model)


def test_custom_domain_named_at_load(onnx):
    from onnx import helper
    n = helper.make_node("FusedGemm", ["x"], ["y"], name="fg", domain="com.microsoft")
    model = make_model(onnx, [n], {"x": f32(2)}, ["y"])
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(NotImplementedError, match=r"FusedGemm node 'fg'.*com\.microsoft"):
        _from_onnx(model)


@pytest.mark.parametrize("op,attrs,needle", [
    ("LSTM", {"clip": 3.0}, "'clip'"),
    ("LSTM", {"input_forget": 1}, "'input_forget'"),
    ("LSTM", {"activations": ["Sigmoid", "Tanh", "Relu"]}, "'activations'"),
    ("LSTM", {"activation_alpha": [0.5]}, "'activation_alpha'"),
    ("GRU", {"activations": ["HardSigmoid", "Tanh"]}, "'activations'"),
    ("GRU", {"activation_beta": [0.5]}, "'activation_beta'"),
    ("RNN", {"activations": ["Sigmoid"]}, "'activations'"),
    ("RNN", {"direction": "bidirectional", "activations": ["Tanh", "Relu"]}, "'activations'"),
    ("RNN", {"foo": 1}, "'foo'"),
    ("GRU", {"direction": "sideways"}, "'direction'"),
    ("GRU", {"linear_before_reset": 2}, "'linear_before_reset'"),
    ("RNN", {"layout": 2}, "'layout'"),
])
def test_unsupported_recurrent_attribute_named_at_load(onnx, op, attrs, needle):
    from onnx import helper
    H, I = 3, 2
    D = 2 if attrs.get("direction") == "bidirectional" else 1
    G = GATES[op]
    inits = {"W": np.zeros((D, G * H, I), np.float32), "R": np.zeros((D, G * H, H), np.float32)}
    n = helper.make_node(op, ["X", "W", "R"], ["Y"], name="rec", hidden_size=H, **attrs)
    model = make_model(onnx, [n], {"X": f32(4, 2, I)}, ["Y"], 17, inits)
    with pytest.raises((NotImplementedError, ValueError)) as e:
        _from_onnx(model)
    assert needle in str(e.value) and "'rec'" in str(e.value), str(e.value)


def test_nonzero_peepholes_named_at_load(onnx):
    from onnx import helper
    H, I = 3, 2
    inits = {"W": np.zeros((1, 4 * H, I), np.float32), "R": np.zeros((1, 4 * H, H), np.float32),
             "P": np.full((1, 3 * H), 0.1, np.float32)}
    n = helper.make_node("LSTM", ["X", "W", "R", "", "", "", "", "P"], ["Y"], name="peep",
                         hidden_size=H)
    model = make_model(onnx, [n], {"X": f32(4, 2, I)}, ["Y"], 17, inits)
    with pytest.raises(NotImplementedError, match=r"LSTM node 'peep'.*\bP\b.*peephole"):
        _from_onnx(model)


def test_hidden_size_mismatch_named_at_load(onnx):
    from onnx import helper
    inits = {"W": np.zeros((1, 3 * 4, 2), np.float32), "R": np.zeros((1, 3 * 4, 4), np.float32)}
    n = helper.make_node("GRU", ["X", "W", "R"], ["Y"], name="g", hidden_size=5)
    model = make_model(onnx, [n], {"X": f32(4, 2, 2)}, ["Y"], 17, inits)
    with pytest.raises(ValueError, match=r"GRU node 'g'.*hidden_size.*5.*H = 4"):
        _from_onnx(model)


def test_unsupported_cast_target_named_at_load(onnx):
    model = make_model(onnx, [node("Cast", ["x"], ["y"], to=8)], {"x": f32(2)}, ["y"])  # STRING
    with pytest.raises(NotImplementedError, match=r"Cast node 'cast_y'.*STRING"):
        _from_onnx(model)


@pytest.mark.parametrize("case", [
    # an attribute the op's version at this opset does not define
    ("ArgMax", {"select_last_index": 1}, 11, r"ArgMax node 'n'.*\['select_last_index'\].*opset 11"),
    ("GatherND", {"batch_dims": 1}, 11, r"GatherND node 'n'.*\['batch_dims'\]"),
    ("ReduceSum", {"axes": [1]}, 13, r"ReduceSum node 'n'.*\['axes'\].*opset 13"),
    ("ReduceMax", {"noop_with_empty_axes": 1}, 17, r"ReduceMax node 'n'.*noop_with_empty_axes"),
    ("Softmax", {"axes": [1]}, 13, r"Softmax node 'n'.*\['axes'\]"),
    # an op that does not exist yet at the model's opset
    ("LessOrEqual", {}, 11, r"LessOrEqual node 'n'.*does not exist at opset 11"),
    ("GreaterOrEqual", {}, 11, r"GreaterOrEqual node 'n'.*does not exist at opset 11"),
], ids=lambda c: f"{c[0]}-opset{c[2]}")
def test_op_form_of_another_opset_fails_at_load(onnx, case):
    op, attrs, opset, match = case
    from onnx import helper
    inputs = ["x", "x"] if op.endswith("OrEqual") else ["x", "i"] if op == "GatherND" else ["x"]
    n = helper.make_node(op, inputs, ["y"], name="n", **attrs)
    model = make_model(onnx, [n], {"x": f32(2, 3)}, ["y"], opset,
                       {"i": i64(0, 1).reshape(2, 1)} if op == "GatherND" else None)
    with pytest.raises(ValueError, match=match):
        _from_onnx(model)


def test_reduction_axes_input_before_opset_18_fails_at_load(onnx):
    model = make_model(onnx, [node("ReduceMax", ["x", "a"], ["y"])], {"x": f32(2, 3)}, ["y"],
                       17, {"a": i64(1)})
    with pytest.raises(ValueError, match=r"ReduceMax node 'reducemax_y'.*2 inputs"):
        _from_onnx(model)


@pytest.mark.parametrize("op,feeds,attrs,opset,error,match", [
    ("Max", {"a": i64(1, 2), "b": i64(3, 0)}, {}, 11, TypeError,
     r"Max node.*int64 is not allowed.*opset 11.*float16, float32, float64"),
    ("Min", {"a": f32(2), "b": f32(2).astype(np.float64)}, {}, 13, TypeError,
     r"Min node.*one dtype"),
    ("Less", {"a": np.array([True]), "b": np.array([False])}, {}, 13, TypeError,
     r"Less node.*bool is not allowed"),
    ("And", {"a": np.array([1], np.int64), "b": np.array([True])}, {}, 13, TypeError,
     r"And node.*'a'.*int64"),
    ("Softmax", {"x": i64(1, 2)}, {}, 13, TypeError, r"Softmax node.*int64"),
    ("ReduceSum", {"x": np.array([1, 2], np.int8)}, {}, 13, TypeError,
     r"ReduceSum node.*data: dtype int8"),
    ("ReduceMax", {"x": np.array([True])}, {}, 18, TypeError, r"ReduceMax node.*bool"),
    ("GatherND", {"x": f32(3, 2), "i": np.array([[1]], np.int32)}, {}, 13, TypeError,
     r"GatherND node.*indices.*int64.*int32"),
    ("GatherND", {"x": f32(3, 2), "i": i64(3).reshape(1, 1)}, {}, 13, ValueError,
     r"GatherND node.*\[-3, 2\].*\[3, 3\]"),
    ("GatherND", {"x": f32(3, 2), "i": i64(0, 1, 1).reshape(1, 3)}, {}, 13, ValueError,
     r"GatherND node.*last dimension of indices"),
    ("GatherND", {"x": f32(3, 2), "i": i64(0, 1).reshape(2, 1)}, {"batch_dims": 1}, 13,
     ValueError, r"GatherND node.*batch_dims=1.*differ"),
    ("ArgMax", {"x": np.zeros((2, 0), np.float32)}, {"axis": 1}, 13, ValueError,
     r"ArgMax node.*axis 1 of size 0"),
    ("ArgMin", {"x": f32(2, 3)}, {"axis": 2}, 13, ValueError, r"ArgMin node.*axis 2"),
    ("Tile", {"x": f32(2, 3), "r": i64(2)}, {}, 13, ValueError,
     r"Tile node.*repeats \[2\] must be 2"),
    ("Flatten", {"x": f32(2, 3)}, {"axis": 3}, 13, ValueError, r"Flatten node.*axis 3"),
    ("Pow", {"a": i64(2), "b": i64(2)}, {}, 11, TypeError, r"Pow node.*X: dtype int64"),
    ("Neg", {"x": np.array([1], np.uint8)}, {}, 13, TypeError, r"Neg node.*uint8"),
])
def test_new_glue_op_errors_name_the_node(onnx, op, feeds, attrs, opset, error, match):
    model = make_model(onnx, [node(op, list(feeds), ["y"], **attrs)], feeds, ["y"], opset)
    m = _from_onnx(model)
    with pytest.raises(error, match=match):
        m.run(None, feeds)


def test_graph_not_in_topological_order(onnx):
    nodes = [node("Identity", ["a"], ["y"]), node("Relu", ["x"], ["a"])]
    model = make_model(onnx, nodes, {"x": f32(2)}, ["y"])
    with pytest.raises(ValueError, match=r"Identity node .*'a'.*topological"):
        _from_onnx(model)


def test_run_time_errors_name_the_input(onnx):
    T, B, I, H = 4, 2, 3, 5
    rng = np.random.default_rng(seed_of("runtime_errors"))
    data = rnn_data(rng, "GRU", 1, T, B, I, H)
    model, feeds = rnn_model(onnx, "GRU", dict(hidden_size=H), data)
    m = _from_onnx(model)
    with pytest.raises(ValueError, match=r"missing input.*'initial_h'"):
        m.run(None, {k: v for k, v in feeds.items() if k != "initial_h"})
    with pytest.raises(TypeError, match=r"'X'.*float32.*float64"):
        m.run(None, dict(feeds, X=feeds["X"].astype(np.float64)))
    with pytest.raises(ValueError, match=r"'X'.*expected shape \(4, 2, 3\)"):
        m.run(None, dict(feeds, X=feeds["X"][:, :, :2]))
    with pytest.raises(ValueError, match=r"'nope'.*not inputs"):
        m.run(None, dict(feeds, nope=1))
    with pytest.raises(ValueError, match=r"'Z'.*not outputs"):
        m.run(["Z"], feeds)
    bad = dict(feeds, sequence_lens=np.array([1, T + 1], np.int32))
    with pytest.raises(ValueError, match=r"GRU node 'gru_node'.*sequence_lens.*\[0, T=4\]"):
        m.run(None, bad)
    with pytest.raises(TypeError, match=r"given both positionally and by name"):
        m(feeds["X"], X=feeds["X"])


def test_missing_onnx_is_a_clear_import_error(monkeypatch):
    from gatedrnn.interop import from_onnx
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install onnx"):
        from_onnx("model.onnx")


def test_bad_argument_type():
    from gatedrnn.interop import from_onnx
    pytest.importorskip("onnx")
    with pytest.raises(TypeError, match=r"path_or_model.*int"):
        from_onnx(3)


def test_single_input_call_and_metadata(onnx, onnxruntime):
    T, B, I, H = 4, 2, 3, 5
    rng = np.random.default_rng(seed_of("metadata"))
    data = rnn_data(rng, "LSTM", 1, T, B, I, H, lengths=None)
    model, feeds = rnn_model(onnx, "LSTM", dict(hidden_size=H), data, fed=("X",),
                             outputs=["Y_out"])
    m = _from_onnx(model)
    assert m.input_names == ("X",) and m.output_names == ("Y_out",) and m.opset == 17
    assert m.inputs[0].dtype == np.float32 and m.inputs[0].shape == (T, B, I)
    y = m(feeds["X"])  # one output: the array itself
    assert isinstance(y, np.ndarray) and y.shape == (T, 1, B, H)
    np.testing.assert_array_equal(y, m(X=feeds["X"]))
    (want,) = ort_run(onnxruntime, model, feeds)
    assert_rnn_close(y, want, "Y")
    assert "OnnxModel" in repr(m)
