#include "core/geometry.h"

#include <cmath>

#include "core/errors.h"
#include "core/numerics/gdn_step.h"

namespace specstate {

const std::vector<PresetInfo>& presets() {
  constexpr RecurrenceKind kGdn = RecurrenceKind::kGatedDeltaNet;
  constexpr RecurrenceKind kKda = RecurrenceKind::kKimiDeltaAttention;
  static const std::vector<PresetInfo> table = {
      {"qwen3-next-80b-a3b", "Qwen3-Next-80B-A3B", kGdn, 36, 48, 16, 32, false},
      {"qwen3.5-397b-a17b", "Qwen3.5-397B-A17B", kGdn, 45, 60, 16, 64, false},
      {"qwen3.5-122b-a10b", "Qwen3.5-122B-A10B", kGdn, 36, 48, 16, 64, true},
      {"qwen3.5-35b-a3b", "Qwen3.5-35B-A3B", kGdn, 30, 40, 16, 32, false},
      {"qwen3.5-27b", "Qwen3.5-27B", kGdn, 48, 64, 16, 48, false},
      {"qwen3.5-9b", "Qwen3.5-9B", kGdn, 24, 32, 16, 32, true},
      {"qwen3.5-2b", "Qwen3.5-2B", kGdn, 18, 24, 16, 16, true},
      {"kimi-linear-48b-a3b", "Kimi-Linear-48B-A3B", kKda, 20, 27, 32, 32, true},
      {"tiny", "test geometry: 2 layers, H=2, HV=4, K=V=16", kGdn, 2, 2, 2, 4, false},
  };
  return table;
}

float ModelGeometry::query_scale() const {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_k_dim)));
}

ModelGeometry make_geometry(std::string_view preset, int32_t tp, int32_t rank) {
  for (const PresetInfo& p : presets()) {
    if (p.name != preset) continue;
    if (tp < 1) throw InputError("tensor-parallel degree must be >= 1, got " + std::to_string(tp));
    if (p.num_k_heads % tp != 0 || p.num_v_heads % tp != 0) {
      throw InputError("tensor-parallel degree " + std::to_string(tp) + " does not divide the " +
                       std::string(p.name) + " head counts (H=" + std::to_string(p.num_k_heads) +
                       ", HV=" + std::to_string(p.num_v_heads) + ")");
    }
    if (rank < 0 || rank >= tp) {
      throw InputError("rank " + std::to_string(rank) + " outside 0.." + std::to_string(tp - 1) +
                       " (tensor-parallel degree " + std::to_string(tp) + ")");
    }
    const bool tiny = p.name == "tiny";
    ModelGeometry g;
    g.preset = std::string(p.name);
    g.tp = tp;
    g.rank = rank;
    g.recurrence = p.recurrence;
    g.layers = p.gdn_layers;
    g.num_k_heads = p.num_k_heads / tp;
    g.num_v_heads = p.num_v_heads / tp;
    g.head_k_dim = tiny ? 16 : 128;
    g.head_v_dim = tiny ? 16 : 128;
    g.conv_width = 4;
    return g;
  }
  std::string known;
  for (const PresetInfo& p : presets())
    known += (known.empty() ? "" : ", ") + std::string(p.name);
  throw InputError("unknown preset '" + std::string(preset) + "' (known: " + known + ")");
}

