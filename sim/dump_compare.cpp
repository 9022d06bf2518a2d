#include "sim/dump_compare.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/errors.h"
#include "sim/npy.h"

namespace specstate::sim {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The files with a token axis, in the order a difference inside one token is reported.
const std::vector<std::string> kTokenFiles = {"x", "a", "b", "conv_out", "ssm_state",
                                              "conv_state", "o"};

struct Geometry {
  int64_t H = 0, HV = 0, K = 0, V = 0, conv_dim = 0, W = 0;
  std::vector<int64_t> layer_ids;
  bool operator==(const Geometry&) const = default;
};

struct Dump {
  std::string dir;
  json meta;
  Geometry model;
  int64_t tokens = 0;
  std::set<std::string> files;  // "layer03/ssm_state.npy"
};

int64_t field(const json& object, const char* name, const std::string& where) {
  if (!object.is_object() || !object.contains(name) || !object[name].is_number_integer())
    throw InputError(where + ": no integer field '" + name + "'");
  return object[name].get<int64_t>();
}

Dump load(const std::string& dir) {
  Dump d;
  d.dir = dir;
  const fs::path meta = fs::path(dir) / "meta.json";
  const std::string where = meta.string();
  if (!fs::is_directory(dir)) throw InputError(dir + ": not a directory");
  std::ifstream in(meta);
  if (!in) throw InputError(where + ": cannot open (a dump has meta.json, docs/interop.md)");
  d.meta = json::parse(in, nullptr, false);
  if (d.meta.is_discarded() || !d.meta.is_object())
    throw InputError(where + ": not a JSON object");
  const json& m = d.meta.contains("model") ? d.meta["model"] : json();
  const std::string mw = where + ": model";
  d.model = {field(m, "H", mw), field(m, "HV", mw), field(m, "K", mw),
             field(m, "V", mw), field(m, "conv_dim", mw), field(m, "W", mw), {}};
  if (m.contains("layer_ids") && m["layer_ids"].is_array()) {
    for (const json& id : m["layer_ids"]) {
      if (!id.is_number_integer()) throw InputError(mw + ": layer_ids must be integers");
      d.model.layer_ids.push_back(id.get<int64_t>());
    }
  } else {
    for (int64_t l = 0; l < field(m, "layers", mw); ++l)
      d.model.layer_ids.push_back(l);
  }
  d.tokens = field(d.meta, "dumped_tokens", where);
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string folder = entry.path().filename().string();
    if (!entry.is_directory() || folder.rfind("layer", 0) != 0) continue;
    for (const auto& f : fs::directory_iterator(entry.path())) {
      if (f.path().extension() == ".npy") d.files.insert(folder + "/" + f.path().filename().string());
    }
  }
  return d;
}

std::string describe_dims(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string channel_text(int64_t c, const Geometry& g) {
  const int64_t hk = g.H * g.K;
  std::string part;
  if (c < hk) {
    part = "q head " + std::to_string(c / g.K) + ", i " + std::to_string(c % g.K);
  } else if (c < 2 * hk) {
    part = "k head " + std::to_string((c - hk) / g.K) + ", i " + std::to_string((c - hk) % g.K);
  } else {
    part = "v head " + std::to_string((c - 2 * hk) / g.V) + ", i " +
           std::to_string((c - 2 * hk) % g.V);
  }
  return "channel " + std::to_string(c) + " (" + part + ")";
}

// Flat offset `i` of an array of `dims` as its multi-index, C order.
std::vector<int64_t> unravel(const std::vector<int64_t>& dims, int64_t i) {
  std::vector<int64_t> idx(dims.size());
  for (size_t d = dims.size(); d-- > 0;) {
    idx[d] = i % dims[d];
    i /= dims[d];
  }
  return idx;
}

// The element at flat offset `i` of one token's row (or of a whole file) in words.
std::string index_text(const std::string& name, const std::vector<int64_t>& dims, int64_t i,
                       const Geometry& g) {
  const std::vector<int64_t> idx = unravel(dims, i);
  auto n = [&](size_t d) { return std::to_string(idx[d]); };
  if ((name == "x" || name == "conv_out") && idx.size() == 1) return "[" + channel_text(idx[0], g) + "]";
  if ((name == "a" || name == "b" || name == "A_log" || name == "dt_bias") && idx.size() == 1)
    return "[head " + n(0) + "]";
  if (name == "o" && idx.size() == 2) return "[head " + n(0) + ", v " + n(1) + "]";
  if (name.rfind("ssm_state", 0) == 0 && idx.size() == 3)
    return "[head " + n(0) + ", k " + n(1) + ", v " + n(2) + "]";
  if (name.rfind("conv_state", 0) == 0 && idx.size() == 2)
    return "[" + channel_text(idx[0], g) + ", col " + n(1) + "]";
  if (name == "conv_weight" && idx.size() == 2)
    return "[" + channel_text(idx[0], g) + ", tap " + n(1) + "]";
  std::string s = "[";
  for (size_t d = 0; d < idx.size(); ++d)
    s += (d ? ", " : "") + n(d);
  return s + "]";
}

int64_t ordered(double v) {  // float32 bits as integers that count ulps
  const auto bits = int64_t(std::bit_cast<uint32_t>(float(v)));
  return bits & 0x80000000 ? -(bits & 0x7FFFFFFF) : bits;
}

bool within(double a, double b, const DumpTolerance& t) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::abs(a - b) <= t.atol + t.rtol * std::abs(b) ||
         std::abs(ordered(a) - ordered(b)) <= t.ulp;
}

