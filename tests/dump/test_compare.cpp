// specstate compare (sim/dump_compare.h): dumps of one request through two strategies agree;
// a changed element is reported at its token, layer, file and index with both values; the
// earliest token wins; tolerances; float64 files; dumps that cannot be compared are input
// errors.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
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
    for (auto [dir, strategy] :
         {std::pair{a_, StrategyKind::kInline}, std::pair{b_, StrategyKind::kDeferred}}) {
      DumpOptions o;
      o.request = 10;
      o.out_dir = dir.string();
      o.lane = {"cpu", strategy};
      dump_request(t, o);
    }
    fs::copy(a_, pristine_a_, fs::copy_options::recursive);
    fs::copy(b_, pristine_b_, fs::copy_options::recursive);
  }

  // Both dumps as SetUp wrote them, for one more case in the same test.
  void reset() {
    for (const auto& [dir, pristine] : {std::pair{a_, pristine_a_}, std::pair{b_, pristine_b_}}) {
      fs::remove_all(dir);
      fs::copy(pristine, dir, fs::copy_options::recursive);
    }
  }

  // Adds `delta` to element `index` of `file` in dump B.
  void nudge(const std::string& file, int64_t index, float delta) {
    NpyArray x = read_npy(b_ / file);
    x.values.at(index) += delta;
    write_npy(b_ / file, x.shape, x.values);
  }

  DumpComparison run(DumpTolerance t = {}) { return compare_dumps(a_.string(), b_.string(), t); }

  // The InputError's message of run(), "" when it succeeds. Any other exception (an internal
  // error, exit 3) fails the test.
  std::string refusal(DumpTolerance t = {}) {
    try {
      run(t);
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  }

  // Applies `edit` to meta.json of both dumps (so that their geometries stay equal).
  void edit_meta(const std::function<void(nlohmann::json&)>& edit) {
    for (const fs::path& dir : {a_, b_}) {
      nlohmann::json meta;
      std::ifstream(dir / "meta.json") >> meta;
      edit(meta);
      std::ofstream(dir / "meta.json") << meta.dump();
    }
  }

  // Replaces `file` in both dumps by an .npy file of header dict `dict` and `data` bytes of
  // data (zeros; written sparse when large).
  void write_raw_npy(const std::string& file, const std::string& dict, int64_t data) {
    std::string header = "\x93NUMPY";
    header += char(1);
    header += char(0);
    header += char(dict.size() & 0xFF);
    header += char(dict.size() >> 8);
    header += dict;
    for (const fs::path& dir : {a_, b_}) {
      std::ofstream(dir / file, std::ios::binary) << header;
      fs::resize_file(dir / file, header.size() + data);
    }
  }

  // Replaces `file` in dump B by what `make` creates at its path.
  void replace_in_b(const std::string& file, const std::function<void(const fs::path&)>& make) {
    fs::remove_all(b_ / file);
    make(b_ / file);
  }

  TempDir tmp_;
  fs::path a_ = tmp_.path() / "a", b_ = tmp_.path() / "b";
  fs::path pristine_a_ = tmp_.path() / "pristine_a", pristine_b_ = tmp_.path() / "pristine_b";
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
  nudge("layer00/o.npy", 20 * 64 + 7, 1.0f);                         // token 20, layer 0, o
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

// Forensics (sim/dump_forensics.h): the states of one dump shifted along the token axis, as an
// engine whose per-token states lag by one token dumps them.
class CompareForensics : public CompareDumps {
 protected:
  // Token t of `dir`'s states takes token t + `by`'s values, for t in [from, to).
  static void shift_states(const fs::path& dir, int64_t from, int64_t to, int64_t by) {
    for (const char* file : {"ssm_state.npy", "conv_state.npy"}) {
      for (const char* layer : {"layer00", "layer01"}) {
        NpyArray x = read_npy(dir / layer / file);
        const int64_t per_token = int64_t(x.values.size()) / x.shape[0];
        const std::vector<float> before = x.values;
        for (int64_t t = from; t < to; ++t) {
          std::copy_n(before.begin() + (t + by) * per_token, per_token,
                      x.values.begin() + t * per_token);
        }
        write_npy(dir / layer / file, x.shape, x.values);
      }
    }
  }
};

TEST_F(CompareForensics, StatesShiftedByOneTokenAreStaleByOneToken) {
  shift_states(b_, 1, 29, -1);  // b's token t holds a's token t-1
  const DumpComparison c = run();
  ASSERT_FALSE(c.agree);
  EXPECT_EQ(c.first->token, 1);
  ASSERT_TRUE(c.forensics.has_value());
  const DumpForensics& f = *c.forensics;
  EXPECT_EQ(f.examined, b_.string());  // the second dump's state among the first's
  EXPECT_EQ(f.among, a_.string());
  ASSERT_TRUE(f.matched());
  EXPECT_EQ(f.best().offset, -1);
  EXPECT_EQ(f.best().row, 0);
  EXPECT_EQ(f.best().distance(), 0.0);
  EXPECT_GT(f.same().distance(), 0.1);  // a token apart is far, relative to the head's scale
  EXPECT_EQ(f.verdict().rfind("stale by one token: token 0 (position 0), trace line 9: extend, "
                              "step 0, accepted (distance 0 vs ",
                              0),
            0u)
      << f.verdict();
  EXPECT_NE(c.message(a_.string(), b_.string())
                .find("\n  forensics: " + b_.string() + "'s state at token 1 among " + a_.string() +
                      "'s states at tokens 0 to 5: "
                      "stale by one token"),
            std::string::npos)
      << c.message(a_.string(), b_.string());
  // Two tokens late and ahead by one, in the middle of the prefill.
  reset();
  shift_states(b_, 10, 20, -2);
  EXPECT_EQ(run().forensics->verdict().rfind("stale by 2 tokens: token 8 (position 8)", 0), 0u);
  reset();
  shift_states(b_, 10, 20, 1);
  EXPECT_EQ(run().forensics->verdict().rfind("ahead by one token: token 11 (position 11)", 0), 0u);
}

TEST_F(CompareForensics, AStaleFirstDumpIsFoundTheOtherWayRound) {
  // Only a's token 6 is stale: b's token 6 matches none of a's, a's matches b's token 5.
  shift_states(a_, 6, 7, -1);
  const DumpForensics f = *run().forensics;
  EXPECT_EQ(f.examined, a_.string());
  EXPECT_EQ(f.among, b_.string());
  EXPECT_EQ(f.verdict().rfind("stale by one token: token 5 (position 5)", 0), 0u) << f.verdict();
}

TEST_F(CompareForensics, OffsetsCountPositionsNotRerunsOfADraft) {
  // Token 26 runs position 25 again (token 25 was a rejected draft at position 25): holding
  // token 25's state there is the same position, not a stale state; token 24 is one before.
  shift_states(b_, 26, 27, -2);
  const DumpForensics f = *run().forensics;
  EXPECT_EQ(f.row, 26);
  EXPECT_EQ(f.verdict().rfind("stale by one token: token 24 (position 24)", 0), 0u) << f.verdict();
  const auto rerun = std::find_if(f.candidates.begin(), f.candidates.end(),
                                  [](const DumpCandidate& c) { return c.row == 25; });
  ASSERT_NE(rerun, f.candidates.end());
  EXPECT_EQ(rerun->offset, 0);
  EXPECT_FALSE(rerun->same_token);
}

TEST_F(CompareForensics, ADifferenceOutsideTheStatesIsSaidToBe) {
  nudge("layer00/o.npy", 20 * 64 + 7, 1.0f);
  const DumpComparison c = run();
  ASSERT_TRUE(c.forensics.has_value());
  EXPECT_FALSE(c.forensics->matched());
  EXPECT_EQ(c.forensics->verdict(),
            "the same state as at token 20: the divergence is not in the state");
  EXPECT_EQ(c.forensics->report().find("distance"), std::string::npos);  // no table of zeros
  // Without state files in common there is nothing to examine.
  for (const char* layer : {"layer00", "layer01"}) {
    fs::remove(b_ / layer / "ssm_state.npy");
    fs::remove(b_ / layer / "conv_state.npy");
  }
  EXPECT_FALSE(run().forensics.has_value());
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

// Each of these aborted (SIGFPE), hung, exhausted memory or ended as an internal error (exit 3)
// before meta.json was checked (issue 28, defect 3).
#define EXPECT_REFUSED(message, pattern) \
  EXPECT_NE((message).find(pattern), std::string::npos) << "message: " << (message)

TEST_F(CompareDumps, AZeroHeadDimIsRefusedBeforeAnyDivision) {
  edit_meta([](nlohmann::json& m) { m["model"]["V"] = 0; });
  nudge("layer00/x.npy", 3 * 128 + 100, 1.0f);  // channel 100 is in v: c / V named it
  EXPECT_REFUSED(refusal(), "a/meta.json: model.V 0 is outside 1..1024");
}

TEST_F(CompareDumps, GeometryValuesOutOfRangeAreRefused) {
  const std::vector<std::pair<std::function<void(nlohmann::json&)>, std::string>> cases = {
      {[](auto& m) { m["model"]["H"] = 0; }, "model.H 0 is outside 1..1024"},
      {[](auto& m) { m["model"]["K"] = -16; }, "model.K -16 is outside 1..1024"},
      {[](auto& m) { m["model"]["HV"] = uint64_t(-1); },
       "model.HV 18446744073709551615 is outside 1..4096"},
      {[](auto& m) { m["model"]["W"] = 0; }, "model.W 0 is outside 1..64"},
      {[](auto& m) { m["model"]["conv_dim"] = 100; },
       "model.conv_dim 100 is not 2*H*K + HV*V = 128"},
      {[](auto& m) { m["dumped_tokens"] = -1; }, "dumped_tokens -1 is outside 0..2^48"},
  };
  for (const auto& [edit, message] : cases) {
    reset();
    edit_meta(edit);
    EXPECT_REFUSED(refusal(), message);
  }
}

TEST_F(CompareDumps, AHugeLayerCountIsRefusedNotCounted) {
  edit_meta([](nlohmann::json& m) {
    m["model"].erase("layer_ids");
    m["model"]["layers"] = int64_t{1} << 62;
  });
  EXPECT_REFUSED(refusal(), "model.layers 4611686018427387904 is outside 1..1024");
}

TEST_F(CompareDumps, LayerListsMustBeConsistent) {
  const std::vector<std::pair<std::function<void(nlohmann::json&)>, std::string>> cases = {
      {[](auto& m) {
         m["model"]["layer_ids"] = {-1, 1};
       },
       "model.layer_ids[0] -1 is outside 0..1023"},
      {[](auto& m) {
         m["model"]["layer_ids"] = {1, 1};
       },
       "model.layer_ids[1] 1 is listed twice"},
      {[](auto& m) { m["model"]["layers"] = 3; },
       "model.layers 3 is not the length of model.layer_ids (2)"},
      {[](auto& m) { m["model"]["layer_ids"] = nlohmann::json::array(); },
       "model.layer_ids is empty"},
      {[](auto& m) { m["model"]["layer_ids"] = "0,1"; }, "model.layer_ids must be an array"},
      {[](auto& m) {
         m["model"]["layer_ids"] = {0, 1.5};
       },
       "model.layer_ids[1] must be an integer"},
  };
  for (const auto& [edit, message] : cases) {
    reset();
    edit_meta(edit);
    EXPECT_REFUSED(refusal(), message);
  }
}

TEST_F(CompareDumps, LayerFoldersMustBeListedInMeta) {
  for (const fs::path& dir : {a_, b_})
    fs::copy(dir / "layer01", dir / "layer05", fs::copy_options::recursive);
  EXPECT_REFUSED(refusal(),
                 "a/layer05/A_log.npy: layer 5 is not in meta.json's model.layer_ids (or layers)");
  reset();
  for (const fs::path& dir : {a_, b_})
    fs::copy(dir / "layer01", dir / "layer1x", fs::copy_options::recursive);
  EXPECT_REFUSED(refusal(), "a/layer1x/A_log.npy: a layer folder is named layerNN");
}

TEST_F(CompareDumps, MetaFieldsOfTheWrongTypeAreRefused) {
  using nlohmann::json;
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases = {
      {[](auto& m) { m["model"] = json::array(); }, "model must be an object"},
      {[](auto& m) { m["model"]["H"] = "2"; }, "model.H must be an integer"},
      {[](auto& m) { m["model"]["K"] = 16.0; }, "model.K must be an integer"},
      {[](auto& m) { m["dumped_tokens"] = true; }, "dumped_tokens must be an integer"},
      {[](auto& m) { m["tokens"] = json::object(); }, "tokens must be an array"},
      {[](auto& m) { m["tokens"][0] = 7; }, "tokens[0] must be an object"},
      {[](auto& m) { m["tokens"][3]["row"] = "3"; }, "tokens[3].row must be an integer"},
      {[](auto& m) { m["tokens"][3]["accepted"] = 1; }, "tokens[3].accepted must be true or false"},
      {[](auto& m) { m["events"][0]["kind"] = 3; }, "events[0].kind must be a string"},
      {[](auto& m) { m["events"][0]["line"] = json::array(); },
       "events[0].line must be an integer"},
  };
  for (const auto& [edit, message] : cases) {
    reset();
    edit_meta(edit);
    nudge("layer00/x.npy", 3 * 128 + 100, 1.0f);  // a divergence: its token is named from meta
    EXPECT_REFUSED(refusal(), message);
  }
}

// Found by specstate_fuzz_dump: the JSON parser throws out_of_range, not parse_error, for a
// number beyond double (an internal error, exit 3).
TEST_F(CompareDumps, MetaThatIsNotJsonIsRefused) {
  for (const std::string text : {"{\"seed\": 1e400}", "{\"model\": ", "[1, 2]", ""}) {
    reset();
    std::ofstream(b_ / "meta.json") << text;
    EXPECT_REFUSED(refusal(), "b/meta.json: not ") << text;
  }
}

// meta.json is streamed: what compare does not read is skipped, however deep, and only the
// fields it reads are kept.
TEST_F(CompareDumps, MetaIsStreamedKeepingOnlyWhatIsRead) {
  for (const fs::path& dir : {a_, b_}) {
    std::string text;
    {
      std::ifstream in(dir / "meta.json");
      text.assign(std::istreambuf_iterator<char>(in), {});
    }
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    text.insert(text.find('{') + 1, "\"junk\": " + deep + ", \"more\": {\"tokens\": 1}, ");
    std::ofstream(dir / "meta.json") << text;
  }
  EXPECT_EQ(refusal(), "");
  nudge("layer00/x.npy", 3 * 128 + 100, 1.0f);
  EXPECT_EQ(run().first->token_text,
            "token 3 (position 3), trace line 9: extend, step 3, accepted");
  reset();
  {
    std::string text;
    std::ifstream in(b_ / "meta.json");
    text.assign(std::istreambuf_iterator<char>(in), {});
    text.insert(text.find('{') + 1, "\"tokens\": [], ");
    std::ofstream(b_ / "meta.json") << text;
  }
  EXPECT_REFUSED(refusal(), "b/meta.json: 'tokens' is given twice");
  reset();
  edit_meta([](nlohmann::json& m) { m["model"]["layer_ids"] = std::vector<int>(5000, 1); });
  EXPECT_REFUSED(refusal(), "model.layer_ids[1] 1 is listed twice");
}

TEST_F(CompareDumps, AFifoIsRefusedWithoutBlocking) {
  const auto fifo = [](const fs::path& p) { ASSERT_EQ(mkfifo(p.c_str(), 0600), 0); };
  replace_in_b("layer00/x.npy", fifo);
  EXPECT_REFUSED(refusal(), "b/layer00/x.npy: not a regular file (a FIFO)");
  reset();
  replace_in_b("meta.json", fifo);
  EXPECT_REFUSED(refusal(), "b/meta.json: not a regular file (a FIFO)");
  reset();
  replace_in_b("layer01/A_log.npy", [](const fs::path& p) { fs::create_symlink("/dev/zero", p); });
  EXPECT_REFUSED(refusal(), "b/layer01/A_log.npy: not a regular file (a character device)");
}

TEST_F(CompareDumps, DirectoriesWhereFilesBelongAreRefused) {
  const auto dir = [](const fs::path& p) { fs::create_directory(p); };
  replace_in_b("meta.json", dir);
  EXPECT_REFUSED(refusal(), "b/meta.json: is a directory");
  reset();
  replace_in_b("layer00/o.npy", dir);
  EXPECT_REFUSED(refusal(), "b/layer00/o.npy: is a directory");
}

TEST_F(CompareDumps, SymlinkLoopsAreRefusedWithTheSystemsReason) {
  const auto loop = [](const fs::path& p) { fs::create_symlink(p.filename(), p); };
  const std::string reason = ": cannot open for reading: Too many levels of symbolic links";
  replace_in_b("meta.json", loop);
  EXPECT_REFUSED(refusal(), "b/meta.json" + reason);
  reset();
  replace_in_b("layer01/b.npy", loop);
  EXPECT_REFUSED(refusal(), "b/layer01/b.npy" + reason);
  reset();
  replace_in_b("layer01", loop);
  EXPECT_REFUSED(refusal(), "b/layer01: cannot read: Too many levels of symbolic links");
  const fs::path c = tmp_.path() / "c";
  fs::create_symlink("c", c);
  try {
    compare_dumps(a_.string(), c.string(), {});
    ADD_FAILURE() << "a directory that is a symlink loop is an input error";
  } catch (const InputError& e) {
    EXPECT_REFUSED(std::string(e.what()), "/c: cannot read: Too many levels of symbolic links");
  }
}

TEST_F(CompareDumps, AnUnreadableFileGivesTheSystemsReason) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads files of any mode";
  fs::permissions(b_ / "layer00/a.npy", fs::perms::none);
  EXPECT_REFUSED(refusal(), "b/layer00/a.npy: cannot open for reading: Permission denied");
}

TEST_F(CompareDumps, ShapesWhoseSizeOverflowsAreRefused) {
  // 2^32 * 2^32 elements wrap to 0, which 0 bytes of data matched.
  write_raw_npy("layer00/A_log.npy",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n",
                0);
  EXPECT_REFUSED(refusal(), "a/layer00/A_log.npy: shape (4294967296, 4294967296) overflows");
  // 2^62 float32 values: 2^64 bytes, beyond what a vector (or a file) holds.
  reset();
  write_raw_npy("layer00/dt_bias.npy",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,), }\n", 0);
  EXPECT_REFUSED(refusal(), "a/layer00/dt_bias.npy: shape (4611686018427387904,) overflows");
  // A token file: 29 rows of 2^59 * 2^5 elements.
  reset();
  write_raw_npy("layer00/o.npy",
                "{'descr': '<f8', 'fortran_order': False, 'shape': (29, 576460752303423488, 32)}\n",
                0);
  EXPECT_REFUSED(refusal(), "a/layer00/o.npy: shape (29, 576460752303423488, 32) overflows");
  // In range but larger than the file: the sizes are named.
  reset();
  write_raw_npy("layer00/A_log.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (8,)}\n",
                16);
  EXPECT_REFUSED(refusal(),
                 "a/layer00/A_log.npy: 16 bytes of data, the shape (8,) of '<f4' needs 32");
}

