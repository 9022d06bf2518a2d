#include "sim/dump_compare.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <set>
#include <span>

#include "core/errors.h"
#include "core/geometry.h"
#include "core/io/input_file.h"
#include "sim/dump_meta.h"
#include "sim/npy.h"

namespace specstate::sim {
namespace fs = std::filesystem;

namespace {

// The files with a token axis, in the order a difference inside one token is reported.
const std::vector<std::string> kTokenFiles = {"x",         "a",          "b", "conv_out",
                                              "ssm_state", "conv_state", "o"};

// meta.json above this size is refused: it is read whole, and its tokens kept (40 bytes each,
// up to 13 times the text for `{}` items). specstate writes about 80 bytes per token, so this
// holds over 800,000 tokens.
constexpr int64_t kMaxMetaBytes = int64_t{64} << 20;

// Elements read at once from each file: two buffers of doubles and two of bytes, about 1.5 MiB
// in all, whatever the size of the files.
constexpr int64_t kPieceElements = int64_t{1} << 16;

struct Dump {
  std::string dir;
  DumpMeta meta;
  std::set<std::string> files;  // "layer03/ssm_state.npy"
};

// An InputError "DIR: message" unless `dir` is a directory (links followed).
void check_directory(const std::string& dir) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (st.type() == fs::file_type::not_found)
    throw InputError(io::file_prefix(dir) + "not a directory (it does not exist)");
  if (ec) throw InputError(io::file_prefix(dir) + "cannot read: " + ec.message());
  if (!fs::is_directory(st)) throw InputError(io::file_prefix(dir) + "not a directory");
}

// Calls `visit` with each entry of directory `dir`; InputError when it cannot be listed.
template <typename Visit>
void for_each_entry(const fs::path& dir, Visit visit) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    visit(*it);
  if (ec) throw InputError(io::file_prefix(dir.string()) + "cannot list: " + ec.message());
}

// Whether `entry` is a directory, links followed (a dangling link is not); InputError when that
// cannot be known (a loop of links, a permission).
bool is_directory(const fs::directory_entry& entry) {
  std::error_code ec;
  const fs::file_status st = entry.status(ec);
  if (st.type() == fs::file_type::not_found) return false;
  if (ec) throw InputError(io::file_prefix(entry.path().string()) + "cannot read: " + ec.message());
  return fs::is_directory(st);
}

// "layerNN/NAME.npy" for every .npy file (or anything so named) in a folder layer*.
std::set<std::string> list_files(const std::string& dir) {
  std::set<std::string> files;
  for_each_entry(dir, [&](const fs::directory_entry& entry) {
    const std::string folder = entry.path().filename().string();
    if (folder.rfind("layer", 0) != 0 || !is_directory(entry)) return;
    for_each_entry(entry.path(), [&](const fs::directory_entry& f) {
      if (f.path().extension() == ".npy") files.insert(folder + "/" + f.path().filename().string());
    });
  });
  return files;
}

Dump load(const std::string& dir) {
  check_directory(dir);
  const std::string meta = (fs::path(dir) / "meta.json").string();
  return {dir, parse_dump_meta(io::read_text_file(meta, kMaxMetaBytes), meta), list_files(dir)};
}

std::string describe_dims(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Channel `c` of [q | k | v]; the geometry is checked (K, V >= 1) by parse_dump_meta.
std::string channel_text(int64_t c, const DumpGeometry& g) {
  return conv_channel_text(c, g.H, g.K, g.V);
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
                       const DumpGeometry& g) {
  const std::vector<int64_t> idx = unravel(dims, i);
  auto n = [&](size_t d) { return std::to_string(idx[d]); };
  if ((name == "x" || name == "conv_out") && idx.size() == 1)
    return "[" + channel_text(idx[0], g) + "]";
  if ((name == "a" || name == "b" || name == "A_log" || name == "dt_bias") && idx.size() == 1)
    return "[head " + n(0) + "]";
  if ((name == "a" || name == "dt_bias") && idx.size() == 2)  // a decay per key channel (KDA)
    return "[head " + n(0) + ", k " + n(1) + "]";
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
  // float(v) is undefined beyond float's range (a '<f8' file may hold such values): those count
  // as the infinity of their sign.
  const float f = std::abs(v) > std::numeric_limits<float>::max()
                      ? std::copysign(std::numeric_limits<float>::infinity(), float(v > 0 ? 1 : -1))
                      : float(v);
  const auto bits = int64_t(std::bit_cast<uint32_t>(f));
  return bits & 0x80000000 ? -(bits & 0x7FFFFFFF) : bits;
}

bool within(double a, double b, const DumpTolerance& t) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::abs(a - b) <= t.atol + t.rtol * std::abs(b) ||
         std::abs(ordered(a) - ordered(b)) <= t.ulp;
}

