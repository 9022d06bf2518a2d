// specstate dump: the .npy files read back equal the backend's rows; dumps through every
// strategy are byte-identical; a CUDA dump equals the CPU dump byte for byte; errors leave
// nothing behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "backends/registry.h"
#include "core/errors.h"
#include "core/numerics/bf16.h"
#include "core/strategy/pool_policy.h"
#include "core/trace/format.h"
#include "sim/dump.h"
#include "sim/dump_compare.h"
#include "sim/generator.h"
#include "sim/npy.h"
#include "sim/plan_executor.h"
#include "tests/allocations.h"
#include "tests/temp_dir.h"

namespace specstate::sim {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Relative path -> bytes of every file of a directory tree.
std::map<std::string, std::string> tree(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = file_bytes(e.path());
  }
  return out;
}

// A trace with prefix hits, retracts, decodes and rejected drafts on the tiny preset.
trace::Trace busy_trace(SsmDtype dtype, uint64_t seed = 1) {
  GeneratorOptions g;
  g.seed = seed;
  g.requests = 24;
  g.steps = 200;
  g.pool_rows = 10;
  g.ssm_dtype = dtype;
  g.prompt_min = 8;
  g.prompt_max = 40;  // more than 16 prefill tokens: several recording blocks
  g.prefix_hit_prob = 0.5;
  g.decode_prob = 0.15;
  g.accept_prob = 0.5;
  g.chunk_size = 24;
  return generate_trace(g);
}

// The request that exercises most: a prefix hit, a retract, decodes, chunked prefill.
uint64_t interesting_request(const trace::Trace& t) {
  std::map<uint64_t, int> score;
  for (const trace::Line& line : t.events) {
    if (const auto* e = std::get_if<trace::Extend>(&line.event)) {
      score[e->request] += e->prefix_len > 0 ? 8 : 1;
    } else if (const auto* r = std::get_if<trace::Retract>(&line.event)) {
      score[r->request] += 8;
    } else if (const auto* d = std::get_if<trace::Decode>(&line.event)) {
      for (const auto& entry : d->batch)
        score[entry.request] += 1;
    }
  }
  uint64_t best = score.begin()->first;
  for (const auto& [request, s] : score) {
    if (s > score[best]) best = request;
  }
  return best;
}

DumpReport dump(const trace::Trace& t, uint64_t request, const fs::path& out,
                LaneSpec lane = {"cpu", StrategyKind::kInline}) {
  DumpOptions o;
  o.request = request;
  o.out_dir = out.string();
  o.lane = lane;
  return dump_request(t, o);
}

// One layer of a state as the dump writes it: float32 values.
std::vector<float> ssm_floats(const RowBytes& s, const PoolShape& shape, int layer) {
  const int64_t n = shape.geometry.ssm_elements_per_layer();
  std::vector<float> out(n);
  const uint8_t* src = s.ssm.data() + layer * shape.ssm_row_bytes();
  for (int64_t i = 0; i < n; ++i) {
    if (shape.ssm_dtype == SsmDtype::kF32) {
      std::memcpy(&out[i], src + 4 * i, 4);
    } else {
      num::bf16_bits b;
      std::memcpy(&b, src + 2 * i, 2);
      out[i] = num::bf16_to_float(b);
    }
  }
  return out;
}

std::vector<float> conv_floats(const RowBytes& s, const ModelGeometry& g, int layer) {
  const int64_t n = int64_t{g.conv_dim()} * g.conv_state_cols();
  std::vector<float> out(n);
  for (int64_t i = 0; i < n; ++i)
    out[i] = num::bf16_to_float(s.conv[layer * n + i]);
  return out;
}

