#include "core/trace/format.h"

#include <unistd.h>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <istream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <sstream>
#include <system_error>

#include "core/errors.h"
#include "core/geometry.h"

namespace specstate::trace {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();

struct Where {
  const std::string& file;
  long line;
};

[[noreturn]] void fail(const Where& where, const std::string& message) {
  throw InputError(where.file, where.line, message);
}

std::string describe_type(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a non-integer number";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "an unsupported value";
  }
}

// `text` with control and non-ASCII bytes shown as '?', so a message quoting a hostile file
// stays one printable line.
std::string printable(std::string text) {
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  return text;
}

// One JSON object of the trace, read field by field. `what_` names it in messages
// ("extend event", "batch[2] of the verify event").
class Fields {
 public:
  Fields(const json& object, std::string what, const Where& where,
         std::initializer_list<const char*> allowed)
      : object_(object), what_(std::move(what)), where_(where) {
    if (!object.is_object()) {
      fail(where_, what_ + " must be a JSON object, got " + describe_type(object));
    }
    for (const auto& item : object.items()) {
      bool known = false;
      for (const char* name : allowed)
        known = known || item.key() == name;
      if (!known)
        fail(where_, "unknown field '" + printable(item.key()) + "' in " + what_ + list(allowed));
    }
  }

  const json* find(const char* key) const {
    auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }

  const json& require(const char* key) const {
    const json* value = find(key);
    if (value == nullptr) fail(where_, "missing field '" + std::string(key) + "' in " + what_);
    return *value;
  }

  int64_t integer(const char* key, int64_t min, int64_t max) const {
    return to_integer(key, require(key), min, max);
  }

  std::optional<int64_t> optional_integer(const char* key, int64_t min, int64_t max) const {
    const json* value = find(key);
    if (value == nullptr) return std::nullopt;
    return to_integer(key, *value, min, max);
  }

  uint64_t unsigned_integer(const char* key) const {
    const json& value = require(key);
    if (value.is_number_unsigned()) return value.get<uint64_t>();
    if (value.is_number_integer()) {
      fail(where_, field(key) + " is " + std::to_string(value.get<int64_t>()) +
                       ", outside 0..18446744073709551615");
    }
    fail(where_, field(key) + " must be an integer, got " + describe_type(value));
  }

  std::string string(const char* key) const {
    const json& value = require(key);
    if (!value.is_string())
      fail(where_, field(key) + " must be a string, got " + describe_type(value));
    return value.get<std::string>();
  }

  const json& array(const char* key) const {
    const json& value = require(key);
    if (!value.is_array())
      fail(where_, field(key) + " must be an array, got " + describe_type(value));
    return value;
  }

  const std::string& what() const { return what_; }

 private:
  std::string field(const char* key) const {
    return "field '" + std::string(key) + "' in " + what_;
  }

  static std::string list(std::initializer_list<const char*> allowed) {
    std::string text = " (expected";
    const char* separator = " ";
    for (const char* name : allowed) {
      text += separator + std::string(name);
      separator = ", ";
    }
    return text + ")";
  }

  int64_t to_integer(const char* key, const json& value, int64_t min, int64_t max) const {
    std::string shown;
    if (value.is_number_unsigned()) {
      const uint64_t v = value.get<uint64_t>();
      if (v <= uint64_t(max) && int64_t(v) >= min) return int64_t(v);
      shown = std::to_string(v);
    } else if (value.is_number_integer()) {
      const int64_t v = value.get<int64_t>();
      if (v >= min && v <= max) return v;
      shown = std::to_string(v);
    } else {
      fail(where_, field(key) + " must be an integer, got " + describe_type(value));
    }
    fail(where_, field(key) + " is " + shown + ", outside " + std::to_string(min) + ".." +
                     std::to_string(max));
  }

  const json& object_;
  std::string what_;
  const Where& where_;
};

int32_t row_field(const Fields& f, const char* key) {
  return int32_t(f.integer(key, 0, kInt32Max));
}

std::optional<int32_t> optional_row_field(const Fields& f, const char* key) {
  std::optional<int64_t> value = f.optional_integer(key, 0, kInt32Max);
  if (!value) return std::nullopt;
  return int32_t(*value);
}

