// Syntax, types and header errors: each asserts the line and the whole message.
#include <gtest/gtest.h>

#include "trace_test_util.h"

namespace specstate::trace::testing {
namespace {

TEST(TraceReader, EmptyFileAndMissingHeader) {
  EXPECT_EQ(first_error(""),
            "t.jsonl:1: empty trace: no header line {\"specstate_trace\": 1, ...}");
  EXPECT_EQ(first_error("# only\n\n# comments\n"),
            "t.jsonl:3: empty trace: no header line {\"specstate_trace\": 1, ...}");
  EXPECT_EQ(
      first_error("# a comment\n{\"event\": \"check\"}\n"),
      "t.jsonl:2: missing header: a trace starts with {\"specstate_trace\": 1, \"preset\": ...}");
}

// The system's reason: a bare "cannot open for reading" left the user guessing.
TEST(TraceReader, AFileThatDoesNotOpenSaysWhy) {
  try {
    read_trace("/nonexistent-specstate-dir/t.jsonl");
    FAIL() << "read_trace opened a missing file";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "/nonexistent-specstate-dir/t.jsonl: cannot open for reading: No such file or "
                 "directory");
  }
}

TEST(TraceReader, CommentsAndBlankLinesKeepLineNumbers) {
  EXPECT_EQ(
      first_error("# c\n\n" + kHeader + "\n  # indented comment\n\t\n{\"event\": \"nope\"}\n"),
      "t.jsonl:6: unknown event 'nope' (expected extend, verify, decode, retract, resume, "
      "finish, check, offload, restore or handoff)");
}

TEST(TraceReader, BadVersion) {
  EXPECT_EQ(first_error("{\"specstate_trace\": 3, \"future\": 1}\n"),
            "t.jsonl:1: unsupported trace format version 3 (this build reads versions 1 to 2)");
  EXPECT_EQ(first_error("{\"specstate_trace\": 0}\n"),
            "t.jsonl:1: unsupported trace format version 0 (this build reads versions 1 to 2)");
  EXPECT_EQ(first_error("{\"specstate_trace\": \"1\"}\n"),
            "t.jsonl:1: field 'specstate_trace' in header must be an integer, got a string");
}

TEST(TraceReader, HeaderFields) {
  const std::string rest =
      R"("draft_tokens": 3, "pool_rows": 8, "max_requests": 4, "page_size": 16, "seed": 1})";
  EXPECT_EQ(
      first_error(R"({"specstate_trace": 1, "preset": "huge", "tp": 1, "ssm_dtype": "f32", )" +
                  rest + "\n"),
      "t.jsonl:1: unknown preset 'huge' (known: qwen3-next-80b-a3b, qwen3.5-397b-a17b, "
      "qwen3.5-122b-a10b, qwen3.5-35b-a3b, qwen3.5-27b, qwen3.5-9b, qwen3.5-2b, "
      "kimi-linear-48b-a3b, tiny)");
  EXPECT_EQ(
      first_error(R"({"specstate_trace": 1, "preset": "tiny", "tp": 3, "ssm_dtype": "f32", )" +
                  rest + "\n"),
      "t.jsonl:1: tensor-parallel degree 3 does not divide the tiny head counts (H=2, HV=4)");
  EXPECT_EQ(
      first_error(R"({"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "f16", )" +
                  rest + "\n"),
      "t.jsonl:1: field 'ssm_dtype' in header is 'f16', expected f32 or bf16");
  EXPECT_EQ(
      first_error(
          R"({"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "f32", "draft_tokens": 16, "pool_rows": 8, "max_requests": 4, "page_size": 16, "seed": 1})"
          "\n"),
      "t.jsonl:1: field 'draft_tokens' in header is 16, outside 0..15");
  EXPECT_EQ(
      first_error(
          R"({"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "f32", "draft_tokens": 3, "pool_rows": 16777217, "max_requests": 4, "page_size": 16, "seed": 1})"
          "\n"),
      "t.jsonl:1: field 'pool_rows' in header is 16777217, outside 1..16777216");
  EXPECT_EQ(
      first_error(
          R"({"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "f32", "draft_tokens": 3, "pool_rows": 8, "max_requests": 4, "page_size": 16})"
          "\n"),
      "t.jsonl:1: missing field 'seed' in header");
  EXPECT_EQ(
      first_error(
          R"({"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "f32", "draft_tokens": 3, "pool_rows": 8, "max_requests": 4, "page_size": 16, "seed": -1})"
          "\n"),
      "t.jsonl:1: field 'seed' in header is -1, outside 0..18446744073709551615");
  EXPECT_EQ(
      first_error(
          R"({"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "f32", "draft_tokens": 3, "pool_rows": 8, "max_requests": 4, "page_size": 16, "seed": 1, "colour": "red"})"
          "\n"),
      "t.jsonl:1: unknown field 'colour' in header (expected specstate_trace, preset, geometry, "
      "tp, rank, ssm_dtype, draft_tokens, pool_rows, max_requests, page_size, seed, tree_nodes, "
      "overlap, host_slots, prefill_tp)");
}

