// Golden digests: a fixed seed, the tiny preset and a fixed sequence of primitive calls give
// fixed digests of every row. Any change to the numerics, the input generator or the layout
// changes them. If a change is intended, update the table below and say why in the commit.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "backends/cpu/cpu_backend.h"
#include "tests/backend_test_util.h"

namespace specstate::test {
namespace {

// Runs the fixed sequence: two prefills (one with a snapshot), an inline verify, a payload
// verify, a replay, a deferred verify with a pending replay, a window verify, a copy.
std::vector<uint64_t> golden_sequence(SsmDtype dtype, RecurrenceKind recurrence) {
  const int32_t T = 4;
  PoolShape shape = make_shape("tiny", dtype, 16, T, /*wide_conv=*/true);
  shape.geometry.recurrence = recurrence;
  auto b = make_cpu_backend(shape, 2026);
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
  // The pending replay runs slot 0's tokens from row 4, the state their verify started from: a
  // replay runs a token from the values its verify stored (docs/numerics.md), so it is defined
  // from that state only. (Until 2026-12-05 this verify started from row 7, which had run two
  // of those tokens already; that replay recomputed them and row 8 held a state no strategy
  // reaches. Row 8's digest changed then, nothing else.)
  VerifyTask dv = verify_task(1, 13, T, StateLoc::at(4));
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

void check(SsmDtype dtype, const std::vector<uint64_t>& expected,
           RecurrenceKind recurrence = RecurrenceKind::kGatedDeltaNet) {
  const std::vector<uint64_t> got = golden_sequence(dtype, recurrence);
  if (got != expected) {
    std::printf("golden digests for %s, %s changed; if intended, replace the table with:\n",
                dtype_name(dtype), std::string(to_string(recurrence)).c_str());
    for (uint64_t d : got)
      std::printf("      0x%016llxull,\n", (unsigned long long)d);
  }
  EXPECT_EQ(got, expected);
}

TEST(Golden, TinyF32) {
  check(SsmDtype::kF32,
        {0x00b0b5bfc7f8c0c1ull, 0x3a0b693957c4d3d4ull, 0x9a28b23bc708b309ull, 0xa59a9f9ab2d53094ull,
         0x2b4395c935c25426ull, 0x90f926ecf30b2242ull, 0x8060b4609104d410ull, 0xe51b1f07df909613ull,
         0x5a300db543ccf5c4ull, 0x60cf6551baf4c34bull, 0xe579b67253d2d4b2ull, 0xb9ed7283338d1938ull,
         0x5c068260f0212d55ull, 0x09383b2fb1858859ull, 0xc0d3a63eebb8897aull, 0x2071dd2b8b0af5afull,
         0xeaefe2c080cfe12cull});
}

TEST(Golden, TinyBf16) {
  check(SsmDtype::kBF16,
        {0x2163a8ac440ca212ull, 0xabda2a924ca6b574ull, 0xcb271d807306f5dcull, 0xd0eab3163afbb332ull,
         0xf9fb4845f60aeb4dull, 0xea54c512f77652eeull, 0x67063148fd0def3full, 0x608fe82f4a22a6b1ull,
         0xefd44b1c82f0e942ull, 0x626bb41b9bac4e5eull, 0xecd45d7fd591a8e5ull, 0x16e5a819b7a4eee5ull,
         0x4a882ed1c373a574ull, 0x663070c6359d5e06ull, 0xfe0b4ccd1b94ae6cull, 0xd3cb26d9f504c6e9ull,
         0x0eb11504c8ba12f0ull});
}

// Kimi Delta Attention on the tiny geometry (a decay per key channel): the same sequence.
TEST(Golden, TinyKdaF32) {
  check(SsmDtype::kF32,
        {0xa366a66e96903146ull, 0x3a18634b05c8f089ull, 0x382e4c502ea9abeeull, 0xd99265bfab59efb1ull,
         0x7b57c9b9a94dd842ull, 0x3cdd7c183034d31full, 0xfc888d362ea3af13ull, 0x3d4114b577d768eeull,
         0x32848d115ffbbdbeull, 0x4400b21903e95d40ull, 0xa0703ded70cb1265ull, 0x303cd2cbc464d0e2ull,
         0xd2dc3232ec17abd9ull, 0x7f879b78425d4003ull, 0xc0d3a63eebb8897aull, 0x4c7b8d20c8c3ff80ull,
         0xcd258aaf5a58894aull},
        RecurrenceKind::kKimiDeltaAttention);
}

TEST(Golden, TinyKdaBf16) {
  check(SsmDtype::kBF16,
        {0x9040aa36d3f259c7ull, 0x915102dd92e2becdull, 0x9f0d6292a03eb191ull, 0x1470f53d49c6ec23ull,
         0x4b19832f8e04288cull, 0x43aafb0c6254911eull, 0x0c58b16ab719892dull, 0xd30e24272c84ac7full,
         0xfb9f49125b02dd7aull, 0x50ac266208864407ull, 0x684b3ed91d75fed7ull, 0xd1f86c794260d132ull,
         0x119a471ca05e99c6ull, 0x21433525c0594053ull, 0xfe0b4ccd1b94ae6cull, 0x446e33369a178c18ull,
         0xbe7338997f6c9486ull},
        RecurrenceKind::kKimiDeltaAttention);
}

}  // namespace
}  // namespace specstate::test