// Token `index` of a [tokens, ...] array, as bits-comparable floats.
std::vector<float> token_slice(const NpyArray& a, int64_t index) {
  const int64_t per = int64_t(a.values.size()) / a.shape[0];
  return {a.values.begin() + index * per, a.values.begin() + (index + 1) * per};
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

class LoadedDump {
 public:
  explicit LoadedDump(const fs::path& dir) : dir_(dir) {
    meta = nlohmann::json::parse(file_bytes(dir / "meta.json"));
  }
  NpyArray layer(int l, const std::string& name) const {
    char buf[32];
    std::snprintf(buf, sizeof buf, "layer%02d", l);
    return read_npy(dir_ / buf / (name + ".npy"));
  }
  nlohmann::json meta;

 private:
  fs::path dir_;
};

TEST(Npy, HeaderIsVersion1LittleEndianFloat32AlignedTo64) {
  const std::string h = npy_header({3, 4});
  ASSERT_EQ(h.size() % 64, 0u);
  EXPECT_EQ(h.substr(0, 6), "\x93NUMPY");
  EXPECT_EQ(h[6], 1);
  EXPECT_EQ(h[7], 0);
  EXPECT_EQ(size_t(uint8_t(h[8]) | uint8_t(h[9]) << 8), h.size() - 10);
  EXPECT_NE(h.find("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"),
            std::string::npos);
  EXPECT_EQ(h.back(), '\n');
  EXPECT_NE(npy_header({5}).find("'shape': (5,)"), std::string::npos);
}

TEST(Npy, ValuesRoundTripBitForBit) {
  TempDir dir;
  const std::vector<float> v = {0.0f,     -0.0f,
                                1.5f,     -3.25e-41f /* subnormal */,
                                65504.0f, std::numeric_limits<float>::infinity()};
  write_npy(dir.path() / "a.npy", {2, 3}, v);
  const NpyArray a = read_npy(dir.path() / "a.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(same_bits(a.values, v));
  // Little-endian data right after the header.
  const std::string bytes = file_bytes(dir.path() / "a.npy");
  EXPECT_EQ(bytes.size(), npy_header({2, 3}).size() + 24);
  EXPECT_EQ(uint8_t(bytes[npy_header({2, 3}).size() + 8 + 3]), 0x3F);  // 1.5f = 0x3FC00000
}

// The dump's states and outputs are the backend's: replay the trace through an independent
// inline lane and compare, event by event, the live state after the request's last accepted
// token, the rows of rejected drafts and the verify outputs with the dumped files.
void check_against_lane(SsmDtype dtype) {
  const trace::Trace t = busy_trace(dtype);
  const uint64_t request = interesting_request(t);
  TempDir dir;
  const DumpReport report = dump(t, request, dir.path() / "d");
  ASSERT_TRUE(report.agree) << report.mismatch;
  const LoadedDump d(dir.path() / "d");

  PoolPolicy policy(StrategyKind::kInline, pool_config(t.header));
  const PoolShape& shape = policy.layout().shape;
  const ModelGeometry& g = shape.geometry;
  auto lane = make_backend("cpu", shape, t.header.seed);
  SwapSpace swap;
  std::vector<NpyArray> ssm, conv, o;
  for (int l = 0; l < g.layers; ++l) {
    ssm.push_back(d.layer(l, "ssm_state"));
    conv.push_back(d.layer(l, "conv_state"));
    o.push_back(d.layer(l, "o"));
  }
  const int64_t tokens = d.meta["num_tokens"];
  ASSERT_EQ(ssm[0].shape,
            (std::vector<int64_t>{tokens, g.num_v_heads, g.head_k_dim, g.head_v_dim}));
  ASSERT_EQ(conv[0].shape, (std::vector<int64_t>{tokens, g.conv_dim(), g.conv_state_cols()}));
  ASSERT_EQ(o[0].shape, (std::vector<int64_t>{tokens, g.num_v_heads, g.head_v_dim}));

  auto expect_state = [&](const RowBytes& row, int64_t token, const std::string& what) {
    for (int l = 0; l < g.layers; ++l) {
      ASSERT_TRUE(same_bits(ssm_floats(row, shape, l), token_slice(ssm[l], token)))
          << what << ": ssm layer " << l << " token " << token;
      ASSERT_TRUE(same_bits(conv_floats(row, g, l), token_slice(conv[l], token)))
          << what << ": conv layer " << l << " token " << token;
    }
  };

  size_t next_event = 0;
  int rejected_checked = 0, live_checked = 0;
  const nlohmann::json& events = d.meta["events"];
  for (const trace::Line& line : t.events) {
    const Plan plan = plan_for(policy, line.event);
    execute(plan, *lane, swap);
    if (next_event >= events.size() || events[next_event]["line"] != line.line) continue;
    const nlohmann::json& ev = events[next_event++];
    const std::string kind = ev["kind"];
    if (kind != "verify" && kind != "decode" && kind != "extend") continue;
    const int64_t first = ev["first_token"];
    const int32_t n = ev["tokens"];
    const int32_t a = kind == "extend" ? n : int32_t(ev.value("accepted", 1));
    // Live state after the last accepted token.
    const auto r = policy.readable(request);
    execute(r.plan, *lane, swap);
    expect_state(lane->read_state(r.loc), first + a - 1,
                 "live state, line " + std::to_string(line.line));
    ++live_checked;
    if (kind == "extend") continue;
    const auto& call = std::get<VerifyCall>(plan.front());
    size_t task = 0;
    while (call.requests[task] != request)
      ++task;
    // Every token's state in the verify's output rows (rejected drafts included), and o.
    const VerifyOutputs outs = lane->read_outputs();
    const int64_t per_layer = int64_t{g.num_v_heads} * g.head_v_dim;
    for (int32_t j = 0; j < n; ++j) {
      expect_state(lane->read_state(StateLoc::at(call.tasks[task].out_rows[j])), first + j,
                   "verify output row, line " + std::to_string(line.line));
      rejected_checked += j >= a;
      for (int l = 0; l < g.layers; ++l) {
        std::vector<float> lane_o(per_layer);
        for (int64_t i = 0; i < per_layer; ++i) {
          lane_o[i] = num::bf16_to_float(
              outs.values[((int64_t(task) * outs.tokens + j) * g.layers + l) * per_layer + i]);
        }
        ASSERT_TRUE(same_bits(lane_o, token_slice(o[l], first + j)))
            << "o, line " << line.line << " token " << j;
      }
    }
  }
  EXPECT_EQ(next_event, events.size());
  // The request exercised what the dump must get right.
  EXPECT_EQ(d.meta["initial"]["from"], "prefix cache row");
  EXPECT_TRUE(std::any_of(events.begin(), events.end(),
                          [](const auto& e) { return e["kind"] == "retract"; }));
  EXPECT_TRUE(std::any_of(events.begin(), events.end(),
                          [](const auto& e) { return e["kind"] == "decode"; }));
  EXPECT_GT(rejected_checked, 0);
  EXPECT_GT(live_checked, 3);
}

TEST(Dump, StatesAndOutputsAreTheBackendRowsF32) {
  check_against_lane(SsmDtype::kF32);
}
TEST(Dump, StatesAndOutputsAreTheBackendRowsBf16) {
  check_against_lane(SsmDtype::kBF16);
}

// o of a prefill token equals a one-token verify from the dumped state before it (fp32 pool:
// the stored state is the working state, so the verify continues exactly).
TEST(Dump, PrefillOutputsEqualAVerifyFromTheStateBefore) {
  const trace::Trace t = busy_trace(SsmDtype::kF32);
  const uint64_t request = interesting_request(t);
  TempDir dir;
  ASSERT_TRUE(dump(t, request, dir.path() / "d").agree);
  const LoadedDump d(dir.path() / "d");
  PoolShape shape = make_layout(StrategyKind::kInline, pool_config(t.header)).shape;
  shape.state_rows = 1;
  const ModelGeometry& g = shape.geometry;
  auto backend = make_backend("cpu", shape, t.header.seed);
  const nlohmann::json& tokens = d.meta["tokens"];
  int checked = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const nlohmann::json& ev = d.meta["events"][int(tokens[i]["event"])];
    const int64_t prev = tokens[i]["prev"];
    if (ev["kind"] != "extend" || prev < 0) continue;
    RowBytes before;
    for (int l = 0; l < g.layers; ++l) {
      const std::vector<float> s = token_slice(d.layer(l, "ssm_state"), prev);
      const auto* bytes = reinterpret_cast<const uint8_t*>(s.data());
      before.ssm.insert(before.ssm.end(), bytes, bytes + s.size() * 4);
      for (float c : token_slice(d.layer(l, "conv_state"), prev))
        before.conv.push_back(num::bf16_from_float(c));
    }
    backend->write_state(0, before);
    VerifyTask task;
    task.tokens = {request, int64_t(tokens[i]["position"]), 1};
    task.from = StateLoc::at(0);
    backend->verify(VerifyMode::kStateRows, std::span(&task, 1));
    const VerifyOutputs outs = backend->read_outputs();
    const int64_t per_layer = int64_t{g.num_v_heads} * g.head_v_dim;
    for (int l = 0; l < g.layers; ++l) {
      std::vector<float> want(per_layer);
      for (int64_t e = 0; e < per_layer; ++e)
        want[e] = num::bf16_to_float(outs.values[l * per_layer + e]);
      ASSERT_TRUE(same_bits(want, token_slice(d.layer(l, "o"), int64_t(i)))) << "token " << i;
    }
    ++checked;
  }
  EXPECT_GT(checked, 16);
}

// One request whose prompt is one extend of `tokens` tokens, with a snapshot after `snapshot`
// tokens, then a verify (tiny preset, page size 256).
trace::Trace long_prefill_trace(SsmDtype dtype, int32_t tokens, int32_t snapshot) {
  std::istringstream in(
      std::string(R"({"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": ")") +
      (dtype == SsmDtype::kF32 ? "f32" : "bf16") +
      R"(", "draft_tokens": 3, "pool_rows": 4, "max_requests": 2, "page_size": 256, "seed": 5}
{"event": "extend", "request": 1, "req_row": 0, "working_row": 0, "tokens": )" +
      std::to_string(tokens) + R"(, "track": [{"row": 1, "length": )" + std::to_string(snapshot) +
      R"(}]}
{"event": "verify", "batch": [{"request": 1, "accepted": 2}]}
)");
  return trace::read_trace(in, "long.jsonl");
}