TrackWrite parse_track(const json& value, const std::string& what, const Where& where) {
  Fields f(value, what, where, {"length", "row"});
  TrackWrite track;
  track.length = f.integer("length", 1, kMaxLength);
  track.row = row_field(f, "row");
  return track;
}

Extend parse_extend(const json& object, const Where& where) {
  Fields f(object, "extend event", where,
           {"event", "request", "req_row", "working_row", "tokens", "prefix_len", "cow_src_row",
            "track"});
  Extend e;
  e.request = f.unsigned_integer("request");
  e.req_row = optional_row_field(f, "req_row").value_or(-1);
  e.working_row = optional_row_field(f, "working_row").value_or(-1);
  e.tokens = int32_t(f.integer("tokens", 1, kMaxTokens));
  e.prefix_len = f.optional_integer("prefix_len", 0, kMaxLength).value_or(0);
  e.cow_src_row = optional_row_field(f, "cow_src_row").value_or(-1);
  if (f.find("track") != nullptr) {
    const json& track = f.array("track");
    for (size_t i = 0; i < track.size(); ++i) {
      e.track.push_back(
          parse_track(track[i], "track[" + std::to_string(i) + "] of the extend event", where));
    }
  }
  return e;
}

// Shared by verify and decode: the batch array and the padding.
template <typename Step, typename ParseEntry>
Step parse_step(const json& object, const char* name, const Where& where, ParseEntry parse_entry) {
  Fields f(object, std::string(name) + " event", where, {"event", "batch", "padding"});
  Step step;
  const json& batch = f.array("batch");
  for (size_t i = 0; i < batch.size(); ++i) {
    const std::string what = "batch[" + std::to_string(i) + "] of the " + name + " event";
    step.batch.push_back(parse_entry(batch[i], what, where));
  }
  step.padding = int32_t(f.optional_integer("padding", 0, kMaxTokens).value_or(0));
  return step;
}

VerifyEntry parse_verify_entry(const json& value, const std::string& what, const Where& where) {
  Fields f(value, what, where, {"request", "accepted", "track"});
  VerifyEntry entry;
  entry.request = f.unsigned_integer("request");
  entry.accepted = int32_t(f.integer("accepted", kInt32Min, kInt32Max));
  if (const json* track = f.find("track")) {
    entry.track = parse_track(*track, "track of " + what, where);
  }
  return entry;
}

DecodeEntry parse_decode_entry(const json& value, const std::string& what, const Where& where) {
  Fields f(value, what, where, {"request", "track"});
  DecodeEntry entry;
  entry.request = f.unsigned_integer("request");
  if (const json* track = f.find("track")) {
    entry.track = parse_track(*track, "track of " + what, where);
  }
  return entry;
}

Event parse_event(const json& object, const Where& where) {
  if (!object.is_object())
    fail(where, "an event must be a JSON object, got " + describe_type(object));
  if (object.contains("specstate_trace"))
    fail(where, "a second header; a trace has one, on its first line");
  const auto it = object.find("event");
  if (it == object.end()) fail(where, "missing field 'event'");
  if (!it->is_string()) fail(where, "field 'event' must be a string, got " + describe_type(*it));
  const std::string& name = it->get_ref<const std::string&>();
  if (name == "extend") return parse_extend(object, where);
  if (name == "verify") return parse_step<Verify>(object, "verify", where, parse_verify_entry);
  if (name == "decode") return parse_step<Decode>(object, "decode", where, parse_decode_entry);
  if (name == "retract" || name == "finish") {
    Fields f(object, name + " event", where, {"event", "request"});
    if (name == "retract") return Retract{f.unsigned_integer("request")};
    return Finish{f.unsigned_integer("request")};
  }
  if (name == "resume") {
    Fields f(object, "resume event", where, {"event", "request", "req_row", "working_row"});
    Resume r;
    r.request = f.unsigned_integer("request");
    r.req_row = row_field(f, "req_row");
    r.working_row = row_field(f, "working_row");
    return r;
  }
  if (name == "check") {
    Fields f(object, "check event", where, {"event"});
    return Check{};
  }
  fail(where, "unknown event '" + printable(name) +
                  "' (expected extend, verify, decode, retract, resume, finish or check)");
}

