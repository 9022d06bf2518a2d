// Shared helpers for backend tests (CPU properties, golden digests, CUDA differential tests).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "backends/state_backend.h"
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

// Empty when equal; else where the first difference is (layer, tensor, element) and both
// values as hex. `cols` is the number of conv columns the RowBytes hold.
inline std::string first_difference(const RowBytes& a, const RowBytes& b, const PoolShape& shape,
                                    int32_t cols) {
  const ModelGeometry& g = shape.geometry;
  char buf[256];
  if (a.conv.size() != b.conv.size() || a.ssm.size() != b.ssm.size()) return "sizes differ";
  for (size_t i = 0; i < a.conv.size(); ++i) {
    if (a.conv[i] == b.conv[i]) continue;
    const size_t per_layer = size_t(g.conv_dim()) * cols;
    std::snprintf(buf, sizeof buf, "conv layer %zu channel %zu col %zu: 0x%04x vs 0x%04x",
                  i / per_layer, i % per_layer / cols, i % cols, a.conv[i], b.conv[i]);
    return buf;
  }
  const size_t elem = size_t(ssm_element_bytes(shape.ssm_dtype));
  for (size_t i = 0; i < a.ssm.size(); ++i) {
    if (a.ssm[i] == b.ssm[i]) continue;
    const size_t e = i / elem, per_layer = size_t(g.ssm_elements_per_layer());
    const size_t in_layer = e % per_layer, kv = size_t(g.head_k_dim) * g.head_v_dim;
    uint32_t va = 0, vb = 0;
    std::memcpy(&va, a.ssm.data() + e * elem, elem);
    std::memcpy(&vb, b.ssm.data() + e * elem, elem);
    std::snprintf(buf, sizeof buf, "ssm layer %zu head %zu k %zu v %zu: 0x%08x vs 0x%08x",
                  e / per_layer, in_layer / kv, in_layer % kv / g.head_v_dim,
                  in_layer % g.head_v_dim, va, vb);
    return buf;
  }
  return {};
}

// Empty when equal; else the first differing output as [task, token, layer, head, column].
inline std::string first_difference(const VerifyOutputs& a, const VerifyOutputs& b,
                                    const PoolShape& shape) {
  char buf[256];
  if (a.tasks != b.tasks || a.tokens != b.tokens || a.values.size() != b.values.size()) {
    std::snprintf(buf, sizeof buf, "output shapes differ: %d x %d vs %d x %d", a.tasks, a.tokens,
                  b.tasks, b.tokens);
    return buf;
  }
  const ModelGeometry& g = shape.geometry;
  for (size_t i = 0; i < a.values.size(); ++i) {
    if (a.values[i] == b.values[i]) continue;
    size_t r = i;
    const size_t col = r % g.head_v_dim;
    r /= g.head_v_dim;
    const size_t head = r % g.num_v_heads;
    r /= g.num_v_heads;
    const size_t layer = r % g.layers;
    r /= g.layers;
    std::snprintf(buf, sizeof buf,
                  "output task %zu token %zu layer %zu head %zu col %zu: 0x%04x vs 0x%04x",
                  r / a.tokens, r % a.tokens, layer, head, col, a.values[i], b.values[i]);
    return buf;
  }
  return {};
}

}  // namespace specstate::test