TEST(TraceReader, SecondHeader) {
  EXPECT_EQ(event_error({kHeader}),
            "t.jsonl:2: a second header; a trace has one, on its first line");
}

TEST(TraceReader, UnknownField) {
  EXPECT_EQ(event_error({R"({"event": "finish", "request": 5, "why": "done"})"}),
            "t.jsonl:2: unknown field 'why' in finish event (expected event, request)");
  EXPECT_EQ(
      event_error({R"({"event": "verify", "batch": [{"request": 5, "accepted": 1, "a": 1}]})"}),
      "t.jsonl:2: unknown field 'a' in batch[0] of the verify event (expected request, "
      "accepted, track, tree)");
  EXPECT_EQ(
      event_error(
          {R"({"event": "decode", "batch": [{"request": 5, "track": {"length": 16, "row": 1, "x": 0}}]})"}),
      "t.jsonl:2: unknown field 'x' in track of batch[0] of the decode event (expected "
      "length, row)");
}

TEST(TraceReader, WrongType) {
  EXPECT_EQ(
      event_error(
          {R"({"event": "extend", "request": "5", "req_row": 0, "working_row": 2, "tokens": 24})"}),
      "t.jsonl:2: field 'request' in extend event must be an integer, got a string");
  EXPECT_EQ(
      event_error(
          {R"({"event": "extend", "request": 5, "req_row": 0, "working_row": 2, "tokens": 2.5})"}),
      "t.jsonl:2: field 'tokens' in extend event must be an integer, got a non-integer number");
  EXPECT_EQ(event_error({R"({"event": "verify", "batch": {"request": 5}})"}),
            "t.jsonl:2: field 'batch' in verify event must be an array, got an object");
  EXPECT_EQ(
      event_error(
          {R"({"event": "extend", "request": 5, "req_row": 0, "working_row": 2, "tokens": 24, "track": {"length": 16, "row": 3}})"}),
      "t.jsonl:2: field 'track' in extend event must be an array, got an object");
  EXPECT_EQ(event_error({R"({"event": "verify", "batch": [5]})"}),
            "t.jsonl:2: batch[0] of the verify event must be a JSON object, got an integer");
  EXPECT_EQ(event_error({R"(["event", "check"])"}),
            "t.jsonl:2: an event must be a JSON object, got an array");
  EXPECT_EQ(event_error({R"({"event": 3})"}),
            "t.jsonl:2: field 'event' must be a string, got an integer");
  EXPECT_EQ(event_error({R"({"event": "retract", "request": true})"}),
            "t.jsonl:2: field 'request' in retract event must be an integer, got a boolean");
}

