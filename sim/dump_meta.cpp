#include "sim/dump_meta.h"

#include <algorithm>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
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

// Streams meta.json through nlohmann's SAX interface into `reduced`, an object of only what
// compare reads, and converts each item of `tokens` and `events` into its struct as soon as the
// item ends: memory is near the structs' (40 bytes an item), not a DOM of the whole file (10 to
// 35 times its size: a 64 MiB meta.json took 645 MiB to 2.3 GiB). A container where compare reads
// a scalar is kept as an empty one, so that validation names its type; what compare does not
// read is skipped, nothing of it stored (nesting included: a depth count, no frames).
class MetaSax {
 public:
  MetaSax(const MetaReader& r, DumpMeta& out) : r_(r), out_(out) {}

  json reduced = json::object();

  bool null() { return scalar(json()); }
  bool boolean(bool v) { return scalar(json(v)); }
  bool number_integer(json::number_integer_t v) { return scalar(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return scalar(json(v)); }
  bool number_float(json::number_float_t v, const std::string&) { return scalar(json(v)); }
  bool string(std::string& v) { return scalar(json(std::move(v))); }
  bool binary(json::binary_t&) { return scalar(json()); }  // JSON text has none
  bool start_object(std::size_t) { return open(true); }
  bool start_array(std::size_t) { return open(false); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(std::string& k) {
    if (skip_ > 0) return true;
    Frame& f = frames_.back();
    if (f.role == Role::kTop && reads(f.role, k) && reduced.contains(k))
      r_.fail("'" + k + "' is given twice");
    f.key = std::move(k);
    return true;
  }

  template <typename Exception>
  bool parse_error(std::size_t byte, const std::string&, const Exception&) {
    r_.fail("not valid JSON (at byte " + std::to_string(byte) + ")");
  }

 private:
  // What a container is to compare: the top object, model, model.layer_ids, the lists and one
  // item of each.
  enum class Role { kTop, kModel, kLayerIds, kTokens, kEvents, kToken, kEvent };
  struct Frame {
    Role role;
    json* node;        // where its members go (kTokens, kEvents: an empty array, a marker)
    std::string key;   // the member being read (objects)
    size_t items = 0;  // items converted (kTokens, kEvents)
  };

  static bool reads(Role role, const std::string& key) {
    auto any = [&](std::initializer_list<const char*> keys) {
      return std::find(keys.begin(), keys.end(), key) != keys.end();
    };
    switch (role) {
      case Role::kTop:
        return any({"model", "dumped_tokens", "tokens", "events"});
      case Role::kModel:
        return any({"H", "HV", "K", "V", "W", "conv_dim", "layers", "layer_ids"});
      case Role::kToken:
        return any({"row", "position", "event", "step", "accepted"});
      case Role::kEvent:
        return any({"line", "kind"});
      default:
        return false;
    }
  }

  // The role of a container read at `key` of a `parent`; nullopt: kept as an empty marker.
  static std::optional<Role> child_role(Role parent, const std::string& key, bool object) {
    if (parent == Role::kTop && key == "model" && object) return Role::kModel;
    if (parent == Role::kTop && key == "tokens" && !object) return Role::kTokens;
    if (parent == Role::kTop && key == "events" && !object) return Role::kEvents;
    if (parent == Role::kModel && key == "layer_ids" && !object) return Role::kLayerIds;
    return std::nullopt;
  }

  static bool is_list(Role role) { return role == Role::kTokens || role == Role::kEvents; }

  std::string item(const Frame& list) const {
    return item_name(list.role == Role::kTokens ? "tokens" : "events", list.items);
  }

  // Where the next value of `f` goes; nullptr: it is not read. layer_ids keeps one more id than
  // can be valid, which validation then refuses.
  json* slot(Frame& f) {
    if (f.role == Role::kLayerIds)
      return f.node->size() <= size_t(kMaxDumpLayers) ? &f.node->emplace_back() : nullptr;
    return reads(f.role, f.key) ? &(*f.node)[f.key] : nullptr;
  }

  bool scalar(json v) {
    if (skip_ > 0) return true;
    if (frames_.empty()) r_.fail("not a JSON object");
    Frame& f = frames_.back();
    if (is_list(f.role)) r_.fail(item(f) + " must be an object");
    if (json* s = slot(f)) *s = std::move(v);
    return true;
  }

  bool open(bool object) {
    if (skip_ > 0) {
      ++skip_;
      return true;
    }
    if (frames_.empty()) {
      if (!object) r_.fail("not a JSON object");
      frames_.push_back({Role::kTop, &reduced, {}});
      return true;
    }
    Frame& f = frames_.back();
    if (is_list(f.role)) {
      if (!object) r_.fail(item(f) + " must be an object");
      item_ = json::object();
      frames_.push_back({f.role == Role::kTokens ? Role::kToken : Role::kEvent, &item_, {}});
      return true;
    }
    json* s = slot(f);
    const std::optional<Role> role = s ? child_role(f.role, f.key, object) : std::nullopt;
    if (s) *s = object ? json::object() : json::array();
    if (role) {
      frames_.push_back({*role, s, {}});
    } else {
      skip_ = 1;
    }
    return true;
  }

  bool close() {
    if (skip_ > 0) {
      --skip_;
      return true;
    }
    const Role role = frames_.back().role;
    frames_.pop_back();
    if (role == Role::kToken || role == Role::kEvent) {
      Frame& list = frames_.back();
      if (role == Role::kToken) {
        out_.tokens.push_back(r_.token(item_, item(list), list.items));
      } else {
        out_.events.push_back(r_.event(item_, item(list), list.items));
      }
      ++list.items;
    }
    return true;
  }

  const MetaReader& r_;
  DumpMeta& out_;
  std::vector<Frame> frames_;  // at most 3 deep: top, list, item (or top, model, layer_ids)
  int64_t skip_ = 0;           // depth inside a container that is not read; 0: none
  json item_;                  // the item of tokens or events being read
};

}  // namespace

DumpMeta parse_dump_meta(std::string_view text, const std::string& file) {
  const MetaReader r(file);
  DumpMeta out;
  MetaSax sax(r, out);
  json::sax_parse(text, &sax);
  const json& meta = sax.reduced;
  out.model = r.model(r.member(meta, "model", "model"));
  out.dumped_tokens = r.integer(r.member(meta, "dumped_tokens", "dumped_tokens"), "dumped_tokens",
                                0, kMaxDumpTokens);
  for (const char* list : {"tokens", "events"}) {
    if (meta.contains(list) && !meta[list].is_array())
      r.fail(std::string(list) + " must be an array");
  }
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
