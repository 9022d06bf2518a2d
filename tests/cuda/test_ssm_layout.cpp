// The CUDA backend's SSM layout (backends/cuda/ssm_layout.h), checked on the host: it needs no
// device, so these run wherever the CUDA backend is built. The differential tests check that the
// kernels, the upload, the download and the digest use it consistently; these check what the
// layout promises by itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "backends/cuda/ssm_layout.h"

namespace specstate::cuda {
namespace {

struct Case {
  int K, elem_bytes;
};
constexpr Case kCases[] = {{16, 2}, {16, 4}, {128, 2}, {128, 4}};

TEST(CudaSsmLayout, EveryElementHasItsOwnPlaceAndAColumnPairIsAdjacent) {
  for (const Case c : kCases) {
    std::vector<int> uses(size_t(c.K) * c.K, 0);
    for (int k = 0; k < c.K; ++k) {
      for (int v = 0; v < c.K; ++v) {
        const int64_t at = ssm_element_offset(k, v, c.K, c.elem_bytes);
        ASSERT_GE(at, 0);
        ASSERT_LT(at, int64_t{c.K} * c.K);
        ++uses[size_t(at)];
        if (v % 2 == 1) {
          EXPECT_EQ(at, ssm_element_offset(k, v - 1, c.K, c.elem_bytes) + 1);
        }
      }
    }
    EXPECT_TRUE(std::all_of(uses.begin(), uses.end(), [](int n) { return n == 1; }))
        << "K " << c.K << ", " << c.elem_bytes << "-byte elements";
  }
}

// A warp's load of its threads' unit g (one 16-byte vector each, 8 bytes where a chain has 2
// rows of bf16) covers whole 128-byte lines, 4 of them for K = 128: no sector is read twice or
// half.
TEST(CudaSsmLayout, AWarpsStateAccessIsWholeLines) {
  for (const Case c : kCases) {
    const int unit_bytes = 2 * ssm_unit_rows(c.K, c.elem_bytes) * c.elem_bytes;
    const int units = c.K / 8 / ssm_unit_rows(c.K, c.elem_bytes), threads = c.K / 2 * 8;
    for (int warp = 0; warp < threads / 32; ++warp) {
      for (int g = 0; g < units; ++g) {
        std::set<int64_t> bytes;
        for (int lane = 0; lane < 32; ++lane) {
          const RecurLane ln = recur_lane(warp * 32 + lane);
          const int64_t first =
              ssm_unit_offset(ln.col0, g, ln.chain, c.K, c.elem_bytes) * c.elem_bytes;
          for (int b = 0; b < unit_bytes; ++b)
            ASSERT_TRUE(bytes.insert(first + b).second) << "two lanes read one byte";
        }
        std::set<int64_t> lines;
        for (int64_t b : bytes)
          lines.insert(b / 128);
        EXPECT_EQ(int64_t(lines.size()) * 128, int64_t(bytes.size()))
            << "K " << c.K << ", " << c.elem_bytes << "-byte elements, warp " << warp << ", g "
            << g;
      }
    }
  }
}

// The 8 chains of a column pair are 8 lanes of one warp, at lane distances 1, 2, 4 (the xor
// butterfly's partners), and the 512 threads of a K = 128 head cover each (chain, pair) once.
TEST(CudaSsmLayout, AColumnsChainsAreOneWarpsLanes) {
  std::set<std::pair<int, int>> owners;
  for (int t = 0; t < 512; ++t) {
    const RecurLane ln = recur_lane(t);
    EXPECT_EQ(ln.chain, t % 8);
    for (int bit = 1; bit < 8; bit <<= 1) {
      const RecurLane partner = recur_lane(t ^ bit);
      EXPECT_EQ(partner.col0, ln.col0);
      EXPECT_EQ(partner.chain, ln.chain ^ bit);
    }
    EXPECT_TRUE(owners.insert({ln.chain, ln.col0}).second);
  }
  EXPECT_EQ(owners.size(), 8u * 64u);
}

// The digest's walk: every canonical 8-byte block once, its elements where ssm_element_offset
// puts them, and (fp32) consecutive blocks at consecutive device bytes.
TEST(CudaSsmLayout, TheDigestVisitsEveryCanonicalBlockOnce) {
  for (const Case c : kCases) {
    const int per_block = 8 / c.elem_bytes;
    const int64_t blocks = int64_t{c.K} * c.K / per_block;
    std::vector<int> uses(size_t(blocks), 0);
    for (int64_t b = 0; b < blocks; ++b) {
      const SsmBlock at = ssm_block_in_device_order(b, c.K, c.elem_bytes);
      ASSERT_GE(at.canonical, 0);
      ASSERT_LT(at.canonical, blocks);
      ++uses[size_t(at.canonical)];
      const int k = int(at.canonical * per_block / c.K), v = int(at.canonical * per_block % c.K);
      EXPECT_EQ(at.first, ssm_element_offset(k, v, c.K, c.elem_bytes));
      if (per_block == 4) {
        EXPECT_EQ(at.second, ssm_element_offset(k, v + 2, c.K, c.elem_bytes));
      }
      if (per_block == 2 && b > 0) {
        EXPECT_EQ(at.first, ssm_block_in_device_order(b - 1, c.K, c.elem_bytes).first + 2);
      }
    }
    EXPECT_TRUE(std::all_of(uses.begin(), uses.end(), [](int n) { return n == 1; }))
        << "K " << c.K << ", " << c.elem_bytes << "-byte elements";
  }
}

}  // namespace
}  // namespace specstate::cuda
