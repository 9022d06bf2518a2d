#include "backends/state_diff.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

namespace specstate {
namespace {

ElementDiff size_difference(const char* tensor, size_t a, size_t b) {
  ElementDiff d;
  d.tensor = tensor;
  d.index = "[sizes differ: " + std::to_string(a) + " vs " + std::to_string(b) + " elements]";
  return d;
}

double difference(const ElementValue& a, const ElementValue& b) {
  const double d = std::fabs(a.value() - b.value());
  return d == d ? d : std::numeric_limits<double>::infinity();  // NaN on either side
}

}  // namespace

double ElementValue::value() const {
  float f;
  const uint32_t widened = bytes == 2 ? bits << 16 : bits;
  std::memcpy(&f, &widened, 4);
  return f;
}

std::string ElementValue::hex() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, bytes == 2 ? "0x%04x" : "0x%08x", bits);
  return buf;
}

std::string ElementValue::text() const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s (%.9g)", hex().c_str(), value());
  return buf;
}

std::string ElementDiff::text() const {
  return tensor + " layer " + std::to_string(layer) + " " + index + ": " + a.text() + " vs " +
         b.text();
}

std::vector<ElementDiff> diff_states(const RowBytes& a, const RowBytes& b, const PoolShape& shape,
                                     size_t max) {
  std::vector<ElementDiff> out;
  if (a.conv.size() != b.conv.size())
    return {size_difference("conv", a.conv.size(), b.conv.size())};
  if (a.ssm.size() != b.ssm.size()) return {size_difference("ssm", a.ssm.size(), b.ssm.size())};
  const ModelGeometry& g = shape.geometry;
  const size_t per_layer_conv = a.conv.size() / g.layers;
  const size_t cols = per_layer_conv / g.conv_dim();
  for (size_t i = 0; i < a.conv.size() && out.size() < max; ++i) {
    if (a.conv[i] == b.conv[i]) continue;
    const size_t in_layer = i % per_layer_conv;
    // The text starts as a std::string: g++ 12 reports a false -Wrestrict on "[" + string&&.
    out.push_back({"conv",
                   g.layer_id(int32_t(i / per_layer_conv)),
                   std::string("[") + conv_channel_text(g, int64_t(in_layer / cols)) + ", col " +
                       std::to_string(in_layer % cols) + "]",
                   {a.conv[i], 2},
                   {b.conv[i], 2},
                   int64_t(i)});
  }
  const int es = ssm_element_bytes(shape.ssm_dtype);
  const int64_t per_layer = g.ssm_elements_per_layer();
  const int64_t elements = int64_t(a.ssm.size()) / es;
  const int64_t kv = int64_t{g.head_k_dim} * g.head_v_dim;
  for (int64_t e = 0; e < elements && out.size() < max; ++e) {
    uint32_t va = 0, vb = 0;
    std::memcpy(&va, a.ssm.data() + e * es, es);
    std::memcpy(&vb, b.ssm.data() + e * es, es);
    if (va == vb) continue;
    const int64_t in_layer = e % per_layer;
    out.push_back({"ssm",
                   g.layer_id(int32_t(e / per_layer)),
                   std::string("[") + value_head_text(g, in_layer / kv) + ", k " +
                       std::to_string(in_layer % kv / g.head_v_dim) + ", v " +
                       std::to_string(in_layer % g.head_v_dim) + "]",
                   {va, es},
                   {vb, es},
                   e});
  }
  return out;
}

DiffMap diff_map(const RowBytes& a, const RowBytes& b, const PoolShape& shape) {
  DiffMap map;
  const ModelGeometry& g = shape.geometry;
  if (a.conv.size() != b.conv.size() || a.ssm.size() != b.ssm.size()) return map;
  map.heads = g.num_v_heads;
  for (int32_t l = 0; l < g.layers; ++l)
    map.layer_ids.push_back(g.layer_id(l));
  map.conv_max.assign(size_t(g.layers), 0.0);
  map.conv_count.assign(size_t(g.layers), 0);
  map.ssm_max.assign(size_t(g.layers) * size_t(g.num_v_heads), 0.0);
  map.ssm_count.assign(map.ssm_max.size(), 0);
  const size_t per_layer_conv = a.conv.size() / size_t(g.layers);
  for (size_t i = 0; i < a.conv.size(); ++i) {
    if (a.conv[i] == b.conv[i]) continue;
    const size_t l = i / per_layer_conv;
    map.conv_max[l] = std::max(map.conv_max[l], difference({a.conv[i], 2}, {b.conv[i], 2}));
    ++map.conv_count[l];
  }
  const int es = ssm_element_bytes(shape.ssm_dtype);
  const int64_t per_head = int64_t{g.head_k_dim} * g.head_v_dim;
  const int64_t elements = int64_t(a.ssm.size()) / es;
  for (int64_t e = 0; e < elements; ++e) {
    uint32_t va = 0, vb = 0;
    std::memcpy(&va, a.ssm.data() + e * es, es);
    std::memcpy(&vb, b.ssm.data() + e * es, es);
    if (va == vb) continue;
    const size_t cell = size_t(e / per_head);  // layer * heads + head
    map.ssm_max[cell] = std::max(map.ssm_max[cell], difference({va, es}, {vb, es}));
    ++map.ssm_count[cell];
  }
  return map;
}

std::vector<ElementDiff> diff_outputs(const VerifyOutputs& a, const VerifyOutputs& b,
                                      const ModelGeometry& g, size_t max) {
  if (a.values.size() != b.values.size() || a.tokens != b.tokens)
    return {size_difference("outputs", a.values.size(), b.values.size())};
  std::vector<ElementDiff> out;
  const int64_t per_layer = int64_t{g.num_v_heads} * g.head_v_dim;
  const int64_t per_token = g.layers * per_layer;
  for (size_t e = 0; e < a.values.size() && out.size() < max; ++e) {
    if (a.values[e] == b.values[e]) continue;
    const int64_t i = int64_t(e), task = i / (per_token * a.tokens),
                  token = i / per_token % a.tokens;
    const int64_t in_token = i % per_token;
    out.push_back({"outputs",
                   g.layer_id(int32_t(in_token / per_layer)),
                   "[batch " + std::to_string(task) + ", token " + std::to_string(token) +
                       ", head " + std::to_string(in_token % per_layer / g.head_v_dim) + ", v " +
                       std::to_string(in_token % g.head_v_dim) + "]",
                   {a.values[e], 2},
                   {b.values[e], 2},
                   i});
  }
  return out;
}

}  // namespace specstate
