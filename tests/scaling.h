// A cost check that survives a noisy machine: the best of three timings of work at size n and
// at 4n. Linear work gives a ratio near 4; quadratic work, 16.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>

namespace specstate::test {

// Seconds of the fastest of three runs of `work(n)`.
inline double best_seconds(const std::function<void(int)>& work, int n) {
  double best = 1e30;
  for (int run = 0; run < 3; ++run) {
    const auto start = std::chrono::steady_clock::now();
    work(n);
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

// time(4n) / time(n), with 1 ms added to both so that timer noise on tiny runs cannot matter.
inline double growth_of_four_times_the_size(const std::function<void(int)>& work, int n) {
  return (best_seconds(work, 4 * n) + 1e-3) / (best_seconds(work, n) + 1e-3);
}

// A bound between linear (4) and quadratic (16) growth.
inline constexpr double kLinearGrowthBound = 9.0;

}  // namespace specstate::test
