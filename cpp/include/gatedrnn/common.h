// gatedrnn core: shared vocabulary.
//
// Notation legend (used in every header, shape comment and docstring of the project):
//   T  time steps          B  batch              I  input size
//   H  hidden size         G  gates (RNN 1, GRU 3, LSTM 4)
//   P  projection size     L  layers             D  directions
//
// Canonical weight layout (PyTorch's): weight_ih (G*H, I), weight_hh (G*H, H), bias_ih (G*H),
// bias_hh (G*H), rows blocked by gate. Gate order: LSTM i, f, g, o; GRU r, z, n.
//
// Sequences are time-major (T, B, I) or batch-major (B, T, I). The core never transposes them:
// it addresses row `t*B + b` (time-major) or `b*T + t` (batch-major) of the (T*B, I) matrix.
// States are always (B, H).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace gatedrnn {

enum class CellType : int { rnn_tanh = 0, rnn_relu = 1, lstm = 2, gru_reset_after = 3, gru_reset_before = 4 };

inline int gate_count(CellType cell) {
    switch (cell) {
        case CellType::rnn_tanh:
        case CellType::rnn_relu: return 1;
        case CellType::lstm: return 4;
        case CellType::gru_reset_after:
        case CellType::gru_reset_before: return 3;
    }
    return 0;
}

inline const char* cell_name(CellType cell) {
    switch (cell) {
        case CellType::rnn_tanh: return "rnn (tanh)";
        case CellType::rnn_relu: return "rnn (relu)";
        case CellType::lstm: return "lstm";
        case CellType::gru_reset_after: return "gru (reset_after=True)";
        case CellType::gru_reset_before: return "gru (reset_after=False)";
    }
    return "?";
}

// Sizes and per-call options of one sequence problem (one layer, one direction).
struct Sequence {
    int64_t T = 0, B = 0, I = 0, H = 0;
    bool batch_first = false;     // x, y, dy, dx, dh_seq are (B, T, .) instead of (T, B, .)
    bool reverse = false;         // each sequence runs from its own last valid step back to 0
    const int64_t* lengths = nullptr;  // (B) in [0, T], any order; nullptr means all T
    // Row stride of y, dy and dh_seq in elements; 0 means H. A bidirectional call writes each
    // direction into its half of (T, B, 2H) rows: stride 2H, the reverse half offset by H.
    int64_t out_stride = 0;
    bool accumulate_dx = false;   // backward adds into dx (the second direction of a pair)

    // Row of the (T*B, .) sequence matrix that holds step t of batch entry b.
    int64_t row(int64_t t, int64_t b) const { return batch_first ? b * T + t : t * B + b; }
    // Batch entry that owns a row of the sequence matrix.
    int64_t batch_of_row(int64_t r) const { return batch_first ? r / T : r % B; }
    int64_t rows() const { return T * B; }
    int64_t ld_out() const { return out_stride ? out_stride : H; }
};

// The four weight arrays of one layer and direction, canonical layout. Biases may be nullptr
// (zeros). The recurrent mask (B, H), when given, multiplies h_{t-1} where it feeds W_hh only.
template <typename T>
struct Weights {
    const T* w_ih = nullptr;   // (G*H, I)
    const T* w_hh = nullptr;   // (G*H, H)
    const T* b_ih = nullptr;   // (G*H) or nullptr
    const T* b_hh = nullptr;   // (G*H) or nullptr
};

// One layer and direction's weights packed once for the forward pass (see cpp/src/packed.h);
// every *_forward accepts it, or nullptr to pack for that call only.
template <typename T>
struct PackedLayer;

// Errors a caller can fix. The bindings turn them into ValueError / TypeError.
struct ValueError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};
struct TypeError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

}  // namespace gatedrnn
