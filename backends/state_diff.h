// The one element-by-element difference of states and of verify outputs, shared by the
// simulator's reports, the dump's check and the differential tests: which elements differ,
// named by tensor, model layer and index, with both values in hex and decimal.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backends/state_backend.h"

namespace specstate {

struct ElementDiff {
  std::string tensor;  // "conv" | "ssm" | "outputs"
  int32_t layer = 0;   // the model's layer index
  std::string index;   // "[channel 17, col 2]", "[head 3, k 5, v 9]", "[batch 0, token 1, ...]"
  std::string value_a, value_b;  // hex and decimal
  int64_t element = 0;           // flat index in the tensor (all layers; outputs: all tasks)
  std::string text() const;      // "ssm layer 0 [head 3, k 5, v 9]: 0x... (...) vs 0x... (...)"
};

// The first `max` differing elements of two states of `shape` (conv first, then SSM; the conv
// columns the RowBytes hold, W-1 or all). Sizes that differ give one entry saying so.
std::vector<ElementDiff> diff_states(const RowBytes& a, const RowBytes& b, const PoolShape& shape,
                                     size_t max);

// The first `max` differing per-token outputs ([task, token, layer, head, v]).
std::vector<ElementDiff> diff_outputs(const VerifyOutputs& a, const VerifyOutputs& b,
                                      const ModelGeometry& g, size_t max);

}  // namespace specstate
