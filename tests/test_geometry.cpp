#include <gtest/gtest.h>

#include <cmath>

#include "core/errors.h"
#include "core/geometry.h"
#include "core/pool_shape.h"
#include "core/trace/rules.h"

namespace specstate {
namespace {

double state_mib_per_request(const char* preset) {
  PoolShape s;
  s.geometry = make_geometry(preset, 1);
  s.conv_cols = s.geometry.conv_state_cols();
  s.state_rows = 1;
  return double(s.state_row_bytes()) / (1024.0 * 1024.0);
}

// Design section 8: state per request at TP1 (SSM fp32 + conv bf16), as printed there to two
// decimals (49.125 MiB prints as 49.12).
TEST(Geometry, PresetStateSizesMatchTheDesignTable) {
  EXPECT_NEAR(state_mib_per_request("qwen3-next-80b-a3b"), 73.69, 0.0051);
  EXPECT_NEAR(state_mib_per_request("qwen3.5-397b-a17b"), 183.16, 0.0051);
  EXPECT_NEAR(state_mib_per_request("qwen3.5-122b-a10b"), 146.53, 0.0051);
  EXPECT_NEAR(state_mib_per_request("qwen3.5-35b-a3b"), 61.41, 0.0051);
  EXPECT_NEAR(state_mib_per_request("qwen3.5-27b"), 146.81, 0.0051);
  EXPECT_NEAR(state_mib_per_request("qwen3.5-9b"), 49.12, 0.0051);
  EXPECT_NEAR(state_mib_per_request("qwen3.5-2b"), 18.63, 0.0051);
}

// core/trace/rules.json (which the Python recorder is generated from too) lists the presets'
// head counts; the geometry table must say the same, in the same order.
TEST(Geometry, PresetHeadsOfTheTraceRulesMatchThePresetTable) {
  ASSERT_EQ(std::size(trace::kPresetHeads), presets().size());
  for (size_t i = 0; i < presets().size(); ++i) {
    EXPECT_EQ(presets()[i].name, trace::kPresetHeads[i].name);
    EXPECT_EQ(presets()[i].num_k_heads, trace::kPresetHeads[i].num_k_heads);
    EXPECT_EQ(presets()[i].num_v_heads, trace::kPresetHeads[i].num_v_heads);
  }
}

// The recurrences the trace rules (and so both readers) accept are the table's, in its order;
// a preset's decay values per value head are its recurrence's: one for Gated DeltaNet, K for
// Kimi Delta Attention (one per key channel).
TEST(Geometry, RecurrencesOfTheTraceRulesMatchTheRecurrenceTable) {
  ASSERT_EQ(std::size(trace::kRecurrenceNames), all_recurrences().size());
  for (size_t i = 0; i < all_recurrences().size(); ++i) {
    EXPECT_EQ(to_string(all_recurrences()[i]), trace::kRecurrenceNames[i]);
    EXPECT_EQ(find_recurrence(trace::kRecurrenceNames[i]), all_recurrences()[i]);
  }
  EXPECT_EQ(find_recurrence("kda"), std::nullopt);
  EXPECT_EQ(recurrence_names_text(), "gated-deltanet, kimi-delta-attention");
  for (const PresetInfo& p : presets()) {
    const ModelGeometry g = make_geometry(p.name);
    EXPECT_EQ(g.recurrence, p.recurrence) << p.name;
    const bool kda = p.recurrence == RecurrenceKind::kKimiDeltaAttention;
    EXPECT_EQ(kda, p.name == "kimi-linear-48b-a3b") << p.name;
    EXPECT_EQ(g.decay_values_per_head(), kda ? g.head_k_dim : 1) << p.name;
  }
}

// A stored token's values: alpha [HV, A], k_hat [H, K], delta [HV, V], A the decay values per
// value head (1 for Gated DeltaNet), one after the other.
TEST(Geometry, PayloadTokenPlacesTheDecayValuesPerValueHead) {
  PoolShape shape;
  shape.geometry = make_geometry("qwen3-next-80b-a3b");
  const num::PayloadToken t = shape.payload_token();
  EXPECT_EQ(t.A, 1);
  EXPECT_EQ(t.value_floats(), 32 + 16 * 128 + 32 * 128);
  std::vector<uint8_t> token(size_t(t.bytes()));
  const float* values = t.values(token.data());
  EXPECT_EQ(t.decay(token.data(), 5), values + 5);
  EXPECT_EQ(t.k_hat(token.data(), 1), values + 32 + 128);
  EXPECT_EQ(t.delta(token.data(), 2), values + 32 + 16 * 128 + 2 * 128);
  num::PayloadToken wide = t;
  wide.A = 128;  // a decay per key channel
  EXPECT_EQ(wide.decay(token.data(), 5), values + 5 * 128);
  EXPECT_EQ(wide.k_hat(token.data(), 0), values + 32 * 128);
  EXPECT_EQ(wide.value_floats(), 32 * 128 + 16 * 128 + 32 * 128);
}

// Custom geometries are checked field by field; the canonical chains need K % 8 == 0.
TEST(Geometry, CustomGeometryIsCheckedFieldByField) {
  const ModelGeometry g = make_custom_geometry(3, 2, 6, 32, 24, 3, 272);
  EXPECT_EQ(g.preset, "custom");
  EXPECT_EQ(g.conv_dim(), 2 * 2 * 32 + 6 * 24);
  EXPECT_THROW(make_custom_geometry(0, 2, 6, 32, 24, 3), InputError);
  EXPECT_THROW(make_custom_geometry(3, 4, 6, 32, 24, 3), InputError);       // HV % H
  EXPECT_THROW(make_custom_geometry(3, 2, 6, 12, 24, 3), InputError);       // K % 8
  EXPECT_THROW(make_custom_geometry(3, 2, 6, 32, 24, 1), InputError);       // W
  EXPECT_THROW(make_custom_geometry(3, 2, 6, 32, 24, 3, 100), InputError);  // conv_dim
}

TEST(Geometry, ConvDimAndTensorParallel) {
  const ModelGeometry g = make_geometry("qwen3-next-80b-a3b", 1);
  EXPECT_EQ(g.conv_dim(), 8192);
  EXPECT_EQ(g.v_heads_per_k_head(), 2);
  const ModelGeometry g4 = make_geometry("qwen3-next-80b-a3b", 4);
  EXPECT_EQ(g4.num_k_heads, 4);
  EXPECT_EQ(g4.num_v_heads, 8);
  EXPECT_EQ(g4.conv_dim(), 2048);
  EXPECT_EQ(make_geometry("qwen3.5-397b-a17b", 16).num_k_heads, 1);
}

TEST(Geometry, RefusesBadInput) {
  EXPECT_THROW(make_geometry("qwen3-next-80b-a3b", 3), InputError);
  EXPECT_THROW(make_geometry("qwen3-next-80b-a3b", 32), InputError);  // H = 16
  EXPECT_THROW(make_geometry("qwen3-next-80b-a3b", 0), InputError);
  try {
    make_geometry("qwen4", 1);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown preset 'qwen4'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("tiny"), std::string::npos);
  }
}

TEST(Geometry, ChannelsAndHeadsAreNamedByGroupAndHead) {
  const ModelGeometry tiny = make_geometry("tiny");  // H = 2, HV = 4, K = V = 16
  EXPECT_EQ(conv_channel_text(tiny, 0), "channel 0 (q head 0, i 0)");
  EXPECT_EQ(conv_channel_text(tiny, 31), "channel 31 (q head 1, i 15)");
  EXPECT_EQ(conv_channel_text(tiny, 38), "channel 38 (k head 0, i 6)");
  EXPECT_EQ(conv_channel_text(tiny, 95), "channel 95 (v head 1, i 15)");
  EXPECT_EQ(conv_channel_text(tiny, 127), "channel 127 (v head 3, i 15)");
  EXPECT_EQ(conv_channel_text(95, 2, 16, 16), conv_channel_text(tiny, 95));
  EXPECT_EQ(value_head_text(tiny, 3), "head 3");
  EXPECT_EQ(value_head_text(make_geometry("tiny", 2, 1), 1), "head 1 = model head 3");
}

// A rank's channel names the model's head and index that the rank index maps it to: the same
// group, head and index as the model's own name of that channel.
TEST(Geometry, ARanksChannelNamesTheModelsHeadOfItsChannel) {
  const ModelGeometry model = make_geometry("qwen3-next-80b-a3b");
  for (const int32_t rank : {0, 3}) {
    const ModelGeometry g = make_geometry("qwen3-next-80b-a3b", 4, rank);
    const num::RankIndex index = g.rank_index();
    for (int64_t c = 0; c < g.conv_dim(); c += 37) {
      const std::string own = conv_channel_text(model, index.conv_channel(uint32_t(c)));
      const size_t head = own.find(" head "), comma = own.find(", i ");
      const std::string group = own.substr(own.find('(') + 1, 1);
      const std::string model_head = own.substr(head + 6, comma - head - 6);
      const std::string got = conv_channel_text(g, c);
      EXPECT_EQ(got.substr(got.find('(') + 1, 1), group) << got << " vs " << own;
      EXPECT_NE(got.find(" = model head " + model_head + ", i "), std::string::npos)
          << got << " vs " << own;
      EXPECT_EQ(got.substr(got.find(", i ")), own.substr(comma)) << got << " vs " << own;
    }
  }
}

TEST(Geometry, Tiny) {
  const ModelGeometry g = make_geometry("tiny");
  EXPECT_EQ(g.layers, 2);
  EXPECT_EQ(g.num_k_heads, 2);
  EXPECT_EQ(g.num_v_heads, 4);
  EXPECT_EQ(g.head_k_dim, 16);
  EXPECT_EQ(g.conv_dim(), 2 * 2 * 16 + 4 * 16);
  EXPECT_EQ(g.query_scale(), 0.25f);
}

}  // namespace
}  // namespace specstate
