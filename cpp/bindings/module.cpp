// gatedrnn._core: the pybind11 module. Validation, NumPy <-> pointers, GIL release around the
// compute. gatedrnn.functional is the documented API on top of it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "arrays.h"
#include "gatedrnn/gru.h"
#include "gatedrnn/lstm.h"
#include "gatedrnn/rnn.h"
#include "gatedrnn/threads.h"
#include "isa/dispatch.h"

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

// What backward needs from a forward call in training mode. Holds references to the (possibly
// copied) inputs: changing them in place before backward is undefined.
struct Context {
    CellType cell;
    Sequence seq;
    py::dtype dtype;
    py::array x, w_ih, w_hh, workspace;
    std::optional<py::array> b_ih, b_hh, mask;
    std::optional<py::array_t<int64_t>> lengths;
};

template <typename T>
void compute_forward(CellType cell, T* y, T* h_n, T* c_n, const T* x, const Weights<T>& w,
                     const T* h0, const T* c0, const T* mask, T* ws, const Sequence& seq) {
    switch (cell) {
        case CellType::rnn_tanh: rnn_forward(y, h_n, x, w, h0, mask, ws, seq, Activation::tanh); break;
        case CellType::rnn_relu: rnn_forward(y, h_n, x, w, h0, mask, ws, seq, Activation::relu); break;
        case CellType::lstm: lstm_forward(y, h_n, c_n, x, w, h0, c0, mask, ws, seq); break;
        case CellType::gru_reset_after: gru_forward(y, h_n, x, w, h0, mask, ws, seq, true); break;
        case CellType::gru_reset_before: gru_forward(y, h_n, x, w, h0, mask, ws, seq, false); break;
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

template <typename T>
Weights<T> weights_of(const py::array& w_ih, const py::array& w_hh,
                      const std::optional<py::array>& b_ih, const std::optional<py::array>& b_hh) {
    Weights<T> w;
    w.w_ih = static_cast<const T*>(w_ih.data());
    w.w_hh = static_cast<const T*>(w_hh.data());
    w.b_ih = ptr<T>(b_ih);
    w.b_hh = ptr<T>(b_hh);
    return w;
}

std::vector<int64_t> sequence_dims(const Sequence& seq, int64_t features) {
    return seq.batch_first ? std::vector<int64_t>{seq.B, seq.T, features}
                           : std::vector<int64_t>{seq.T, seq.B, features};
}

template <typename T>
T* data_of(const py::object& a) {
    return a.is_none() ? nullptr : static_cast<T*>(py::reinterpret_borrow<py::array>(a).mutable_data());
}

template <typename T>
py::tuple forward_typed(CellType cell, const Sequence& seq_in, const py::array& x,
                        const py::array& w_ih, const py::array& w_hh,
                        const std::optional<py::array>& b_ih, const std::optional<py::array>& b_hh,
                        const std::optional<py::array>& h0, const std::optional<py::array>& c0,
                        const std::optional<py::array>& mask,
                        const std::optional<py::array_t<int64_t>>& lengths, bool training) {
    Sequence seq = seq_in;
    seq.lengths = lengths ? lengths->data() : nullptr;
    const int64_t H = seq.H, B = seq.B;
    py::array_t<T> y = new_array<T>(sequence_dims(seq, H));
    py::array_t<T> h_n = new_array<T>({B, H});
    py::object c_n = py::none();
    if (cell == CellType::lstm) c_n = new_array<T>({B, H});
    py::object ws = py::none();
    if (training) ws = new_array<T>({workspace_elements(cell, seq)});
    const Weights<T> w = weights_of<T>(w_ih, w_hh, b_ih, b_hh);
    {
        T *y_p = y.mutable_data(), *h_p = h_n.mutable_data(), *c_p = data_of<T>(c_n),
          *ws_p = data_of<T>(ws);
        const T* x_p = static_cast<const T*>(x.data());
        py::gil_scoped_release release;
        compute_forward<T>(cell, y_p, h_p, c_p, x_p, w, ptr<T>(h0), ptr<T>(c0), ptr<T>(mask), ws_p,
                           seq);
    }
    py::object ctx = py::none();
    if (training) {
        Context context{cell, seq, x.dtype(), x, w_ih, w_hh,
                        py::reinterpret_borrow<py::array>(ws), b_ih, b_hh, mask, lengths};
        context.seq.lengths = lengths ? lengths->data() : nullptr;
        ctx = py::cast(std::move(context));
    }
    return py::make_tuple(y, h_n, c_n, ctx);
}

py::tuple forward(const std::string& family, py::handle x_obj, py::handle w_ih_obj,
                  py::handle w_hh_obj, py::handle b_ih_obj, py::handle b_hh_obj, py::handle h0_obj,
                  py::handle c0_obj, py::handle lengths_obj, py::handle mask_obj, bool reverse,
                  bool batch_first, bool training, const std::string& nonlinearity,
                  bool reset_after) {
    const CellType cell = parse_cell(family, nonlinearity, reset_after);
    const int64_t G = gate_count(cell);
    const std::string g_note = "G = " + std::to_string(G) + " for " + cell_name(cell);

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

    py::array w_hh = to_array(w_hh_obj, "weight_hh");
    check_same_dtype(w_hh, "weight_hh", dtype);
    check_ndim(w_hh, "weight_hh", 2, "(G*H, H)");
    seq.H = w_hh.shape(1);
    if (seq.H == 0)
        throw ValueError("weight_hh: the hidden size H (its second dimension) must be >= 1, got shape " +
                         shape_string(shape_of(w_hh)));
    const int64_t GH = G * seq.H, H = seq.H;
    const std::string h_note = ", H = " + std::to_string(H) + " from weight_hh";
    check_shape(w_hh, "weight_hh", {GH, H}, "(G*H, H) with " + g_note + h_note);

    py::array w_ih = to_array(w_ih_obj, "weight_ih");
    check_same_dtype(w_ih, "weight_ih", dtype);
    check_ndim(w_ih, "weight_ih", 2, "(G*H, I)");
    check_shape(w_ih, "weight_ih", {GH, seq.I},
                "(G*H, I) with " + g_note + h_note + ", I = " + std::to_string(seq.I) + " from x");

    const std::string bias_legend = "(G*H,) with " + g_note + h_note;
    auto b_ih = optional_array(b_ih_obj, "bias_ih", dtype, {GH}, bias_legend);
    auto b_hh = optional_array(b_hh_obj, "bias_hh", dtype, {GH}, bias_legend);
    const std::string state_legend =
        "(B, H) with B = " + std::to_string(seq.B) + " from x" + h_note;
    auto h0 = optional_array(h0_obj, "h0", dtype, {seq.B, H}, state_legend);
    auto c0 = optional_array(c0_obj, "c0", dtype, {seq.B, H}, state_legend);
    auto mask = optional_array(mask_obj, "recurrent_mask", dtype, {seq.B, H}, state_legend);
    auto lengths = lengths_array(lengths_obj, seq.B, seq.T);
    x = contiguous(x);
    w_ih = contiguous(w_ih);
    w_hh = contiguous(w_hh);

    if (is_float32(dtype))
        return forward_typed<float>(cell, seq, x, w_ih, w_hh, b_ih, b_hh, h0, c0, mask, lengths,
                                    training);
    return forward_typed<double>(cell, seq, x, w_ih, w_hh, b_ih, b_hh, h0, c0, mask, lengths,
                                 training);
}

template <typename T>
py::tuple backward_typed(const Context& ctx, const std::optional<py::array>& dy,
                         const std::optional<py::array>& dh_n, const std::optional<py::array>& dc_n,
                         bool return_dh_seq) {
    const Sequence& seq = ctx.seq;
    const int64_t H = seq.H, B = seq.B, GH = gate_count(ctx.cell) * H;
    py::array_t<T> dx = new_array<T>(sequence_dims(seq, seq.I));
    py::array_t<T> dh0 = new_array<T>({B, H});
    py::object dc0 = py::none(), db_ih = py::none(), db_hh = py::none(), dh_seq = py::none();
    if (ctx.cell == CellType::lstm) dc0 = new_array<T>({B, H});
    py::array_t<T> dw_ih = new_array<T>({GH, seq.I});
    py::array_t<T> dw_hh = new_array<T>({GH, H});
    if (ctx.b_ih) db_ih = new_array<T>({GH});
    if (ctx.b_hh) db_hh = new_array<T>({GH});
    if (return_dh_seq) dh_seq = new_array<T>(sequence_dims(seq, H));
    const Weights<T> w = weights_of<T>(ctx.w_ih, ctx.w_hh, ctx.b_ih, ctx.b_hh);
    {
        T *dx_p = dx.mutable_data(), *dh0_p = dh0.mutable_data(), *dc0_p = data_of<T>(dc0),
          *dw_ih_p = dw_ih.mutable_data(), *dw_hh_p = dw_hh.mutable_data(),
          *db_ih_p = data_of<T>(db_ih), *db_hh_p = data_of<T>(db_hh),
          *dh_seq_p = data_of<T>(dh_seq);
        const T* x_p = static_cast<const T*>(ctx.x.data());
        const T* ws_p = static_cast<const T*>(ctx.workspace.data());
        py::gil_scoped_release release;
        compute_backward<T>(ctx.cell, dx_p, dh0_p, dc0_p, dw_ih_p, dw_hh_p, db_ih_p, db_hh_p,
                            dh_seq_p, ptr<T>(dy), ptr<T>(dh_n), ptr<T>(dc_n), x_p, w,
                            ptr<T>(ctx.mask), ws_p, seq);
    }
    return py::make_tuple(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dh_seq);
}

py::tuple backward(py::handle ctx_obj, const std::string& family, py::handle dy_obj,
                   py::handle dh_n_obj, py::handle dc_n_obj, bool return_dh_seq) {
    if (!py::isinstance<Context>(ctx_obj))
        throw TypeError("ctx: expected the context returned by gatedrnn.functional." + family +
                        "(..., training=True), got " + type_name(ctx_obj));
    const Context& ctx = ctx_obj.cast<const Context&>();
    if (family != family_of(ctx.cell))
        throw TypeError(std::string("ctx: this context was returned by ") + cell_name(ctx.cell) +
                        "; pass it to " + family_of(ctx.cell) + "_backward, not " + family +
                        "_backward");
    const Sequence& seq = ctx.seq;
    const std::vector<int64_t> y_dims = sequence_dims(seq, seq.H);
    const std::string y_legend = std::string(seq.batch_first ? "(B, T, H)" : "(T, B, H)") +
                                 ", the shape of y";
    auto dy = optional_array(dy_obj, "dy", ctx.dtype, y_dims, y_legend);
    auto dh_n = optional_array(dh_n_obj, "dh_n", ctx.dtype, {seq.B, seq.H}, "(B, H), the shape of h_n");
    auto dc_n = optional_array(dc_n_obj, "dc_n", ctx.dtype, {seq.B, seq.H}, "(B, H), the shape of c_n");
    if (is_float32(ctx.dtype)) return backward_typed<float>(ctx, dy, dh_n, dc_n, return_dh_seq);
    return backward_typed<double>(ctx, dy, dh_n, dc_n, return_dh_seq);
}

int64_t workspace_size(const std::string& family, int64_t T, int64_t B, int64_t I, int64_t H,
                       const std::string& nonlinearity, bool reset_after) {
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
        .def_property_readonly("cell", [](const Context& c) { return std::string(gatedrnn::cell_name(c.cell)); })
        .def_property_readonly("dtype", [](const Context& c) { return c.dtype; })
        .def_property_readonly("workspace", [](const Context& c) { return c.workspace; })
        .def_property_readonly("batch_first", [](const Context& c) { return c.seq.batch_first; })
        .def_property_readonly("reverse", [](const Context& c) { return c.seq.reverse; })
        .def_property_readonly("sizes", [](const Context& c) {
            py::dict d;
            d["T"] = c.seq.T, d["B"] = c.seq.B, d["I"] = c.seq.I, d["H"] = c.seq.H;
            return d;
        })
        .def("__repr__", [](const Context& c) {
            return "<gatedrnn Context " + std::string(gatedrnn::cell_name(c.cell)) +
                   " T=" + std::to_string(c.seq.T) + " B=" + std::to_string(c.seq.B) +
                   " I=" + std::to_string(c.seq.I) + " H=" + std::to_string(c.seq.H) + ">";
        });

    m.def("forward", &forward, py::arg("cell"), py::arg("x"), py::arg("weight_ih"),
          py::arg("weight_hh"), py::arg("bias_ih"), py::arg("bias_hh"), py::arg("h0"),
          py::arg("c0"), py::arg("lengths"), py::arg("recurrent_mask"), py::arg("reverse"),
          py::arg("batch_first"), py::arg("training"), py::arg("nonlinearity"),
          py::arg("reset_after"));
    m.def("backward", &backward, py::arg("ctx"), py::arg("cell"), py::arg("dy"), py::arg("dh_n"),
          py::arg("dc_n"), py::arg("return_dh_seq"));
    m.def("workspace_size", &workspace_size, py::arg("cell"), py::arg("T"), py::arg("B"),
          py::arg("I"), py::arg("H"), py::arg("nonlinearity") = "tanh",
          py::arg("reset_after") = true);
    m.def("info", &info);

    // Kernel paths. The ISA is chosen once here, at import: GATEDRNN_ISA forces one.
    gatedrnn::isa::select_from_environment();
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
}