// Issue 28, defect 1: the lane runs a prefill past 2^15 tokens as one task, the recorder as
// verifies of 16 tokens each continuing from the last: they agree on the snapshot at 2^15, the
// state after 40,000 tokens and the verify after it (before the fix the lane crashed at 32,766
// tokens, and at 32,768 the dump reported a false MISMATCH).
TEST(Dump, APrefillPastTwoToTheFifteenAgreesWithTheRecorder) {
  for (SsmDtype dtype : {SsmDtype::kF32, SsmDtype::kBF16}) {
    const trace::Trace t = long_prefill_trace(dtype, 40'000, 32'768);
    TempDir dir;
    DumpOptions o;
    o.request = 1;
    o.out_dir = (dir.path() / "d").string();
    o.tokens = {32'767, 39'999, 40'003};  // the snapshot's token, the last prefill one, a draft
    const DumpReport r = dump_request(t, o);
    EXPECT_TRUE(r.agree) << r.mismatch;
    EXPECT_EQ(r.tokens, 3);
  }
}

// The recorder runs a prefill of n tokens once (issue 28: it re-ran the whole prefill for every
// 16 tokens, so a 32,768-token dump took 78 s): the bytes it allocates grow linearly with n,
// where re-running the prefill allocated working buffers of every length up to n.
TEST(Dump, APrefillsRecordingCostIsLinearInItsLength) {
  auto dump_prefill = [](int n) {
    const trace::Trace t = long_prefill_trace(SsmDtype::kF32, n, 256);
    TempDir dir;
    DumpOptions o;
    o.request = 1;
    o.out_dir = (dir.path() / "d").string();
    o.tokens = {0};
    ASSERT_TRUE(dump_request(t, o).agree);
  };
  const int64_t small = test::bytes_allocated_by([&] { dump_prefill(2'048); });
  const int64_t large = test::bytes_allocated_by([&] { dump_prefill(8'192); });
  EXPECT_LT(double(large) / double(small), test::kLinearGrowthBound)
      << small << " bytes for 2,048 tokens, " << large << " for 8,192";
}

TEST(Dump, MetaListsEveryFileWithItsShape) {
  const trace::Trace t = busy_trace(SsmDtype::kBF16, 3);
  TempDir dir;
  ASSERT_TRUE(dump(t, interesting_request(t), dir.path() / "d").agree);
  const LoadedDump d(dir.path() / "d");
  size_t npy = 0;
  for (const auto& f : d.meta["files"]) {
    ASSERT_TRUE(fs::exists(dir.path() / "d" / std::string(f["path"])));
    if (f["path"] == "meta.json") continue;
    EXPECT_EQ(read_npy(dir.path() / "d" / std::string(f["path"])).shape,
              f["shape"].get<std::vector<int64_t>>())
        << f["path"];
    ++npy;
  }
  EXPECT_EQ(npy, size_t(d.meta["model"]["layers"]) * 12);
  EXPECT_EQ(d.meta["tokens"].size(), size_t(d.meta["num_tokens"]));
}

TEST(Dump, EveryStrategyGivesByteIdenticalFiles) {
  for (SsmDtype dtype : {SsmDtype::kF32, SsmDtype::kBF16}) {
    const trace::Trace t = busy_trace(dtype, 2);
    const uint64_t request = interesting_request(t);
    TempDir dir;
    std::map<std::string, std::string> first;
    for (StrategyKind s : all_strategies()) {
      const fs::path out = dir.path() / std::string(to_string(s));
      const DumpReport r = dump(t, request, out, {"cpu", s});
      ASSERT_TRUE(r.agree) << r.mismatch;
      const auto files = tree(out);
      if (first.empty()) {
        first = files;
        continue;
      }
      EXPECT_TRUE(files == first) << to_string(s) << " differs from "
                                  << to_string(all_strategies()[0]);
    }
  }
}

TEST(Dump, CudaDumpEqualsCpuDumpByteForByte) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (SsmDtype dtype : {SsmDtype::kF32, SsmDtype::kBF16}) {
    const trace::Trace t = busy_trace(dtype, 4);
    const uint64_t request = interesting_request(t);
    TempDir dir;
    ASSERT_TRUE(dump(t, request, dir.path() / "cpu", {"cpu", StrategyKind::kInline}).agree);
    for (StrategyKind s : {StrategyKind::kInline, StrategyKind::kDeferred}) {
      const DumpReport r = dump(t, request, dir.path() / "cuda", {"cuda", s});
      ASSERT_TRUE(r.agree) << r.mismatch;
      EXPECT_TRUE(tree(dir.path() / "cuda") == tree(dir.path() / "cpu")) << to_string(s);
      fs::remove_all(dir.path() / "cuda");
    }
  }
}

// A lane with an injected protocol bug disagrees with the recorder: the dump names the event
// and writes nothing.
TEST(Dump, AFaultyLaneIsReportedAndNothingIsWritten) {
  const trace::Trace t = busy_trace(SsmDtype::kF32);
  const uint64_t request = interesting_request(t);
  TempDir dir;
  for (Fault fault : {Fault::kVerifyAsExtend, Fault::kRetractNoSave}) {
    const DumpReport r = dump(t, request, dir.path() / "d", {"cpu", StrategyKind::kInline, fault});
    EXPECT_FALSE(r.agree) << fault_info(fault).name;
    EXPECT_NE(r.mismatch.find(t.file + ":"), std::string::npos) << r.mismatch;
    EXPECT_TRUE(fs::is_empty(dir.path())) << r.mismatch;
  }
}

DumpReport follow(const trace::Trace& t, uint64_t request, const fs::path& out, LaneSpec lane,
                  long until_line = 0) {
  DumpOptions o;
  o.request = request;
  o.out_dir = out.string();
  o.lane = lane;
  o.follow_lane = true;
  o.until_line = until_line;
  return dump_request(t, o);
}

// follow_lane on a correct lane: the lane holds what the recorder computes, so the files are
// the checked dump's, byte for byte; meta.json names the lane.
TEST(Dump, FollowingACorrectLaneWritesTheCheckedDumpsFiles) {
  const trace::Trace t = busy_trace(SsmDtype::kF32, 2);
  const uint64_t request = interesting_request(t);
  TempDir dir;
  ASSERT_TRUE(dump(t, request, dir.path() / "checked").agree);
  auto expected = tree(dir.path() / "checked");
  const std::string meta = expected.at("meta.json");
  expected.erase("meta.json");
  for (StrategyKind s : all_strategies()) {
    const fs::path out = dir.path() / std::string(to_string(s));
    const DumpReport r = follow(t, request, out, {"cpu", s});
    EXPECT_TRUE(r.agree && r.differs.empty()) << to_string(s) << ": " << r.differs;
    auto files = tree(out);
    nlohmann::json m = nlohmann::json::parse(files.at("meta.json"));
    EXPECT_EQ(m["follows_lane"], "cpu/" + std::string(to_string(s)));
    m.erase("follows_lane");
    EXPECT_EQ(m, nlohmann::json::parse(meta)) << to_string(s);
    files.erase("meta.json");
    EXPECT_TRUE(files == expected) << to_string(s);
  }
}

// until_line: the tokens up to that event, each row the full dump's.
TEST(Dump, UntilLineStopsAfterThatEvent) {
  const trace::Trace t = busy_trace(SsmDtype::kF32);
  const uint64_t request = interesting_request(t);
  TempDir dir;
  ASSERT_TRUE(dump(t, request, dir.path() / "full").agree);
  const LoadedDump full(dir.path() / "full");
  const auto& events = full.meta["events"];
  const long line = events[events.size() / 2]["line"];
  const int64_t tokens = request_tokens(t, request, line);
  ASSERT_GT(tokens, 0);
  ASSERT_LT(tokens, int64_t(full.meta["num_tokens"]));
  DumpOptions o;
  o.request = request;
  o.out_dir = (dir.path() / "part").string();
  o.until_line = line;
  const DumpReport r = dump_request(t, o);
  ASSERT_TRUE(r.agree) << r.mismatch;
  EXPECT_EQ(r.tokens, tokens);
  const LoadedDump part(dir.path() / "part");
  EXPECT_EQ(part.meta["until_line"], line);
  EXPECT_EQ(part.meta["num_tokens"], tokens);
  for (const auto& e : part.meta["events"])
    EXPECT_LE(e["line"].get<long>(), line);
  for (const char* name : {"x", "conv_out", "o", "ssm_state", "conv_state"}) {
    const NpyArray a = part.layer(1, name), b = full.layer(1, name);
    ASSERT_EQ(a.shape[0], tokens);
    for (int64_t i = 0; i < tokens; ++i)
      EXPECT_TRUE(same_bits(token_slice(a, i), token_slice(b, i))) << name << " token " << i;
  }
  EXPECT_THROW(request_tokens(t, request, t.events.front().line), InputError);
}

// follow_lane on a lane with an injected fault: the dump is written with the lane's states, and
// differs from the correct dump first at the event the lane first differs from the recorder.
TEST(Dump, FollowingAFaultyLaneWritesWhatItHolds) {
  const trace::Trace t = busy_trace(SsmDtype::kF32);
  // A request that starts from zeros (a prefix hit would start from a row the fault changed).
  const auto from_zeros = std::find_if(t.events.begin(), t.events.end(), [](const auto& line) {
    const auto* e = std::get_if<trace::Extend>(&line.event);
    return e && e->prefix_len == 0;
  });
  ASSERT_NE(from_zeros, t.events.end());
  const uint64_t request = std::get<trace::Extend>(from_zeros->event).request;
  TempDir dir;
  ASSERT_TRUE(dump(t, request, dir.path() / "correct").agree);
  const LaneSpec faulty{"cpu", StrategyKind::kInline, Fault::kVerifyAsExtend};
  const DumpReport r = follow(t, request, dir.path() / "faulty", faulty);
  ASSERT_FALSE(r.differs.empty());
  EXPECT_TRUE(r.agree);  // written all the same
  const DumpComparison c =
      compare_dumps((dir.path() / "correct").string(), (dir.path() / "faulty").string(), {});
  ASSERT_FALSE(c.agree);
  // "FILE:LINE: request R: ..." and "token 20 (position 20), trace line LINE: verify, ...".
  const size_t colon = t.file.size() + 1;
  const std::string line = r.differs.substr(colon, r.differs.find(": ") - colon);
  EXPECT_NE(c.first->token_text.find("trace line " + line + ": verify"), std::string::npos)
      << c.first->token_text << " vs " << r.differs;
}

TEST(Dump, ErrorsAreInputErrorsAndLeaveNothingBehind) {
  const trace::Trace t = busy_trace(SsmDtype::kF32);
  TempDir dir;
  EXPECT_THROW(dump(t, 999999, dir.path() / "d"), InputError);
  fs::create_directory(dir.path() / "full");
  std::ofstream(dir.path() / "full" / "x") << "x";
  EXPECT_THROW(dump(t, interesting_request(t), dir.path() / "full"), InputError);
  std::ofstream(dir.path() / "file") << "x";
  EXPECT_THROW(dump(t, interesting_request(t), dir.path() / "file" / "d"), InputError);
  EXPECT_THROW(dump(t, interesting_request(t), dir.path() / "d", {"gpu", StrategyKind::kInline}),
               InputError);
  // Only what the test made: no half-written dump, no temporary directory.
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir.path()))
    left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"file", "full"}));
  // An existing empty directory is filled.
  fs::create_directory(dir.path() / "empty");
  EXPECT_TRUE(dump(t, interesting_request(t), dir.path() / "empty").agree);
  EXPECT_TRUE(fs::exists(dir.path() / "empty" / "meta.json"));
}

}  // namespace
}  // namespace specstate::sim

