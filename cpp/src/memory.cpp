// The block cache behind gatedrnn/memory.h.
#include "gatedrnn/memory.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace gatedrnn {
namespace {

constexpr size_t kHugeAlign = size_t(2) << 20;
constexpr size_t kHugeFrom = size_t(4) << 20;
constexpr size_t kDefaultLimitMB = 1024;

// Sizes are rounded up to a class so that requests which differ by a little (a batch with one
// row less) share blocks: 64 KB steps below 4 MB, 2 MB steps above.
size_t size_class(size_t bytes) {
    const size_t step = bytes < kHugeFrom ? size_t(64) << 10 : kHugeAlign;
    if (bytes > SIZE_MAX - step) throw std::bad_alloc();
    return (bytes + step - 1) / step * step;
}

void* system_block(size_t bytes) {
    const size_t align = bytes >= kHugeFrom ? kHugeAlign : 64;
    void* p = std::aligned_alloc(align, bytes);
    if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= kHugeFrom) madvise(p, bytes, MADV_HUGEPAGE);  // advice only: failure is fine
#endif
    return p;
}

size_t default_limit() {
    const char* env = std::getenv("GATEDRNN_MEMORY_CACHE_MB");
    if (env && *env) {
        char* end = nullptr;
        const unsigned long long mb = std::strtoull(env, &end, 10);
        if (end && *end == '\0') return static_cast<size_t>(mb) << 20;
    }
    return kDefaultLimitMB << 20;
}

// Small blocks (under kCachedBlockBytes) are kept per thread, a few of each power-of-two size
// class, without a lock. A streaming step allocates a dozen small scratch arrays per call
// (states, gate buffers, the packed batch order), and glibc's malloc, free and consolidation
// took a fifth of such a call's time. At most kSmallKeep blocks of each class stay, ~4 MB in
// all per thread; a block released by another thread than the one that took it simply joins
// the releasing thread's lists (every small block comes from aligned_alloc(64, class size)).
constexpr int kSmallClasses = 13;  // 64 B << 0..12: 64 B .. 256 KB
constexpr int kSmallKeep = 8;

int small_class(size_t bytes) {
    int c = 0;
    for (size_t size = 64; size < bytes; size <<= 1) ++c;
    return c;
}

struct SmallLists {
    void* blocks[kSmallClasses][kSmallKeep];
    int count[kSmallClasses] = {};
    void clear() {
        for (int c = 0; c < kSmallClasses; ++c) {
            for (int i = 0; i < count[c]; ++i) std::free(blocks[c][i]);
            count[c] = 0;
        }
    }
    void fill(unsigned char byte) {
        for (int c = 0; c < kSmallClasses; ++c)
            for (int i = 0; i < count[c]; ++i) std::memset(blocks[c][i], byte, size_t(64) << c);
    }
    ~SmallLists() { clear(); }
};

SmallLists& small_lists() {
    thread_local SmallLists lists;
    return lists;
}

void* acquire_small(size_t bytes) {
    const int c = small_class(bytes);
    SmallLists& lists = small_lists();
    if (lists.count[c] > 0) return lists.blocks[c][--lists.count[c]];
    void* p = std::aligned_alloc(64, size_t(64) << c);
    if (!p) throw std::bad_alloc();
    return p;
}

void release_small(void* p, size_t bytes) noexcept {
    const int c = small_class(bytes);
    SmallLists& lists = small_lists();
    if (lists.count[c] < kSmallKeep)
        lists.blocks[c][lists.count[c]++] = p;
    else
        std::free(p);
}

class Cache {
public:
    void* acquire(size_t bytes) {
        if (bytes < kCachedBlockBytes) return acquire_small(bytes);
        const size_t size = size_class(bytes);
        {
            std::lock_guard<std::mutex> guard(lock_);
            auto it = free_.find(size);
            if (it != free_.end()) {
                void* p = it->second.block;
                free_.erase(it);
                cached_ -= size;
                return p;
            }
        }
        return system_block(size);
    }

    void release(void* p, size_t bytes) noexcept {
        if (!p) return;
        if (bytes < kCachedBlockBytes) {
            release_small(p, bytes);
            return;
        }
        const size_t size = size_class(bytes);
        std::vector<void*> drop;
        {
            std::lock_guard<std::mutex> guard(lock_);
            if (size > limit_) {
                drop.push_back(p);
            } else {
                try {
                    free_.emplace(size, Released{p, ++releases_});
                    cached_ += size;
                } catch (...) {
                    drop.push_back(p);
                }
                trim_locked(limit_, drop);
            }
        }
        for (void* q : drop) std::free(q);
    }

    size_t limit() {
        std::lock_guard<std::mutex> guard(lock_);
        return limit_;
    }
    void set_limit(size_t bytes) {
        std::vector<void*> drop;
        {
            std::lock_guard<std::mutex> guard(lock_);
            limit_ = bytes;
            trim_locked(limit_, drop);
        }
        for (void* q : drop) std::free(q);
    }
    size_t cached() {
        std::lock_guard<std::mutex> guard(lock_);
        return cached_;
    }
    void fill(unsigned char byte) {
        std::lock_guard<std::mutex> guard(lock_);
        for (auto& entry : free_) std::memset(entry.second.block, byte, entry.first);
    }
    std::vector<size_t> blocks() {
        std::lock_guard<std::mutex> guard(lock_);
        std::vector<size_t> sizes;
        for (const auto& entry : free_) sizes.push_back(entry.first);
        return sizes;
    }
    void empty() {
        std::vector<void*> drop;
        {
            std::lock_guard<std::mutex> guard(lock_);
            trim_locked(0, drop);
        }
        for (void* q : drop) std::free(q);
    }

private:
    // Drops the least recently released blocks until at most `keep` bytes stay cached: blocks
    // of shapes the process ran long ago go first, not the (large) ones its current calls keep
    // taking back, which would then be faulted in afresh by every call.
    void trim_locked(size_t keep, std::vector<void*>& drop) {
        while (cached_ > keep && !free_.empty()) {
            auto oldest = free_.begin();
            for (auto it = free_.begin(); it != free_.end(); ++it)
                if (it->second.stamp < oldest->second.stamp) oldest = it;
            cached_ -= oldest->first;
            try {
                drop.push_back(oldest->second.block);
            } catch (...) {
                std::free(oldest->second.block);
            }
            free_.erase(oldest);
        }
    }

    struct Released {
        void* block;
        uint64_t stamp;  // order of release
    };
    std::mutex lock_;
    std::multimap<size_t, Released> free_;  // size class -> released block
    uint64_t releases_ = 0;
    size_t cached_ = 0;
    size_t limit_ = default_limit();
};

// Never destroyed: NumPy arrays holding blocks may be released after static destructors ran.
Cache& cache() {
    static Cache* instance = new Cache();
    return *instance;
}

}  // namespace

void* acquire_block(size_t bytes) { return cache().acquire(bytes == 0 ? 1 : bytes); }
void release_block(void* p, size_t bytes) noexcept { cache().release(p, bytes == 0 ? 1 : bytes); }
size_t memory_cache_limit() { return cache().limit(); }
void set_memory_cache_limit(size_t bytes) { cache().set_limit(bytes); }
size_t memory_cached() { return cache().cached(); }
void empty_memory_cache() {
    cache().empty();
    small_lists().clear();
}
std::vector<size_t> memory_cache_blocks() { return cache().blocks(); }
void fill_memory_cache(unsigned char byte) {
    cache().fill(byte);
    small_lists().fill(byte);
}

}  // namespace gatedrnn
