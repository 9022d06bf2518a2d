// The CPU backend's packet SiLU and bf16 rounding (backends/cpu/packet_lanes.h) against the scalar
// definitions (core/numerics/math.h, bf16.h), bit for bit: every float with a fixed odd stride
// through all bit patterns (SPECSTATE_EXHAUSTIVE=1: every float), and the edges of each branch.
// Its digest paths (backends/cpu/digest_lanes.h) against digest_block (core/numerics/digest.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "backends/cpu/digest_lanes.h"
#include "backends/cpu/packet_lanes.h"
#include "core/numerics/bf16.h"
#include "core/numerics/math.h"
#include "tests/sweep.h"

namespace specstate::test {
namespace {

// Every length from 0 to 67 blocks (whole vectors and every tail), at start indices where
// index * stride wraps mod 2^64, over blocks with every bit pattern likely: each vector path this
// host runs, and the dispatching digest_blocks, give the definition's sum. A path the host lacks
// says so (the test fails only on a wrong sum).
TEST(CpuMath, DigestBlocksEqualDigestBlockSums) {
  using Path = uint64_t (*)(const uint8_t*, int64_t, uint64_t);
  std::vector<std::pair<const char*, Path>> paths = {{"digest_blocks", cpu::digest_blocks},
                                                     {"scalar", cpu::digest_blocks_scalar}};
#if defined(__AVX2__)
  paths.emplace_back("avx2", cpu::digest_blocks_avx2);
#endif
#if defined(__AVX2__) && defined(__x86_64__)
  if (cpu::has_avx512_digest()) {
    paths.emplace_back("avx512", cpu::digest_blocks_avx512);
  } else {
    std::printf("this host has no AVX-512 F + DQ: its digest path is not run here\n");
  }
#endif
  std::vector<uint64_t> blocks(67);
  uint64_t x = 1;
  for (uint64_t& b : blocks)
    b = x = num::mix64(x);
  blocks[5] = 0;
  blocks[6] = ~uint64_t{0};
  for (const uint64_t first : {uint64_t{0}, uint64_t{1}, uint64_t{12345}, ~uint64_t{0} - 40}) {
    for (int64_t n = 0; n <= int64_t(blocks.size()); ++n) {
      uint64_t want = 0;
      for (int64_t i = 0; i < n; ++i)
        want += num::digest_block(first + uint64_t(i), blocks[size_t(i)]);
      for (const auto& [name, path] : paths)
        ASSERT_EQ(path(reinterpret_cast<const uint8_t*>(blocks.data()), n, first), want)
            << name << ": " << n << " blocks from index " << first;
    }
  }
}

#if defined(SPECSTATE_PACKET_SILU)

// Packet results for a packet of inputs at a time, checked against the scalar function; a NaN
// may be any NaN where the scalar one is a NaN (round_to_bf16 makes it canonical in the step).
template <class Lanes, class Scalar>
void expect_same(const std::vector<float>& inputs, Lanes lanes, Scalar scalar, const char* what) {
  constexpr int n = cpu::packet::kSize;
  int64_t failures = 0;
  for (size_t i = 0; i + n <= inputs.size() && failures < 5; i += n) {
    float out[n];
    Eigen::internal::pstoreu(out, lanes(Eigen::internal::ploadu<cpu::packet::F>(&inputs[i])));
    for (int l = 0; l < n; ++l) {
      const float want = scalar(inputs[i + l]);
      const bool both_nan = want != want && out[l] != out[l];
      if (both_nan || num::float_bits(want) == num::float_bits(out[l])) continue;
      ADD_FAILURE() << what << "(" << inputs[i + l] << " = 0x" << std::hex
                    << num::float_bits(inputs[i + l]) << "): lanes 0x" << num::float_bits(out[l])
                    << ", scalar 0x" << num::float_bits(want);
      ++failures;
    }
  }
}

// Floats by bit pattern with an odd stride (tests/sweep.h), then
// the values around each branch of exp and SiLU, padded to a multiple of 8.
std::vector<float> test_inputs() {
  const uint64_t stride = sweep_stride();
  std::vector<float> in;
  for (uint64_t u = 0; u < (uint64_t{1} << 32); u += stride)
    in.push_back(num::bits_float(uint32_t(u)));
  const float edges[] = {0.0f,
                         -0.0f,
                         num::kInf,
                         -num::kInf,
                         num::kExpOverflow,
                         num::kExpUnderflow,
                         -num::kExpOverflow,
                         -num::kExpUnderflow,
                         87.0f,
                         88.0f,
                         -87.0f,
                         -88.0f,
                         -103.0f,
                         -104.0f,
                         103.0f,
                         104.0f,
                         1e-45f,
                         -1e-45f};
  for (float e : edges) {
    uint32_t u = num::float_bits(e);
    for (uint32_t d = 0; d < 64; ++d) {
      in.push_back(num::bits_float(u + d));
      in.push_back(num::bits_float(u - d));
    }
  }
  for (int n = -160; n <= 140; ++n) {  // every exponent the scaling branches see
    in.push_back(float(n) * num::kLn2Hi);
    in.push_back(std::nextafter(float(n) * num::kLn2Hi, 1e9f));
    in.push_back(std::nextafter(float(n) * num::kLn2Hi, -1e9f));
  }
  while (in.size() % 8)
    in.push_back(0.0f);
  return in;
}

TEST(CpuMath, ExpLanesEqualExpF32) {
  expect_same(test_inputs(), cpu::exp_packet, num::exp_f32, "exp");
}

TEST(CpuMath, SiluLanesEqualSiluF32) {
  expect_same(test_inputs(), cpu::silu_packet, num::silu_f32, "silu");
}

TEST(CpuMath, Bf16RoundingLanesEqualRoundToBf16) {
  expect_same(test_inputs(), cpu::round_to_bf16_packet, num::round_to_bf16, "round_to_bf16");
}

#else

TEST(CpuMath, ExpLanesEqualExpF32) {
  GTEST_SKIP() << "built without Eigen vectorisation: the CPU backend runs the scalar SiLU";
}

#endif

}  // namespace
}  // namespace specstate::test