Header parse_header(const json& object, const Where& where) {
  if (!object.is_object() || !object.contains("specstate_trace")) {
    fail(where, "missing header: a trace starts with {\"specstate_trace\": 1, \"preset\": ...}");
  }
  // The version first: a newer header may carry fields this reader does not know.
  const json& version = object["specstate_trace"];
  if (!version.is_number_integer()) {
    fail(where,
         "field 'specstate_trace' in header must be an integer, got " + describe_type(version));
  }
  if (!version.is_number_unsigned() || version.get<uint64_t>() != uint64_t(kFormatVersion)) {
    fail(where, "unsupported trace format version " + version.dump() +
                    " (this build reads version " + std::to_string(kFormatVersion) + ")");
  }
  Fields f(object, "header", where,
           {"specstate_trace", "preset", "tp", "ssm_dtype", "draft_tokens", "pool_rows",
            "max_requests", "page_size", "seed"});
  Header h;
  h.preset = f.string("preset");
  h.tp = int32_t(f.integer("tp", 1, 1024));
  const std::string dtype = f.string("ssm_dtype");
  if (dtype != "f32" && dtype != "bf16") {
    fail(where, "field 'ssm_dtype' in header is '" + printable(dtype) + "', expected f32 or bf16");
  }
  h.ssm_dtype = parse_ssm_dtype(dtype);
  h.draft_tokens = int32_t(f.integer("draft_tokens", 0, kMaxTokensPerVerify - 1));
  h.pool_rows = int32_t(f.integer("pool_rows", 1, kMaxRows));
  h.max_requests = int32_t(f.integer("max_requests", 1, kMaxRows));
  h.page_size = int32_t(f.integer("page_size", 0, kMaxRows));
  h.seed = f.unsigned_integer("seed");
  try {
    check_header(h);
  } catch (const InputError& e) {
    fail(where, printable(e.what()));
  }
  return h;
}

bool is_blank_or_comment(const std::string& line) {
  for (char c : line) {
    if (c == ' ' || c == '\t' || c == '\r') continue;
    return c == '#';
  }
  return true;
}

// The JSON of one line; `complete` is false for a last line without its newline.
json parse_json(const std::string& text, bool complete, const Where& where) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error ..."
    std::string detail = printable(e.what());
    const size_t bracket = detail.find("] ");
    if (bracket != std::string::npos) detail = detail.substr(bracket + 2);
    const std::string at_line = "parse error at line 1, ";
    const size_t pos = detail.find(at_line);
    if (pos != std::string::npos) detail.erase(pos, at_line.size());
    if (!complete)
      fail(where, "truncated last line: no newline at the end and not valid JSON (" + detail + ")");
    fail(where, "invalid JSON: " + detail);
  }
}

ordered_json track_to_json(const TrackWrite& t) {
  ordered_json j;
  j["length"] = t.length;
  j["row"] = t.row;
  return j;
}

ordered_json to_json(const Extend& e) {
  ordered_json j;
  j["event"] = "extend";
  j["request"] = e.request;
  if (e.req_row >= 0) j["req_row"] = e.req_row;
  if (e.working_row >= 0) j["working_row"] = e.working_row;
  j["tokens"] = e.tokens;
  if (e.prefix_len != 0) j["prefix_len"] = e.prefix_len;
  if (e.cow_src_row >= 0) j["cow_src_row"] = e.cow_src_row;
  if (!e.track.empty()) {
    ordered_json track = ordered_json::array();
    for (const TrackWrite& t : e.track)
      track.push_back(track_to_json(t));
    j["track"] = std::move(track);
  }
  return j;
}

ordered_json to_json(const Verify& v) {
  ordered_json j;
  j["event"] = "verify";
  ordered_json batch = ordered_json::array();
  for (const VerifyEntry& e : v.batch) {
    ordered_json entry;
    entry["request"] = e.request;
    entry["accepted"] = e.accepted;
    if (e.track) entry["track"] = track_to_json(*e.track);
    batch.push_back(std::move(entry));
  }
  j["batch"] = std::move(batch);
  j["padding"] = v.padding;
  return j;
}

ordered_json to_json(const Decode& d) {
  ordered_json j;
  j["event"] = "decode";
  ordered_json batch = ordered_json::array();
  for (const DecodeEntry& e : d.batch) {
    ordered_json entry;
    entry["request"] = e.request;
    if (e.track) entry["track"] = track_to_json(*e.track);
    batch.push_back(std::move(entry));
  }
  j["batch"] = std::move(batch);
  j["padding"] = d.padding;
  return j;
}

