// bench/step_anchors.h: the lines anchor_bench.py prints, the anchor of each step, the roof.
#include "step_anchors.h"

#include <gtest/gtest.h>

#include <sstream>

namespace specstate::bench {
namespace {

// As anchor_bench.py prints them (json.dumps), with a stray library line and a failed case.
constexpr const char* kFile =
    "{\"copy_GBps\": 4181.0, \"gpu\": \"NVIDIA H200\"}\n"
    "{\"variant\": \"before\", \"ssm\": \"float32\", \"batch\": 64, \"us\": 1200.5, \"pct_copy\": "
    "76.0}\n"
    "some warning a library printed to stdout\n"
    "\n"
    "{\"variant\": \"after\", \"ssm\": \"bfloat16\", \"batch\": 8, \"us\": 98.9, \"pct_copy\": "
    "42.5}\n"
    "{\"variant\": \"head_replay\", \"ssm\": \"float32\", \"batch\": 128, \"error\": "
    "\"RuntimeError('x')\"}\n"
    "{\"variant\": \"after\", \"ssm\": \"float16\", \"batch\": 8, \"us\": 1.0, \"pct_copy\": 1.0}\n"
    "{\"variant\": \"after\", \"ssm\": \"float32\", \"batch\": 8}\n"
    "{not json\n"
    "{\"copy_GBps_end\": 4190.5}\n";

TEST(StepAnchors, ParsesTheScriptsLines) {
  std::istringstream in(kFile);
  const AnchorRun run = parse_anchor_stream(in);
  EXPECT_EQ(run.gpu, "NVIDIA H200");
  EXPECT_DOUBLE_EQ(run.copy_GBps, 4181.0);
  EXPECT_DOUBLE_EQ(run.copy_GBps_end, 4190.5);
  ASSERT_EQ(run.cases.size(), 3u);

  const AnchorCase* before = run.find("before", "fp32", 64);
  ASSERT_NE(before, nullptr);
  EXPECT_DOUBLE_EQ(before->us, 1200.5);
  EXPECT_DOUBLE_EQ(before->pct_copy, 76.0);
  EXPECT_TRUE(before->error.empty());

  const AnchorCase* after = run.find("after", "bf16", 8);
  ASSERT_NE(after, nullptr);
  EXPECT_DOUBLE_EQ(after->us, 98.9);

  const AnchorCase* failed = run.find("head_replay", "fp32", 128);
  ASSERT_NE(failed, nullptr);
  EXPECT_EQ(failed->error, "RuntimeError('x')");

  EXPECT_EQ(run.find("after", "fp32", 8), nullptr);  // no us: a problem, not a case
  EXPECT_EQ(run.find("after", "bf16", 64), nullptr);
  // float16 dtype, a case without us/pct_copy, the broken line; the plain text line is skipped.
  EXPECT_EQ(run.problems.size(), 3u);
}

TEST(StepAnchors, ReadsTheTritonScriptsDtypeKey) {  // anchor_triton.py writes "ssm_dtype"
  std::istringstream in(
      R"({"variant": "vllm_replay_verify", "ssm_dtype": "float32", "batch": 64, "us": 276.8, "bytes": 584548352, "pct_copy": 71.0})");
  const AnchorRun run = parse_anchor_stream(in);
  EXPECT_TRUE(run.problems.empty());
  const AnchorCase* c = run.find("vllm_replay_verify", "fp32", 64);
  ASSERT_NE(c, nullptr);
  EXPECT_DOUBLE_EQ(c->us, 276.8);
}

TEST(StepAnchors, EachStepHasItsAnchors) {
  ASSERT_EQ(anchors_of("inline").size(), 2u);
  EXPECT_STREQ(anchors_of("inline")[0].variant, "after");
  EXPECT_STREQ(anchors_of("inline")[1].variant, "vllm_spec");
  ASSERT_EQ(anchors_of("scatter").size(), 2u);
  EXPECT_STREQ(anchors_of("scatter")[0].variant, "before");
  EXPECT_STREQ(anchors_of("scatter")[1].variant, "head_scratch");
  ASSERT_EQ(anchors_of("replay").size(), 1u);
  EXPECT_STREQ(anchors_of("replay")[0].variant, "head_replay");
  EXPECT_DOUBLE_EQ(anchors_of("replay")[0].max_ratio, 0.55);
  ASSERT_EQ(anchors_of("deferred").size(), 1u);
  EXPECT_STREQ(anchors_of("deferred")[0].variant, "after");
  EXPECT_DOUBLE_EQ(anchors_of("deferred")[0].max_ratio, 0.45);
  EXPECT_EQ(anchors_of("deferred")[0].goal_batch, 64);
  ASSERT_EQ(anchors_of("ring").size(), 1u);
  EXPECT_STREQ(anchors_of("ring")[0].variant, "vllm_replay_verify");
  EXPECT_DOUBLE_EQ(anchors_of("ring")[0].max_ratio, 1.0);
  ASSERT_EQ(anchors_of("ring.fold").size(), 1u);
  EXPECT_STREQ(anchors_of("ring.fold")[0].variant, "vllm_replay_flush");
  EXPECT_TRUE(anchors_of("scatter.copy").empty());
  EXPECT_TRUE(anchors_of("replay.commit").empty());
  EXPECT_DOUBLE_EQ(pct_copy_goal("inline", 64), 90.0);
  EXPECT_DOUBLE_EQ(pct_copy_goal("inline", 8), 75.0);
  EXPECT_DOUBLE_EQ(pct_copy_goal("inline", 1), 0.0);
  EXPECT_DOUBLE_EQ(pct_copy_goal("scatter.copy", 128), 85.0);
}

// Design section 9's example: deferred fp32 at batch 64 (2 states of 2,146,304 B, a + T = 8
// tokens of 32 x 128 x 128 elements, 4 layers) on 132 SMs x 128 lanes x 1.98 GHz.
TEST(StepAnchors, RoofIsTheLargerOfMemoryAndWork) {
  const Fp32Peak peak{132, fp32_lanes_per_sm(9, 0), 1.98e9};
  EXPECT_EQ(peak.lanes_per_sm, 128);
  EXPECT_EQ(fp32_lanes_per_sm(8, 0), 64);
  const double bytes = 64.0 * 4 * 2 * 2146304;
  const double ops = 64.0 * 4 * 8 * (32 * 128 * 128) * 4;
  const Roof r = step_roof(bytes, 4215e9, ops, peak);
  EXPECT_NEAR(r.memory_s * 1e6, 260.7, 0.1);
  EXPECT_NEAR(r.work_s * 1e6, 128.4, 0.1);
  EXPECT_DOUBLE_EQ(r.seconds(), r.memory_s);
  EXPECT_STREQ(r.bound(), "mem");
  EXPECT_STREQ(step_roof(bytes / 4, 4215e9, ops, peak).bound(), "fp32");
}

}  // namespace
}  // namespace specstate::bench
