// Heap allocations of a test binary, counted by a replaced global operator new (allocations.cpp,
// which the binary links). Complexity tests compare the allocations of work at two sizes: a count
// is the same on every run, idle or loaded, where wall time is not (a timed check failed 21 runs
// of 21 on a 2-core VM once glibc served the allocations with mmap).
#pragma once

#include <cstdint>
#include <functional>

namespace specstate::test {

// Allocations by operator new (every form) since the program started, all threads, and the
// bytes they asked for.
int64_t allocations();
int64_t allocated_bytes();

// The allocations `work` makes.
inline int64_t allocations_of(const std::function<void()>& work) {
  const int64_t before = allocations();
  work();
  return allocations() - before;
}

// The bytes `work` allocates (freed or not).
inline int64_t bytes_allocated_by(const std::function<void()>& work) {
  const int64_t before = allocated_bytes();
  work();
  return allocated_bytes() - before;
}

// allocations(work(4n)) / allocations(work(n)): near 4 for work linear in n, 16 for quadratic.
inline double allocation_growth_of_four_times_the_size(const std::function<void(int)>& work,
                                                       int n) {
  const int64_t small = allocations_of([&] { work(n); });
  const int64_t large = allocations_of([&] { work(4 * n); });
  return double(large) / double(small > 0 ? small : 1);
}

// A bound between linear (4) and quadratic (16) growth.
inline constexpr double kLinearGrowthBound = 9.0;

}  // namespace specstate::test
