// The one element-by-element difference of states and of verify outputs, shared by the
// simulator's reports, the dump's check and the differential tests: which elements differ,
// named by tensor, model layer and index, with both values' bits and numbers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backends/state_backend.h"

namespace specstate {

// One stored element: its bits, and their value.
struct ElementValue {
  uint32_t bits = 0;         // bf16 in the low 16 bits, or fp32
  int32_t bytes = 0;         // 2 (bf16) or 4 (fp32); 0: no element (sizes that differ)
  double value() const;      // exact: bf16 and fp32 widen to double without rounding
  std::string hex() const;   // "0x3c98", "0x3f800000"
  std::string text() const;  // "0x3c98 (0.0185546875)"
};

struct ElementDiff {
  std::string tensor;  // "conv" | "ssm" | "outputs"
  int32_t layer = 0;   // the model's layer index
  std::string index;   // "[channel 17, col 2]", "[head 3, k 5, v 9]", "[batch 0, token 1, ...]"
  ElementValue a, b;
  int64_t element = 0;       // flat index in the tensor (all layers; outputs: all tasks)
  std::string text() const;  // "ssm layer 0 [head 3, k 5, v 9]: 0x... (...) vs 0x... (...)"
};

// The first `max` differing elements of two states of `shape` (conv first, then SSM; the conv
// columns the RowBytes hold, W-1 or all). Sizes that differ give one entry saying so.
std::vector<ElementDiff> diff_states(const RowBytes& a, const RowBytes& b, const PoolShape& shape,
                                     size_t max);

// Where two states differ, for a picture (the HTML report's heat map): per layer of the state
// and SSM value head, the largest |a - b| and the number of differing elements; the conv window
// per layer. A NaN against a number counts as an infinite difference.
struct DiffMap {
  std::vector<int32_t> layer_ids;  // the model's layer index of each layer of the state
  int32_t heads = 0;               // SSM value heads per layer
  std::vector<double> ssm_max;     // [layer * heads + head]
  std::vector<int64_t> ssm_count;
  std::vector<double> conv_max;  // [layer]
  std::vector<int64_t> conv_count;
};

// Empty vectors for states whose sizes differ.
DiffMap diff_map(const RowBytes& a, const RowBytes& b, const PoolShape& shape);

// The first `max` differing per-token outputs ([task, token, layer, head, v]).
std::vector<ElementDiff> diff_outputs(const VerifyOutputs& a, const VerifyOutputs& b,
                                      const ModelGeometry& g, size_t max);

}  // namespace specstate
