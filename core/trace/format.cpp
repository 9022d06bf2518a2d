#include "core/trace/format.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <istream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <sstream>
#include <system_error>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "core/errors.h"
#include "core/geometry.h"
#include "core/io/output_file.h"
#include "core/primitives.h"

namespace specstate::trace {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
static_assert(kMaxTreeNodesPerVerify == kMaxTreeNodes, "rules.json's tree bound is the kernels'");
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

// `text` with control and non-ASCII bytes shown as '?' and cut to kMaxEchoed characters
// ("..." marks a cut), so that a message quoting a hostile file stays one short printable line.

std::string printable(std::string_view text) {
  std::string out(text.substr(0, kMaxEchoed));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  if (text.size() > kMaxEchoed) out += "...";
  return out;
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
    refuse_negative_zero(key, value);
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

  [[noreturn]] void fail_field(const char* key, const std::string& message) const {
    fail(where_, field(key) + " " + message);
  }

  int64_t to_integer(const char* key, const json& value, int64_t min, int64_t max) const {
    refuse_negative_zero(key, value);
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

  // The reader gives "-0" the signed integer type and "0" the unsigned one: a signed zero was
  // written with a minus sign.
  void refuse_negative_zero(const char* key, const json& value) const {
    if (value.is_number_integer() && !value.is_number_unsigned() && value.get<int64_t>() == 0)
      fail(where_, field(key) + " is -0, a negative zero; write 0");
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

// A list of small integers (node indices) within min..max.
std::vector<int8_t> node_list(const Fields& f, const char* key, int64_t min) {
  const json& list = f.array(key);
  if (list.size() > size_t(kMaxTreeNodesPerVerify)) {
    f.fail_field(key, "has " + std::to_string(list.size()) + " entries, more than the " +
                          std::to_string(kMaxTreeNodesPerVerify) + " nodes of a tree");
  }
  std::vector<int8_t> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string name = std::string(key) + "[" + std::to_string(i) + "]";
    out.push_back(int8_t(f.to_integer(name.c_str(), list[i], min, kMaxTreeNodesPerVerify - 1)));
  }
  return out;
}

DraftTree parse_tree(const json& value, const std::string& what, const Where& where) {
  Fields f(value, what, where, {"parents", "path"});
  return {node_list(f, "parents", -1), node_list(f, "path", 0)};
}

VerifyEntry parse_verify_entry(const json& value, const std::string& what, const Where& where) {
  Fields f(value, what, where, {"request", "accepted", "track", "tree"});
  VerifyEntry entry;
  entry.request = f.unsigned_integer("request");
  entry.accepted = int32_t(f.integer("accepted", kInt32Min, kInt32Max));
  if (const json* track = f.find("track")) {
    entry.track = parse_track(*track, "track of " + what, where);
  }
  if (const json* tree = f.find("tree")) entry.tree = parse_tree(*tree, "tree of " + what, where);
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
  if (name == "offload") {
    Fields f(object, "offload event", where, {"event", "row", "slot"});
    return Offload{row_field(f, "row"), row_field(f, "slot")};
  }
  if (name == "restore") {
    Fields f(object, "restore event", where, {"event", "slot", "row"});
    return Restore{row_field(f, "slot"), row_field(f, "row")};
  }
  if (name == "handoff") {
    Fields f(object, "handoff event", where, {"event", "request", "length", "row"});
    Handoff h;
    h.request = f.unsigned_integer("request");
    h.length = f.integer("length", 1, kMaxLength);
    h.row = row_field(f, "row");
    return h;
  }
  fail(where, "unknown event '" + printable(name) +
                  "' (expected extend, verify, decode, retract, resume, finish, check, offload, "
                  "restore or handoff)");
}

// Each field of kGeometryFields (rules.json), an integer within its bounds, then the optional
// recurrence (one of kRecurrenceNames); how they relate is make_custom_geometry's to check.
CustomGeometry parse_geometry(const json& object, const Where& where) {
  static_assert(std::size(kGeometryFields) == 7, "the allowed fields below are rules.json's");
  Fields f(object, "geometry", where,
           {"layers", "H", "HV", "K", "V", "conv_dim", "W", "recurrence"});
  int32_t v[7];
  for (size_t i = 0; i < std::size(kGeometryFields); ++i) {
    const GeometryField& g = kGeometryFields[i];
    v[i] = int32_t(f.integer(g.name, g.min, g.max));
  }
  CustomGeometry g{v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
  if (f.find("recurrence")) {
    const std::string name = f.string("recurrence");
    const std::optional<RecurrenceKind> kind = find_recurrence(name);
    if (!kind) {
      fail(where, "unknown recurrence '" + printable(name) +
                      "' in geometry (known: " + recurrence_names_text() + ")");
    }
    g.recurrence = *kind;
  }
  return g;
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
  if (version.is_number_integer() && !version.is_number_unsigned() && version.get<int64_t>() == 0)
    fail(where, "field 'specstate_trace' in header is -0, a negative zero; write 1");
  if (!version.is_number_unsigned() || version.get<uint64_t>() < uint64_t(kOldestFormatVersion) ||
      version.get<uint64_t>() > uint64_t(kFormatVersion)) {
    fail(where, "unsupported trace format version " + printable(version.dump()) +
                    " (this build reads versions " + std::to_string(kOldestFormatVersion) + " to " +
                    std::to_string(kFormatVersion) + ")");
  }
  Fields f(object, "header", where,
           {"specstate_trace", "preset", "geometry", "tp", "rank", "ssm_dtype", "draft_tokens",
            "pool_rows", "max_requests", "page_size", "seed", "tree_nodes", "overlap", "host_slots",
            "prefill_tp"});
  Header h;
  h.version = int(version.get<uint64_t>());
  if (const json* geometry = f.find("geometry")) {
    if (h.version < 2) {
      fail(where, "field 'geometry' in header needs format version 2 (this header says " +
                      std::to_string(h.version) + ")");
    }
    if (f.find("preset")) fail(where, "a header gives 'preset' or 'geometry', not both");
    h.geometry = parse_geometry(*geometry, where);
  } else {
    h.preset = f.string("preset");
  }
  h.tp = int32_t(f.integer("tp", 1, kMaxTp));
  if (f.find("rank")) {
    if (h.version < 2) {
      fail(where, "field 'rank' in header needs format version 2 (this header says " +
                      std::to_string(h.version) + ")");
    }
    h.rank = int32_t(f.integer("rank", 0, kMaxTp - 1));
  }
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
  if (f.find("tree_nodes")) {
    if (h.version < 2) {
      fail(where, "field 'tree_nodes' in header needs format version 2 (this header says " +
                      std::to_string(h.version) + ")");
    }
    h.tree_nodes = int32_t(f.integer("tree_nodes", 1, kMaxTreeNodesPerVerify));
  }
  if (f.find("overlap")) {
    if (h.version < 2) {
      fail(where, "field 'overlap' in header needs format version 2 (this header says " +
                      std::to_string(h.version) + ")");
    }
    h.overlap = int32_t(f.integer("overlap", 0, kMaxOverlapDepth));
    if (h.overlap > 0 && h.tree_nodes > 0) {
      fail(where,
           "a header gives 'overlap' or 'tree_nodes', not both (overlap scheduling of draft "
           "trees is not modelled)");
    }
  }
  if (f.find("host_slots")) {
    if (h.version < 2) {
      fail(where, "field 'host_slots' in header needs format version 2 (this header says " +
                      std::to_string(h.version) + ")");
    }
    h.host_slots = int32_t(f.integer("host_slots", 1, kMaxRows));
  }
  if (f.find("prefill_tp")) {
    if (h.version < 2) {
      fail(where, "field 'prefill_tp' in header needs format version 2 (this header says " +
                      std::to_string(h.version) + ")");
    }
    h.prefill_tp = int32_t(f.integer("prefill_tp", 1, kMaxTp));
  }
  try {
    // A preset name with bytes no preset has, or longer than any, is checked in its printable,
    // cut form: the message must neither end at an embedded NUL nor echo megabytes.
    if (!h.geometry && printable(h.preset) != h.preset) make_geometry(printable(h.preset), h.tp);
    check_header(h);
  } catch (const InputError& e) {
    fail(where, e.what());
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

// What the reader refuses in a line that nlohmann::json would accept or misread.
struct Refused {
  std::string message;
};

// A SAX handler building the same value as json::parse, which also refuses duplicate keys
// (json::parse keeps the last one silently), integers beyond 64 bits (json::parse turns them
// into floating-point numbers) and nesting deeper than any trace has.
class CheckedDom {
 public:
  static constexpr int kMaxDepth = 64;

  explicit CheckedDom(json& result) : dom_(result, /*allow_exceptions=*/true) {}

  bool null() { return dom_.null(); }
  bool boolean(bool value) { return dom_.boolean(value); }
  bool number_integer(json::number_integer_t value) { return dom_.number_integer(value); }
  bool number_unsigned(json::number_unsigned_t value) { return dom_.number_unsigned(value); }
  bool number_float(json::number_float_t value, const std::string& text) {
    if (text.find_first_of(".eE") == std::string::npos) throw Refused{too_large(text)};
    return dom_.number_float(value, text);
  }
  bool string(std::string& value) { return dom_.string(value); }
  bool binary(json::binary_t& value) { return dom_.binary(value); }
  bool start_object(std::size_t elements) {
    enter();
    keys_.emplace_back();
    return dom_.start_object(elements);
  }
  bool key(std::string& key) {
    if (!keys_.back().insert(key).second)
      throw Refused{"duplicate key '" + printable(key) + "' in an object"};
    last_key_ = key;
    return dom_.key(key);
  }
  bool end_object() {
    keys_.pop_back();
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t elements) {
    enter();
    return dom_.start_array(elements);
  }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  template <typename Exception>
  bool parse_error(std::size_t position, const std::string& last_token, const Exception& e) {
    if constexpr (std::is_same_v<Exception, json::out_of_range>) {
      // 406: a number beyond double's range, which json::parse echoes whole.
      if (e.id == 406) throw Refused{too_large(last_token)};
    }
    return dom_.parse_error(position, last_token, e);  // throws e
  }
  bool is_errored() const { return dom_.is_errored(); }

 private:
  void enter() {
    if (++depth_ > kMaxDepth)
      throw Refused{"nested deeper than " + std::to_string(kMaxDepth) + " arrays and objects"};
  }
  std::string too_large(const std::string& text) const {
    if (text.find_first_of(".eE") != std::string::npos)
      return where() + "number " + printable(text) + " is out of range";
    return where() + "integer " + printable(text) +
           " does not fit in 64 bits (integers are -9223372036854775808..18446744073709551615)";
  }
  std::string where() const {
    return last_key_.empty() ? std::string() : "field '" + printable(last_key_) + "': ";
  }

  nlohmann::detail::json_sax_dom_parser<json> dom_;
  std::vector<std::unordered_set<std::string>> keys_;  // keys of each open object
  std::string last_key_;
  int depth_ = 0;
};

// nlohmann's message without its prefix, the echoed token cut:
// "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error while parsing
// value - invalid literal; last read: '1x'" -> "column 5: syntax error ... last read: '1x'".
std::string parse_error_detail(const std::string& what) {
  std::string detail = what;
  const size_t bracket = detail.find("] ");
  if (bracket != std::string::npos) detail = detail.substr(bracket + 2);
  const std::string at_line = "parse error at line 1, ";
  const size_t pos = detail.find(at_line);
  if (pos != std::string::npos) detail.erase(pos, at_line.size());
  const std::string last_read = "last read: '";
  const size_t token = detail.find(last_read);
  if (token != std::string::npos) {
    const size_t begin = token + last_read.size();
    const size_t end = detail.rfind('\'');
    if (end != std::string::npos && end >= begin) {
      detail = detail.substr(0, begin) + printable(detail.substr(begin, end - begin)) +
               detail.substr(end);
    }
  }
  for (char& c : detail) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  return detail;
}

// The bytes no JSON line of a trace holds, which json::parse would not see: a NUL ends its
// input, and a carriage return inside a line means the file has CR line endings.
void check_line_bytes(const std::string& text, const Where& where) {
  const size_t nul = text.find('\0');
  if (nul != std::string::npos) {
    fail(where, "invalid JSON: column " + std::to_string(nul + 1) +
                    ": NUL byte (a trace holds none; a string writes it as \\u0000)");
  }
  const size_t cr = text.find('\r');
  if (cr != std::string::npos && cr + 1 < text.size()) {
    fail(where, "CR line endings: carriage return at column " + std::to_string(cr + 1) +
                    " not followed by a newline (lines end with \\n or \\r\\n)");
  }
}

// The JSON of one line; `complete` is false for a last line without its newline.
json parse_json(const std::string& text, bool complete, const Where& where) {
  json result;
  try {
    CheckedDom dom(result);
    json::sax_parse(text, &dom);
  } catch (const Refused& r) {
    fail(where, "invalid JSON: " + r.message);
  } catch (const json::exception& e) {
    const std::string detail = parse_error_detail(e.what());
    if (!complete)
      fail(where, "truncated last line: no newline at the end and not valid JSON (" + detail + ")");
    fail(where, "invalid JSON: " + detail);
  }
  return result;
}

// How one physical line ended.
enum class LineEnd : uint8_t { kNewline, kEndOfFile, kTooLong };

// Reads up to and without the next '\n' into `text`, at most kMaxLineBytes bytes. `text` is
// empty and the result kEndOfFile once the input is exhausted.
LineEnd read_line(std::istream& in, std::string& text) {
  text.clear();
  std::streambuf* buf = in.rdbuf();
  using traits = std::char_traits<char>;
  for (;;) {
    const traits::int_type c = buf->sbumpc();
    if (traits::eq_int_type(c, traits::eof())) {
      in.setstate(std::ios::eofbit);
      return LineEnd::kEndOfFile;
    }
    if (traits::to_char_type(c) == '\n') return LineEnd::kNewline;
    if (text.size() == size_t(kMaxLineBytes)) return LineEnd::kTooLong;
    text.push_back(traits::to_char_type(c));
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
    if (e.tree) {
      ordered_json tree;
      tree["parents"] = std::vector<int>(e.tree->parents.begin(), e.tree->parents.end());
      tree["path"] = std::vector<int>(e.tree->path.begin(), e.tree->path.end());
      entry["tree"] = std::move(tree);
    }
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

ordered_json to_json(const Offload& o) {
  ordered_json j;
  j["event"] = "offload";
  j["row"] = o.row;
  j["slot"] = o.slot;
  return j;
}

ordered_json to_json(const Restore& r) {
  ordered_json j;
  j["event"] = "restore";
  j["slot"] = r.slot;
  j["row"] = r.row;
  return j;
}

ordered_json to_json(const Handoff& h) {
  ordered_json j;
  j["event"] = "handoff";
  j["request"] = h.request;
  j["length"] = h.length;
  j["row"] = h.row;
  return j;
}

}  // namespace

void check_header(const Header& h) {
  if (h.version < h.lowest_version() || h.version > kFormatVersion) {
    throw InputError("unsupported trace format version " + std::to_string(h.version));
  }
  header_geometry(h);  // unknown preset, TP not dividing the heads, a bad custom geometry
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
  check("tree_nodes", h.tree_nodes, 0, kMaxTreeNodesPerVerify);
  check("host_slots", h.host_slots, 0, kMaxRows);
  if (h.rank < 0 || h.rank >= h.tp) {  // make_geometry's words, for a custom geometry too
    throw InputError("rank " + std::to_string(h.rank) + " outside 0.." + std::to_string(h.tp - 1) +
                     " (tensor-parallel degree " + std::to_string(h.tp) + ")");
  }
  if (h.prefill_tp > 0) {  // the prefill instance holds the same model
    if (h.geometry && h.prefill_tp != 1) {
      throw InputError("prefill_tp " + std::to_string(h.prefill_tp) +
                       " with a custom geometry: the geometry gives one rank's heads, so the "
                       "prefill instance's TP is 1");
    }
    if (!h.geometry) {
      try {
        make_geometry(h.preset, h.prefill_tp);
      } catch (const InputError& e) {
        throw InputError(std::string("prefill_tp: ") + e.what());
      }
    }
  }
}

Trace read_trace(std::istream& in, const std::string& name) {
  Trace trace;
  trace.file = name;
  std::string text;
  long line = 0;
  bool have_header = false;
  for (;;) {
    LineEnd end;
    try {
      end = read_line(in, text);
    } catch (const std::exception&) {  // a streambuf that throws (std::bad_alloc, I/O)
      throw InputError(name, line + 1, "read error");
    }
    if (end == LineEnd::kEndOfFile && text.empty()) break;
    ++line;
    const Where where{trace.file, line};
    if (end == LineEnd::kTooLong) {
      fail(where, "line longer than " + std::to_string(kMaxLineBytes) +
                      " bytes (a trace line is one event; see docs/trace-format.md)");
    }
    constexpr std::string_view kBom = "\xEF\xBB\xBF";
    if (std::string_view(text).substr(0, kBom.size()) == kBom) {
      if (line != 1) {
        fail(where,
             "byte order mark (U+FEFF) at the start of a line; only the file's first "
             "line may begin with one");
      }
      text.erase(0, kBom.size());
    }
    check_line_bytes(text, where);
    if (is_blank_or_comment(text)) continue;
    const bool complete = end == LineEnd::kNewline;
    const json object = parse_json(text, complete, where);
    if (!have_header) {
      trace.header = parse_header(object, where);
      trace.header_line = line;
      have_header = true;
      continue;
    }
    trace.events.push_back(Line{line, parse_event(object, where)});
  }
  if (in.bad()) throw InputError(name, line + 1, "read error");
  if (!have_header) {
    throw InputError(name, line == 0 ? 1 : line,
                     "empty trace: no header line {\"specstate_trace\": 1, ...}");
  }
  return trace;
}

Trace read_trace(const std::string& path) {
  if (path == "-") return read_trace(std::cin, "-");  // standard input
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw InputError(quote_file_name(path) + ": is a directory");
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;  // open(2)'s: "No such file or directory", "Permission denied"
    throw InputError(quote_file_name(path) + ": cannot open for reading: " +
                     (error != 0 ? std::strerror(error) : "unknown error"));
  }
  return read_trace(in, path);
}

const std::string& Header::model_name() const {
  static const std::string custom = "custom";
  return geometry ? custom : preset;
}

ModelGeometry header_geometry(const Header& h) {
  if (!h.geometry) return make_geometry(h.preset, h.tp, h.rank);
  if (h.tp != 1) {
    throw InputError("tp " + std::to_string(h.tp) +
                     " with a custom geometry: the geometry gives one rank's heads, so tp is 1");
  }
  const CustomGeometry& g = *h.geometry;
  return make_custom_geometry(g.layers, g.num_k_heads, g.num_v_heads, g.head_k_dim, g.head_v_dim,
                              g.conv_width, g.conv_dim, g.recurrence);
}

std::string header_to_json(const Header& h) {
  ordered_json j;
  j["specstate_trace"] = h.lowest_version();
  if (h.geometry) {
    const CustomGeometry& g = *h.geometry;
    const int32_t values[] = {g.layers,     g.num_k_heads, g.num_v_heads, g.head_k_dim,
                              g.head_v_dim, g.conv_dim,    g.conv_width};
    ordered_json geometry;
    for (size_t i = 0; i < std::size(kGeometryFields); ++i)
      geometry[kGeometryFields[i].name] = values[i];
    if (g.recurrence != RecurrenceKind::kGatedDeltaNet)  // the default is not written
      geometry["recurrence"] = std::string(to_string(g.recurrence));
    j["geometry"] = geometry;
  } else {
    j["preset"] = h.preset;
  }
  j["tp"] = h.tp;
  if (h.rank > 0) j["rank"] = h.rank;
  j["ssm_dtype"] = std::string(to_string(h.ssm_dtype));
  j["draft_tokens"] = h.draft_tokens;
  j["pool_rows"] = h.pool_rows;
  j["max_requests"] = h.max_requests;
  j["page_size"] = h.page_size;
  j["seed"] = h.seed;
  if (h.tree_nodes > 0) j["tree_nodes"] = h.tree_nodes;
  if (h.overlap > 0) j["overlap"] = h.overlap;
  if (h.host_slots > 0) j["host_slots"] = h.host_slots;
  if (h.prefill_tp > 0) j["prefill_tp"] = h.prefill_tp;
  return j.dump();
}

std::string event_to_json(const Event& event) {
  return std::visit([](const auto& e) { return to_json(e).dump(); }, event);
}

std::string_view event_name(const Event& event) {
  static constexpr std::string_view kNames[] = {"extend",  "verify", "decode", "retract",
                                                "resume",  "finish", "check",  "offload",
                                                "restore", "handoff"};
  static_assert(std::size(kNames) == std::variant_size_v<Event>, "a name per event");
  return kNames[event.index()];
}

void write_trace(std::ostream& out, const Trace& trace) {
  out << header_to_json(trace.header) << '\n';
  for (const Line& line : trace.events)
    out << event_to_json(line.event) << '\n';
}

void write_trace_file(const std::string& path, const Trace& trace) {
  io::OutputFile out(path, path);
  write_trace(out.stream(), trace);
  out.commit();
}

}  // namespace specstate::trace
