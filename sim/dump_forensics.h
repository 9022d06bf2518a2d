// Divergence forensics of `specstate compare`: when two dumps diverge at a token, which state
// one dump holds there among the other's states of the same request a few tokens earlier or
// later ("stale by one token"), with the distance to each.
//
// The measure is the Python harness's (python/specstate/forensics.py): per SSM head, max
// |examined - candidate| over the head's [K, V] block divided by max |reference| over the same
// block, the reference being the candidate dump's state at the diverging token; per conv layer
// the same over its [conv_dim, W-1] window; a state's distance is the largest over heads and
// layers (NaN counts as infinitely far). A state that matches a candidate up to a kernel's drift
// is at about the drift (1e-7 for float32 kernels, 1e-3 for bf16 activations); one token away
// is at 0.1 to 2.
//
// The second dump's state is examined among the first's; when no candidate explains it, the
// first's among the second's (so the argument order does not hide a stale engine state). Only
// the candidate tokens' rows of ssm_state.npy and conv_state.npy are read, a piece at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sim/dump_meta.h"

namespace specstate::sim {

// Candidates: the tokens up to this many before and after the diverging one, in token order.
inline constexpr int64_t kForensicsReach = 4;
// A candidate nearer than this fraction of the distance to the same token's state explains the
// divergence (forensics.py MATCH_RATIO).
inline constexpr double kForensicsMatchRatio = 0.1;

struct DumpCandidate {
  // Tokens from the diverging one: the difference of their positions (meta.json `tokens`), or
  // of their indices in token order where positions are not listed. -1: stale by one token. 0 for
  // the same token, and for another run of its position (a rejected draft run again).
  int64_t offset = 0;
  int64_t index = 0;  // in token order
  int64_t row = 0;    // its row in the candidate dump's per-token files
  bool same_token = false;
  std::string token_text;    // "token 11 (position 11), trace line 9: verify, step 1, accepted"
  double ssm = 0, conv = 0;  // relative distances (above); 0 for a file neither dump has
  double distance() const { return ssm > conv ? ssm : conv; }
};

struct DumpForensics {
  std::string examined, among;  // the dump whose state is examined; the dump of the candidates
  int64_t row = 0;              // the diverging token's row
  std::string token_text;
  std::vector<DumpCandidate> candidates;  // nearest first, the same token (offset 0) among them

  const DumpCandidate& same() const;  // the same token
  const DumpCandidate& best() const { return candidates.front(); }
  // The nearest candidate at another position; null when there is none.
  const DumpCandidate* explaining() const;
  // The explaining candidate is nearer than kForensicsMatchRatio of the same token's distance.
  bool matched() const;
  // "stale by one token: a's token 11 (...) (distance 0 vs 0.41 to token 12's state)".
  std::string verdict() const;
  // "forensics of ...: VERDICT", then the `shown` nearest candidates (and the same token), one a
  // line, in forensics.py's columns.
  std::string report(size_t shown = 6) const;
};

// Forensics of the divergence at `row` between dumps `dir_a` and `dir_b` (meta.json parsed as
// `a` and `b`, files checked by compare_dumps), over `common`, the per-token files both hold;
// nullopt when they hold neither ssm_state.npy nor conv_state.npy. Throws InputError as
// NpyReader does.
std::optional<DumpForensics> investigate_dumps(const std::string& dir_a, const DumpMeta& a,
                                               const std::string& dir_b, const DumpMeta& b,
                                               const std::vector<std::string>& common, int64_t row);

}  // namespace specstate::sim
