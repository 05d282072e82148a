// gatedrnn core: where large arrays come from.
//
// A training step allocates the same large arrays every time: the workspace, the gate
// gradients, the outputs, the packed weights. Fresh memory from the operating system arrives as
// zero pages faulted in one 4 KB page at a time. For a 100 MB step that is ~25 000 page faults,
// a fifth of the step's time on a virtual machine, and it varies from run to run. So blocks of
// at least kCachedBlockBytes go back to a process-wide cache when released and are handed out
// again to the next request of a similar size. The cache keeps at most memory_cache_limit()
// bytes of released blocks, dropping the least recently released first
// (GATEDRNN_MEMORY_CACHE_MB sets the default, 0 turns the cache off);
// empty_memory_cache() returns them to the system. Blocks of 4 MB and more are 2 MB aligned
// and advised for transparent huge pages, where Linux offers them. Smaller blocks are kept per
// thread, a few of each power-of-two size (about 4 MB at most per thread), outside that limit;
// empty_memory_cache() and fill_memory_cache() also reach the calling thread's small blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gatedrnn {

constexpr size_t kCachedBlockBytes = size_t(256) << 10;

// A 64-byte aligned block of at least `bytes` bytes (std::bad_alloc when there is no memory).
void* acquire_block(size_t bytes);
// Gives a block from acquire_block(bytes) back. Thread-safe, never throws.
void release_block(void* p, size_t bytes) noexcept;

size_t memory_cache_limit();
void set_memory_cache_limit(size_t bytes);  // frees cached blocks above the new limit
size_t memory_cached();                     // bytes held by released blocks now
void empty_memory_cache();
// Tests: overwrite every cached block (the large ones, and the calling thread's small ones) with
// `byte`, so a kernel that reads memory it never wrote (and relied on fresh pages being zero)
// gives NaN instead of passing by luck.
void fill_memory_cache(unsigned char byte);
// Tests: the sizes of the large blocks cached now, ascending.
std::vector<size_t> memory_cache_blocks();

}  // namespace gatedrnn