ModelGeometry make_custom_geometry(int32_t layers, int32_t num_k_heads, int32_t num_v_heads,
                                   int32_t head_k_dim, int32_t head_v_dim, int32_t conv_width,
                                   int32_t conv_dim, RecurrenceKind recurrence) {
  auto check = [](const char* field, int32_t value, int32_t lo, int32_t hi) {
    if (value < lo || value > hi) {
      throw InputError("custom geometry: " + std::string(field) + " " + std::to_string(value) +
                       " outside " + std::to_string(lo) + ".." + std::to_string(hi));
    }
  };
  check("layers", layers, 1, 1024);
  check("H", num_k_heads, 1, 1024);
  check("HV", num_v_heads, 1, 4096);
  check("K", head_k_dim, 1, 1024);
  check("V", head_v_dim, 1, 1024);
  check("W", conv_width, 2, 64);
  if (num_v_heads % num_k_heads != 0) {
    throw InputError("custom geometry: HV " + std::to_string(num_v_heads) +
                     " is not a multiple of H " + std::to_string(num_k_heads));
  }
  if (head_k_dim % num::kChains != 0) {
    throw InputError("custom geometry: K " + std::to_string(head_k_dim) + " is not a multiple of " +
                     std::to_string(num::kChains) +
                     " (the reductions over K run as that many chains, docs/numerics.md)");
  }
  ModelGeometry g;
  g.preset = "custom";
  g.recurrence = recurrence;
  g.layers = layers;
  g.num_k_heads = num_k_heads;
  g.num_v_heads = num_v_heads;
  g.head_k_dim = head_k_dim;
  g.head_v_dim = head_v_dim;
  g.conv_width = conv_width;
  if (conv_dim > 0 && conv_dim != g.conv_dim()) {
    throw InputError("custom geometry: conv_dim " + std::to_string(conv_dim) +
                     " is not 2*H*K + HV*V = " + std::to_string(g.conv_dim()));
  }
  return g;
}

std::vector<int32_t> parse_layer_list(std::string_view text, int32_t layers) {
  std::vector<int32_t> ids;
  for (int64_t id : parse_index_list(text, layers, "--layers", "layer"))
    ids.push_back(int32_t(id));
  return ids;
}

ModelGeometry with_layers(ModelGeometry g, std::vector<int32_t> ids) {
  if (ids.empty()) return g;
  for (int32_t id : ids)
    SPECSTATE_ASSERT(id >= 0 && id < g.layers && g.layer_ids.empty(), "a layer of the model");
  g.layers = int32_t(ids.size());
  g.layer_ids = std::move(ids);
  return g;
}

namespace {

// "k head 0, i 6", or with_model "k head 0 = model head 2, i 6".
std::string conv_part(int64_t c, int64_t key_heads, int64_t k_dim, int64_t v_dim,
                      int64_t first_key_head, int64_t first_value_head, bool with_model) {
  const int64_t key_dim = key_heads * k_dim;
  const char* group = c < key_dim ? "q" : c < 2 * key_dim ? "k" : "v";
  const int64_t in_group = c < 2 * key_dim ? c % key_dim : c - 2 * key_dim;
  const int64_t dim = c < 2 * key_dim ? k_dim : v_dim;
  const int64_t head = in_group / dim;
  std::string text = std::string(group) + " head " + std::to_string(head);
  if (with_model) {
    const int64_t first = c < 2 * key_dim ? first_key_head : first_value_head;
    text += " = model head " + std::to_string(first + head);
  }
  return text + ", i " + std::to_string(in_group % dim);
}

}  // namespace

std::string conv_channel_text(int64_t c, int64_t key_heads, int64_t k_dim, int64_t v_dim) {
  return "channel " + std::to_string(c) + " (" +
         conv_part(c, key_heads, k_dim, v_dim, 0, 0, false) + ")";
}

std::string conv_channel_text(const ModelGeometry& g, int64_t c) {
  return "channel " + std::to_string(c) + " (" +
         conv_part(c, g.num_k_heads, g.head_k_dim, g.head_v_dim, int64_t{g.rank} * g.num_k_heads,
                   int64_t{g.rank} * g.num_v_heads, g.tp > 1) +
         ")";
}

std::string value_head_text(const ModelGeometry& g, int64_t hv) {
  std::string text = "head " + std::to_string(hv);
  if (g.tp > 1) text += " = model head " + std::to_string(int64_t{g.rank} * g.num_v_heads + hv);
  return text;
}

}  // namespace specstate
