// The CPU backend's parallel loops: on TBB's threads, or in the calling thread when the build
// says so (SPECSTATE_CPU_THREADS=OFF: the aarch64 preset, whose tests run under qemu-user, where
// TBB's arm64 scheduler spins forever before it starts any work). Every unit of work is
// independent and touches its own bytes, and the one reduction is a sum mod 2^64, so both give
// the same bits.
#pragma once

#include <cstdint>

#if SPECSTATE_CPU_THREADS
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>
#endif

namespace specstate::cpu {

// f(i) for every i in [begin, end), in any order, possibly concurrently.
template <class I, class F>
void parallel_for(I begin, I end, F&& f) {
#if SPECSTATE_CPU_THREADS
  tbb::parallel_for(begin, end, f);
#else
  for (I i = begin; i < end; ++i)
    f(i);
#endif
}

// The sum mod 2^64 of f(i) for i in [0, n).
template <class F>
uint64_t parallel_sum(int n, F&& f) {
#if SPECSTATE_CPU_THREADS
  return tbb::parallel_reduce(
      tbb::blocked_range<int>(0, n), uint64_t{0},
      [&](const tbb::blocked_range<int>& r, uint64_t sum) {
        for (int i = r.begin(); i != r.end(); ++i)
          sum += f(i);
        return sum;
      },
      [](uint64_t a, uint64_t b) { return a + b; });
#else
  uint64_t sum = 0;
  for (int i = 0; i < n; ++i)
    sum += f(i);
  return sum;
#endif
}

}  // namespace specstate::cpu