// "token 20 (position 20), trace line 13: verify, step 0, accepted" from whichever meta.json
// lists the token.
std::string token_text(int64_t row, const Dump& a, const Dump& b) {
  for (const Dump* d : {&b, &a}) {
    if (std::optional<std::string> s = d->meta.describe_row(row)) return *s;
  }
  return "token row " + std::to_string(row);
}

// The model index NN of "layerNN/NAME.npy"; -1 when the folder is not so named.
int64_t layer_of(const std::string& file) {
  const size_t digits = file.find('/') - 5;
  if (digits < 1 || digits > 9) return -1;
  int64_t id = 0;
  for (char c : file.substr(5, digits)) {
    if (c < '0' || c > '9') return -1;
    id = id * 10 + (c - '0');
  }
  return id;
}

std::string stem(const std::string& file) {
  const std::string name = file.substr(file.find('/') + 1);
  return name.substr(0, name.size() - 4);
}

// Order of token files inside one token: layer, then kTokenFiles.
std::pair<int64_t, size_t> token_file_order(const std::string& file) {
  const auto it = std::find(kTokenFiles.begin(), kTokenFiles.end(), stem(file));
  return {layer_of(file), size_t(it - kTokenFiles.begin())};
}

// InputError unless every common file is in a folder of a layer that meta.json lists.
void check_layers(const std::vector<std::string>& common, const Dump& a) {
  const std::vector<int64_t>& ids = a.meta.model.layer_ids;
  for (const std::string& f : common) {
    const int64_t id = layer_of(f);
    if (id < 0) {
      throw InputError(io::file_prefix((fs::path(a.dir) / f).string()) +
                       "a layer folder is named layerNN, NN the model index");
    }
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) {
      throw InputError(io::file_prefix((fs::path(a.dir) / f).string()) + "layer " +
                       std::to_string(id) + " is not in meta.json's model.layer_ids (or layers)");
    }
  }
}

void check_tolerance(const DumpTolerance& t) {
  for (const auto& [name, value] : {std::pair{"rtol", t.rtol}, std::pair{"atol", t.atol}}) {
    if (!std::isfinite(value) || value < 0) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s %g", name, value);
      throw InputError(std::string(buf) + ": a tolerance is a finite number >= 0");
    }
  }
  if (t.ulp < 0) throw InputError("ulp " + std::to_string(t.ulp) + ": a tolerance is >= 0");
}

// The elements outside the tolerance in one row (a token's elements, or a whole file).
struct RowDifference {
  int64_t outside = 0;
  int64_t first = -1;   // offset in the row of the first one; -1: none
  double a = 0, b = 0;  // its values
};

// Compares the common files of two dumps into `out`, one file at a time, each read in pieces.
class FileComparer {
 public:
  FileComparer(const Dump& a, const Dump& b, const DumpTolerance& t, DumpComparison& out)
      : a_(a), b_(b), tolerance_(t), out_(out), va_(kPieceElements), vb_(kPieceElements) {}

  // Compares `file` row by row (token rows, or the file as one row), up to the token of the
  // best difference found so far, and records a difference earlier than it.
  void compare(const std::string& file, bool tokens) {
    NpyReader ra(fs::path(a_.dir) / file), rb(fs::path(b_.dir) / file);
    check_shapes(file, ra, rb, tokens);
    ++out_.files;
    const int64_t rows = tokens ? a_.meta.dumped_tokens : 1;
    const int64_t per_row = rows ? ra.elements() / rows : 0;
    const std::vector<int64_t> dims(ra.shape().begin() + (tokens ? 1 : 0), ra.shape().end());
    const int64_t limit = out_.first && out_.first->token >= 0 ? out_.first->token + 1 : rows;
    for (int64_t row = 0; row < std::min(rows, limit); ++row) {
      const RowDifference d = compare_row(ra, rb, row * per_row, per_row);
      out_.elements += per_row;
      if (d.first < 0) continue;
      const bool earlier =
          !out_.first || (tokens && out_.first->token >= 0 && row < out_.first->token);
      if (earlier) {
        out_.first = DumpDifference{file,
                                    int32_t(layer_of(file)),
                                    tokens ? row : -1,
                                    tokens ? token_text(row, a_, b_) : "before the first token",
                                    index_text(stem(file), dims, d.first, a_.meta.model),
                                    unravel(dims, d.first),
                                    d.a,
                                    d.b,
                                    d.outside,
                                    per_row};
      }
      return;
    }
  }

 private:
  void check_shapes(const std::string& file, const NpyReader& ra, const NpyReader& rb,
                    bool tokens) const {
    if (ra.shape() != rb.shape()) {
      throw InputError(quote_file_name(file) + ": shape " + describe_dims(ra.shape()) + " in " +
                       quote_file_name(a_.dir) + ", " + describe_dims(rb.shape()) + " in " +
                       quote_file_name(b_.dir));
    }
    if (tokens && (ra.shape().empty() || ra.shape()[0] != a_.meta.dumped_tokens)) {
      throw InputError(io::file_prefix(a_.dir + "/" + file) + "shape " + describe_dims(ra.shape()) +
                       " does not start with the dumped tokens (" +
                       std::to_string(a_.meta.dumped_tokens) + ")");
    }
  }

