// Generator → writer → reader → validator, the writer's exactness, the examples, and a cheap
// mutation fuzz of the reader.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/trace/tracker.h"
#include "sim/generator.h"
#include "trace_test_util.h"

namespace specstate::trace::testing {
namespace {

std::string to_text(const Trace& trace) {
  std::ostringstream out;
  write_trace(out, trace);
  return out.str();
}

Trace from_text(const std::string& text, const std::string& name = "t.jsonl") {
  std::istringstream in(text);
  return read_trace(in, name);
}

// A spread of scheduler shapes: T, pages, pool pressure, decode mix, padding.
sim::GeneratorOptions options_for_seed(uint64_t seed) {
  sim::GeneratorOptions o;
  o.seed = seed;
  o.requests = 8 + int32_t(seed % 24);
  o.steps = 150 + int32_t(seed % 7) * 40;
  o.draft_tokens = int32_t(seed % 5);  // T = 1..5
  o.page_size = std::vector<int32_t>{0, 16, 8, 32}[seed % 4];
  o.pool_rows = 3 + int32_t(seed % 10);
  o.max_requests = 2 + int32_t(seed % 9);
  o.chunk_size = 8 + int32_t(seed % 3) * 40;
  o.prefix_hit_prob = 0.5;
  o.decode_prob = 0.05 * double(seed % 5);
  o.preempt_after = 4 + int32_t(seed % 8);
  if (seed % 3 == 0) o.graph_buckets.clear();
  if (seed % 5 == 0) o.ssm_dtype = SsmDtype::kBF16;
  return o;
}

// The writer emits the lowest version that expresses the trace: 2 with a custom geometry, 1
// otherwise, whatever version the trace was read as; both read back to the same trace.
TEST(TraceRoundTrip, WritesTheLowestVersionThatExpressesTheHeader) {
  Trace t = sim::generate_trace(options_for_seed(3));
  t.header.version = 2;
  std::string text = to_text(t);
  EXPECT_EQ(text.rfind("{\"specstate_trace\":1,\"preset\":", 0), 0u) << text.substr(0, 80);
  EXPECT_EQ(from_text(text).header.version, 1);

  t.header.preset.clear();
  t.header.geometry = CustomGeometry{3, 2, 4, 32, 24, 224, 3};
  text = to_text(t);
  EXPECT_EQ(text.rfind("{\"specstate_trace\":2,\"geometry\":{\"layers\":3,\"H\":2,\"HV\":4,"
                       "\"K\":32,\"V\":24,\"conv_dim\":224,\"W\":3},\"tp\":1,",
                       0),
            0u)
      << text.substr(0, 160);
  const Trace back = from_text(text);
  EXPECT_EQ(back.header, t.header);
  EXPECT_EQ(back.events.size(), t.events.size());
  const ModelGeometry g = header_geometry(back.header);
  EXPECT_EQ(g.preset, "custom");
  EXPECT_EQ(g.ssm_elements_per_layer(), 4 * 32 * 24);
  EXPECT_EQ(g.conv_dim(), 224);
  EXPECT_EQ(g.recurrence, RecurrenceKind::kGatedDeltaNet);

  // The geometry's optional recurrence, here the default, reads as the same header, and the
  // writer leaves the default out.
  const size_t w3 = text.find("\"W\":3}");
  ASSERT_NE(w3, std::string::npos);
  std::string named = text;
  named.insert(w3 + 5, ",\"recurrence\":\"gated-deltanet\"");
  const Trace named_back = from_text(named);
  EXPECT_EQ(named_back.header, t.header);
  EXPECT_EQ(to_text(named_back), text);
}

// Draft trees: version 2 with tree_nodes, every tree field written and read back exactly.
TEST(TraceRoundTrip, TreeTracesWriteVersion2AndRoundTripExactly) {
  sim::GeneratorOptions o = options_for_seed(4);
  o.tree = {3, 2};
  o.tree_nodes = 8;
  const Trace t = sim::generate_trace(o);
  EXPECT_EQ(t.header.tree_nodes, 8);
  const std::string text = to_text(t);
  EXPECT_EQ(text.rfind("{\"specstate_trace\":2,\"preset\":", 0), 0u) << text.substr(0, 80);
  EXPECT_NE(text.find("\"tree_nodes\":8}"), std::string::npos);
  EXPECT_NE(text.find("\"tree\":{\"parents\":[-1,0,0,0,1,1,2,2],\"path\":[0"), std::string::npos);
  const Trace back = from_text(text, t.file);
  EXPECT_EQ(back.header, t.header);
  EXPECT_EQ(back.events, t.events);
}

// Overlap traces: version 2 with overlap 1, discarded entries (accepted 0) written and read back
// exactly, and the trace validates.
TEST(TraceRoundTrip, OverlapTracesWriteVersion2AndRoundTripExactly) {
  sim::GeneratorOptions o = options_for_seed(5);
  o.overlap = true;
  const Trace t = sim::generate_trace(o);
  EXPECT_TRUE(t.header.overlap);
  const std::string text = to_text(t);
  EXPECT_EQ(text.rfind("{\"specstate_trace\":2,\"preset\":", 0), 0u) << text.substr(0, 80);
  EXPECT_NE(text.find("\"overlap\":1}"), std::string::npos);
  EXPECT_NE(text.find("\"accepted\":0}"), std::string::npos);
  const Trace back = from_text(text, t.file);
  EXPECT_EQ(back.header, t.header);
  EXPECT_EQ(back.events, t.events);
  EXPECT_GT(validate_trace(back).discarded, 0);
}

// Host-tier traces: version 2 with host_slots, offload and restore events written and read back
// exactly, and the trace validates.
TEST(TraceRoundTrip, HostTierTracesWriteVersion2AndRoundTripExactly) {
  sim::GeneratorOptions o = options_for_seed(6);
  o.host_slots = 2;
  o.pool_rows = 10;
  o.prefix_hit_prob = 0.6;
  const Trace t = sim::generate_trace(o);
  const std::string text = to_text(t);
  EXPECT_EQ(text.rfind("{\"specstate_trace\":2,\"preset\":", 0), 0u) << text.substr(0, 80);
  EXPECT_NE(text.find("\"host_slots\":2}"), std::string::npos);
  const Trace back = from_text(text, t.file);
  EXPECT_EQ(back.header, t.header);
  EXPECT_EQ(back.events, t.events);
  const TraceSummary s = validate_trace(back);
  EXPECT_GT(s.offloads, 0);
  EXPECT_GT(s.restores, 0);
}

TEST(TraceRoundTrip, GeneratedTracesValidateAndRoundTripExactly) {
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    const Trace generated = sim::generate_trace(options_for_seed(seed));
    ASSERT_NO_THROW(validate_trace(generated));
    const std::string text = to_text(generated);
    Trace read = from_text(text, generated.file);
    EXPECT_EQ(read.header, generated.header);
    EXPECT_EQ(read.events, generated.events);  // line numbers included
    EXPECT_EQ(to_text(read), text);
    EXPECT_NO_THROW(validate_trace(read));
  }
}

TEST(TraceRoundTrip, WriterIsExactForEveryField) {
  Trace t;
  t.file = "t.jsonl";
  t.header.preset = "qwen3-next-80b-a3b";
  t.header.tp = 4;
  t.header.ssm_dtype = SsmDtype::kBF16;
  t.header.draft_tokens = 15;
  t.header.pool_rows = 1 << 24;
  t.header.max_requests = 3;
  t.header.page_size = 64;
  t.header.seed = std::numeric_limits<uint64_t>::max();
  const uint64_t big = std::numeric_limits<uint64_t>::max();
  t.events = {
      {2, Extend{big,
                 2,
                 7,
                 1 << 24,
                 int64_t{1} << 40,
                 9,
                 {{(int64_t{1} << 40) + 64, 11}, {(int64_t{1} << 40) + 128, 12}}}},
      {3, Extend{big, -1, -1, 1, 0, -1, {}}},
      {4, Verify{{{big, 16, TrackWrite{640, 5}, std::nullopt}, {0, 1, std::nullopt, std::nullopt}},
                 123}},
      {5, Decode{{{big, std::nullopt}, {3, TrackWrite{64, 0}}}, 0}},
      {6, Retract{big}},
      {7, Resume{big, 0, 1}},
      {8, Finish{big}},
      {9, Check{}},
  };
  const std::string text = to_text(t);
  const Trace read = from_text(text);
  EXPECT_EQ(read, t);
  EXPECT_EQ(to_text(read), text);
  EXPECT_EQ(
      text.substr(0, text.find('\n')),
      R"({"specstate_trace":1,"preset":"qwen3-next-80b-a3b","tp":4,"ssm_dtype":"bf16","draft_tokens":15,"pool_rows":16777216,"max_requests":3,"page_size":64,"seed":18446744073709551615})");
}

// A rank other than 0 needs format version 2; rank 0 is not written, so a TP 1 trace stays v1.
TEST(TraceRoundTrip, RankWritesVersion2) {
  Trace t;
  t.file = "t.jsonl";
  t.header.preset = "qwen3-next-80b-a3b";
  t.header.tp = 4;
  t.header.version = 2;
  t.header.rank = 3;
  t.header.pool_rows = 4;
  t.header.max_requests = 2;
  const std::string text = to_text(t);
  EXPECT_EQ(
      text.substr(0, text.find('\n')),
      R"({"specstate_trace":2,"preset":"qwen3-next-80b-a3b","tp":4,"rank":3,"ssm_dtype":"f32","draft_tokens":3,"pool_rows":4,"max_requests":2,"page_size":0,"seed":0})");
  EXPECT_EQ(from_text(text), t);
  EXPECT_EQ(header_geometry(from_text(text).header).rank, 3);
}

TEST(TraceGenerator, ReproducibleFromTheSeed) {
  sim::GeneratorOptions o;
  const std::string a = to_text(sim::generate_trace(o));
  EXPECT_EQ(to_text(sim::generate_trace(o)), a);
  o.seed = 2;
  EXPECT_NE(to_text(sim::generate_trace(o)), a);
}

TEST(TraceGenerator, DefaultsExerciseEverything) {
  sim::GeneratorOptions o;  // tiny, 64 requests, 2000 steps
  const auto start = std::chrono::steady_clock::now();
  const Trace t = sim::generate_trace(o);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(ms, 1000.0);
  const TraceSummary s = validate_trace(t);
  EXPECT_EQ(s.requests, 64);
  EXPECT_GE(s.events, 2000);
  EXPECT_GT(s.verifies, 0);
  EXPECT_GT(s.decodes, 0);
  EXPECT_GT(s.retracts, 0);
  EXPECT_GT(s.resumes, 0);
  EXPECT_GT(s.prefix_hits, 0);
  EXPECT_GT(s.snapshots, 0);
  EXPECT_GT(s.padding_rows, 0);
  EXPECT_GT(s.checks, 0);
  EXPECT_GT(s.extends, s.requests);  // chunked prefill
  for (int64_t count : s.acceptance)
    EXPECT_GT(count, 0);
  EXPECT_EQ(s.running_at_end + s.retracted_at_end, 0);
}

// Without snapshots every free row comes from a finish or a retract (or the initial pool), and
// the most recently freed one is handed out first.
TEST(TraceGenerator, FreedRowsAreReusedFirst) {
  sim::GeneratorOptions o;
  o.page_size = 0;
  o.requests = 40;
  o.steps = 800;
  const Trace t = sim::generate_trace(o);
  ScheduleTracker tracker(t.header, t.file);
  std::vector<int32_t> free_rows;
  for (int32_t row = o.pool_rows - 1; row >= 0; --row)
    free_rows.push_back(row);
  int reused = 0;
  for (const Line& line : t.events) {
    int32_t taken = -1;
    if (const auto* e = std::get_if<Extend>(&line.event);
        e && e->working_row >= 0 && !tracker.request(e->request)) {
      taken = e->working_row;
    }
    if (const auto* r = std::get_if<Resume>(&line.event)) taken = r->working_row;
    if (taken >= 0) {
      ASSERT_FALSE(free_rows.empty());
      EXPECT_EQ(taken, free_rows.back()) << "line " << line.line;
      reused += taken != o.pool_rows - 1 - int32_t(free_rows.size()) + 1;
      free_rows.pop_back();
    }
    uint64_t leaving = 0;
    bool frees = false;
    if (const auto* f = std::get_if<Finish>(&line.event)) leaving = f->request, frees = true;
    if (const auto* r = std::get_if<Retract>(&line.event)) leaving = r->request, frees = true;
    if (frees && tracker.request(leaving)->status == RequestStatus::kRunning) {
      free_rows.push_back(tracker.request(leaving)->working_row);
    }
    tracker.apply(line);
  }
  EXPECT_GT(reused, 0);
}

TEST(TraceGenerator, OptionErrors) {
  sim::GeneratorOptions o;
  o.accept_weights = {1, 2};
  try {
    sim::generate_trace(o);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "--accept-weights: 2 given, expected T = 4 (one per a = 1..T)");
  }
  o = {};
  o.accept_prob = 1.5;
  EXPECT_THROW(sim::generate_trace(o), InputError);
  o = {};
  o.preset = "nope";
  EXPECT_THROW(sim::generate_trace(o), InputError);
  o = {};
  o.accept_weights = {0, 0, 0, 1};  // every draft accepted
  const TraceSummary s = validate_trace(sim::generate_trace(o));
  EXPECT_EQ(s.acceptance[3], s.verifies > 0 ? s.acceptance[3] : 0);
  EXPECT_EQ(s.acceptance[0] + s.acceptance[1] + s.acceptance[2], 0);
}