TEST(TraceReader, MissingField) {
  EXPECT_EQ(event_error({R"({"request": 5})"}), "t.jsonl:2: missing field 'event'");
  EXPECT_EQ(event_error({R"({"event": "extend", "request": 5, "req_row": 0, "working_row": 2})"}),
            "t.jsonl:2: missing field 'tokens' in extend event");
  EXPECT_EQ(event_error({kStart5, R"({"event": "verify", "batch": [{"request": 5}]})"}),
            "t.jsonl:3: missing field 'accepted' in batch[0] of the verify event");
  EXPECT_EQ(event_error({R"({"event": "resume", "request": 5, "req_row": 1})"}),
            "t.jsonl:2: missing field 'working_row' in resume event");
}

TEST(TraceReader, AbsurdSizes) {
  EXPECT_EQ(
      event_error(
          {R"({"event": "extend", "request": 5, "req_row": 0, "working_row": 2, "tokens": 16777217})"}),
      "t.jsonl:2: field 'tokens' in extend event is 16777217, outside 1..16777216");
  EXPECT_EQ(
      event_error(
          {R"({"event": "extend", "request": 5, "req_row": 0, "working_row": 2, "tokens": 0})"}),
      "t.jsonl:2: field 'tokens' in extend event is 0, outside 1..16777216");
  EXPECT_EQ(
      event_error(
          {R"({"event": "extend", "request": 5, "req_row": 0, "working_row": 99999999999, "tokens": 1})"}),
      "t.jsonl:2: field 'working_row' in extend event is 99999999999, outside 0..2147483647");
  EXPECT_EQ(
      event_error(
          {R"({"event": "extend", "request": 5, "req_row": -1, "working_row": 2, "tokens": 1})"}),
      "t.jsonl:2: field 'req_row' in extend event is -1, outside 0..2147483647");
}

TEST(TraceReader, InvalidJsonAndTruncatedLastLine) {
  EXPECT_EQ(event_error({R"({"event": "check",})"}),
            "t.jsonl:2: invalid JSON: column 19: syntax error while parsing object key - "
            "unexpected '}'; expected string literal");
  EXPECT_EQ(event_error({"{\"event\": \"check\", \"x\": \"\xff\"}"}),
            "t.jsonl:2: invalid JSON: column 26: syntax error while parsing value - invalid "
            "string: ill-formed UTF-8 byte; last read: '\"?'");
  // The last line lost its end: no newline, and not valid JSON.
  EXPECT_EQ(first_error(lines({kHeader, kStart5}) + R"({"event": "verify", "batch": [{"requ)"),
            "t.jsonl:3: truncated last line: no newline at the end and not valid JSON (column 37: "
            "syntax error while parsing object key - invalid string: missing closing quote; last "
            "read: '\"requ'; expected string literal)");
  // A complete last line without a newline is fine.
  EXPECT_EQ(first_error(lines({kHeader, kStart5}) + R"({"event": "check"})"), "ok");
}

TEST(TraceReader, ReadsEveryEventKind) {
  std::istringstream in(lines(
      {"# comment", kHeader, kStart5, R"({"event": "extend", "request": 5, "tokens": 7})",
       R"({"event": "verify", "batch": [{"request": 5, "accepted": 2, "track": {"length": 32, "row": 4}}], "padding": 3})",
       R"({"event": "decode", "batch": [{"request": 5}]})", R"({"event": "retract", "request": 5})",
       R"({"event": "resume", "request": 5, "req_row": 1, "working_row": 6})",
       R"({"event": "check"})", R"({"event": "finish", "request": 5})"}));
  const Trace t = read_trace(in, "t.jsonl");
  EXPECT_EQ(t.header_line, 2);
  EXPECT_EQ(t.header.pool_rows, 8);
  ASSERT_EQ(t.events.size(), 8u);
  EXPECT_EQ(t.events[0].line, 3);
  const auto& e = std::get<Extend>(t.events[0].event);
  EXPECT_EQ(e.request, 5u);
  EXPECT_EQ(e.working_row, 2);
  ASSERT_EQ(e.track.size(), 1u);
  EXPECT_EQ(e.track[0].length, 16);
  EXPECT_EQ(std::get<Extend>(t.events[1].event).working_row, -1);
  const auto& v = std::get<Verify>(t.events[2].event);
  EXPECT_EQ(v.padding, 3);
  EXPECT_EQ(v.batch[0].track->row, 4);
  EXPECT_EQ(std::get<Decode>(t.events[3].event).padding, 0);
  EXPECT_EQ(std::get<Resume>(t.events[5].event).working_row, 6);
  EXPECT_EQ(t.events[7].line, 10);
  EXPECT_NO_THROW(validate_trace(t));
}

