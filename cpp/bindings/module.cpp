// gatedrnn._core: the pybind11 module. Validation, NumPy <-> pointers, GIL release around the
// compute. gatedrnn.functional is the documented API on top of it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>

#include "arrays.h"
#include "gatedrnn/gemm.h"
#include "gatedrnn/gru.h"
#include "gatedrnn/lstm.h"
#include "gatedrnn/rnn.h"
#include "gatedrnn/memory.h"
#include "gatedrnn/threads.h"
#include "isa/dispatch.h"
#include "packed.h"
#include "parallel.h"

namespace gatedrnn::bindings {
namespace {

const char* family_of(CellType cell) {
    switch (cell) {
        case CellType::rnn_tanh:
        case CellType::rnn_relu: return "rnn";
        case CellType::lstm: return "lstm";
        default: return "gru";
    }
}

CellType parse_cell(const std::string& family, const std::string& nonlinearity, bool reset_after) {
    if (family == "lstm") return CellType::lstm;
    if (family == "gru") return reset_after ? CellType::gru_reset_after : CellType::gru_reset_before;
    if (family == "rnn") {
        if (nonlinearity == "tanh") return CellType::rnn_tanh;
        if (nonlinearity == "relu") return CellType::rnn_relu;
        throw ValueError("nonlinearity: expected 'tanh' or 'relu', got '" + nonlinearity + "'");
    }
    throw ValueError("cell: expected 'rnn', 'gru' or 'lstm', got '" + family + "'");
}

int64_t workspace_elements(CellType cell, const Sequence& seq) {
    switch (cell) {
        case CellType::rnn_tanh:
        case CellType::rnn_relu: return rnn_workspace_size(seq);
        case CellType::lstm: return lstm_workspace_size(seq);
        default: return gru_workspace_size(seq);
    }
}

template <typename T>
void compute_forward(CellType cell, T* y, T* h_n, T* c_n, const T* x, const Weights<T>& w,
                     const T* h0, const T* c0, const T* mask, T* ws, const Sequence& seq,
                     const PackedLayer<T>* packed) {
    switch (cell) {
        case CellType::rnn_tanh: rnn_forward(y, h_n, x, w, h0, mask, ws, seq, Activation::tanh, packed); break;
        case CellType::rnn_relu: rnn_forward(y, h_n, x, w, h0, mask, ws, seq, Activation::relu, packed); break;
        case CellType::lstm: lstm_forward(y, h_n, c_n, x, w, h0, c0, mask, ws, seq, packed); break;
        case CellType::gru_reset_after: gru_forward(y, h_n, x, w, h0, mask, ws, seq, true, packed); break;
        case CellType::gru_reset_before: gru_forward(y, h_n, x, w, h0, mask, ws, seq, false, packed); break;
    }
}

template <typename T>
void compute_backward(CellType cell, T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih,
                      T* db_hh, T* dh_seq, const T* dy, const T* dh_n, const T* dc_n, const T* x,
                      const Weights<T>& w, const T* mask, const T* ws, const Sequence& seq) {
    switch (cell) {
        case CellType::rnn_tanh:
        case CellType::rnn_relu:
            rnn_backward(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dh_seq, dy, dh_n, x, w, mask, ws, seq,
                         cell == CellType::rnn_relu ? Activation::relu : Activation::tanh);
            break;
        case CellType::lstm:
            lstm_backward(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dh_seq, dy, dh_n, dc_n, x, w,
                          mask, ws, seq);
            break;
        case CellType::gru_reset_after:
        case CellType::gru_reset_before:
            gru_backward(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dh_seq, dy, dh_n, x, w, mask, ws, seq,
                         cell == CellType::gru_reset_after);
            break;
    }
}

std::string shape_legend(int D, const std::string& inner) {
    return D == 1 ? "(" + inner + ")" : "(D, " + inner + ")";
}
// " with <notes>", naming D first for a bidirectional layer.
std::string with_notes(int D, const std::string& notes) {
    return D == 1 ? " with " + notes : " with D = 2 (bidirectional), " + notes;
}
std::vector<int64_t> with_d(int D, std::vector<int64_t> dims) {
    if (D == 2) dims.insert(dims.begin(), 2);
    return dims;
}

// One layer's weights, checked and C-contiguous, for D directions (a leading axis of 2 when
// bidirectional). From four arrays, or from a PackedWeights handle (then also pre-packed).
struct LayerWeights {
    CellType cell = CellType::lstm;
    py::dtype dtype;
    int64_t I = 0, H = 0;
    int D = 1;
    py::array w_ih, w_hh;
    std::optional<py::array> b_ih, b_hh;
    std::shared_ptr<void> packed[2];  // PackedLayer<T> per direction, handles only

