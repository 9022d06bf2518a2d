// Shared helpers for backend tests (CPU properties, golden digests, CUDA differential tests).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "backends/state_backend.h"
#include "backends/state_diff.h"
#include "core/geometry.h"

namespace specstate::test {

inline PoolShape make_shape(const std::string& preset, SsmDtype dtype, int32_t rows, int32_t T,
                            bool wide_conv = false, int32_t payload_slots = 4) {
  PoolShape s;
  s.geometry = make_geometry(preset, 1);
  s.ssm_dtype = dtype;
  s.state_rows = rows;
  s.conv_cols = s.geometry.conv_state_cols() + (wide_conv ? T - 1 : 0);
  s.payload_slots = payload_slots;
  s.payload_tokens = T;
  return s;
}

// One real GDN layer (Qwen3-Next: H=16, HV=32, K=V=128, conv_dim 8192).
inline PoolShape real_layer_shape(SsmDtype dtype, int32_t rows, int32_t T, bool wide_conv = false) {
  PoolShape s = make_shape("qwen3-next-80b-a3b", dtype, rows, T, wide_conv);
  s.geometry.layers = 1;
  return s;
}

inline VerifyTask verify_task(uint64_t request, int64_t position, int32_t T, StateLoc from,
                              std::vector<int32_t> out_rows = {}) {
  VerifyTask t;
  t.tokens = {request, position, T};
  t.from = from;
  for (size_t j = 0; j < out_rows.size(); ++j)
    t.out_rows[j] = out_rows[j];
  return t;
}

inline PrefillTask prefill_task(uint64_t request, int64_t position, int32_t n, int32_t dst,
                                bool from_zero = true, StateLoc from = {}) {
  PrefillTask t;
  t.tokens = {request, position, n};
  t.from_zero = from_zero;
  t.from = from;
  t.writes = {{n, dst}};
  return t;
}

inline const char* dtype_name(SsmDtype d) {
  return d == SsmDtype::kF32 ? "f32" : "bf16";
}

}  // namespace specstate::test

// ---- Byte-for-byte comparison of states, for differential tests (CPU vs CUDA, lane vs lane).

namespace specstate::test {

// Empty when equal; else the first difference (backends/state_diff.h): tensor, layer, index
// and both values (the conv columns held, W-1 or all, follow from the sizes).
inline std::string first_difference(const RowBytes& a, const RowBytes& b, const PoolShape& shape) {
  const std::vector<ElementDiff> d = diff_states(a, b, shape, 1);
  return d.empty() ? std::string() : d[0].text();
}

// Empty when equal; else the first differing output as [task, token, layer, head, column].
inline std::string first_difference(const VerifyOutputs& a, const VerifyOutputs& b,
                                    const PoolShape& shape) {
  if (a.tasks != b.tasks)
    return "output tasks differ: " + std::to_string(a.tasks) + " vs " + std::to_string(b.tasks);
  const std::vector<ElementDiff> d = diff_outputs(a, b, shape.geometry, 1);
  return d.empty() ? std::string() : d[0].text();
}

}  // namespace specstate::test