// Version 2's host tier: the header's host_slots, offload and restore events, and the writer
// giving back what it read.
TEST(TraceReader, ReadsAndWritesTheHostTier) {
  const std::string header =
      R"({"specstate_trace": 2, "preset": "tiny", "tp": 1, "ssm_dtype": "f32", "draft_tokens": 3, "pool_rows": 8, "max_requests": 4, "page_size": 16, "seed": 1, "host_slots": 3})";
  std::istringstream in(lines(
      {header,
       R"({"event": "extend", "request": 5, "req_row": 0, "working_row": 2, "tokens": 20, "track": [{"length": 16, "row": 4}]})",
       R"({"event": "offload", "row": 4, "slot": 2})",
       R"({"event": "restore", "slot": 2, "row": 7})",
       R"({"event": "extend", "request": 6, "req_row": 1, "working_row": 3, "tokens": 5, "prefix_len": 16, "cow_src_row": 7})"}));
  const Trace t = read_trace(in, "t.jsonl");
  EXPECT_EQ(t.header.host_slots, 3);
  EXPECT_EQ(t.header.lowest_version(), 2);
  EXPECT_EQ(std::get<Offload>(t.events[1].event), (Offload{4, 2}));
  EXPECT_EQ(std::get<Restore>(t.events[2].event), (Restore{2, 7}));
  EXPECT_NO_THROW(validate_trace(t));
  std::ostringstream out;
  write_trace(out, t);
  std::istringstream again(out.str());
  Trace back = read_trace(again, "t.jsonl");
  back.header_line = t.header_line;
  for (size_t i = 0; i < back.events.size(); ++i)
    back.events[i].line = t.events[i].line;
  EXPECT_EQ(back, t);
}

TEST(TraceReader, MissingFile) {
  EXPECT_THROW(read_trace("/nonexistent/trace.jsonl"), InputError);
}

// ---- hostile bytes and echoed values ----------------------------------------------

// An endless stream of NUL bytes without a newline, like /dev/zero.
class ZeroStream : public std::streambuf {
 protected:
  int_type underflow() override {
    setg(block_, block_, block_ + sizeof block_);
    return traits_type::to_int_type(block_[0]);
  }

 private:
  char block_[4096] = {};
};

TEST(TraceReader, LineLengthIsBounded) {
  ZeroStream zeros;
  std::istream in(&zeros);
  try {
    read_trace(in, "/dev/zero");
    FAIL() << "read an endless line";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "/dev/zero:1: line longer than 16777216 bytes (a trace line is one event; see "
                 "docs/trace-format.md)");
  }
  // A line of exactly the limit is read (and then judged as JSON).
  const std::string longest(size_t(kMaxLineBytes), ' ');
  EXPECT_EQ(first_error(kHeader + "\n" + longest + "\n"), "ok");
  EXPECT_EQ(first_error(kHeader + "\n" + longest + " \n"),
            "t.jsonl:2: line longer than 16777216 bytes (a trace line is one event; see "
            "docs/trace-format.md)");
}

