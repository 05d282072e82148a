// Bindings: turning Python arguments into checked, contiguous NumPy arrays.
//
// Every check runs before any compute and names the argument, what was expected and what was
// given. TypeError for a wrong type or dtype, ValueError for a wrong shape or value. Arrays that
// are not C-contiguous native-endian are copied once, explicitly; all others are used in place
// (read-only arrays included) and never written.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "gatedrnn/common.h"
#include "gatedrnn/memory.h"

namespace gatedrnn::bindings {

namespace py = pybind11;

inline std::string shape_string(const std::vector<int64_t>& dims) {
    std::string s = "(";
    for (size_t i = 0; i < dims.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(dims[i]);
    }
    return s + (dims.size() == 1 ? ",)" : ")");
}

inline std::vector<int64_t> shape_of(const py::array& a) {
    return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

inline std::string dtype_name(const py::dtype& dt) { return py::str(dt).cast<std::string>(); }

inline std::string type_name(py::handle obj) {
    return py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>();
}

// A flag argument: True, False or a NumPy bool; anything else (1, "yes", None) is a TypeError.
inline bool to_flag(py::handle obj, const char* name) {
    if (obj.ptr() == Py_True) return true;
    if (obj.ptr() == Py_False) return false;
    static PyObject* const numpy_bool =
        py::object(py::module_::import("numpy").attr("bool_")).release().ptr();  // kept for good
    if (PyObject_IsInstance(obj.ptr(), numpy_bool) == 1) {
        const int truth = PyObject_IsTrue(obj.ptr());
        if (truth >= 0) return truth == 1;
    }
    PyErr_Clear();  // (an isinstance or truth test that raised: reported as the TypeError below)
    throw TypeError(std::string(name) + ": expected True or False, got " + type_name(obj));
}

// An optional flag: None (the default applies) or a flag.
inline std::optional<bool> to_optional_flag(py::handle obj, const char* name) {
    if (obj.is_none()) return std::nullopt;
    return to_flag(obj, name);
}

// The argument as a NumPy array (array-likes such as lists are converted with numpy.asarray).
inline py::array to_array(py::handle obj, const char* name) {
    if (py::isinstance<py::array>(obj)) return py::reinterpret_borrow<py::array>(obj);
    try {
        return py::module_::import("numpy").attr("asarray")(obj);
    } catch (py::error_already_set&) {
        throw TypeError(std::string(name) + ": expected a NumPy array, got " + type_name(obj));
    }
}

inline bool is_float32(const py::dtype& dt) { return dt.kind() == 'f' && dt.itemsize() == 4; }
inline bool is_float64(const py::dtype& dt) { return dt.kind() == 'f' && dt.itemsize() == 8; }

// A C-contiguous, native-byte-order version of a (copy only when needed).
inline py::array contiguous(const py::array& a) {
    // '=' native, '|' not applicable (one byte), '<' / '>' explicit (read from the descriptor,
    // not through Python attributes: this runs for every array argument of every call).
    const char order = a.dtype().byteorder();
    constexpr char kNative = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? '<' : '>';
    const bool native = order == '=' || order == '|' || order == kNative;
    if (native && (a.flags() & py::array::c_style)) return a;
    py::object np = py::module_::import("numpy");
    return np.attr("ascontiguousarray")(a, a.dtype().attr("newbyteorder")("="));
}

// Checks that a floating array has exactly `dtype` (the dtype of x).
inline void check_same_dtype(const py::array& a, const char* name, const py::dtype& dtype) {
    const py::dtype dt = a.dtype();
    if (dt.kind() == dtype.kind() && dt.itemsize() == dtype.itemsize()) return;
    throw TypeError(std::string(name) + ": expected dtype " + dtype_name(dtype) +
                    " (the dtype of x; float32 and float64 are computed natively and never mixed), got " +
                    dtype_name(dt));
}

// Checks shape; `legend` names the dimensions, e.g. "(G*H, I)".
inline void check_shape(const py::array& a, const char* name, const std::vector<int64_t>& dims,
                        const std::string& legend) {
    const std::vector<int64_t> got = shape_of(a);
    if (got == dims) return;
    std::string msg = std::string(name) + ": expected shape " + legend + " = " + shape_string(dims) +
                      ", got " + shape_string(got);
    throw ValueError(msg);
}

inline void check_ndim(const py::array& a, const char* name, int ndim, const std::string& legend) {
    if (a.ndim() == ndim) return;
    throw ValueError(std::string(name) + ": expected a " + std::to_string(ndim) + "-D array " +
                     legend + ", got a " + std::to_string(a.ndim()) + "-D array of shape " +
                     shape_string(shape_of(a)));
}

// An optional floating array argument with the dtype of x and a fixed shape. `legend` is the
// dimensions' names, a string or a callable returning one (built only for an error message).
template <typename Legend>
std::optional<py::array> optional_array(py::handle obj, const char* name, const py::dtype& dtype,
                                        const std::vector<int64_t>& dims, const Legend& legend) {
    if (obj.is_none()) return std::nullopt;
    py::array a = to_array(obj, name);
    check_same_dtype(a, name, dtype);
    bool same = a.ndim() == static_cast<py::ssize_t>(dims.size());
    for (size_t i = 0; same && i < dims.size(); ++i) same = a.shape(i) == dims[i];
    if (!same) {
        std::string text;
        if constexpr (std::is_invocable_v<const Legend&>)
            text = legend();
        else
            text = legend;
        check_ndim(a, name, static_cast<int>(dims.size()), text);
        check_shape(a, name, dims, text);
    }
    return contiguous(a);
}

// Lengths: (B,) integers in [0, T], converted to int64.
inline std::optional<py::array_t<int64_t>> lengths_array(py::handle obj, int64_t B, int64_t T) {
    if (obj.is_none()) return std::nullopt;
    py::array a = to_array(obj, "lengths");
    const char kind = a.dtype().kind();
    if (kind != 'i' && kind != 'u')
        throw TypeError("lengths: expected an integer array of shape (B,), got dtype " +
                        dtype_name(a.dtype()));
    check_ndim(a, "lengths", 1, "(B,)");
    check_shape(a, "lengths", {B}, "(B,)");
    py::array_t<int64_t> out = py::module_::import("numpy").attr("ascontiguousarray")(a, "int64");
    if (kind == 'u' && a.dtype().itemsize() == 8) {
        // uint64 values above int64's range wrap when cast; check them in their own type.
        py::array big = py::module_::import("numpy").attr("greater")(a, py::int_(T));
        if (py::module_::import("numpy").attr("any")(big).cast<bool>())
            throw ValueError("lengths: every length must be in [0, T] = [0, " + std::to_string(T) +
                             "], got a value above T");
    }
    const int64_t* v = out.data();
    for (int64_t b = 0; b < B; ++b)
        if (v[b] < 0 || v[b] > T)
            throw ValueError("lengths: every length must be in [0, T] = [0, " + std::to_string(T) +
                             "], got lengths[" + std::to_string(b) + "] = " + std::to_string(v[b]));
    return out;
}

// Element count of a result, with overflow reported as MemoryError before NumPy sees it.
inline int64_t elements(const std::vector<int64_t>& dims, size_t itemsize) {
    int64_t n = 1;
    for (int64_t d : dims) {
        if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) throw std::bad_alloc();
        n *= d;
    }
    if (n > std::numeric_limits<int64_t>::max() / static_cast<int64_t>(itemsize)) throw std::bad_alloc();
    return n;
}

// A new C-contiguous array. Large ones own a block of the core's cache (gatedrnn/memory.h),
// given back when NumPy frees the array, so a training loop reuses the same memory every step.
template <typename T>
py::array_t<T> new_array(const std::vector<int64_t>& dims) {
    const int64_t n = elements(dims, sizeof(T));
    const size_t bytes = static_cast<size_t>(n) * sizeof(T);
    if (bytes < kCachedBlockBytes && dims.size() <= 4) {
        // NumPy's own constructor, with the shape on the stack: no shape and strides vectors
        // to allocate and free, as py::array_t's constructor has (a streaming step makes three
        // outputs).
        Py_intptr_t shape[4];
        for (size_t i = 0; i < dims.size(); ++i) shape[i] = static_cast<Py_intptr_t>(dims[i]);
        const auto& api = py::detail::npy_api::get();
        PyObject* a = api.PyArray_NewFromDescr_(api.PyArray_Type_, py::dtype::of<T>().release().ptr(),
                                                static_cast<int>(dims.size()), shape, nullptr,
                                                nullptr, 0, nullptr);
        if (!a) throw py::error_already_set();
        return py::reinterpret_steal<py::array_t<T>>(a);
    }
    const std::vector<py::ssize_t> shape(dims.begin(), dims.end());
    if (bytes < kCachedBlockBytes) return py::array_t<T>(shape);
    struct Owned {
        void* block;
        size_t bytes;
    };
    Owned* owned = new Owned{acquire_block(bytes), bytes};
    py::capsule owner;
    try {
        owner = py::capsule(owned, [](void* o) {
            Owned* own = static_cast<Owned*>(o);
            release_block(own->block, own->bytes);
            delete own;
        });
    } catch (...) {
        release_block(owned->block, owned->bytes);
        delete owned;
        throw;
    }
    return py::array_t<T>(shape, static_cast<T*>(owned->block), owner);
}

template <typename T>
const T* ptr(const std::optional<py::array>& a) {
    return a ? static_cast<const T*>(a->data()) : nullptr;
}

}  // namespace gatedrnn::bindings