// "token 20 (position 20), trace line 13: verify, step 0, accepted" from whichever meta.json
// lists the tokens and events.
std::string token_text(int64_t row, const Dump& a, const Dump& b) {
  for (const Dump* d : {&b, &a}) {
    const json& tokens = d->meta.contains("tokens") ? d->meta["tokens"] : json();
    const json& events = d->meta.contains("events") ? d->meta["events"] : json();
    if (!tokens.is_array()) continue;
    for (size_t k = 0; k < tokens.size(); ++k) {
      const json& t = tokens[k];
      const int64_t r = t.value("row", int64_t(k));
      if (r != row) continue;
      std::string s = "token " + std::to_string(k) + " (position " +
                      std::to_string(t.value("position", int64_t(-1))) + ")";
      const int64_t e = t.value("event", int64_t(-1));
      if (events.is_array() && e >= 0 && e < int64_t(events.size())) {
        s += ", trace line " + std::to_string(events[e].value("line", int64_t(0))) + ": " +
             events[e].value("kind", std::string("?")) + ", step " +
             std::to_string(t.value("step", int64_t(0))) +
             (t.value("accepted", true) ? ", accepted" : ", rejected draft");
      }
      return s;
    }
  }
  return "token row " + std::to_string(row);
}

int32_t layer_of(const std::string& file) {
  return int32_t(std::stol(file.substr(5, file.find('/') - 5)));
}

std::string stem(const std::string& file) {
  const std::string name = file.substr(file.find('/') + 1);
  return name.substr(0, name.size() - 4);
}

// Order of token files inside one token: layer, then kTokenFiles.
std::pair<int32_t, size_t> token_file_order(const std::string& file) {
  const auto it = std::find(kTokenFiles.begin(), kTokenFiles.end(), stem(file));
  return {layer_of(file), size_t(it - kTokenFiles.begin())};
}

}  // namespace

std::string DumpTolerance::describe() const {
  char buf[96];
  std::snprintf(buf, sizeof buf, "rtol %g, atol %g, %lld ulp", rtol, atol, (long long)ulp);
  return buf;
}