TEST(TraceReader, NulByteIsRefusedWhereItStands) {
  const std::string text =
      kHeader + "\n" + std::string("{\"event\":\"check\"}\0{\"event\":\"finish\"}\n", 37);
  EXPECT_EQ(first_error(text),
            "t.jsonl:2: invalid JSON: column 18: NUL byte (a trace holds none; a string writes it "
            "as \\u0000)");
  EXPECT_EQ(first_error(kHeader + "\n" + std::string("# a\0b\n", 6)),
            "t.jsonl:2: invalid JSON: column 4: NUL byte (a trace holds none; a string writes it "
            "as \\u0000)");
}

TEST(TraceReader, CrLineEndingsAreNamed) {
  EXPECT_EQ(first_error(kHeader + "\r" + kStart5 + "\r"),
            "t.jsonl:1: CR line endings: carriage return at column 152 not followed by a newline "
            "(lines end with \\n or \\r\\n)");
  EXPECT_EQ(first_error(kHeader + "\r\n" + kStart5 + "\r\n# done\r\n"), "ok");
  EXPECT_EQ(first_error(kHeader + "\r\n# a\rb\n"),
            "t.jsonl:2: CR line endings: carriage return at column 4 not followed by a newline "
            "(lines end with \\n or \\r\\n)");
}

TEST(TraceReader, ByteOrderMarkOnlyAtTheStart) {
  const std::string bom = "\xEF\xBB\xBF";
  EXPECT_EQ(first_error(bom + kHeader + "\n" + kStart5 + "\n"), "ok");
  EXPECT_EQ(first_error(bom + "# recorded by an engine\n" + kHeader + "\n"), "ok");
  EXPECT_EQ(first_error(kHeader + "\n" + bom + kStart5 + "\n"),
            "t.jsonl:2: byte order mark (U+FEFF) at the start of a line; only the file's first "
            "line may begin with one");
  EXPECT_EQ(first_error("# c\n" + bom + kHeader + "\n"),
            "t.jsonl:2: byte order mark (U+FEFF) at the start of a line; only the file's first "
            "line may begin with one");
}

TEST(TraceReader, DuplicateKeysAreRefused) {
  EXPECT_EQ(event_error({R"({"event": "extend", "event": "check"})"}),
            "t.jsonl:2: invalid JSON: duplicate key 'event' in an object");
  EXPECT_EQ(event_error({R"({"event": "verify", "batch": [{"request": 5, "accepted": 1, )"
                         R"("accepted": 2}]})"}),
            "t.jsonl:2: invalid JSON: duplicate key 'accepted' in an object");
  // The same key in two objects is fine.
  EXPECT_EQ(
      event_error({kStart5, R"({"event": "verify", "batch": [{"request": 5, "accepted": 1}]})"}),
      "ok");
}

TEST(TraceReader, NegativeZeroAndHugeIntegersSayWhatIsWrong) {
  EXPECT_EQ(event_error({R"({"event": "retract", "request": -0})"}),
            "t.jsonl:2: field 'request' in retract event is -0, a negative zero; write 0");
  EXPECT_EQ(
      event_error(
          {R"({"event": "extend", "request": 5, "req_row": -0, "working_row": 2, "tokens": 1})"}),
      "t.jsonl:2: field 'req_row' in extend event is -0, a negative zero; write 0");
  EXPECT_EQ(first_error(R"({"specstate_trace": 1, "preset": "tiny", "tp": 1, "ssm_dtype": "f32", )"
                        R"("draft_tokens": 3, "pool_rows": 8, "max_requests": 4, "page_size": 16, )"
                        R"("seed": -0})"
                        "\n"),
            "t.jsonl:1: field 'seed' in header is -0, a negative zero; write 0");
  EXPECT_EQ(event_error({R"({"event": "retract", "request": 18446744073709551616})"}),
            "t.jsonl:2: invalid JSON: field 'request': integer 18446744073709551616 does not fit "
            "in 64 bits (integers are -9223372036854775808..18446744073709551615)");
  EXPECT_EQ(event_error({R"({"event": "retract", "request": 18446744073709551615})"}),
            "t.jsonl:2: request 18446744073709551615 does not exist (no extend has started it)");
  EXPECT_EQ(first_error("{\"specstate_trace\": 1.0}\n"),
            "t.jsonl:1: field 'specstate_trace' in header must be an integer, got a non-integer "
            "number");
}