    template <typename T>
    Weights<T> direction(int d) const {
        const int64_t GH = gate_count(cell) * H;
        Weights<T> w;
        w.w_ih = static_cast<const T*>(w_ih.data()) + d * GH * I;
        w.w_hh = static_cast<const T*>(w_hh.data()) + d * GH * H;
        w.b_ih = b_ih ? static_cast<const T*>(b_ih->data()) + d * GH : nullptr;
        w.b_hh = b_hh ? static_cast<const T*>(b_hh->data()) + d * GH : nullptr;
        return w;
    }
    template <typename T>
    const PackedLayer<T>* prepared(int d) const {
        return static_cast<const PackedLayer<T>*>(packed[d].get());
    }
};

// Checks four weight arrays. dtype: the dtype they must have (that of x), or null to take
// weight_hh's. I: the input size they must have (from x), or -1 to take weight_ih's.
LayerWeights check_weights(CellType cell, int D, py::handle w_ih_obj, py::handle w_hh_obj,
                           py::handle b_ih_obj, py::handle b_hh_obj, const py::dtype* dtype_in,
                           int64_t I) {
    LayerWeights lw;
    lw.cell = cell;
    lw.D = D;
    const int64_t G = gate_count(cell);
    const std::string g_note = "G = " + std::to_string(G) + " for " + cell_name(cell);
    if (w_hh_obj.is_none())
        throw TypeError("weight_hh: missing; pass the " + shape_legend(D, "G*H, H") +
                        " array, or a PackedWeights handle (gatedrnn.functional.pack_weights) as weight_ih");
    py::array w_hh = to_array(w_hh_obj, "weight_hh");
    if (dtype_in) {
        check_same_dtype(w_hh, "weight_hh", *dtype_in);
        lw.dtype = *dtype_in;
    } else {
        if (!is_float32(w_hh.dtype()) && !is_float64(w_hh.dtype()))
            throw TypeError("weight_hh: expected a float32 or float64 array, got dtype " + dtype_name(w_hh.dtype()));
        lw.dtype = w_hh.dtype();
    }
    check_ndim(w_hh, "weight_hh", D + 1, shape_legend(D, "G*H, H") + (D == 2 ? with_notes(D, g_note) : ""));
    if (D == 2 && w_hh.shape(0) != 2)
        throw ValueError("weight_hh: expected shape (D, G*H, H) with D = 2 (bidirectional), got " +
                         shape_string(shape_of(w_hh)));
    lw.H = w_hh.shape(D);
    if (lw.H == 0)
        throw ValueError("weight_hh: the hidden size H (its last dimension) must be >= 1, got shape " +
                         shape_string(shape_of(w_hh)));
    const int64_t H = lw.H, GH = G * H;
    const std::string h_note = ", H = " + std::to_string(H) + " from weight_hh";
    check_shape(w_hh, "weight_hh", with_d(D, {GH, H}), shape_legend(D, "G*H, H") + with_notes(D, g_note + h_note));

    py::array w_ih = to_array(w_ih_obj, "weight_ih");
    check_same_dtype(w_ih, "weight_ih", lw.dtype);
    check_ndim(w_ih, "weight_ih", D + 1, shape_legend(D, "G*H, I") + (D == 2 ? with_notes(D, g_note) : ""));
    lw.I = I >= 0 ? I : w_ih.shape(D);
    check_shape(w_ih, "weight_ih", with_d(D, {GH, lw.I}),
                shape_legend(D, "G*H, I") + with_notes(D, g_note + h_note + ", I = " +
                    std::to_string(lw.I) + (I >= 0 ? " from x" : " from weight_ih")));
    const std::string bias_legend = shape_legend(D, "G*H,") + with_notes(D, g_note + h_note);
    lw.b_ih = optional_array(b_ih_obj, "bias_ih", lw.dtype, with_d(D, {GH}), bias_legend);
    lw.b_hh = optional_array(b_hh_obj, "bias_hh", lw.dtype, with_d(D, {GH}), bias_legend);
    lw.w_ih = contiguous(w_ih);
    lw.w_hh = contiguous(w_hh);
    return lw;
}

// gatedrnn.functional.PackedWeights: an immutable, pre-packed copy of one layer's weights.
struct PackedWeights {
    LayerWeights layer;
};

py::array frozen_copy(const py::array& a) {
    py::array c = py::module_::import("numpy").attr("array")(a, py::arg("copy") = true);
    c.attr("setflags")(py::arg("write") = false);
    return c;
}

template <typename T>
void prepare(LayerWeights& lw) {
    for (int d = 0; d < lw.D; ++d) {
        auto layer = std::make_shared<PackedLayer<T>>();
        const Weights<T> w = lw.direction<T>(d);
        PackedLayer<T>* out = layer.get();
        const int64_t I = lw.I, H = lw.H;
        {
            py::gil_scoped_release release;
            pack_layer(*out, w, lw.cell, I, H);
        }
        lw.packed[d] = layer;
    }
}

PackedWeights pack_weights(const std::string& family, py::handle w_ih, py::handle w_hh,
                           py::handle b_ih, py::handle b_hh, const std::string& nonlinearity,
                           py::handle reset_after_obj, py::handle bidirectional_obj) {
    const bool reset_after = to_flag(reset_after_obj, "reset_after");
    const bool bidirectional = to_flag(bidirectional_obj, "bidirectional");
    const CellType cell = parse_cell(family, nonlinearity, reset_after);
    PackedWeights handle{check_weights(cell, bidirectional ? 2 : 1, w_ih, w_hh, b_ih, b_hh, nullptr, -1)};
    LayerWeights& lw = handle.layer;
    lw.w_ih = frozen_copy(lw.w_ih);
    lw.w_hh = frozen_copy(lw.w_hh);
    if (lw.b_ih) lw.b_ih = frozen_copy(*lw.b_ih);
    if (lw.b_hh) lw.b_hh = frozen_copy(*lw.b_hh);
    if (is_float32(lw.dtype))
        prepare<float>(lw);
    else
        prepare<double>(lw);
    return handle;
}

// What backward needs from a forward call in training mode. Holds references to the (possibly
// copied) inputs: changing them in place before backward is undefined.
struct Context {
    LayerWeights layer;
    Sequence seq;
    py::array x, workspace;
    std::optional<py::array> mask;
    std::optional<py::array_t<int64_t>> lengths;
};

std::vector<int64_t> sequence_dims(const Sequence& seq, int64_t features) {
    return seq.batch_first ? std::vector<int64_t>{seq.B, seq.T, features}
                           : std::vector<int64_t>{seq.T, seq.B, features};
}

template <typename T>
T* data_of(const py::object& a) {
    return a.is_none() ? nullptr : static_cast<T*>(py::reinterpret_borrow<py::array>(a).mutable_data());
}

// Multiply-adds of one direction's forward pass.
double direction_work(CellType cell, const Sequence& seq) {
    return static_cast<double>(seq.T) * seq.B * gate_count(cell) * seq.H * (seq.I + seq.H);
}

// Bytes of one direction's weights, W_ih and W_hh.
template <typename T>
double direction_weight_bytes(CellType cell, const Sequence& seq) {
    return static_cast<double>(gate_count(cell)) * seq.H * (seq.I + seq.H) * sizeof(T);
}

// The sequence options of direction d of a layer with D directions.
Sequence direction_sequence(const Sequence& seq, int D, int d) {
    Sequence s = seq;
    s.out_stride = D * seq.H;
    if (d == 1) s.reverse = !seq.reverse;
    return s;
}

template <typename T>
py::tuple forward_typed(const LayerWeights& lw, const Sequence& seq_in, const py::array& x,
                        const std::optional<py::array>& h0, const std::optional<py::array>& c0,
                        const std::optional<py::array>& mask,
                        const std::optional<py::array_t<int64_t>>& lengths, bool training) {
    Sequence seq = seq_in;
    seq.lengths = lengths ? lengths->data() : nullptr;
    const int D = lw.D;
    const int64_t H = seq.H, B = seq.B, state = B * H;
    const CellType cell = lw.cell;
    py::array_t<T> y = new_array<T>(sequence_dims(seq, D * H));
    py::array_t<T> h_n = new_array<T>(with_d(D, {B, H}));
    py::object c_n = py::none();
    if (cell == CellType::lstm) c_n = new_array<T>(with_d(D, {B, H}));
    const int64_t ws_one = training ? workspace_elements(cell, seq) : 0;
    py::object ws = py::none();
    if (training) ws = new_array<T>({detail::checked_mul(ws_one, D)});
    {
        T *y_p = y.mutable_data(), *h_p = h_n.mutable_data(), *c_p = data_of<T>(c_n),
          *ws_p = data_of<T>(ws);
        const T* x_p = static_cast<const T*>(x.data());
        const T *h0_p = ptr<T>(h0), *c0_p = ptr<T>(c0), *m_p = ptr<T>(mask);
        py::gil_scoped_release release;
        const CallThreads threads(single_thread_seconds(D * direction_work(cell, seq),
                                                        D * direction_weight_bytes<T>(cell, seq)));
        // the directions write disjoint columns of y and their own states and workspace
        detail::for_each_direction(D, direction_work(cell, seq), [&](int d, bool) {
            compute_forward<T>(cell, y_p + d * H, h_p + d * state, c_p ? c_p + d * state : nullptr,
                               x_p, lw.direction<T>(d), h0_p ? h0_p + d * state : nullptr,
                               c0_p ? c0_p + d * state : nullptr, m_p ? m_p + d * state : nullptr,
                               ws_p ? ws_p + d * ws_one : nullptr, direction_sequence(seq, D, d),
                               lw.prepared<T>(d));
        });
    }
    py::object ctx = py::none();
    if (training) {
        Context context{lw, seq, x, py::reinterpret_borrow<py::array>(ws), mask, lengths};
        context.seq.lengths = lengths ? lengths->data() : nullptr;
        ctx = py::cast(std::move(context));
    }
    return py::make_tuple(y, h_n, c_n, ctx);
}

py::tuple forward(const std::string& family, py::handle x_obj, py::handle w_ih_obj,
                  py::handle w_hh_obj, py::handle b_ih_obj, py::handle b_hh_obj, py::handle h0_obj,
                  py::handle c0_obj, py::handle lengths_obj, py::handle mask_obj,
                  py::handle reverse_obj, py::handle batch_first_obj, py::handle training_obj,
                  py::handle nonlinearity_obj, py::handle reset_after_obj,
                  py::handle bidirectional_obj) {
    const bool reverse = to_flag(reverse_obj, "reverse");
    const bool batch_first = to_flag(batch_first_obj, "batch_first");
    const bool training = to_flag(training_obj, "training");
    const std::optional<bool> reset_after = to_optional_flag(reset_after_obj, "reset_after");
    const std::optional<bool> bidirectional = to_optional_flag(bidirectional_obj, "bidirectional");
    py::array x = to_array(x_obj, "x");
    const py::dtype dtype = x.dtype();
    if (!is_float32(dtype) && !is_float64(dtype))
        throw TypeError("x: expected a float32 or float64 array, got dtype " + dtype_name(dtype));
    check_ndim(x, "x", 3, batch_first ? "(B, T, I)" : "(T, B, I)");
    Sequence seq;
    seq.batch_first = batch_first;
    seq.reverse = reverse;
    seq.T = x.shape(batch_first ? 1 : 0);
    seq.B = x.shape(batch_first ? 0 : 1);
    seq.I = x.shape(2);

    // A handle's weights are used where they are (the caller holds the handle for the call);
    // raw arrays are checked into `own`.
    LayerWeights own;
    const LayerWeights* handle_layer = nullptr;
    if (py::isinstance<PackedWeights>(w_ih_obj)) {
        handle_layer = &w_ih_obj.cast<const PackedWeights&>().layer;
        const LayerWeights& lw = *handle_layer;
        const char* names[] = {"weight_hh", "bias_ih", "bias_hh"};
        py::handle others[] = {w_hh_obj, b_ih_obj, b_hh_obj};
        for (int i = 0; i < 3; ++i)
            if (!others[i].is_none())
                throw TypeError(std::string(names[i]) +
                                ": expected None when weight_ih is a PackedWeights handle (it holds "
                                "all four arrays), got " + type_name(others[i]));
        if (family != family_of(lw.cell))
            throw TypeError(std::string("weight_ih: this PackedWeights handle holds ") +
                            cell_name(lw.cell) + " weights; call gatedrnn.functional." +
                            family_of(lw.cell) + ", not " + family);
        const bool rnn_relu = lw.cell == CellType::rnn_relu;
        if (!nonlinearity_obj.is_none() && family == "rnn" &&
            (nonlinearity_obj.cast<std::string>() == "relu") != rnn_relu)
            throw ValueError("nonlinearity: the PackedWeights handle was packed for '" +
                             std::string(rnn_relu ? "relu" : "tanh") + "', got '" +
                             nonlinearity_obj.cast<std::string>() + "'");
        if (reset_after && family == "gru" && *reset_after != (lw.cell == CellType::gru_reset_after))
            throw ValueError("reset_after: the PackedWeights handle was packed for reset_after=" +
                             std::string(lw.cell == CellType::gru_reset_after ? "True" : "False"));
        if (bidirectional && *bidirectional != (lw.D == 2))
            throw ValueError("bidirectional: the PackedWeights handle was packed for bidirectional=" +
                             std::string(lw.D == 2 ? "True" : "False"));
        if (!(lw.dtype.kind() == dtype.kind() && lw.dtype.itemsize() == dtype.itemsize()))
            throw TypeError("x: expected dtype " + dtype_name(lw.dtype) +
                            " (the dtype of the PackedWeights handle), got " + dtype_name(dtype));
        if (lw.I != seq.I)
            throw ValueError("x: expected input size I = " + std::to_string(lw.I) +
                             " (the PackedWeights handle's), got shape " + shape_string(shape_of(x)));
    } else {
        const CellType cell = parse_cell(
            family, nonlinearity_obj.is_none() ? std::string("tanh") : nonlinearity_obj.cast<std::string>(),
            reset_after.value_or(true));
        const int D = bidirectional.value_or(false) ? 2 : 1;
        own = check_weights(cell, D, w_ih_obj, w_hh_obj, b_ih_obj, b_hh_obj, &dtype, seq.I);
    }
    const LayerWeights& lw = handle_layer ? *handle_layer : own;
    if (lw.D == 2 && reverse)
        throw ValueError("reverse: a bidirectional call runs both directions; pass reverse=False");
    seq.H = lw.H;
    const int D = lw.D;
    const auto state_legend = [&] {
        return shape_legend(D, "B, H") + with_notes(D, "B = " + std::to_string(seq.B) +
                                                       " from x, H = " + std::to_string(seq.H));
    };
    const std::vector<int64_t> state_dims = with_d(D, {seq.B, seq.H});
    auto h0 = optional_array(h0_obj, "h0", dtype, state_dims, state_legend);
    auto c0 = optional_array(c0_obj, "c0", dtype, state_dims, state_legend);
    auto mask = optional_array(mask_obj, "recurrent_mask", dtype, state_dims, state_legend);
    auto lengths = lengths_array(lengths_obj, seq.B, seq.T);
    x = contiguous(x);

    if (is_float32(dtype)) return forward_typed<float>(lw, seq, x, h0, c0, mask, lengths, training);
    return forward_typed<double>(lw, seq, x, h0, c0, mask, lengths, training);
}

template <typename T>
py::tuple backward_typed(const Context& ctx, const std::optional<py::array>& dy,
                         const std::optional<py::array>& dh_n, const std::optional<py::array>& dc_n,
                         bool return_dh_seq, bool input_grad) {
    const Sequence& seq = ctx.seq;
    const LayerWeights& lw = ctx.layer;
    const int D = lw.D;
    const int64_t H = seq.H, B = seq.B, GH = gate_count(lw.cell) * H, state = B * H;
    py::object dx = input_grad ? py::object(new_array<T>(sequence_dims(seq, seq.I))) : py::none();
    py::array_t<T> dh0 = new_array<T>(with_d(D, {B, H}));
    py::object dc0 = py::none(), db_ih = py::none(), db_hh = py::none(), dh_seq = py::none();
    if (lw.cell == CellType::lstm) dc0 = new_array<T>(with_d(D, {B, H}));
    py::array_t<T> dw_ih = new_array<T>(with_d(D, {GH, seq.I}));
    py::array_t<T> dw_hh = new_array<T>(with_d(D, {GH, H}));
    if (lw.b_ih) db_ih = new_array<T>(with_d(D, {GH}));
    if (lw.b_hh) db_hh = new_array<T>(with_d(D, {GH}));
    if (return_dh_seq) dh_seq = new_array<T>(sequence_dims(seq, D * H));
    const int64_t ws_one = workspace_elements(lw.cell, seq);
    {
        T *dx_p = data_of<T>(dx), *dh0_p = dh0.mutable_data(), *dc0_p = data_of<T>(dc0),
          *dw_ih_p = dw_ih.mutable_data(), *dw_hh_p = dw_hh.mutable_data(),
          *db_ih_p = data_of<T>(db_ih), *db_hh_p = data_of<T>(db_hh),
          *dh_seq_p = data_of<T>(dh_seq);
        const T* x_p = static_cast<const T*>(ctx.x.data());
        const T* ws_p = static_cast<const T*>(ctx.workspace.data());
        const T *dy_p = ptr<T>(dy), *dh_n_p = ptr<T>(dh_n), *dc_n_p = ptr<T>(dc_n),
                *m_p = ptr<T>(ctx.mask);
        py::gil_scoped_release release;
        const CallThreads threads(single_thread_seconds(2 * D * direction_work(lw.cell, seq),
                                                        D * direction_weight_bytes<T>(lw.cell, seq)));
        // Both directions add into dx: one after the other, the second accumulates; at the same
        // time, the second writes its own buffer, added in afterwards.
        detail::Buffer<T> dx_second;
        const int64_t dx_size = detail::checked_mul(detail::checked_mul(seq.T, seq.B), seq.I);
        detail::for_each_direction(D, 2 * direction_work(lw.cell, seq), [&](int d, bool concurrent) {
            Sequence s = direction_sequence(seq, D, d);
            T* dx_d = dx_p;
            if (d == 1 && concurrent && dx_p) {
                dx_second = detail::Buffer<T>(dx_size);
                dx_d = dx_second.get();
            }
            s.accumulate_dx = d == 1 && !concurrent;
            compute_backward<T>(lw.cell, dx_d, dh0_p + d * state, dc0_p ? dc0_p + d * state : nullptr,
                                dw_ih_p + d * GH * seq.I, dw_hh_p + d * GH * H,
                                db_ih_p ? db_ih_p + d * GH : nullptr, db_hh_p ? db_hh_p + d * GH : nullptr,
                                dh_seq_p ? dh_seq_p + d * H : nullptr, dy_p ? dy_p + d * H : nullptr,
                                dh_n_p ? dh_n_p + d * state : nullptr, dc_n_p ? dc_n_p + d * state : nullptr,
                                x_p, lw.direction<T>(d), m_p ? m_p + d * state : nullptr,
                                ws_p + d * ws_one, s);
        });
        if (dx_second.get())
            for (int64_t i = 0; i < dx_size; ++i) dx_p[i] += dx_second.get()[i];
    }
    return py::make_tuple(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dh_seq);
}

py::tuple backward(py::handle ctx_obj, const std::string& family, py::handle dy_obj,
                   py::handle dh_n_obj, py::handle dc_n_obj, py::handle return_dh_seq_obj,
                   py::handle input_grad_obj) {
    const bool return_dh_seq = to_flag(return_dh_seq_obj, "return_dh_seq");
    const bool input_grad = to_flag(input_grad_obj, "input_grad");
    if (!py::isinstance<Context>(ctx_obj))
        throw TypeError("ctx: expected the context returned by gatedrnn.functional." + family +
                        "(..., training=True), got " + type_name(ctx_obj));
    const Context& ctx = ctx_obj.cast<const Context&>();
    const CellType cell = ctx.layer.cell;
    if (family != family_of(cell))
        throw TypeError(std::string("ctx: this context was returned by ") + cell_name(cell) +
                        "; pass it to " + family_of(cell) + "_backward, not " + family +
                        "_backward");
    const Sequence& seq = ctx.seq;
    const int D = ctx.layer.D;
    const std::vector<int64_t> y_dims = sequence_dims(seq, D * seq.H);
    const std::string y_legend = std::string(seq.batch_first ? "(B, T, D*H)" : "(T, B, D*H)") +
                                 ", the shape of y";
    const std::vector<int64_t> state_dims = with_d(D, {seq.B, seq.H});
    const py::dtype& dtype = ctx.layer.dtype;
    auto dy = optional_array(dy_obj, "dy", dtype, y_dims, y_legend);
    auto dh_n = optional_array(dh_n_obj, "dh_n", dtype, state_dims, "the shape of h_n");
    auto dc_n = optional_array(dc_n_obj, "dc_n", dtype, state_dims, "the shape of c_n");
    if (is_float32(dtype)) return backward_typed<float>(ctx, dy, dh_n, dc_n, return_dh_seq, input_grad);
    return backward_typed<double>(ctx, dy, dh_n, dc_n, return_dh_seq, input_grad);
}

// op(a) @ op(b) (+ beta * out) on the core's GEMM and threads: what the layers around the
// recurrent ones (Dense) use, so one thread pool does all of a training step's arithmetic
// (NumPy's BLAS threads spinning next to ours would slow both down).
template <typename T>
py::object matmul_typed(const py::array& a, const py::array& b, bool trans_a, bool trans_b,
                        const std::optional<py::array>& out, double beta) {
    const int64_t M = trans_a ? a.shape(1) : a.shape(0), K = trans_a ? a.shape(0) : a.shape(1);
    const int64_t N = trans_b ? b.shape(0) : b.shape(1);
    py::array result = out ? *out : py::array(new_array<T>({M, N}));
    T* c = static_cast<T*>(result.mutable_data());
    const T* ap = static_cast<const T*>(a.data());
    const T* bp = static_cast<const T*>(b.data());
    {
        py::gil_scoped_release release;
        const CallThreads threads(single_thread_seconds(
            static_cast<double>(M) * N * K, static_cast<double>(N) * K * sizeof(T)));
        detail::DenormalsAreZero daz;
        gemm<T>(trans_a ? Trans::yes : Trans::no, trans_b ? Trans::yes : Trans::no, M, N, K,
                T(1), ap, a.shape(1), bp, b.shape(1), static_cast<T>(beta), c, N);
    }
    return result;
}

py::object matmul(py::handle a_obj, py::handle b_obj, bool trans_a, bool trans_b,
                  py::handle out_obj, double beta) {
    py::array a = to_array(a_obj, "a"), b = to_array(b_obj, "b");
    const py::dtype dtype = a.dtype();
    if (!is_float32(dtype) && !is_float64(dtype))
        throw TypeError("a: expected a float32 or float64 array, got " + dtype_name(dtype));
    check_same_dtype(b, "b", dtype);
    check_ndim(a, "a", 2, trans_a ? "(K, M)" : "(M, K)");
    check_ndim(b, "b", 2, trans_b ? "(N, K)" : "(K, N)");
    const int64_t K = trans_a ? a.shape(0) : a.shape(1);
    const int64_t Kb = trans_b ? b.shape(1) : b.shape(0);
    if (K != Kb)
        throw ValueError("b: expected " + std::string(trans_b ? "(N, K)" : "(K, N)") + " with K = " +
                         std::to_string(K) + " from a = " + shape_string(shape_of(a)) + ", got " +
                         shape_string(shape_of(b)));
    a = contiguous(a);
    b = contiguous(b);
    const int64_t M = trans_a ? a.shape(1) : a.shape(0), N = trans_b ? b.shape(0) : b.shape(1);
    std::optional<py::array> out;
    if (!out_obj.is_none()) {
        if (!py::isinstance<py::array>(out_obj))
            throw TypeError("out: expected a NumPy array, got " + type_name(out_obj));
        py::array o = py::reinterpret_borrow<py::array>(out_obj);
        check_same_dtype(o, "out", dtype);
        check_shape(o, "out", {M, N}, "(M, N)");
        if (!(o.flags() & py::array::c_style) || !o.writeable() ||
            !o.dtype().attr("isnative").cast<bool>())
            throw ValueError("out: expected a writeable, C-contiguous, native-endian array");
        auto overlaps = [&](const py::array& x) {
            const char* x0 = static_cast<const char*>(x.data());
            const char* o0 = static_cast<const char*>(o.data());
            return x0 < o0 + o.nbytes() && o0 < x0 + x.nbytes();
        };
        if (overlaps(a) || overlaps(b))
            throw ValueError("out: must not share memory with a or b");
        out = o;
    } else if (beta != 0.0) {
        throw ValueError("beta: expected 0 when no out array is given, got " + std::to_string(beta));
    }
    if (is_float32(dtype)) return matmul_typed<float>(a, b, trans_a, trans_b, out, beta);
    return matmul_typed<double>(a, b, trans_a, trans_b, out, beta);
}

int64_t workspace_size(const std::string& family, int64_t T, int64_t B, int64_t I, int64_t H,
                       const std::string& nonlinearity, py::handle reset_after_obj) {
    const bool reset_after = to_flag(reset_after_obj, "reset_after");
    if (T < 0 || B < 0 || I < 0 || H < 1)
        throw ValueError("workspace_size: expected T, B, I >= 0 and H >= 1, got T=" +
                         std::to_string(T) + ", B=" + std::to_string(B) + ", I=" +
                         std::to_string(I) + ", H=" + std::to_string(H));
    Sequence seq;
    seq.T = T, seq.B = B, seq.I = I, seq.H = H;
    return workspace_elements(parse_cell(family, nonlinearity, reset_after), seq);
}

py::dict info() {
    py::dict d;
#if defined(__clang__)
    d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    d["compiler"] = std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
    d["compiler"] = std::string("msvc ") + std::to_string(_MSC_VER);
#else
    d["compiler"] = std::string("unknown");
#endif
    d["openmp"] = openmp_enabled();
#ifdef _OPENMP
    d["openmp_version"] = static_cast<int>(_OPENMP);
#else
    d["openmp_version"] = py::none();
#endif
    d["num_threads"] = max_threads();
    d["simd"] = std::string(isa::active().name);
    d["simd_available"] = isa::available();
    d["memory_cache_limit"] = memory_cache_limit();
    d["memory_cached"] = memory_cached();
    // The measured cost of waking the idle thread team (CallThreads), in seconds: 0.0 until a
    // cold start has been seen.
    d["team_wake_seconds"] = static_cast<double>(team_wake_cost_ns()) * 1e-9;
    return d;
}

}  // namespace
}  // namespace gatedrnn::bindings