TEST(TraceFiles, WriteIsAtomicAndReadsBack) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / "specstate_trace_test" / std::to_string(::getpid());
  fs::create_directories(dir);
  const Trace t = sim::generate_trace(options_for_seed(3));
  const std::string path = (dir / "t.jsonl").string();
  write_trace_file(path, t);
  const Trace read = read_trace(path);
  EXPECT_EQ(read.events, t.events);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()),
            1);  // no temp left
  EXPECT_THROW(write_trace_file((dir / "missing" / "t.jsonl").string(), t), InputError);
  EXPECT_THROW(read_trace(dir.string()), InputError);  // a directory
  fs::remove_all(dir);
  std::error_code ignored;
  fs::remove(dir.parent_path(), ignored);  // only when empty
}

TEST(TraceExamples, EveryExampleValidates) {
  namespace fs = std::filesystem;
  int examples = 0;
  for (const auto& entry : fs::directory_iterator("test_data/examples")) {  // beside the binary
    if (entry.path().extension() != ".jsonl") continue;
    SCOPED_TRACE(entry.path().string());
    ++examples;
    const Trace t = read_trace(entry.path().string());
    const TraceSummary s = validate_trace(t);
    EXPECT_GT(s.steps(), 0);
    EXPECT_EQ(s.running_at_end, 0);
  }
  EXPECT_GE(examples, 2);
}

// Random byte edits of a valid trace: the reader and validator either accept the result or
// throw InputError; nothing else escapes (libFuzzer will do this at scale).
TEST(TraceFuzz, MutatedTracesFailCleanly) {
  const std::string text = to_text(sim::generate_trace(options_for_seed(7)));
  uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  };
  const char alphabet[] = "{}[]\",:0123456789-.e# \nabcdefghijklmnoprstuvwxyz\\\x80\xff";
  int rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string mutated = text;
    const int edits = 1 + int(next() % 4);
    for (int k = 0; k < edits; ++k) {
      const size_t pos = next() % mutated.size();
      switch (next() % 3) {
        case 0:
          mutated[pos] = alphabet[next() % (sizeof alphabet - 1)];
          break;
        case 1:
          mutated.erase(pos, 1 + next() % 8);
          break;
        default:
          mutated.resize(pos);
          break;
      }
      if (mutated.empty()) mutated.push_back('{');
    }
    try {
      validate_trace(from_text(mutated));
    } catch (const InputError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 1000);
}

}  // namespace
}  // namespace specstate::trace::testing