TEST_F(CompareDumps, TheNpyHeaderIsParsedAsADictionary) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      // A junk key whose value holds the text the substring search looked for.
      {"{'junk': \"'descr': '<f4'\", 'descr': '<f2', 'fortran_order': False, 'shape': (4,), }",
       "unknown key 'junk'"},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
       "key 'descr' given twice"},
      {"{'descr': '<f4', 'shape': (4,), }", "no key 'fortran_order'"},
      {"{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }",
       "dtype '<f2' is not '<f4' or '<f8'"},
      {"{'descr': '<f4', 'fortran_order': True, 'shape': (4,), }", "Fortran order"},
      {"{'descr': '<f4', 'fortran_order': 0, 'shape': (4,), }",
       "'fortran_order' must be True or False"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': '(4,)', }",
       "'shape' must be a tuple of integers"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }",
       "'shape' must be a tuple of integers"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), } junk",
       "bytes after the dictionary"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
       "dimension 99999999999999999999 is too large"},
  };
  for (const auto& [dict, message] : cases) {
    reset();
    write_raw_npy("layer00/A_log.npy", dict + "\n", 16);
    EXPECT_REFUSED(refusal(), "a/layer00/A_log.npy: header: " + message);
  }
  // What np.save writes, and the same with the keys in another order, double quotes and no
  // trailing comma, are read.
  for (const std::string dict :
       {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
        "{\"shape\": (4,), \"fortran_order\": False, \"descr\": \"<f4\"}"}) {
    reset();
    write_raw_npy("layer00/A_log.npy", dict + "   \n", 16);
    EXPECT_EQ(refusal(), "") << dict;
  }
}

TEST_F(CompareDumps, NonFiniteOrNegativeTolerancesAreRefused) {
  for (double bad : {std::nan(""), -1.0, std::numeric_limits<double>::infinity()}) {
    DumpTolerance t;
    t.rtol = bad;
    EXPECT_REFUSED(refusal(t), "rtol");
    t = {};
    t.atol = bad;
    EXPECT_REFUSED(refusal(t), "atol");
  }
  DumpTolerance t;
  t.ulp = -1;
  EXPECT_REFUSED(refusal(t), "ulp -1");
}

}  // namespace
}  // namespace specstate::sim