PYBIND11_MODULE(_core, m) {
    namespace py = pybind11;
    using namespace gatedrnn::bindings;
    m.doc() = "gatedrnn C++ core (use gatedrnn.functional; this module is internal).";

    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const gatedrnn::TypeError& e) {
            PyErr_SetString(PyExc_TypeError, e.what());
        } catch (const gatedrnn::ValueError& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        }
    });

    py::class_<Context>(m, "Context",
                        "What backward needs from a forward call with training=True. Opaque; "
                        "reusable for several backward calls.")
        .def_property_readonly("cell", [](const Context& c) { return std::string(gatedrnn::cell_name(c.layer.cell)); })
        .def_property_readonly("dtype", [](const Context& c) { return c.layer.dtype; })
        .def_property_readonly("bidirectional", [](const Context& c) { return c.layer.D == 2; })
        .def_property_readonly("workspace", [](const Context& c) { return c.workspace; })
        .def_property_readonly("batch_first", [](const Context& c) { return c.seq.batch_first; })
        .def_property_readonly("reverse", [](const Context& c) { return c.seq.reverse; })
        .def_property_readonly("sizes", [](const Context& c) {
            py::dict d;
            d["T"] = c.seq.T, d["B"] = c.seq.B, d["I"] = c.seq.I, d["H"] = c.seq.H;
            return d;
        })
        .def("__repr__", [](const Context& c) {
            return "<gatedrnn Context " + std::string(gatedrnn::cell_name(c.layer.cell)) +
                   (c.layer.D == 2 ? " bidirectional" : "") +
                   " T=" + std::to_string(c.seq.T) + " B=" + std::to_string(c.seq.B) +
                   " I=" + std::to_string(c.seq.I) + " H=" + std::to_string(c.seq.H) + ">";
        });

    m.def("forward", &forward, py::arg("cell"), py::arg("x"), py::arg("weight_ih"),
          py::arg("weight_hh"), py::arg("bias_ih"), py::arg("bias_hh"), py::arg("h0"),
          py::arg("c0"), py::arg("lengths"), py::arg("recurrent_mask"), py::arg("reverse"),
          py::arg("batch_first"), py::arg("training"), py::arg("nonlinearity"),
          py::arg("reset_after"), py::arg("bidirectional"));

    py::class_<PackedWeights>(m, "PackedWeights",
                              "An immutable, pre-packed copy of one layer's four weight arrays "
                              "(gatedrnn.functional.pack_weights). Pass it as weight_ih.")
        .def_property_readonly("cell", [](const PackedWeights& p) { return std::string(gatedrnn::cell_name(p.layer.cell)); })
        .def_property_readonly("dtype", [](const PackedWeights& p) { return p.layer.dtype; })
        .def_property_readonly("input_size", [](const PackedWeights& p) { return p.layer.I; })
        .def_property_readonly("hidden_size", [](const PackedWeights& p) { return p.layer.H; })
        .def_property_readonly("bidirectional", [](const PackedWeights& p) { return p.layer.D == 2; })
        .def_property_readonly("weight_ih", [](const PackedWeights& p) { return p.layer.w_ih; })
        .def_property_readonly("weight_hh", [](const PackedWeights& p) { return p.layer.w_hh; })
        .def_property_readonly("bias_ih", [](const PackedWeights& p) -> py::object {
            return p.layer.b_ih ? py::object(*p.layer.b_ih) : py::none(); })
        .def_property_readonly("bias_hh", [](const PackedWeights& p) -> py::object {
            return p.layer.b_hh ? py::object(*p.layer.b_hh) : py::none(); })
        .def("__repr__", [](const PackedWeights& p) {
            return "<gatedrnn PackedWeights " + std::string(gatedrnn::cell_name(p.layer.cell)) +
                   (p.layer.D == 2 ? " bidirectional" : "") + " I=" + std::to_string(p.layer.I) +
                   " H=" + std::to_string(p.layer.H) + " " + dtype_name(p.layer.dtype) + ">";
        });
    m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
          py::arg("trans_b") = false, py::arg("out") = py::none(), py::arg("beta") = 0.0);
    m.def("pack_weights", &pack_weights, py::arg("cell"), py::arg("weight_ih"),
          py::arg("weight_hh"), py::arg("bias_ih"), py::arg("bias_hh"), py::arg("nonlinearity"),
          py::arg("reset_after"), py::arg("bidirectional"));
    m.def("backward", &backward, py::arg("ctx"), py::arg("cell"), py::arg("dy"), py::arg("dh_n"),
          py::arg("dc_n"), py::arg("return_dh_seq"), py::arg("input_grad") = py::bool_(true));
    m.def("workspace_size", &workspace_size, py::arg("cell"), py::arg("T"), py::arg("B"),
          py::arg("I"), py::arg("H"), py::arg("nonlinearity") = "tanh",
          py::arg("reset_after") = py::bool_(true));
    m.def("info", &info);
    // Tests of the cold-start policy (gatedrnn/threads.h, CallThreads).
    m.def("_team_runs", &gatedrnn::team_runs);
    m.def("_helped_jobs", &gatedrnn::detail::helped_jobs);
    m.def("_set_steal_others_first", &gatedrnn::detail::set_steal_others_first, py::arg("on"),
          "Tests only: split by units, each thread takes the next thread's chunks first.");
    m.def("_cold_start_adaptive", &gatedrnn::cold_start_adaptive);
    m.def("_set_cold_start_adaptive", &gatedrnn::set_cold_start_adaptive, py::arg("on"));
    m.def("_set_team_wake_seconds", [](double s) {
        gatedrnn::set_team_wake_cost_ns(static_cast<int64_t>(s * 1e9));
    }, py::arg("seconds"));

    // Kernel paths. The ISA is chosen once here, at import: GATEDRNN_ISA forces one.
    gatedrnn::isa::select_from_environment();
    gatedrnn::cold_start_from_environment();
    m.def("_set_isa", [](const std::string& name) { gatedrnn::isa::set_active(name); }, py::arg("name"),
          "Switch the kernel path (tests only; not thread-safe against running calls).");
    m.def("_available_isas", &gatedrnn::isa::available);
    m.def("_activation", [](const std::string& name, py::array x) {
        // The vectorised activations of the active path, for the accuracy tests.
        if (name != "sigmoid" && name != "tanh")
            throw gatedrnn::ValueError("name: expected 'sigmoid' or 'tanh', got '" + name + "'");
        const py::dtype dt = x.dtype();
        if (!is_float32(dt) && !is_float64(dt))
            throw gatedrnn::TypeError("x: expected float32 or float64, got " + dtype_name(dt));
        py::array in = contiguous(x);
        py::array out = py::array(dt, std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
        const auto& isa = gatedrnn::isa::active();
        if (is_float32(dt)) {
            const auto& k = isa.f32;
            (name == "sigmoid" ? k.sigmoid : k.tanh)(in.size(), static_cast<const float*>(in.data()),
                                                     static_cast<float*>(out.mutable_data()));
        } else {
            const auto& k = isa.f64;
            (name == "sigmoid" ? k.sigmoid : k.tanh)(in.size(), static_cast<const double*>(in.data()),
                                                     static_cast<double*>(out.mutable_data()));
        }
        return out;
    }, py::arg("name"), py::arg("x"));
    m.def("set_num_threads", [](int n) {
        if (n < 0) throw gatedrnn::ValueError("n: expected a thread count >= 1 (or 0 for the default), got " + std::to_string(n));
        gatedrnn::set_max_threads(n);
    }, py::arg("n"));
    m.def("get_num_threads", &gatedrnn::max_threads);
    m.def("set_memory_cache_limit", [](long long bytes) {
        if (bytes < 0)
            throw gatedrnn::ValueError("nbytes: expected a byte count >= 0, got " + std::to_string(bytes));
        gatedrnn::set_memory_cache_limit(static_cast<size_t>(bytes));
    }, py::arg("nbytes"));
    m.def("empty_memory_cache", &gatedrnn::empty_memory_cache);
    m.def("_fill_memory_cache", [](int byte) {
        if (byte < 0 || byte > 255) throw gatedrnn::ValueError("byte: expected 0..255, got " + std::to_string(byte));
        gatedrnn::fill_memory_cache(static_cast<unsigned char>(byte));
    }, py::arg("byte"));
    m.def("_memory_cache_blocks", &gatedrnn::memory_cache_blocks);
}
