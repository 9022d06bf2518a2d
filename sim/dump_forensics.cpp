#include "sim/dump_forensics.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <span>

#include "core/errors.h"
#include "sim/npy.h"

namespace specstate::sim {
namespace {

namespace fs = std::filesystem;

// Elements read at once from each file: three buffers of doubles, 1.5 MiB in all.
constexpr int64_t kPieceElements = int64_t{1} << 16;
// The smallest scale a block divides by (forensics.py: float32's tiny).
constexpr double kTinyScale = FLT_MIN;
constexpr double kInfinity = std::numeric_limits<double>::infinity();

std::string count_text(int64_t k) {
  return k == 1 ? "one token" : std::to_string(k) + " tokens";
}

std::string g2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2g", v);
  return buf;
}

std::string stem(const std::string& file) {
  const std::string name = file.substr(file.find('/') + 1);
  return name.substr(0, name.size() - 4);
}

// The request's token order and the dumps' rows: meta.json's `tokens` (from whichever dump
// lists them), or row i is token i.
class TokenOrder {
 public:
  TokenOrder(const DumpMeta& first, const DumpMeta& second)
      : meta_(first.tokens.empty() ? second : first), rows_(first.dumped_tokens) {}

  int64_t index_of(int64_t row) const {
    if (meta_.tokens.empty()) return row;
    for (size_t i = 0; i < meta_.tokens.size(); ++i) {
      if (meta_.tokens[i].row == row) return int64_t(i);
    }
    return -1;
  }
  // -1: no such token, or not dumped.
  int64_t row_of(int64_t index) const {
    if (meta_.tokens.empty()) return index >= 0 && index < rows_ ? index : -1;
    if (index < 0 || index >= int64_t(meta_.tokens.size())) return -1;
    const int64_t row = meta_.tokens[size_t(index)].row;
    return row >= 0 && row < rows_ ? row : -1;
  }
  std::string text(int64_t row) const {
    return meta_.describe_row(row).value_or("token row " + std::to_string(row));
  }
  // Tokens from `index` to `other`: by position where both are listed, else by token order.
  int64_t offset(int64_t index, int64_t other) const {
    if (meta_.tokens.empty()) return other - index;
    const int64_t p = meta_.tokens[size_t(index)].position,
                  q = meta_.tokens[size_t(other)].position;
    return p >= 0 && q >= 0 ? q - p : other - index;
  }

 private:
  const DumpMeta& meta_;
  int64_t rows_;
};

// Per block of one state file: max |value| of the reference row, and max |examined - candidate|
// for each candidate; infinite where a NaN is met.
struct BlockMaxima {
  std::vector<double> scale;              // [blocks]
  std::vector<std::vector<double>> diff;  // [candidates][blocks]
};

double nan_to_inf(double v) {
  return std::isnan(v) ? kInfinity : v;
}

// One state file (layerNN/ssm_state.npy: blocks are heads; conv_state.npy: one block), read a
// piece at a time: row `row` of the examined dump against the candidates' rows of the other.
BlockMaxima block_maxima(const fs::path& examined, const fs::path& among, int64_t rows, int64_t row,
                         const std::vector<DumpCandidate>& candidates, bool heads) {
  NpyReader ex(examined), am(among);
  const int64_t per_row = rows ? ex.elements() / rows : 0;
  const int64_t blocks = heads && ex.shape().size() > 1 && ex.shape()[1] > 0 ? ex.shape()[1] : 1;
  const int64_t block = per_row / blocks;
  BlockMaxima m{std::vector<double>(blocks, 0.0),
                std::vector<std::vector<double>>(candidates.size(), std::vector<double>(blocks))};
  std::vector<double> e(kPieceElements), s(kPieceElements), c(kPieceElements);
  for (int64_t done = 0; done < per_row; done += kPieceElements) {
    const size_t n = size_t(std::min(kPieceElements, per_row - done));
    ex.read(row * per_row + done, std::span(e.data(), n));
    am.read(row * per_row + done, std::span(s.data(), n));
    for (size_t i = 0; i < n; ++i) {
      double& scale = m.scale[(done + int64_t(i)) / block];
      scale = std::max(scale, nan_to_inf(std::abs(s[i])));
    }
    for (size_t k = 0; k < candidates.size(); ++k) {
      am.read(candidates[k].row * per_row + done, std::span(c.data(), n));
      for (size_t i = 0; i < n; ++i) {
        double& d = m.diff[k][(done + int64_t(i)) / block];
        d = std::max(d, nan_to_inf(std::abs(e[i] - c[i])));
      }
    }
  }
  return m;
}

// The largest relative distance over the blocks (an infinite scale: a NaN in the reference).
double relative(const std::vector<double>& diff, const std::vector<double>& scale) {
  double worst = 0;
  for (size_t b = 0; b < diff.size(); ++b) {
    const double d = std::isinf(scale[b]) ? kInfinity : diff[b] / std::max(scale[b], kTinyScale);
    worst = std::max(worst, d);
  }
  return worst;
}

// The candidates around `row` in token order: the same token first, then one before, one after,
// two before... so that a tie goes to the nearest.
std::vector<DumpCandidate> candidates_around(const TokenOrder& order, int64_t row) {
  const int64_t index = order.index_of(row);
  std::vector<DumpCandidate> out{{0, index, row, true, order.text(row)}};
  if (index < 0) return out;
  for (int64_t k = 1; k <= kForensicsReach; ++k) {
    for (int64_t step : {-k, k}) {
      const int64_t r = order.row_of(index + step);
      if (r >= 0)
        out.push_back({order.offset(index, index + step), index + step, r, false, order.text(r)});
    }
  }
  return out;
}

DumpForensics investigate(const std::string& examined, const std::string& among,
                          const TokenOrder& order, int64_t rows,
                          const std::vector<std::string>& state_files, int64_t row) {
  DumpForensics f{examined, among, row, order.text(row), candidates_around(order, row)};
  if (f.candidates.front().index < 0) f.candidates.front().index = row;  // not listed
  for (const std::string& file : state_files) {
    const bool ssm = stem(file) == "ssm_state";
    const BlockMaxima m = block_maxima(fs::path(examined) / file, fs::path(among) / file, rows, row,
                                       f.candidates, ssm);
    for (size_t k = 0; k < f.candidates.size(); ++k) {
      double& d = ssm ? f.candidates[k].ssm : f.candidates[k].conv;
      d = std::max(d, relative(m.diff[k], m.scale));
    }
  }
  std::stable_sort(f.candidates.begin(), f.candidates.end(),
                   [](const auto& x, const auto& y) { return x.distance() < y.distance(); });
  return f;
}

}  // namespace

