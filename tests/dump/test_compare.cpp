// specstate compare (sim/dump_compare.h): dumps of one request through two strategies agree;
// a changed element is reported at its token, layer, file and index with both values; the
// earliest token wins; tolerances; float64 files; dumps that cannot be compared are input
// errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/trace/format.h"
#include "sim/dump.h"
#include "sim/dump_compare.h"
#include "sim/npy.h"
#include "tests/temp_dir.h"

namespace specstate::sim {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

const char* kTrace = SPECSTATE_SOURCE_DIR "/examples/retract-resume.jsonl";

class CompareDumps : public ::testing::Test {
 protected:
  void SetUp() override {
    const trace::Trace t = trace::read_trace(kTrace);
    for (auto [dir, strategy] : {std::pair{a_, StrategyKind::kInline},
                                 std::pair{b_, StrategyKind::kDeferred}}) {
      DumpOptions o;
      o.request = 10;
      o.out_dir = dir.string();
      o.lane = {"cpu", strategy};
      dump_request(t, o);
    }
  }

  // Adds `delta` to element `index` of `file` in dump B.
  void nudge(const std::string& file, int64_t index, float delta) {
    NpyArray x = read_npy(b_ / file);
    x.values.at(index) += delta;
    write_npy(b_ / file, x.shape, x.values);
  }

  DumpComparison run(DumpTolerance t = {}) { return compare_dumps(a_.string(), b_.string(), t); }

  TempDir tmp_;
  fs::path a_ = tmp_.path() / "a", b_ = tmp_.path() / "b";
};

TEST_F(CompareDumps, TwoStrategiesAgreeOnEveryFileAndToken) {
  const DumpComparison c = run();
  EXPECT_TRUE(c.agree);
  EXPECT_EQ(c.files, 24);  // 2 layers x (7 token files + 5 others)
  EXPECT_EQ(c.tokens, 29);
  EXPECT_GT(c.elements, 100000);
  EXPECT_EQ(c.max_abs, 0.0);
  EXPECT_TRUE(c.only_a.empty() && c.only_b.empty());
}

TEST_F(CompareDumps, AChangedElementIsNamedWithItsTokenLayerIndexAndValues) {
  // Token 25, layer 1, ssm_state [head 2, k 3, v 4]: HV=4, K=V=16.
  const int64_t per_token = 4 * 16 * 16, element = (2 * 16 + 3) * 16 + 4;
  const float before = read_npy(b_ / "layer01/ssm_state.npy").values[25 * per_token + element];
  nudge("layer01/ssm_state.npy", 25 * per_token + element, 0.5f);
  const DumpComparison c = run();
  ASSERT_FALSE(c.agree);
  const DumpDifference& d = *c.first;
  EXPECT_EQ(d.file, "layer01/ssm_state.npy");
  EXPECT_EQ(d.layer, 1);
  EXPECT_EQ(d.token, 25);
  EXPECT_EQ(d.index, "[head 2, k 3, v 4]");
  EXPECT_EQ(d.a, double(before));
  EXPECT_EQ(d.b, double(before + 0.5f));
  EXPECT_EQ(d.outside, 1);
  EXPECT_EQ(d.elements, per_token);
  // The trace's line 35 is the verify of request 10 after its resume; token 25 is its step 2.
  EXPECT_EQ(d.token_text, "token 25 (position 25), trace line 35: verify, step 2, rejected draft");
  EXPECT_NE(c.message(a_.string(), b_.string()).find("layer01/ssm_state.npy [head 2, k 3, v 4]"),
            std::string::npos);
  DumpTolerance loose;
  loose.atol = 0.5001;
  EXPECT_TRUE(run(loose).agree);
  loose.atol = 0.4999;
  EXPECT_FALSE(run(loose).agree);
}

TEST_F(CompareDumps, TheEarliestTokenIsReportedWhateverTheLayerOrFile) {
  nudge("layer00/o.npy", 20 * 64 + 7, 1.0f);                   // token 20, layer 0, o
  nudge("layer01/conv_state.npy", 12 * 128 * 3 + 40 * 3 + 2, 1.0f);  // token 12, layer 1
  const DumpComparison c = run();
  ASSERT_FALSE(c.agree);
  EXPECT_EQ(c.first->token, 12);
  EXPECT_EQ(c.first->file, "layer01/conv_state.npy");
  EXPECT_EQ(c.first->index, "[channel 40 (k head 0, i 8), col 2]");
}

TEST_F(CompareDumps, AParameterDifferenceComesBeforeEveryToken) {
  nudge("layer00/ssm_state.npy", 0, 1.0f);  // token 0
  nudge("layer01/A_log.npy", 3, 0.25f);
  const DumpComparison c = run();
  ASSERT_FALSE(c.agree);
  EXPECT_EQ(c.first->token, -1);
  EXPECT_EQ(c.first->file, "layer01/A_log.npy");
  EXPECT_EQ(c.first->index, "[head 3]");
}

TEST_F(CompareDumps, UlpToleranceCountsFloat32Units) {
  NpyArray x = read_npy(b_ / "layer00/x.npy");
  x.values[5] = std::nextafter(std::nextafter(x.values[5], 10.0f), 10.0f);  // 2 ulp up
  write_npy(b_ / "layer00/x.npy", x.shape, x.values);
  DumpTolerance t;
  t.ulp = 1;
  EXPECT_FALSE(run(t).agree);
  t.ulp = 2;
  EXPECT_TRUE(run(t).agree);
}

TEST_F(CompareDumps, AFloat64FileFromAnEngineIsRead) {
  // np.save of a float64 array: the same values, '<f8'.
  const NpyArray x = read_npy(a_ / "layer00/o.npy");
  std::string header = npy_header(x.shape);
  header.replace(header.find("<f4"), 3, "<f8");
  std::ofstream out(a_ / "layer00/o.npy", std::ios::binary);
  out << header;
  for (float v : x.values) {
    const double d = v;
    out.write(reinterpret_cast<const char*>(&d), sizeof d);
  }
  out.close();
  EXPECT_TRUE(run().agree);
}

TEST_F(CompareDumps, FilesInOneDumpOnlyAreListedNotCompared) {
  fs::remove(b_ / "layer00/x.npy");
  const DumpComparison c = run();
  EXPECT_TRUE(c.agree);
  EXPECT_EQ(c.files, 23);
  EXPECT_EQ(c.only_a, std::vector<std::string>{"layer00/x.npy"});
}

TEST_F(CompareDumps, DumpsThatCannotBeComparedAreInputErrors) {
  EXPECT_THROW(compare_dumps(a_.string(), (tmp_.path() / "none").string(), {}), InputError);
  {
    NpyArray x = read_npy(b_ / "layer00/a.npy");
    x.shape = {x.shape[0] * 4};
    write_npy(b_ / "layer00/a.npy", x.shape, x.values);
  }
  try {
    run();
    FAIL() << "a shape mismatch is an input error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("layer00/a.npy: shape [29, 4] in "), std::string::npos)
        << e.what();
  }
  nlohmann::json meta;
  std::ifstream(b_ / "meta.json") >> meta;
  meta["dumped_tokens"] = 28;
  std::ofstream(b_ / "meta.json") << meta.dump();
  EXPECT_THROW(run(), InputError);
  meta["model"]["K"] = 32;
  std::ofstream(b_ / "meta.json") << meta.dump();
  EXPECT_THROW(run(), InputError);
}

}  // namespace
}  // namespace specstate::sim