namespace specstate::sim {
namespace {

// A small trace of a real geometry with more layers than tiny: Qwen3.5-2B at TP 16 (18 layers,
// H = HV = 1, K = V = 128).
trace::Trace real_trace() {
  GeneratorOptions g;
  g.preset = "qwen3.5-2b";
  g.tp = 16;
  g.seed = 4;
  g.requests = 3;
  g.steps = 12;
  g.prompt_min = 6;
  g.prompt_max = 20;
  return generate_trace(g);
}

// The layers the GDN model holds are independent: a dump of layers 0, 5 and 17 writes exactly
// the files of those layers in the dump of all 18 (the same replay, layer for layer).
TEST(Dump, LayerSubsetFilesEqualThoseOfTheFullDump) {
  const trace::Trace t = real_trace();
  TempDir dir;
  const uint64_t request = interesting_request(t);
  ASSERT_TRUE(dump(t, request, dir.path() / "all").agree);
  DumpOptions o;
  o.request = request;
  o.out_dir = (dir.path() / "some").string();
  o.layers = {0, 5, 17};
  ASSERT_TRUE(dump_request(t, o).agree);
  const auto all = tree(dir.path() / "all"), some = tree(dir.path() / "some");
  size_t compared = 0;
  for (const auto& [path, bytes] : some) {
    if (path == "meta.json") continue;
    ASSERT_TRUE(path.rfind("layer00/", 0) == 0 || path.rfind("layer05/", 0) == 0 ||
                path.rfind("layer17/", 0) == 0)
        << path;
    ASSERT_TRUE(all.count(path)) << path;
    EXPECT_EQ(bytes, all.at(path)) << path;
    ++compared;
  }
  EXPECT_EQ(compared, 3 * (all.size() - 1) / 18);
  const auto meta = nlohmann::json::parse(some.at("meta.json"));
  EXPECT_EQ(meta["model"]["layers"], 3);
  EXPECT_EQ(meta["model"]["layer_ids"], nlohmann::json({0, 5, 17}));
}

// --tokens writes the chosen tokens' rows only; meta.json still lists every token, with its row.
TEST(Dump, TokenSubsetWritesTheChosenTokens) {
  const trace::Trace t = busy_trace(SsmDtype::kF32);
  TempDir dir;
  const uint64_t request = interesting_request(t);
  ASSERT_TRUE(dump(t, request, dir.path() / "all").agree);
  const int64_t tokens = request_tokens(t, request);
  DumpOptions o;
  o.request = request;
  o.out_dir = (dir.path() / "some").string();
  o.tokens = {1, 2, tokens - 1};
  const DumpReport r = dump_request(t, o);
  ASSERT_TRUE(r.agree);
  EXPECT_EQ(r.tokens, 3);
  const auto meta = nlohmann::json::parse(file_bytes(dir.path() / "some" / "meta.json"));
  ASSERT_EQ(meta["tokens"].size(), size_t(tokens));
  EXPECT_EQ(meta["dumped_tokens"], 3);
  EXPECT_EQ(meta["tokens"][0]["row"], -1);
  EXPECT_EQ(meta["tokens"][2]["row"], 1);
  EXPECT_EQ(meta["tokens"][tokens - 1]["row"], 2);
  for (const char* stream : {"x", "o", "ssm_state", "conv_state"}) {
    const NpyArray a = read_npy(dir.path() / "all" / "layer01" / (std::string(stream) + ".npy"));
    const NpyArray s = read_npy(dir.path() / "some" / "layer01" / (std::string(stream) + ".npy"));
    ASSERT_EQ(s.shape[0], 3) << stream;
    const size_t per = s.values.size() / 3;
    for (int64_t k = 0; k < 3; ++k) {
      const int64_t i = o.tokens[k];
      EXPECT_TRUE(std::equal(s.values.begin() + k * per, s.values.begin() + (k + 1) * per,
                             a.values.begin() + i * per))
          << stream << " token " << i;
    }
  }
}

TEST(Dump, AnUnknownRequestIsRefusedWithTheRequestsOfTheTrace) {
  const trace::Trace t = real_trace();
  TempDir dir;
  try {
    dump(t, 424242, dir.path() / "d");
    FAIL() << "no error";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("request 424242 does not appear"), std::string::npos) << m;
    EXPECT_NE(m.find("its requests: 1000, 1001, 1002"), std::string::npos) << m;
  }
  EXPECT_FALSE(fs::exists(dir.path() / "d"));
}

}  // namespace
}  // namespace specstate::sim
