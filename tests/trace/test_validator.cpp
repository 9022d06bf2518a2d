// Schedule errors found by the ScheduleTracker: each asserts the line and the whole message.
#include <gtest/gtest.h>

#include "core/trace/tracker.h"
#include "tests/allocations.h"
#include "trace_test_util.h"

namespace specstate::trace::testing {
namespace {

const std::string kVerify5a2 = R"({"event": "verify", "batch": [{"request": 5, "accepted": 2}]})";
const std::string kFinish5 = R"({"event": "finish", "request": 5})";
const std::string kRetract5 = R"({"event": "retract", "request": 5})";

TEST(TraceValidator, RequestDoesNotExist) {
  EXPECT_EQ(event_error({kVerify5a2}),
            "t.jsonl:2: request 5 does not exist (no extend has started it)");
  EXPECT_EQ(event_error({kRetract5}),
            "t.jsonl:2: request 5 does not exist (no extend has started it)");
  EXPECT_EQ(event_error({R"({"event": "resume", "request": 5, "req_row": 0, "working_row": 1})"}),
            "t.jsonl:2: request 5 does not exist (no extend has started it)");
  EXPECT_EQ(event_error({kFinish5}),
            "t.jsonl:2: request 5 does not exist (no extend has started it)");
}

TEST(TraceValidator, RequestNotRunning) {
  EXPECT_EQ(event_error({kStart5, kRetract5, kVerify5a2}),
            "t.jsonl:4: request 5 is not running: retracted at line 3 and not resumed");
  EXPECT_EQ(event_error({kStart5, kRetract5, R"({"event": "extend", "request": 5, "tokens": 4})"}),
            "t.jsonl:4: request 5 is not running: retracted at line 3 and not resumed");
  EXPECT_EQ(event_error({kStart5, kRetract5, kRetract5}),
            "t.jsonl:4: request 5 is not running: retracted at line 3 and not resumed");
}

TEST(TraceValidator, EventsAfterFinish) {
  EXPECT_EQ(event_error({kStart5, kFinish5, kVerify5a2}),
            "t.jsonl:4: request 5 finished at line 3");
  EXPECT_EQ(event_error({kStart5, kFinish5, kFinish5}), "t.jsonl:4: request 5 finished at line 3");
  EXPECT_EQ(event_error({kStart5, kFinish5,
                         R"({"event": "resume", "request": 5, "req_row": 0, "working_row": 1})"}),
            "t.jsonl:4: request 5 finished at line 3");
  // A finished request's id is not reused.
  EXPECT_EQ(event_error({kStart5, kFinish5, kStart5}), "t.jsonl:4: request 5 finished at line 3");
}

TEST(TraceValidator, ResumeOfARequestNotRetracted) {
  EXPECT_EQ(
      event_error(
          {kStart5, R"({"event": "resume", "request": 5, "req_row": 1, "working_row": 4})"}),
      "t.jsonl:3: request 5 is not retracted (it is running); only a retracted request resumes");
}

TEST(TraceValidator, DuplicateRequestInBatch) {
  EXPECT_EQ(
      event_error(
          {kStart5,
           R"({"event": "verify", "batch": [{"request": 5, "accepted": 1}, {"request": 5, "accepted": 2}]})"}),
      "t.jsonl:3: request 5 appears twice in the batch");
  EXPECT_EQ(
      event_error({kStart5, R"({"event": "decode", "batch": [{"request": 5}, {"request": 5}]})"}),
      "t.jsonl:3: request 5 appears twice in the batch");
}

TEST(TraceValidator, EmptyBatch) {
  EXPECT_EQ(event_error({R"({"event": "verify", "batch": [], "padding": 4})"}),
            "t.jsonl:2: a step with an empty batch");
}

TEST(TraceValidator, RowOutOfRange) {
  EXPECT_EQ(
      event_error(
          {R"({"event": "extend", "request": 5, "req_row": 0, "working_row": 8, "tokens": 1})"}),
      "t.jsonl:2: working_row 8 out of range 0..7 (pool_rows 8)");
  EXPECT_EQ(
      event_error(
          {R"({"event": "extend", "request": 5, "req_row": 4, "working_row": 1, "tokens": 1})"}),
      "t.jsonl:2: req_row 4 out of range 0..3 (max_requests 4)");
  EXPECT_EQ(
      event_error(
          {R"({"event": "extend", "request": 5, "req_row": 0, "working_row": 1, "tokens": 20, "track": [{"length": 16, "row": 9}]})"}),
      "t.jsonl:2: track row 9 out of range 0..7 (pool_rows 8)");
  EXPECT_EQ(event_error({kStart5, kRetract5,
                         R"({"event": "resume", "request": 5, "req_row": 0, "working_row": 100})"}),
            "t.jsonl:4: working_row 100 out of range 0..7 (pool_rows 8)");
}

TEST(TraceValidator, WorkingRowOwnedByAnotherRequest) {
  EXPECT_EQ(
      event_error(
          {kStart5,
           R"({"event": "extend", "request": 6, "req_row": 1, "working_row": 2, "tokens": 3})"}),
      "t.jsonl:3: working_row 2 is the working row of live request 5");
  EXPECT_EQ(
      event_error(
          {kStart5,
           R"({"event": "extend", "request": 6, "req_row": 1, "working_row": 4, "tokens": 3})",
           R"({"event": "retract", "request": 6})",
           R"({"event": "resume", "request": 6, "req_row": 1, "working_row": 2})"}),
      "t.jsonl:5: working_row 2 is the working row of live request 5");
  // A retracted request's row is free again; a finished one's too.
  EXPECT_EQ(
      event_error(
          {kStart5, kRetract5,
           R"({"event": "extend", "request": 6, "req_row": 0, "working_row": 2, "tokens": 3})"}),
      "ok");
}

TEST(TraceValidator, ReqRowInUse) {
  EXPECT_EQ(
      event_error(
          {kStart5,
           R"({"event": "extend", "request": 6, "req_row": 0, "working_row": 4, "tokens": 3})"}),
      "t.jsonl:3: req_row 0 is in use by request 5");
}

TEST(TraceValidator, FirstExtendNamesRowsLaterOnesMatch) {
  EXPECT_EQ(event_error({R"({"event": "extend", "request": 5, "tokens": 3})"}),
            "t.jsonl:2: the first extend of request 5 must name req_row and working_row");
  EXPECT_EQ(
      event_error({kStart5, R"({"event": "extend", "request": 5, "working_row": 4, "tokens": 3})"}),
      "t.jsonl:3: working_row 4 does not match request 5's working_row 2");
  EXPECT_EQ(
      event_error({kStart5, R"({"event": "extend", "request": 5, "req_row": 1, "tokens": 3})"}),
      "t.jsonl:3: req_row 1 does not match request 5's req_row 0");
  EXPECT_EQ(
      event_error(
          {kStart5,
           R"({"event": "extend", "request": 5, "req_row": 0, "working_row": 2, "tokens": 3})"}),
      "ok");
}

TEST(TraceValidator, TrackRowIsALiveWorkingRow) {
  EXPECT_EQ(
      event_error(
          {kStart5,
           R"({"event": "extend", "request": 6, "req_row": 1, "working_row": 4, "tokens": 20, "track": [{"length": 16, "row": 2}]})"}),
      "t.jsonl:3: track row 2 is the working row of live request 5");
  EXPECT_EQ(
      event_error(
          {R"({"event": "extend", "request": 5, "req_row": 0, "working_row": 2, "tokens": 20, "track": [{"length": 16, "row": 2}]})"}),
      "t.jsonl:2: track row 2 is the request's own working row");
  const std::string to30 = R"({"event": "extend", "request": 5, "tokens": 6})";
  EXPECT_EQ(
      event_error(
          {kStart5, to30,
           R"({"event": "verify", "batch": [{"request": 5, "accepted": 4, "track": {"length": 32, "row": 2}}]})"}),
      "t.jsonl:4: track row 2 is the request's own working row");
  EXPECT_EQ(
      event_error(
          {kStart5, to30,
           R"({"event": "extend", "request": 6, "req_row": 1, "working_row": 4, "tokens": 3})",
           R"({"event": "verify", "batch": [{"request": 5, "accepted": 4, "track": {"length": 32, "row": 4}}]})"}),
      "t.jsonl:5: track row 4 is the working row of live request 6");
}

TEST(TraceValidator, TrackRowWrittenTwice) {
  EXPECT_EQ(
      event_error(
          {R"({"event": "extend", "request": 5, "req_row": 0, "working_row": 2, "tokens": 40, "track": [{"length": 16, "row": 3}, {"length": 32, "row": 3}]})"}),
      "t.jsonl:2: track row 3 is written twice in this event");
  EXPECT_EQ(
      event_error(
          {R"({"event": "extend", "request": 5, "req_row": 0, "working_row": 2, "tokens": 40, "track": [{"length": 16, "row": 3}, {"length": 16, "row": 4}]})"}),
      "t.jsonl:2: track length 16 is written twice in this event");
}

TEST(TraceValidator, AcceptedOutsideOneToT) {
  EXPECT_EQ(
      event_error({kStart5, R"({"event": "verify", "batch": [{"request": 5, "accepted": 0}]})"}),
      "t.jsonl:3: accepted length 0 outside 1..4 (request 5); only an overlap trace (header "
      "overlap 1) has discarded entries");
  EXPECT_EQ(
      event_error({kStart5, R"({"event": "verify", "batch": [{"request": 5, "accepted": 5}]})"}),
      "t.jsonl:3: accepted length 5 outside 1..4 (request 5)");
  EXPECT_EQ(
      event_error(
          {kStart5, R"({"event": "verify", "batch": [{"request": 5, "accepted": -2147483648}]})"}),
      "t.jsonl:3: accepted length -2147483648 outside 1..4 (request 5)");
}

TEST(TraceValidator, TrackLengthNotACrossedPageBoundary) {
  // Not a multiple of the page.
  EXPECT_EQ(
      event_error(
          {R"({"event": "extend", "request": 5, "req_row": 0, "working_row": 2, "tokens": 24, "track": [{"length": 20, "row": 3}]})"}),
      "t.jsonl:2: track length 20 is not a page boundary (page_size 16)");
  // Beyond the extend.
  EXPECT_EQ(
      event_error(
          {R"({"event": "extend", "request": 5, "req_row": 0, "working_row": 2, "tokens": 24, "track": [{"length": 32, "row": 3}]})"}),
      "t.jsonl:2: track length 32 is not a page boundary crossed by this event (the request "
      "goes from 0 to 24 tokens)");
  // Verify: only accepted tokens count (24 + 2 = 26 < 32, although 24 + T = 28 would not reach
  // it either; from 30, a = 1 reaches 31 and misses 32 while T would cross it).
  EXPECT_EQ(
      event_error(
          {kStart5, R"({"event": "extend", "request": 5, "tokens": 6})",
           R"({"event": "verify", "batch": [{"request": 5, "accepted": 1, "track": {"length": 32, "row": 4}}]})"}),
      "t.jsonl:4: track length 32 is not a page boundary crossed by this event (the request "
      "goes from 30 to 31 tokens)");
  // Decode: exactly one token.
  EXPECT_EQ(
      event_error(
          {kStart5, R"({"event": "extend", "request": 5, "tokens": 7})",
           R"({"event": "decode", "batch": [{"request": 5, "track": {"length": 32, "row": 4}}]})"}),
      "ok");
  EXPECT_EQ(
      event_error(
          {kStart5, R"({"event": "extend", "request": 5, "tokens": 6})",
           R"({"event": "decode", "batch": [{"request": 5, "track": {"length": 32, "row": 4}}]})"}),
      "t.jsonl:4: track length 32 is not a page boundary crossed by this event (the request "
      "goes from 30 to 31 tokens)");
}

TEST(TraceValidator, NoSnapshotsWithoutPages) {
  const std::string header =
      R"({"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "bf16", "draft_tokens": 0, "pool_rows": 4, "max_requests": 4, "page_size": 0, "seed": 1})";
  EXPECT_EQ(first_error(lines({header, kStart5})),
            "t.jsonl:2: track write, but page_size is 0 (no snapshots)");
}

