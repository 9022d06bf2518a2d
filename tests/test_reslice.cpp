// Ranks are slices of one model: every rank of a TP split computes exactly its heads' part of the
// unsplit model's state, so a state resliced between TP degrees (a prefill/decode handoff) is the
// state the receiving rank computes itself (core/reslice.h, num::RankIndex).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "core/errors.h"
#include "core/reslice.h"
#include "tests/backend_test_util.h"

namespace specstate::test {
namespace {

constexpr uint64_t kSeed = 77;

struct Model {
  std::string preset;
  std::vector<int32_t> layers;  // held model layers; empty: all
};

ModelGeometry rank_geometry(const Model& m, int32_t tp, int32_t rank) {
  return with_layers(make_geometry(m.preset, tp, rank), m.layers);
}

// The state of request 5 after a prefill of 6 tokens and a verify of 3 more, on one rank.
RowBytes state_on(const ModelGeometry& g, SsmDtype dtype) {
  PoolShape shape;
  shape.geometry = g;
  shape.ssm_dtype = dtype;
  shape.state_rows = 2;
  shape.conv_cols = g.conv_state_cols();
  shape.payload_slots = 1;
  shape.payload_tokens = 3;
  auto b = make_cpu_backend(shape, kSeed);
  const PrefillTask p = prefill_task(5, 0, 6, 0);
  b->prefill({&p, 1});
  const VerifyTask v = verify_task(5, 6, 3, StateLoc::at(0), {kNoRow, kNoRow, 1});
  b->verify(VerifyMode::kStateRows, {&v, 1});
  return b->read_state(StateLoc::at(1));
}

std::vector<RowBytes> all_ranks(const Model& m, int32_t tp, SsmDtype dtype) {
  std::vector<RowBytes> states;
  for (int32_t r = 0; r < tp; ++r)
    states.push_back(state_on(rank_geometry(m, tp, r), dtype));
  return states;
}

PoolShape diff_shape(const ModelGeometry& g, SsmDtype dtype) {
  PoolShape s;
  s.geometry = g;
  s.ssm_dtype = dtype;
  s.conv_cols = g.conv_state_cols();
  return s;
}

class RankSlices : public ::testing::TestWithParam<SsmDtype> {};

// Between every pair of TP degrees of the model, both ways: the resliced state is byte for byte
// the one each receiving rank computed from the same tokens.
void expect_reslices(const Model& m, std::vector<int32_t> degrees, SsmDtype dtype) {
  std::vector<std::vector<RowBytes>> states;
  for (int32_t tp : degrees)
    states.push_back(all_ranks(m, tp, dtype));
  for (size_t from = 0; from < degrees.size(); ++from) {
    for (size_t to = 0; to < degrees.size(); ++to) {
      const ModelGeometry sender = rank_geometry(m, degrees[from], 0);
      for (int32_t r = 0; r < degrees[to]; ++r) {
        const ModelGeometry receiver = rank_geometry(m, degrees[to], r);
        const RowBytes got = reslice_state(receiver, sender, states[from], dtype);
        EXPECT_EQ(first_difference(got, states[to][size_t(r)], diff_shape(receiver, dtype)), "")
            << m.preset << " TP " << degrees[from] << " -> TP " << degrees[to] << " rank " << r;
      }
    }
  }
}

TEST_P(RankSlices, TinyBetweenTp1And2) {
  expect_reslices({"tiny", {}}, {1, 2}, GetParam());
}

TEST_P(RankSlices, QwenNextLayerBetweenTp1And2And4) {
  expect_reslices({"qwen3-next-80b-a3b", {17}}, {1, 2, 4}, GetParam());
}

TEST_P(RankSlices, KimiLinearLayerBetweenTp1And4) {  // a per-channel decay: a's and dt_bias's rows
  expect_reslices({"kimi-linear-48b-a3b", {3}}, {1, 4}, GetParam());
}

// SGLang #30997's cut (the concatenated q | k | v in tp equal blocks) is another state: rank 0
// gets the right q but k's first half where its k belongs, rank 1 the rest of k and half of v.
TEST_P(RankSlices, ContiguousConvCutGivesOtherChannels) {
  const Model m{"tiny", {}};
  const std::vector<RowBytes> whole = all_ranks(m, 1, GetParam());
  const ModelGeometry sender = rank_geometry(m, 1, 0);
  for (int32_t r = 0; r < 2; ++r) {
    const ModelGeometry receiver = rank_geometry(m, 2, r);
    const RowBytes right = reslice_state(receiver, sender, whole, GetParam());
    const RowBytes cut =
        reslice_state(receiver, sender, whole, GetParam(), ConvSlicing::kContiguous);
    EXPECT_EQ(cut.ssm, right.ssm) << "rank " << r;  // the SSM is cut by heads either way
    const int32_t wc = receiver.conv_state_cols(), kd = receiver.key_dim();
    const auto q_end = right.conv.begin() + int64_t{kd} * wc;
    EXPECT_EQ(std::equal(right.conv.begin(), q_end, cut.conv.begin()), r == 0) << "rank " << r;
    EXPECT_NE(cut.conv, right.conv) << "rank " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, RankSlices, ::testing::Values(SsmDtype::kF32, SsmDtype::kBF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(Reslice, RefusesAnotherModel) {
  const ModelGeometry next = make_geometry("qwen3-next-80b-a3b", 2, 1);
  const ModelGeometry other = make_geometry("qwen3.5-35b-a3b", 1, 0);
  const std::vector<RowBytes> one(1);
  EXPECT_THROW(reslice_state(next, other, one, SsmDtype::kF32), InputError);
  const ModelGeometry fewer = with_layers(make_geometry("qwen3-next-80b-a3b", 1, 0), {0});
  EXPECT_THROW(reslice_state(next, fewer, one, SsmDtype::kF32), InputError);
}

TEST(Reslice, RanksOutsideTheSplitAreRefused) {
  EXPECT_THROW(make_geometry("qwen3-next-80b-a3b", 4, 4), InputError);
  EXPECT_THROW(make_geometry("qwen3-next-80b-a3b", 4, -1), InputError);
  EXPECT_EQ(make_geometry("qwen3-next-80b-a3b", 4, 3).rank, 3);
}

// TP 1 indexes channels and heads as they were before ranks existed (the golden digests hold).
TEST(Reslice, TheWholeModelIndexesItselfAsItIs) {
  const num::RankIndex whole = make_geometry("qwen3-next-80b-a3b").rank_index();
  for (uint32_t c = 0; c < 8192; c += 97)
    EXPECT_EQ(whole.conv_channel(c), c);
  const num::RankIndex third = make_geometry("qwen3-next-80b-a3b", 4, 2).rank_index();
  EXPECT_EQ(third.conv_channel(0), 2u * 512);             // q of key head 8
  EXPECT_EQ(third.conv_channel(512), 2048u + 2 * 512);    // k of key head 8
  EXPECT_EQ(third.conv_channel(1024), 4096u + 2 * 1024);  // v of value head 16
  EXPECT_EQ(third.value_head(1), 17u);
  EXPECT_EQ(third.head_entry(3, 128), 2u * 8 * 128 + 3);
}

}  // namespace
}  // namespace specstate::test
