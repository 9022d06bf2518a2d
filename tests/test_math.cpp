// The project's exp, log1p, sigmoid, softplus and silu against float64 over dense sweeps.
// Every float in a range is visited with a fixed bit-pattern stride (odd, so every exponent and
// mantissa pattern class is hit); SPECSTATE_EXHAUSTIVE=1 visits every float instead.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>

#include "core/numerics/math.h"
#include "tests/sweep.h"
#include "tests/ulp.h"

namespace specstate::test {
namespace {

struct SweepResult {
  double worst_ulp_error = 0;     // against the exact value
  int64_t worst_cr_distance = 0;  // representable floats from the correctly rounded result
  float worst_input = 0;
  uint64_t count = 0;
};

// Visits floats in [lo, hi] of one sign by bit pattern.
SweepResult sweep(float lo, float hi, const std::function<float(float)>& f,
                  const std::function<double(double)>& exact) {
  SweepResult r;
  const uint32_t stride = sweep_stride();
  auto visit = [&](float x) {
    const double e = exact(double(x));
    const float got = f(x);
    const double err = ulp_error(got, e);
    const int64_t dist = ulp_distance(got, float(e));
    if (dist > r.worst_cr_distance || (dist == r.worst_cr_distance && err > r.worst_ulp_error)) {
      r.worst_cr_distance = dist;
      r.worst_input = x;
    }
    r.worst_ulp_error = std::max(r.worst_ulp_error, err);
    ++r.count;
  };
  // Negative part, then non-negative part.
  if (lo < 0) {
    const uint32_t from = bits_of(std::min(hi, -0.0f)), to = bits_of(lo);
    for (uint64_t u = from; u <= to; u += stride)
      visit(float_of(uint32_t(u)));
    visit(lo);
  }
  if (hi >= 0) {
    const uint32_t from = bits_of(std::max(lo, 0.0f)), to = bits_of(hi);
    for (uint64_t u = from; u <= to; u += stride)
      visit(float_of(uint32_t(u)));
    visit(hi);
  }
  return r;
}

void report(const char* name, const SweepResult& r) {
  std::printf(
      "%-8s %12llu inputs  worst error %.3f ulp  worst distance from correctly rounded %lld (x = "
      "%a)\n",
      name, (unsigned long long)r.count, r.worst_ulp_error, (long long)r.worst_cr_distance,
      r.worst_input);
}

TEST(Math, ExpWithinTwoUlpOnWholeFiniteRange) {
  // Finite results: from the largest input rounding to 0 up to the last input below overflow.
  const SweepResult r =
      sweep(-0x1.9fe368p+6f, 0x1.62e42ep+6f, num::exp_f32, [](double x) { return std::exp(x); });
  report("exp", r);
  EXPECT_LE(r.worst_cr_distance, 2);
  EXPECT_LT(r.worst_ulp_error, 2.0);
}

TEST(Math, ExpSpecialValues) {
  EXPECT_EQ(num::exp_f32(0.0f), 1.0f);
  EXPECT_EQ(num::exp_f32(-0.0f), 1.0f);
  EXPECT_TRUE(std::isinf(num::exp_f32(0x1.62e430p+6f)));
  EXPECT_TRUE(std::isinf(num::exp_f32(INFINITY)));
  EXPECT_EQ(num::exp_f32(-INFINITY), 0.0f);
  EXPECT_EQ(num::exp_f32(-0x1.9fe36ap+6f), 0.0f);
  EXPECT_EQ(num::exp_f32(-0x1.9fe368p+6f), 0x1p-149f);  // exp rounds up to the least subnormal
  EXPECT_TRUE(std::isnan(num::exp_f32(NAN)));
}

TEST(Math, Log1pAccurate) {
  const SweepResult r =
      sweep(-0x1.fffffep-1f, 0x1p+60f, num::log1p_f32, [](double x) { return std::log1p(x); });
  report("log1p", r);
  EXPECT_LE(r.worst_cr_distance, 3);
  EXPECT_EQ(num::log1p_f32(0.0f), 0.0f);
  EXPECT_TRUE(std::isinf(num::log1p_f32(-1.0f)));
  EXPECT_TRUE(std::isnan(num::log1p_f32(-2.0f)));
  EXPECT_TRUE(std::isinf(num::log1p_f32(INFINITY)));
}

TEST(Math, SigmoidAccurate) {
  const SweepResult r = sweep(-0x1.9fe368p+6f, 0x1.9p+6f, num::sigmoid_f32,
                              [](double x) { return 1.0 / (1.0 + std::exp(-x)); });
  report("sigmoid", r);
  EXPECT_LE(r.worst_cr_distance, 3);
}

// Down to x = -80, where results are still normal floats; below, silu(x) = x exp(x) is
// subnormal and exp's own subnormal rounding dominates: there the bound is 4 float ulps of the
// result plus an absolute 2^-140.
TEST(Math, SiluAccurate) {
  const SweepResult r =
      sweep(-80.0f, 0x1.9p+6f, num::silu_f32, [](double x) { return x / (1.0 + std::exp(-x)); });
  report("silu", r);
  EXPECT_LE(r.worst_cr_distance, 3);
  for (float x = -80.0f; x > -110.0f; x -= 0.0625f) {
    const double exact = double(x) / (1.0 + std::exp(-double(x)));
    EXPECT_LE(std::fabs(num::silu_f32(x) - exact), 0x1p-21 * std::fabs(exact) + 0x1p-140) << x;
  }
}

TEST(Math, SoftplusAccurateAndThresholded) {
  // The model feeds it a + dt_bias; the range covers it with a wide margin.
  const SweepResult r =
      sweep(-0x1.9p+6f, 20.0f, num::softplus_f32, [](double x) { return std::log1p(std::exp(x)); });
  report("softplus", r);
  EXPECT_LE(r.worst_cr_distance, 4);
  EXPECT_EQ(num::softplus_f32(20.5f), 20.5f);
  EXPECT_EQ(num::softplus_f32(1e30f), 1e30f);
}

}  // namespace
}  // namespace specstate::test