  // Elements start .. start+count-1 of both files, read kPieceElements at a time.
  RowDifference compare_row(NpyReader& ra, NpyReader& rb, int64_t start, int64_t count) {
    RowDifference d;
    for (int64_t done = 0; done < count; done += kPieceElements) {
      const size_t n = size_t(std::min(kPieceElements, count - done));
      const std::span<double> va(va_.data(), n), vb(vb_.data(), n);
      ra.read(start + done, va);
      rb.read(start + done, vb);
      for (size_t i = 0; i < n; ++i) {
        const double diff = std::abs(va[i] - vb[i]);
        if (!std::isnan(diff)) out_.max_abs = std::max(out_.max_abs, diff);
        if (within(va[i], vb[i], tolerance_)) continue;
        if (d.first < 0) d = {0, done + int64_t(i), va[i], vb[i]};
        ++d.outside;
      }
    }
    return d;
  }

  const Dump& a_;
  const Dump& b_;
  const DumpTolerance& tolerance_;
  DumpComparison& out_;
  std::vector<double> va_, vb_;  // [kPieceElements] the piece of each file
};

// Throws InputError unless the dumps are of one model, layers and token count.
void check_comparable(const Dump& a, const Dump& b) {
  if (!(a.meta.model == b.meta.model)) {
    throw InputError(quote_file_name(a.dir) + " and " + quote_file_name(b.dir) +
                     ": the dumps are of different geometries or layers (meta.json model)");
  }
  if (a.meta.dumped_tokens != b.meta.dumped_tokens) {
    throw InputError(quote_file_name(a.dir) + " holds " + std::to_string(a.meta.dumped_tokens) +
                     " tokens, " + quote_file_name(b.dir) + " holds " +
                     std::to_string(b.meta.dumped_tokens) + " (meta.json dumped_tokens)");
  }
}

}  // namespace

std::string DumpTolerance::describe() const {
  char buf[96];
  std::snprintf(buf, sizeof buf, "rtol %g, atol %g, %lld ulp", rtol, atol, (long long)ulp);
  return buf;
}

DumpComparison compare_dumps(const std::string& dir_a, const std::string& dir_b,
                             const DumpTolerance& tolerance) {
  check_tolerance(tolerance);
  const Dump a = load(dir_a), b = load(dir_b);
  check_comparable(a, b);
  DumpComparison out;
  out.tokens = a.meta.dumped_tokens;
  out.tolerance = tolerance.describe();
  std::vector<std::string> common;
  std::set_intersection(a.files.begin(), a.files.end(), b.files.begin(), b.files.end(),
                        std::back_inserter(common));
  std::set_difference(a.files.begin(), a.files.end(), b.files.begin(), b.files.end(),
                      std::back_inserter(out.only_a));
  std::set_difference(b.files.begin(), b.files.end(), a.files.begin(), a.files.end(),
                      std::back_inserter(out.only_b));
  if (common.empty()) {
    throw InputError(quote_file_name(dir_a) + " and " + quote_file_name(dir_b) +
                     ": no layerNN/*.npy in common");
  }
  check_layers(common, a);

  // Files without a token axis first (parameters, initial states), then the token files in
  // (layer, file) order; a token file is read only up to the best token found so far.
  std::vector<std::string> whole, per_token;
  for (const std::string& f : common) {
    const bool token_file =
        std::find(kTokenFiles.begin(), kTokenFiles.end(), stem(f)) != kTokenFiles.end();
    (token_file ? per_token : whole).push_back(f);
  }
  std::sort(per_token.begin(), per_token.end(),
            [](const auto& x, const auto& y) { return token_file_order(x) < token_file_order(y); });
  FileComparer comparer(a, b, tolerance, out);
  for (const std::string& f : whole)
    comparer.compare(f, false);
  for (const std::string& f : per_token) {
    if (out.first && out.first->token < 0) break;  // a parameter or initial state differs
    comparer.compare(f, true);
  }
  out.agree = !out.first.has_value();
  if (out.first && out.first->token >= 0)
    out.forensics = investigate_dumps(dir_a, a.meta, dir_b, b.meta, per_token, out.first->token);
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
  if (forensics) {
    std::string f = forensics->report();
    for (size_t at = 0; (at = f.find('\n', at)) != std::string::npos; at += 3)
      f.replace(at, 1, "\n  ");
    s += "\n  " + f;
  }
  for (const auto& [label, list] :
       {std::pair{"only in " + dir_a, &only_a}, std::pair{"only in " + dir_b, &only_b}}) {
    if (list->empty()) continue;
    s += "\n  not compared, " + label + ":";
    for (size_t i = 0; i < list->size() && i < 8; ++i)
      s += " " + (*list)[i];
    if (list->size() > 8) s += " ... (" + std::to_string(list->size()) + " files)";
  }
  return s;
}

}  // namespace specstate::sim
