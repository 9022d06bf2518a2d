#include "sim/dump_meta.h"

#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/errors.h"

namespace specstate::sim {
namespace {

using nlohmann::json;

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr size_t kMaxKindLength = 64;

// "tokens[3]" (not built with "[" + ...: GCC 12 warns falsely, -Wrestrict).
std::string item_name(const std::string& list, size_t i) {
  std::string name = list;
  name += '[';
  name += std::to_string(i);
  name += ']';
  return name;
}

std::string bound_text(int64_t v) {
  if (v == kMaxDumpTokens) return "2^48";
  if (v == kMax) return "2^63-1";
  if (v == kMin) return "-2^63";
  return std::to_string(v);
}

// Reads the fields of one meta.json; every message starts with the file's name.
class MetaReader {
 public:
  explicit MetaReader(const std::string& file) : prefix_(quote_file_name(file) + ": ") {}

  [[noreturn]] void fail(const std::string& message) const { throw InputError(prefix_ + message); }

  const json& member(const json& object, const char* key, const std::string& name) const {
    const auto it = object.find(key);
    if (it == object.end()) fail(name + " is missing");
    return *it;
  }

  // `value` as an integer in lo..hi. A float, even 4.0, is not an integer; an unsigned one above
  // 2^63-1 is out of range (get<int64_t> would wrap it to a negative value).
  int64_t integer(const json& value, const std::string& name, int64_t lo, int64_t hi) const {
    if (!value.is_number_integer()) fail(name + " must be an integer");
    const bool above = value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(kMax);
    const int64_t v = above ? kMax : value.get<int64_t>();
    if (above || v < lo || v > hi) {
      fail(name + " " + value.dump() + " is outside " + bound_text(lo) + ".." + bound_text(hi));
    }
    return v;
  }

  DumpGeometry model(const json& m) const {
    if (!m.is_object()) fail("model must be an object");
    auto field = [&](const char* key, int64_t hi) {
      return integer(member(m, key, std::string("model.") + key), std::string("model.") + key, 1,
                     hi);
    };
    DumpGeometry g;
    g.H = field("H", 1024);
    g.HV = field("HV", 4096);
    g.K = field("K", 1024);
    g.V = field("V", 1024);
    g.W = field("W", 64);
    g.conv_dim = field("conv_dim", kMax);
    const int64_t channels = 2 * g.H * g.K + g.HV * g.V;  // at most 6,291,456
    if (g.conv_dim != channels) {
      fail("model.conv_dim " + std::to_string(g.conv_dim) +
           " is not 2*H*K + HV*V = " + std::to_string(channels));
    }
    g.layer_ids = layer_ids(m);
    return g;
  }

  // `layer_ids`, or 0 .. layers-1 without it; both, when given, must agree.
  std::vector<int64_t> layer_ids(const json& m) const {
    std::vector<int64_t> ids;
    const auto list = m.find("layer_ids");
    if (list == m.end()) {
      const int64_t n =
          integer(member(m, "layers", "model.layers"), "model.layers", 1, kMaxDumpLayers);
      for (int64_t l = 0; l < n; ++l)
        ids.push_back(l);
      return ids;
    }
    if (!list->is_array()) fail("model.layer_ids must be an array");
    if (list->empty()) fail("model.layer_ids is empty");
    std::set<int64_t> seen;
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string name = item_name("model.layer_ids", i);
      const int64_t id = integer((*list)[i], name, 0, kMaxDumpLayers - 1);
      if (!seen.insert(id).second) fail(name + " " + std::to_string(id) + " is listed twice");
      ids.push_back(id);
    }
    const auto count = m.find("layers");
    if (count != m.end() &&
        integer(*count, "model.layers", 1, kMaxDumpLayers) != int64_t(ids.size())) {
      fail("model.layers " + count->dump() + " is not the length of model.layer_ids (" +
           std::to_string(ids.size()) + ")");
    }
    return ids;
  }

  // The items of the optional array `key` of `meta`, each an object read by `item`.
  template <typename T, typename Item>
  std::vector<T> list(const json& meta, const char* key, Item item) const {
    std::vector<T> out;
    const auto it = meta.find(key);
    if (it == meta.end()) return out;
    if (!it->is_array()) fail(std::string(key) + " must be an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const std::string name = item_name(key, i);
      if (!(*it)[i].is_object()) fail(name + " must be an object");
      out.push_back(item((*it)[i], name, i));
    }
    return out;
  }

  DumpToken token(const json& t, const std::string& name, size_t index) const {
    DumpToken out;
    out.row = int64_t(index);
    for (auto [key, value] : {std::pair{"row", &out.row}, std::pair{"position", &out.position},
                              std::pair{"event", &out.event}, std::pair{"step", &out.step}}) {
      if (t.contains(key)) *value = integer(t[key], name + "." + key, kMin, kMax);
    }
    if (t.contains("accepted")) {
      if (!t["accepted"].is_boolean()) fail(name + ".accepted must be true or false");
      out.accepted = t["accepted"].get<bool>();
    }
    return out;
  }

  // `kind` goes into the report as it is: a short printable word.
  DumpEvent event(const json& e, const std::string& name, size_t) const {
    DumpEvent out;
    if (e.contains("line")) out.line = integer(e["line"], name + ".line", kMin, kMax);
    if (e.contains("kind")) {
      if (!e["kind"].is_string()) fail(name + ".kind must be a string");
      out.kind = e["kind"].get<std::string>();
      bool printable = out.kind.size() <= kMaxKindLength;
      for (unsigned char c : out.kind)
        printable = printable && c >= 0x20 && c != 0x7f;
      if (!printable) {
        fail(name + ".kind must be at most " + std::to_string(kMaxKindLength) +
             " printable characters");
      }
    }
    return out;
  }

 private:
  std::string prefix_;
};

}  // namespace

DumpMeta parse_dump_meta(std::string_view text, const std::string& file) {
  const MetaReader r(file);
  json meta;
  try {
    meta = json::parse(text);
  } catch (const json::parse_error& e) {
    r.fail("not valid JSON (at byte " + std::to_string(e.byte) + ")");
  } catch (const json::exception&) {  // out_of_range: a number beyond double, such as 1e400
    r.fail("not valid JSON (a number out of range)");
  }
  if (!meta.is_object()) r.fail("not a JSON object");
  DumpMeta out;
  out.model = r.model(r.member(meta, "model", "model"));
  out.dumped_tokens = r.integer(r.member(meta, "dumped_tokens", "dumped_tokens"), "dumped_tokens",
                                0, kMaxDumpTokens);
  out.tokens = r.list<DumpToken>(
      meta, "tokens",
      [&](const json& t, const std::string& n, size_t i) { return r.token(t, n, i); });
  out.events = r.list<DumpEvent>(
      meta, "events",
      [&](const json& e, const std::string& n, size_t i) { return r.event(e, n, i); });
  return out;
}

std::optional<std::string> DumpMeta::describe_row(int64_t row) const {
  for (size_t k = 0; k < tokens.size(); ++k) {
    const DumpToken& t = tokens[k];
    if (t.row != row) continue;
    std::string s = "token " + std::to_string(k) + " (position " + std::to_string(t.position) + ")";
    if (t.event >= 0 && t.event < int64_t(events.size())) {
      const DumpEvent& e = events[size_t(t.event)];
      s += ", trace line " + std::to_string(e.line) + ": " + e.kind + ", step " +
           std::to_string(t.step) + (t.accepted ? ", accepted" : ", rejected draft");
    }
    return s;
  }
  return std::nullopt;
}

}  // namespace specstate::sim