const DumpCandidate& DumpForensics::same() const {
  const auto it = std::find_if(candidates.begin(), candidates.end(),
                               [](const DumpCandidate& c) { return c.same_token; });
  SPECSTATE_ASSERT(it != candidates.end(), "the diverging token is among the candidates");
  return *it;
}

const DumpCandidate* DumpForensics::explaining() const {
  const auto it = std::find_if(candidates.begin(), candidates.end(),
                               [](const DumpCandidate& c) { return c.offset != 0; });
  return it == candidates.end() ? nullptr : &*it;
}

bool DumpForensics::matched() const {
  const DumpCandidate* e = explaining();
  return e && e->distance() <= kForensicsMatchRatio * same().distance();
}

std::string DumpForensics::verdict() const {
  const DumpCandidate& s = same();
  const DumpCandidate& b = matched() ? *explaining() : best();
  const std::string token = token_text.substr(0, token_text.find(" ("));  // "token 12"
  const std::string versus =
      "distance " + g2(b.distance()) + " vs " + g2(s.distance()) + " to " + token + "'s state";
  if (b.same_token && s.distance() == 0)
    return "the same state as at " + token + ": the divergence is not in the state";
  if (b.same_token) {
    return "closest to its own " + token + "'s state (distance " + g2(s.distance()) +
           "): drift beyond the tolerance, or a state none of the candidates describes";
  }
  if (!matched()) {
    return "no candidate explains it; the nearest: " + b.token_text +
           (b.offset == 0 ? ", another run of its position" : "") + " (" + versus + ")";
  }
  const std::string name =
      b.offset < 0 ? "stale by " + count_text(-b.offset) : "ahead by " + count_text(b.offset);
  return name + ": " + b.token_text + " (" + versus + ")";
}

std::string DumpForensics::report(size_t shown) const {
  int64_t lo = same().index, hi = same().index;
  for (const DumpCandidate& c : candidates) {
    lo = std::min(lo, c.index);
    hi = std::max(hi, c.index);
  }
  const std::string token = token_text.substr(0, token_text.find(" ("));
  std::string s = "forensics: " + examined + "'s state at " + token + " among " + among +
                  "'s states at tokens " + std::to_string(lo) + " to " + std::to_string(hi) + ": " +
                  verdict();
  if (same().distance() == 0) return s;  // equal states: the distances say nothing more
  s += "\n      distance        ssm       conv  candidate in " + among + " (relative, per head)";
  std::vector<const DumpCandidate*> lines;
  for (size_t i = 0; i < candidates.size() && i < shown; ++i)
    lines.push_back(&candidates[i]);
  if (std::find(lines.begin(), lines.end(), &same()) == lines.end()) lines.push_back(&same());
  for (const DumpCandidate* c : lines) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "\n  %10.2g %10.2g %10.2g  ", c->distance(), c->ssm, c->conv);
    const std::string where = c->same_token    ? "the same token"
                              : c->offset == 0 ? "another run of its position"
                              : c->offset < 0  ? count_text(-c->offset) + " before"
                                               : count_text(c->offset) + " after";
    s += buf + c->token_text + ", " + where;
  }
  if (candidates.size() > lines.size())
    s += "\n  ... " + std::to_string(candidates.size() - lines.size()) + " more";
  return s;
}

std::optional<DumpForensics> investigate_dumps(const std::string& dir_a, const DumpMeta& a,
                                               const std::string& dir_b, const DumpMeta& b,
                                               const std::vector<std::string>& common,
                                               int64_t row) {
  std::vector<std::string> state_files;
  for (const std::string& f : common) {
    if (stem(f) == "ssm_state" || stem(f) == "conv_state") state_files.push_back(f);
  }
  if (state_files.empty() || row < 0 || row >= a.dumped_tokens) return std::nullopt;
  const int64_t rows = a.dumped_tokens;
  // The second dump's state among the first's; the other way round when that explains it and
  // this does not.
  DumpForensics f = investigate(dir_b, dir_a, TokenOrder(a, b), rows, state_files, row);
  if (!f.matched()) {
    DumpForensics other = investigate(dir_a, dir_b, TokenOrder(b, a), rows, state_files, row);
    if (other.matched()) return other;
  }
  return f;
}

}  // namespace specstate::sim
