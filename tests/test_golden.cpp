// Golden digests: a fixed seed, the tiny preset and a fixed sequence of primitive calls give
// fixed digests of every row. Any change to the numerics, the input generator or the layout
// changes them. If a change is intended, update the table below and say why in the commit.
#include <gtest/gtest.h>

#include <cstdio>

#include "backends/cpu/cpu_backend.h"
#include "tests/backend_test_util.h"

namespace specstate::test {
namespace {

// Runs the fixed sequence: two prefills (one with a snapshot), an inline verify, a payload
// verify, a replay, a deferred verify with a pending replay, a window verify, a copy.
std::vector<uint64_t> golden_sequence(SsmDtype dtype) {
  const int32_t T = 4;
  auto b = make_cpu_backend(make_shape("tiny", dtype, 16, T, /*wide_conv=*/true), 2026);
  PrefillTask p0 = prefill_task(1, 0, 7, 0);
  p0.writes.push_back({4, 15});
  const PrefillTask ps[] = {p0, prefill_task(2, 0, 3, 1)};
  b->prefill(ps);
  const VerifyTask v[] = {verify_task(1, 7, T, StateLoc::at(0), {2, 3, 4, 5}),
                          verify_task(2, 3, 1, StateLoc::at(1), {6})};
  b->verify(VerifyMode::kStateRows, v);
  VerifyTask pv = verify_task(1, 10, T, StateLoc::at(4));
  pv.payload_slot = 0;
  b->verify(VerifyMode::kPayload, {&pv, 1});
  const ReplayTask r{StateLoc::at(4), 0, 2, 7};
  b->replay({&r, 1});
  VerifyTask dv = verify_task(1, 12, T, StateLoc::at(7));
  dv.payload_slot = 1;
  dv.pending = {0, 3, 8};
  b->verify(VerifyMode::kPayload, {&dv, 1});
  const VerifyTask wv = verify_task(2, 4, T, StateLoc::at(6), {9, 10, 11, 12});
  b->verify(VerifyMode::kWindow, {&wv, 1});
  const RowCopy c{{11, 6, 2}, 13};
  b->copy_rows({&c, 1});
  std::vector<uint64_t> digests;
  for (int32_t row = 0; row < 16; ++row)
    digests.push_back(b->digest_row(row));
  uint64_t outputs = 0;
  for (auto o : b->read_outputs().values)
    outputs = outputs * 1099511628211ull + o;
  digests.push_back(outputs);
  return digests;
}

void check(SsmDtype dtype, const std::vector<uint64_t>& expected) {
  const std::vector<uint64_t> got = golden_sequence(dtype);
  if (got != expected) {
    std::printf("golden digests for %s changed; if intended, replace the table with:\n",
                dtype_name(dtype));
    for (uint64_t d : got)
      std::printf("      0x%016llxull,\n", (unsigned long long)d);
  }
  EXPECT_EQ(got, expected);
}

TEST(Golden, TinyF32) {
  check(SsmDtype::kF32,
        {0xfc24dd8eeb80ca4dull, 0x1b6da53fd6c914c2ull, 0x761de95e6ab37d9eull, 0xb2644c70551d4107ull,
         0x19f0588d99a769a3ull, 0x10b501b8b3627d29ull, 0x561baac236a6cc0cull, 0x1bd84324559f923aull,
         0xddf067e786caa09aull, 0x6f34da6b404c801bull, 0x1615965b8c1091fcull, 0x68789a153bf97425ull,
         0xdd23a31bafd0b160ull, 0x8cb6c0ad9db7c23aull, 0x52c42454e88c6742ull, 0xdf27281d7d118686ull,
         0xeaefe2c080cfe12cull});
}

TEST(Golden, TinyBf16) {
  check(SsmDtype::kBF16,
        {0x5b10f0c09d581ef1ull, 0x2182e5f8426210f8ull, 0x7ddd85a2f2669df7ull, 0x08097d2228ee9611ull,
         0x2953a0d68f6ef6a2ull, 0x6faf9353a3c2869eull, 0xabeafcd400db5227ull, 0xb5d0edf3d5b40a2eull,
         0x1c1dfac3c1b888bcull, 0x5d204df95000def6ull, 0x80bbc67c255bd4faull, 0x3fba174a6ddfeba1ull,
         0x5869137e1b70e84dull, 0x63f83de2cf9e39b6ull, 0x7bdd85d7b9d13db8ull, 0xeae5174af3372e4dull,
         0x0eb11504c8ba12f0ull});
}

}  // namespace
}  // namespace specstate::test
