// Internal: the order in which a driver visits (time step, batch entry) pairs.
//
// Batch entries are sorted by length, longest first (stable, so equal lengths keep their order),
// so at iteration s the entries still running are a prefix 0..active[s]-1 of that order. Every
// valid (t, b) pair gets a "packed" index p = offset[s] + j (j: position in the sorted order),
// as in PyTorch's packed sequences: all per-step saved values and gradients live in packed
// order, so one step's rows are contiguous, and steps past a length are never stored, read or
// computed (the padding of x, whatever it holds, cannot reach any result).
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "gatedrnn/common.h"

namespace gatedrnn::detail {

struct Schedule {
    const Sequence& seq;
    std::vector<int64_t> order;   // (B) sorted position j -> batch entry b
    std::vector<int64_t> len;     // (B) length of the entry at sorted position j
    std::vector<int64_t> active;  // (steps) entries running at iteration s
    std::vector<int64_t> offset;  // (steps + 1) packed index of iteration s's first row
    std::vector<int64_t> source;  // (packed) row of the sequence matrix for each packed index
    int64_t steps = 0;            // iterations = longest length
    int64_t packed = 0;           // valid (t, b) pairs = sum of lengths
    bool identity = false;        // packed index == sequence-matrix row for every pair

    explicit Schedule(const Sequence& s) : seq(s), order(s.B), len(s.B) {
        std::iota(order.begin(), order.end(), int64_t(0));
        auto length_of = [&](int64_t b) { return s.lengths ? s.lengths[b] : s.T; };
        if (s.lengths)  // (equal lengths keep the identity order; the sort's buffer costs a call)
            std::stable_sort(order.begin(), order.end(),
                             [&](int64_t a, int64_t b) { return length_of(a) > length_of(b); });
        for (int64_t j = 0; j < s.B; ++j) len[j] = length_of(order[j]);
        steps = s.B > 0 ? len[0] : 0;
        active.assign(steps, 0);
        offset.assign(steps + 1, 0);
        for (int64_t st = 0; st < steps; ++st) {
            int64_t n = 0;
            while (n < s.B && len[n] > st) ++n;  // lengths are sorted: the running ones are a prefix
            active[st] = n;
            offset[st + 1] = offset[st] + n;
        }
        packed = offset[steps];
        source.resize(packed);
        identity = packed == s.rows();
        for (int64_t st = 0; st < steps; ++st)
            for (int64_t j = 0; j < active[st]; ++j) {
                const int64_t p = offset[st] + j;
                source[p] = s.row(time_at(st, j), order[j]);
                identity = identity && source[p] == p;
            }
    }

    // Time step that sorted position j processes at iteration st (st < len[j]).
    int64_t time_at(int64_t st, int64_t j) const {
        return seq.reverse ? len[j] - 1 - st : st;
    }
};

// dst (count, cols) = rows source[first .. first + count) of src (rows, cols); by default all.
template <typename T>
void gather_rows(T* dst, const T* src, const std::vector<int64_t>& source, int64_t cols,
                 int64_t first = 0, int64_t count = -1) {
    if (count < 0) count = static_cast<int64_t>(source.size()) - first;
    for (int64_t p = 0; p < count; ++p)
        std::copy(src + source[first + p] * cols, src + (source[first + p] + 1) * cols, dst + p * cols);
}

// dst (rows, cols): rows `source` = src (packed, cols); every other row is zero. With
// accumulate, the rows are added to dst instead and the others keep their values.
template <typename T>
void scatter_rows(T* dst, int64_t rows, const T* src, const std::vector<int64_t>& source,
                  int64_t cols, bool accumulate = false) {
    if (accumulate) {
        for (size_t p = 0; p < source.size(); ++p)
            for (int64_t c = 0; c < cols; ++c) dst[source[p] * cols + c] += src[p * cols + c];
        return;
    }
    if (static_cast<int64_t>(source.size()) != rows) std::fill(dst, dst + rows * cols, T(0));
    for (size_t p = 0; p < source.size(); ++p)
        std::copy(src + p * cols, src + (p + 1) * cols, dst + source[p] * cols);
}

// dst (B, H)[j] = src (B, H)[order[j]], or zeros when src is null.
template <typename T>
void gather_state(T* dst, const T* src, const std::vector<int64_t>& order, int64_t H) {
    for (size_t j = 0; j < order.size(); ++j) {
        if (src)
            std::copy(src + order[j] * H, src + (order[j] + 1) * H, dst + j * H);
        else
            std::fill(dst + j * H, dst + (j + 1) * H, T(0));
    }
}

// dst (B, H)[order[j]] = src (B, H)[j].
template <typename T>
void scatter_state(T* dst, const T* src, const std::vector<int64_t>& order, int64_t H) {
    for (size_t j = 0; j < order.size(); ++j)
        std::copy(src + j * H, src + (j + 1) * H, dst + order[j] * H);
}

}  // namespace gatedrnn::detail