TEST(TraceValidator, CowSourceMustHoldThePrefix) {
  const std::string hit6 =
      R"({"event": "extend", "request": 6, "req_row": 1, "working_row": 4, "tokens": 3, "prefix_len": 16, "cow_src_row": 3})";
  EXPECT_EQ(event_error({kStart5, hit6}), "ok");
  EXPECT_EQ(event_error({hit6}), "t.jsonl:2: cow_src_row 3 holds no snapshot (it is free)");
  EXPECT_EQ(
      event_error(
          {kStart5,
           R"({"event": "extend", "request": 6, "req_row": 1, "working_row": 4, "tokens": 3, "prefix_len": 16, "cow_src_row": 2})"}),
      "t.jsonl:3: cow_src_row 2 holds no snapshot (it is the working row of live request 5)");
  EXPECT_EQ(
      event_error(
          {kStart5,
           R"({"event": "extend", "request": 6, "req_row": 1, "working_row": 4, "tokens": 3, "prefix_len": 32, "cow_src_row": 3})"}),
      "t.jsonl:3: cow_src_row 3 holds a snapshot of 16 tokens, not prefix_len 32");
  EXPECT_EQ(
      event_error(
          {kStart5,
           R"({"event": "extend", "request": 6, "req_row": 1, "working_row": 3, "tokens": 3, "prefix_len": 16, "cow_src_row": 3})"}),
      "t.jsonl:3: cow_src_row 3 is also the working_row; a prefix hit copies into another row");
  EXPECT_EQ(
      event_error(
          {kStart5,
           R"({"event": "extend", "request": 6, "req_row": 1, "working_row": 4, "tokens": 3, "prefix_len": 16})"}),
      "t.jsonl:3: prefix_len 16 without cow_src_row");
  EXPECT_EQ(
      event_error(
          {kStart5,
           R"({"event": "extend", "request": 6, "req_row": 1, "working_row": 4, "tokens": 3, "cow_src_row": 3})"}),
      "t.jsonl:3: cow_src_row 3 without prefix_len");
  EXPECT_EQ(
      event_error(
          {kStart5,
           R"({"event": "extend", "request": 5, "tokens": 3, "prefix_len": 16, "cow_src_row": 3})"}),
      "t.jsonl:3: prefix_len and cow_src_row belong on a request's first extend only "
      "(request 5 started at line 2)");
  EXPECT_EQ(
      event_error(
          {kStart5,
           R"({"event": "extend", "request": 6, "req_row": 1, "working_row": 4, "tokens": 20, "prefix_len": 16, "cow_src_row": 3, "track": [{"length": 32, "row": 3}]})"}),
      "t.jsonl:3: track row 3 is this extend's cow_src_row");
  // A snapshot row taken as a working row is no snapshot any more.
  EXPECT_EQ(
      event_error(
          {kStart5,
           R"({"event": "extend", "request": 7, "req_row": 2, "working_row": 3, "tokens": 1})",
           R"({"event": "extend", "request": 6, "req_row": 1, "working_row": 4, "tokens": 3, "prefix_len": 16, "cow_src_row": 3})"}),
      "t.jsonl:4: cow_src_row 3 holds no snapshot (it is the working row of live request 7)");
}

