"""Forward parity of gatedrnn.functional with ONNX Runtime's RNN / GRU / LSTM nodes (float32).

The model is one node built with onnx.helper; weights are converted from the canonical
(PyTorch) layout as /work/shared/reference/weight-layouts.md says:
  GRU  ours [r | z | n] -> ONNX [z | r | h]; reset_after=False <-> linear_before_reset=0,
       reset_after=True <-> linear_before_reset=1
  LSTM ours [i | f | g | o] -> ONNX [i | o | f | c]
  RNN  same single block; activations ["Tanh"] or ["Relu"]
  B = [Wb | Rb] concatenated, shape (1, 2*G*H).
sequence_lens uses lengths >= 1 only: for a length of 0 ONNX Runtime returns Y_h = 0 where we
return h0 (DESIGN.md section 2), so those rows are not comparable.

Tolerance: rtol 1e-5 and the conftest absolute term, doubled (both sides round in float32).
"""

import numpy as np
import pytest

import gatedrnn.functional as F
from conftest import (
    VARIANTS,
    assert_close,
    forward,
    grad_reduction_lengths,
    make_inputs,
    seed_of,
)

pytestmark = pytest.mark.peers

OPSET = 17
IR_VERSION = 8  # opset 17 needs IR >= 8; keep it low so any recent onnxruntime loads it


def _blocks(a, H, order):
    """Reorder the gate blocks of ``a`` (rows blocked by gate) into ``order``."""
    return np.concatenate([a[k * H:(k + 1) * H] for k in order], axis=0)


# position of each ONNX gate block in our canonical layout
ONNX_ORDER = {"rnn": [0], "gru": [1, 0, 2], "lstm": [0, 3, 1, 2]}


def build_model(onnx, variant, T, B, I, H, kw, reverse):
    from onnx import TensorProto, helper, numpy_helper

    order = ONNX_ORDER[variant.cell]
    G = variant.G
    W = _blocks(kw["weight_ih"], H, order)[None]
    Rm = _blocks(kw["weight_hh"], H, order)[None]
    if kw["bias_ih"] is not None:
        Bv = np.concatenate([_blocks(kw["bias_ih"], H, order),
                             _blocks(kw["bias_hh"], H, order)])[None]
    else:
        Bv = np.zeros((1, 2 * G * H), np.float32)
    inits = [numpy_helper.from_array(W.astype(np.float32), "W"),
             numpy_helper.from_array(Rm.astype(np.float32), "R"),
             numpy_helper.from_array(Bv.astype(np.float32), "B")]
    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("X", f32, [T, B, I]),
              helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [B]),
              helper.make_tensor_value_info("initial_h", f32, [1, B, H])]
    node_inputs = ["X", "W", "R", "B", "sequence_lens", "initial_h"]
    outputs = [helper.make_tensor_value_info("Y", f32, [T, 1, B, H]),
               helper.make_tensor_value_info("Y_h", f32, [1, B, H])]
    node_outputs = ["Y", "Y_h"]
    attrs = dict(hidden_size=H, direction="reverse" if reverse else "forward")
    if variant.cell == "rnn":
        op = "RNN"
        attrs["activations"] = ["Tanh" if variant.opts["nonlinearity"] == "tanh" else "Relu"]
    elif variant.cell == "gru":
        op = "GRU"
        attrs["linear_before_reset"] = 1 if variant.opts["reset_after"] else 0
    else:
        op = "LSTM"
        inputs.append(helper.make_tensor_value_info("initial_c", f32, [1, B, H]))
        node_inputs.append("initial_c")
        outputs.append(helper.make_tensor_value_info("Y_c", f32, [1, B, H]))
        node_outputs.append("Y_c")
    node = helper.make_node(op, node_inputs, node_outputs, **attrs)
    graph = helper.make_graph([node], f"gatedrnn_{variant.name}", inputs, outputs,
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def run_onnx(onnx, ort, variant, kw, reverse):
    T, B, I = kw["x"].shape
    H = kw["weight_hh"].shape[1]
    model = build_model(onnx, variant, T, B, I, H, kw, reverse)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    lengths = kw["lengths"] if kw["lengths"] is not None else np.full(B, T)
    zeros = np.zeros((B, H), np.float32)
    feeds = {"X": kw["x"], "sequence_lens": lengths.astype(np.int32),
             "initial_h": (kw["h0"] if kw["h0"] is not None else zeros)[None]}
    if variant.is_lstm:
        feeds["initial_c"] = (kw["c0"] if kw["c0"] is not None else zeros)[None]
    res = sess.run(None, feeds)
    out = {"y": res[0][:, 0], "h_n": res[1][0]}
    if variant.is_lstm:
        out["c_n"] = res[2][0]
    return out


CASES = {
    "plain": dict(),
    "lengths": dict(lengths="nozero"),
    "reverse": dict(reverse=True),
    "reverse_lengths": dict(reverse=True, lengths="nozero"),
    "no_h0_no_bias": dict(h0=False, c0=False, bias=False),
    "large_reverse_lengths": dict(T=20, B=9, I=33, H=40, lengths="nozero", reverse=True),
}


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_onnxruntime_parity(onnx, onnxruntime, variant, case):
    opts = dict(CASES[case])
    T, B, I, H = (opts.pop(k, d) for k, d in (("T", 7), ("B", 5), ("I", 6), ("H", 11)))
    reverse = opts.pop("reverse", False)
    rng = np.random.default_rng(seed_of("onnx", variant.name, case))
    kw = make_inputs(rng, variant, T, B, I, H, np.float32, **opts)
    if kw["lengths"] is not None:
        assert kw["lengths"].min() >= 1
    ours = forward(F, variant, kw, reverse=reverse)
    theirs = run_onnx(onnx, onnxruntime, variant, kw, reverse)
    K = grad_reduction_lengths(variant, T, B, I, H)
    for name, want in theirs.items():
        got = getattr(ours, name)
        assert got.dtype == np.float32
        assert_close(got, want, dtype=np.float32, K=K[name], name=name, factor=2.0)