ordered_json request_event(const char* name, uint64_t request) {
  ordered_json j;
  j["event"] = name;
  j["request"] = request;
  return j;
}

ordered_json to_json(const Retract& r) {
  return request_event("retract", r.request);
}
ordered_json to_json(const Finish& f) {
  return request_event("finish", f.request);
}

ordered_json to_json(const Resume& r) {
  ordered_json j = request_event("resume", r.request);
  j["req_row"] = r.req_row;
  j["working_row"] = r.working_row;
  return j;
}

ordered_json to_json(const Check&) {
  ordered_json j;
  j["event"] = "check";
  return j;
}

}  // namespace

void check_header(const Header& h) {
  if (h.version != kFormatVersion) {
    throw InputError("unsupported trace format version " + std::to_string(h.version));
  }
  make_geometry(h.preset, h.tp);  // unknown preset, TP not dividing the heads
  auto check = [](const char* name, int64_t value, int64_t min, int64_t max) {
    if (value < min || value > max) {
      throw InputError(std::string(name) + " " + std::to_string(value) + " outside " +
                       std::to_string(min) + ".." + std::to_string(max));
    }
  };
  check("draft_tokens", h.draft_tokens, 0, kMaxTokensPerVerify - 1);
  check("pool_rows", h.pool_rows, 1, kMaxRows);
  check("max_requests", h.max_requests, 1, kMaxRows);
  check("page_size", h.page_size, 0, kMaxRows);
}

Trace read_trace(std::istream& in, const std::string& name) {
  Trace trace;
  trace.file = name;
  std::string text;
  long line = 0;
  bool have_header = false;
  while (std::getline(in, text)) {
    ++line;
    if (is_blank_or_comment(text)) continue;
    const bool complete = !in.eof();  // getline stopped at a newline, not at the end
    const Where where{trace.file, line};
    const json object = parse_json(text, complete, where);
    if (!have_header) {
      trace.header = parse_header(object, where);
      trace.header_line = line;
      have_header = true;
      continue;
    }
    trace.events.push_back(Line{line, parse_event(object, where)});
  }
  if (in.bad()) throw InputError(name + ": read error");
  if (!have_header) {
    throw InputError(name, line == 0 ? 1 : line,
                     "empty trace: no header line {\"specstate_trace\": 1, ...}");
  }
  return trace;
}

Trace read_trace(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw InputError(path + ": is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open for reading");
  return read_trace(in, path);
}

std::string header_to_json(const Header& h) {
  ordered_json j;
  j["specstate_trace"] = h.version;
  j["preset"] = h.preset;
  j["tp"] = h.tp;
  j["ssm_dtype"] = std::string(to_string(h.ssm_dtype));
  j["draft_tokens"] = h.draft_tokens;
  j["pool_rows"] = h.pool_rows;
  j["max_requests"] = h.max_requests;
  j["page_size"] = h.page_size;
  j["seed"] = h.seed;
  return j.dump();
}

std::string event_to_json(const Event& event) {
  return std::visit([](const auto& e) { return to_json(e).dump(); }, event);
}

std::string_view event_name(const Event& event) {
  static constexpr std::string_view kNames[] = {"extend", "verify", "decode", "retract",
                                                "resume", "finish", "check"};
  return kNames[event.index()];
}

void write_trace(std::ostream& out, const Trace& trace) {
  out << header_to_json(trace.header) << '\n';
  for (const Line& line : trace.events)
    out << event_to_json(line.event) << '\n';
}

void write_trace_file(const std::string& path, const Trace& trace) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  fs::path temp = target;
  temp += ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError(path + ": cannot open " + temp.string() + " for writing");
    write_trace(out, trace);
    out.flush();
    if (!out) {
      out.close();
      std::error_code ignored;
      fs::remove(temp, ignored);
      throw InputError(path + ": write failed");
    }
  }
  std::error_code ec;
  fs::rename(temp, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(temp, ignored);
    throw InputError(path + ": cannot rename " + temp.string() + ": " + ec.message());
  }
}

}  // namespace specstate::trace