TEST(TraceValidator, FinishOfARetractedRequestIsAllowed) {
  EXPECT_EQ(event_error({kStart5, kRetract5, kFinish5}), "ok");
}

TEST(TraceValidator, RejectedEventLeavesTheTrackerUnchanged) {
  Header h;
  h.preset = "tiny";
  h.pool_rows = 8;
  h.max_requests = 4;
  h.page_size = 16;
  ScheduleTracker tracker(h, "t.jsonl");
  Extend start{5, 0, 2, 24, 0, -1, {{16, 3}}};
  tracker.apply({2, start});
  Verify bad;
  bad.batch = {{5, 2, std::nullopt, std::nullopt},
               {6, 1, std::nullopt, std::nullopt}};  // request 6 does not exist
  EXPECT_THROW(tracker.apply({3, bad}), InputError);
  EXPECT_EQ(tracker.request(5)->length, 24);
  EXPECT_EQ(tracker.row(3).kind, RowUse::Kind::kCache);
  EXPECT_EQ(tracker.row(3).cached_length, 16);
  EXPECT_EQ(tracker.row(2).kind, RowUse::Kind::kWorking);
  EXPECT_EQ(*tracker.req_row_owner(0), 5u);
  EXPECT_EQ(tracker.rows_in_use(), 2);
}