DumpComparison compare_dumps(const std::string& dir_a, const std::string& dir_b,
                             const DumpTolerance& tolerance) {
  const Dump a = load(dir_a), b = load(dir_b);
  if (!(a.model == b.model)) {
    throw InputError(dir_a + " and " + dir_b +
                     ": the dumps are of different geometries or layers (meta.json model)");
  }
  if (a.tokens != b.tokens) {
    throw InputError(dir_a + " holds " + std::to_string(a.tokens) + " tokens, " + dir_b +
                     " holds " + std::to_string(b.tokens) + " (meta.json dumped_tokens)");
  }
  DumpComparison out;
  out.tokens = a.tokens;
  out.tolerance = tolerance.describe();
  std::vector<std::string> common;
  std::set_intersection(a.files.begin(), a.files.end(), b.files.begin(), b.files.end(),
                        std::back_inserter(common));
  std::set_difference(a.files.begin(), a.files.end(), b.files.begin(), b.files.end(),
                      std::back_inserter(out.only_a));
  std::set_difference(b.files.begin(), b.files.end(), a.files.begin(), a.files.end(),
                      std::back_inserter(out.only_b));
  if (common.empty()) throw InputError(dir_a + " and " + dir_b + ": no layerNN/*.npy in common");
  for (const std::string& f : common) {
    try {
      layer_of(f);
    } catch (const std::exception&) {
      throw InputError(dir_a + ": " + f + ": a layer folder is named layerNN, NN the model index");
    }
  }

  // Files without a token axis first (parameters, initial states), then the token files in
  // (layer, file) order; a token file is read only up to the best token found so far.
  std::vector<std::string> whole, per_token;
  for (const std::string& f : common) {
    const bool token_file =
        std::find(kTokenFiles.begin(), kTokenFiles.end(), stem(f)) != kTokenFiles.end();
    (token_file ? per_token : whole).push_back(f);
  }
  std::sort(per_token.begin(), per_token.end(), [](const auto& x, const auto& y) {
    return token_file_order(x) < token_file_order(y);
  });
  const Geometry& g = a.model;
  auto scan = [&](const std::string& f, bool tokens) {
    NpyReader ra(fs::path(dir_a) / f), rb(fs::path(dir_b) / f);
    if (ra.shape() != rb.shape()) {
      throw InputError(f + ": shape " + describe_dims(ra.shape()) + " in " + dir_a + ", " +
                       describe_dims(rb.shape()) + " in " + dir_b);
    }
    if (tokens && (ra.shape().empty() || ra.shape()[0] != a.tokens)) {
      throw InputError(dir_a + "/" + f + ": shape " + describe_dims(ra.shape()) +
                       " does not start with the dumped tokens (" + std::to_string(a.tokens) + ")");
    }
    ++out.files;
    const int64_t rows = tokens ? a.tokens : 1;
    const int64_t per_row = rows ? ra.elements() / std::max<int64_t>(rows, 1) : 0;
    const std::vector<int64_t> dims(ra.shape().begin() + (tokens ? 1 : 0), ra.shape().end());
    const int64_t limit = out.first && out.first->token >= 0 ? out.first->token + 1 : rows;
    for (int64_t row = 0; row < std::min(rows, limit); ++row) {
      const std::vector<double> va = ra.read(row * per_row, per_row),
                                vb = rb.read(row * per_row, per_row);
      int64_t outside = 0, first = -1;
      for (int64_t i = 0; i < per_row; ++i) {
        const double d = std::abs(va[i] - vb[i]);
        if (!std::isnan(d)) out.max_abs = std::max(out.max_abs, d);
        if (!within(va[i], vb[i], tolerance)) {
          if (first < 0) first = i;
          ++outside;
        }
      }
      out.elements += per_row;
      if (first < 0) continue;
      const bool earlier = !out.first || (tokens && out.first->token >= 0 && row < out.first->token);
      if (earlier) {
        out.first = DumpDifference{f, layer_of(f), tokens ? row : -1,
                                   tokens ? token_text(row, a, b) : "before the first token",
                                   index_text(stem(f), dims, first, g), unravel(dims, first),
                                   va[first], vb[first], outside, per_row};
      }
      return;
    }
  };
  for (const std::string& f : whole)
    scan(f, false);
  for (const std::string& f : per_token) {
    if (out.first && out.first->token < 0) break;  // a parameter or initial state differs
    scan(f, true);
  }
  out.agree = !out.first.has_value();
  return out;
}

std::string DumpComparison::message(const std::string& dir_a, const std::string& dir_b) const {
  char buf[256];
  std::string s;
  if (agree) {
    std::snprintf(buf, sizeof buf, "AGREE: %s and %s: %lld files, %lld tokens, %lld elements",
                  dir_a.c_str(), dir_b.c_str(), (long long)files, (long long)tokens,
                  (long long)elements);
    s = buf;
    std::snprintf(buf, sizeof buf, " (max |diff| %.3g)", max_abs);
    s += buf;
  } else {
    const DumpDifference& d = *first;
    s = "DIVERGENCE: " + dir_a + " vs " + dir_b + " at " + d.token_text + "\n  " + d.file + " " +
        d.index + ": ";
    std::snprintf(buf, sizeof buf, "%.9g vs %.9g (|diff| %.3g); %lld of %lld elements", d.a, d.b,
                  std::abs(d.a - d.b), (long long)d.outside, (long long)d.elements);
    s += buf;
    s += d.token >= 0 ? " of this token" : " of the file";
  }
  s += (agree ? " within " : " outside ") + tolerance;
  for (const auto& [label, list] : {std::pair{"only in " + dir_a, &only_a},
                                    std::pair{"only in " + dir_b, &only_b}}) {
    if (list->empty()) continue;
    s += "\n  not compared, " + label + ":";
    for (size_t i = 0; i < list->size() && i < 8; ++i)
      s += " " + (*list)[i];
    if (list->size() > 8) s += " ... (" + std::to_string(list->size()) + " files)";
  }
  return s;
}

}  // namespace specstate::sim
