// The other side of a prefill/decode handoff: the prefill instance, the same model at another
// tensor-parallel degree, played by the CPU reference. Each of its ranks prefills the request's
// first tokens from zero (the state after them is a function of the tokens alone, however the
// instance chunked them), and the receiving rank's state is gathered from theirs
// (core/reslice.h). Shared by the lanes of a replay: the lanes of a handoff event ask for the same
// states, which are computed once, under a lock, and kept until another handoff's are asked for
// (a whole model's state per handoff would otherwise pile up over a trace).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/pool_shape.h"
#include "core/primitives.h"
#include "core/strategy/plan.h"

namespace specstate::sim {

class HandoffSender {
 public:
  // The state the rank of `to` (its geometry and SSM dtype) receives for `call`, with inputs and
  // parameters from `seed`.
  RowBytes receive(const PoolShape& to, uint64_t seed, const HandoffCall& call);
  // Every sending rank's state after the request's first tokens (W-1 conv columns): what the
  // prefill instance sends, before the receiver reslices it.
  std::vector<RowBytes> sent_states(const PoolShape& to, uint64_t seed, const HandoffCall& call);

 private:
  const std::vector<RowBytes>& sent(const PoolShape& to, uint64_t seed, const HandoffCall& call);

  using Key = std::tuple<uint64_t, SsmDtype, std::string, std::vector<int32_t>, uint64_t, int64_t,
                         int32_t>;  // seed, dtype, preset, layers, request, length, from_tp
  std::mutex mutex_;
  std::optional<Key> key_;        // the last handoff asked for
  std::vector<RowBytes> states_;  // its sent states
};

// The geometry of rank `rank` of the sender at TP `from_tp` of the model `to` is a rank of (its
// layers; a custom geometry is one rank's heads, so its sender is itself at TP 1).
ModelGeometry sender_geometry(const ModelGeometry& to, int32_t from_tp, int32_t rank);

}  // namespace specstate::sim
