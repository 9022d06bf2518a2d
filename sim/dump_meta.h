// meta.json of a dump (docs/interop.md) as specstate compare reads it: the model's geometry and
// layers, the number of dumped tokens, and the tokens and events that name a token in a report.
// The file may come from any engine, so every field's type and range is checked here, before
// any arithmetic uses it; what compare does not read (seed, files, ...) is not checked.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace specstate::sim {

// Ranges of the model's fields (those of a custom geometry, core/geometry.h, W from 1).
inline constexpr int64_t kMaxDumpLayers = 1024;              // layers; a layer id is below it
inline constexpr int64_t kMaxDumpTokens = int64_t{1} << 48;  // dumped_tokens, as traces

struct DumpGeometry {
  int64_t H = 0, HV = 0, K = 0, V = 0, conv_dim = 0, W = 0;  // conv_dim = 2*H*K + HV*V
  std::vector<int64_t> layer_ids;  // distinct, each in 0 .. kMaxDumpLayers-1, at least one
  bool operator==(const DumpGeometry&) const = default;
};

// One item of `tokens`; absent fields take the defaults below (row: the item's index).
struct DumpToken {
  int64_t row = 0, position = -1, event = -1, step = 0;
  bool accepted = true;
};

// One item of `events`.
struct DumpEvent {
  int64_t line = 0;
  std::string kind = "?";
};

struct DumpMeta {
  DumpGeometry model;
  int64_t dumped_tokens = 0;  // 0 .. kMaxDumpTokens
  std::vector<DumpToken> tokens;
  std::vector<DumpEvent> events;

  // "token 20 (position 20), trace line 13: verify, step 0, accepted": the first listed token
  // whose row is `row`, its event named when `events` has it; nullopt when none is listed.
  std::optional<std::string> describe_row(int64_t row) const;
};

// Parses meta.json's text. Throws InputError "FILE: message" (FILE: `file`, quoted as
// quote_file_name() does) for text that is not a JSON object, a field missing or of the wrong
// type ("model.H must be an integer", "tokens[3].row must be an integer"), a value out of range
// ("model.V 0 is outside 1..1024"), or layers that disagree (duplicates, `layers` not the
// length of `layer_ids`, conv_dim not 2*H*K + HV*V).
DumpMeta parse_dump_meta(std::string_view text, const std::string& file);

}  // namespace specstate::sim