TEST(TraceValidator, InMemoryTraceGetsTheReaderLimitsToo) {
  Trace t;
  t.file = "mem";
  t.header.preset = "tiny";
  t.header.pool_rows = 8;
  t.header.max_requests = 4;
  t.events.push_back({2, Extend{5, 0, 2, 0, 0, -1, {}}});
  try {
    validate_trace(t);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "mem:2: tokens 0 outside 1..16777216");
  }
  t.header.pool_rows = 0;
  try {
    validate_trace(t);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "mem:1: pool_rows 0 outside 1..16777216");
  }
}

TEST(TraceValidator, Summary) {
  const std::string text = lines(
      {kHeader, kStart5,
       R"({"event": "extend", "request": 5, "tokens": 8, "track": [{"length": 32, "row": 4}]})",
       R"({"event": "extend", "request": 6, "req_row": 1, "working_row": 5, "tokens": 3, "prefix_len": 16, "cow_src_row": 3})",
       R"({"event": "verify", "batch": [{"request": 5, "accepted": 4}, {"request": 6, "accepted": 1}], "padding": 2})",
       R"({"event": "decode", "batch": [{"request": 5}], "padding": 1})", kRetract5,
       R"({"event": "resume", "request": 5, "req_row": 2, "working_row": 2})",
       R"({"event": "verify", "batch": [{"request": 5, "accepted": 4}]})", R"({"event": "check"})",
       kFinish5});
  std::istringstream in(text);
  const TraceSummary s = validate_trace(read_trace(in, "t.jsonl"));
  EXPECT_EQ(s.events, 10);
  EXPECT_EQ(s.requests, 2);
  EXPECT_EQ(s.running_at_end, 1);
  EXPECT_EQ(s.steps(), 3);
  EXPECT_EQ(s.prefill_tokens, 24 + 8 + 3);
  EXPECT_EQ(s.prefix_hits, 1);
  EXPECT_EQ(s.prefix_hit_tokens, 16);
  EXPECT_EQ(s.verified_tokens, 12);
  EXPECT_EQ(s.accepted_tokens, 9);
  EXPECT_EQ(s.decode_tokens, 1);
  EXPECT_EQ(s.acceptance, (std::vector<int64_t>{1, 0, 0, 2}));
  EXPECT_EQ(s.snapshots, 2);
  EXPECT_EQ(s.padding_rows, 3);
  EXPECT_EQ(s.retracts, 1);
  EXPECT_EQ(s.resumes, 1);
  EXPECT_EQ(s.peak_rows_in_use, 4);  // working 2 and 5, snapshots 3 and 4
  EXPECT_EQ(s.peak_running, 2);
  EXPECT_NE(format_summary(s).find("a=4: 2 (66.7%)"), std::string::npos);
}

// Issue 19 defect 8: one extend carrying n track writes validates in time linear in n (it took
// 70 s at n = 330k when duplicate rows and lengths were looked up in vectors).
TEST(TraceValidator, TrackWritesCostLinearTime) {
  auto validate_tracks = [](int n) {
    Trace t;
    t.file = "t.jsonl";
    t.header.preset = "tiny";
    t.header.draft_tokens = 0;
    t.header.pool_rows = n + 1;
    t.header.max_requests = 1;
    t.header.page_size = 1;
    Extend e{1, 0, 0, n, 0, -1, {}};
    for (int i = 1; i <= n; ++i)
      e.track.push_back({i, i});
    t.events.push_back(Line{2, e});
    const TraceSummary s = validate_trace(t);
    ASSERT_EQ(s.snapshots, n);
  };
  const double growth =
      specstate::test::allocation_growth_of_four_times_the_size(validate_tracks, 50'000);
  EXPECT_LT(growth, specstate::test::kLinearGrowthBound);
}

}  // namespace
}  // namespace specstate::trace::testing