TEST(TraceReader, EchoedValuesAreCut) {
  const std::string digits(10'000'000, '7');
  const std::string big = event_error({R"({"event": "retract", "request": )" + digits + "}"});
  EXPECT_EQ(big, "t.jsonl:2: invalid JSON: field 'request': integer " + digits.substr(0, 64) +
                     "... does not fit in 64 bits (integers are "
                     "-9223372036854775808..18446744073709551615)");
  const std::string huge = event_error({R"({"event": "retract", "request": 1)" + digits + "e5}"});
  EXPECT_EQ(huge, "t.jsonl:2: invalid JSON: field 'request': number 1" + digits.substr(0, 63) +
                      "... is out of range");
  const std::string letters(10'000'000, 'a');
  const std::string bad = event_error({R"({"event": "retract", "request": ")" + letters + "}"});
  EXPECT_LT(bad.size(), 300u) << bad.substr(0, 300);
  EXPECT_NE(bad.find("last read: '\"" + letters.substr(0, 63) + "...'"), std::string::npos)
      << bad.substr(0, 300);
  const std::string key(100'000, 'k');
  const std::string unknown = event_error({R"({"event": "check", ")" + key + R"(": 1})"});
  EXPECT_EQ(unknown, "t.jsonl:2: unknown field '" + key.substr(0, 64) + "...' in check event " +
                         "(expected event)");
  const std::string name(100'000, 'e');
  EXPECT_LT(event_error({R"({"event": ")" + name + R"("})"}).size(), 200u);
}

TEST(TraceReader, MessagesAreNotCutAtAnEmbeddedNul) {
  EXPECT_EQ(
      first_error(
          R"({"specstate_trace": 1, "preset": "tiny\u0000x", "tp": 1, "ssm_dtype": "f32", )"
          R"("draft_tokens": 3, "pool_rows": 8, "max_requests": 4, "page_size": 16, "seed": 1})"
          "\n"),
      "t.jsonl:1: unknown preset 'tiny?x' (known: qwen3-next-80b-a3b, qwen3.5-397b-a17b, "
      "qwen3.5-122b-a10b, qwen3.5-35b-a3b, qwen3.5-27b, qwen3.5-9b, qwen3.5-2b, "
      "kimi-linear-48b-a3b, tiny)");
  EXPECT_EQ(event_error({R"({"event": "check", "a\u0000b": 1})"}),
            "t.jsonl:2: unknown field 'a?b' in check event (expected event)");
}

TEST(TraceReader, DeepNestingIsRefused) {
  const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
  EXPECT_EQ(event_error({deep}),
            "t.jsonl:2: invalid JSON: nested deeper than 64 arrays and objects");
}

TEST(TraceReader, FileNamesAreQuotedWhenTheyCouldFakeALocation) {
  EXPECT_STREQ(InputError("a/b-1.jsonl", 3, "m").what(), "a/b-1.jsonl:3: m");
  EXPECT_STREQ(InputError("x\nfake.jsonl:9: forged", 3, "m").what(),
               "\"x\\nfake.jsonl:9: forged\":3: m");
  EXPECT_STREQ(InputError("my \"trace\".jsonl", 1, "m").what(), "\"my \\\"trace\\\".jsonl\":1: m");
  EXPECT_STREQ(InputError(std::string("a\x01", 2), 1, "m").what(), "\"a\\x01\":1: m");
  std::istringstream in("");
  try {
    read_trace(in, "new\nline.jsonl");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "\"new\\nline.jsonl\":1: empty trace: no header line {\"specstate_trace\": 1, "
                 "...}");
  }
}

}  // namespace
}  // namespace specstate::trace::testing
