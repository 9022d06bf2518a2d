// clang-format off
// The trace format's bounds, generated from core/trace/rules.json by tools/gen_trace_rules.py; do not edit.
// Every bound is inclusive.
#pragma once

#include <cstddef>
#include <cstdint>

namespace specstate::trace {

inline constexpr int kFormatVersion = 2;  // the newest version, read and written
inline constexpr int kOldestFormatVersion = 1;  // the oldest version read
inline constexpr int64_t kMaxRows = 16777216;  // pool_rows, max_requests, page_size
inline constexpr int64_t kMaxTokens = 16777216;  // tokens of one extend, padding
inline constexpr int64_t kMaxLength = 281474976710656;  // tokens of one request
inline constexpr int32_t kMaxTokensPerVerify = 16;  // T = draft_tokens + 1
inline constexpr int32_t kMaxTreeNodesPerVerify = 64;  // nodes of one draft tree (header tree_nodes, version 2)
inline constexpr int32_t kMaxTp = 1024;  // tensor-parallel degree
inline constexpr int32_t kMaxOverlapDepth = 4;  // steps in flight of an overlap trace (header overlap, version 2)
inline constexpr int64_t kMaxLineBytes = 16777216;  // bytes of one line without its newline
inline constexpr size_t kMaxEchoed = 64;  // characters of a value quoted in a message

// A custom geometry's fields in the header's order (version 2), each with its bounds.
struct GeometryField {
  const char* name;
  int64_t min, max;
};
inline constexpr GeometryField kGeometryFields[] = {
    {"layers", 1, 1024},
    {"H", 1, 1024},
    {"HV", 1, 4096},
    {"K", 1, 1024},
    {"V", 1, 1024},
    {"conv_dim", 1, 16777216},
    {"W", 2, 64},
};

// The recurrences a custom geometry may name (its optional field 'recurrence'; the
// first is the default), in core/recurrence.cpp's order; a test checks that it agrees.
inline constexpr const char* kRecurrenceNames[] = {
    "gated-deltanet",
    "kimi-delta-attention",
};

// The presets' head counts (H, HV), in core/geometry.cpp's order; a test checks that
// presets() agrees.
struct PresetHeads {
  const char* name;
  int32_t num_k_heads, num_v_heads;
};
inline constexpr PresetHeads kPresetHeads[] = {
    {"qwen3-next-80b-a3b", 16, 32},
    {"qwen3.5-397b-a17b", 16, 64},
    {"qwen3.5-122b-a10b", 16, 64},
    {"qwen3.5-35b-a3b", 16, 32},
    {"qwen3.5-27b", 16, 48},
    {"qwen3.5-9b", 16, 32},
    {"qwen3.5-2b", 16, 16},
    {"kimi-linear-48b-a3b", 32, 32},
    {"tiny", 2, 4},
};

}  // namespace specstate::trace
// clang-format on
