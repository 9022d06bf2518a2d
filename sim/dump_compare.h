// specstate compare: two dumps in the layout of docs/interop.md, typically an engine's dump
// against `specstate dump` of the same trace and request, compared file by file and token by
// token within a tolerance.
//
// Both directories need meta.json with `model` (H, HV, K, V, conv_dim, W, layer_ids) and
// `dumped_tokens`; `tokens` and `events` (as specstate writes them) are used, from either side,
// to name the token and the trace event of a difference. Every layerNN/NAME.npy present in
// both is compared ('<f4' or '<f8'); a file in one only is listed, not compared. Files with
// a token axis (x, a, b, conv_out, o, ssm_state, conv_state) are compared token by token; the
// first divergence is the earliest token, then the lowest layer, then the file order above.
// At a token, the forensics of sim/dump_forensics.h say which state of the request the
// dump holds there instead ("stale by one token"), when both hold states.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sim/dump_forensics.h"

namespace specstate::sim {

struct DumpTolerance {
  double rtol = 0, atol = 0;
  int64_t ulp = 0;  // float32 units in the last place (one bf16 ulp is 65536 of them)
  std::string describe() const;
};

struct DumpDifference {
  std::string file;             // "layer03/ssm_state.npy"
  int32_t layer = 0;            // the model's layer index
  int64_t token = -1;           // index in the request's token order; -1: a file without tokens
  std::string token_text;       // "token 20 (position 20), trace line 10: verify, step 0, accepted"
  std::string index;            // "[head 1, k 3, v 7]"
  std::vector<int64_t> coords;  // the same index as numbers (within the token's row)
  double a = 0, b = 0;
  int64_t outside = 0;   // elements outside the tolerance in that token's row (or the file)
  int64_t elements = 0;  // elements in it
};

struct DumpComparison {
  bool agree = true;
  std::optional<DumpDifference> first;
  int64_t files = 0;     // compared
  int64_t tokens = 0;    // rows of the token files
  int64_t elements = 0;  // compared (up to the first difference's token when they differ)
  double max_abs = 0;    // over what was compared
  std::vector<std::string> only_a, only_b;  // files present in one dump only
  std::string tolerance;                    // DumpTolerance::describe()
  // A divergence at a token in dumps that both hold ssm_state or conv_state: what the state
  // there is nearest to among the other dump's states a few tokens away.
  std::optional<DumpForensics> forensics;
  std::string message(const std::string& dir_a, const std::string& dir_b) const;
};

// Throws InputError ("FILE: message") for a tolerance that is negative or not finite, a
// directory that is not a dump (meta.json as parse_dump_meta() in sim/dump_meta.h checks it),
// dumps of different models, layers or token counts, a file whose shapes differ between the two
// or that NpyReader refuses (not a regular file, not '<f4' / '<f8', a size that is not its
// shape's), a layer folder not in meta.json's layers, and dumps with no file in common.
// Memory: meta.json (up to 64 MiB, parsed whole) and a few MiB, whatever the size of the .npy
// files, which are read in pieces.
DumpComparison compare_dumps(const std::string& dir_a, const std::string& dir_b,
                             const DumpTolerance& tolerance);

}  // namespace specstate::sim
