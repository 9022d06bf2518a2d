#include "sim/handoff.h"

#include <algorithm>

#include <tbb/task_arena.h>

#include "backends/registry.h"
#include "core/errors.h"
#include "core/reslice.h"

namespace specstate::sim {

ModelGeometry sender_geometry(const ModelGeometry& to, int32_t from_tp, int32_t rank) {
  if (to.preset == "custom") {
    SPECSTATE_ASSERT(from_tp == 1 && rank == 0, "a custom geometry's sender is one rank (TP 1)");
    return to;
  }
  return with_layers(make_geometry(to.preset, from_tp, rank), to.layer_ids);
}

const std::vector<RowBytes>& HandoffSender::sent(const PoolShape& to, uint64_t seed,
                                                 const HandoffCall& call) {
  const ModelGeometry& g = to.geometry;
  const Key key{seed, to.ssm_dtype, g.preset, g.layer_ids, call.request, call.length, call.from_tp};
  if (key_ == key) return states_;
  key_.reset();
  states_.clear();
  std::vector<RowBytes> states;
  for (int32_t rank = 0; rank < call.from_tp; ++rank) {
    PoolShape shape;
    shape.geometry = sender_geometry(g, call.from_tp, rank);
    shape.ssm_dtype = to.ssm_dtype;
    shape.state_rows = 1;
    shape.conv_cols = shape.geometry.conv_state_cols();
    shape.payload_tokens = 1;
    const std::unique_ptr<StateBackend> sender = make_backend("cpu", shape, seed);
    for (int64_t done = 0; done < call.length;) {  // in prefills of at most 2^24 tokens
      const int32_t n = int32_t(std::min<int64_t>(call.length - done, int64_t{1} << 24));
      PrefillTask prefill;
      prefill.tokens = {call.request, done, n};
      prefill.from_zero = done == 0;
      prefill.from = StateLoc::at(0);
      prefill.writes = {{n, 0}};
      sender->prefill({&prefill, 1});
      done += n;
    }
    states.push_back(sender->read_state(StateLoc::at(0)));
  }
  key_ = key;
  states_ = std::move(states);
  return states_;
}

// The lanes of a replay call these from TBB tasks, and the lock is held across the sender's
// prefill, whose CPU backend runs parallel loops. Waiting for its own loop's tasks, a thread may be
// handed any task of the arena, among them another lane's, which asks for the lock this thread
// already holds: a self-deadlock (1 run in 5 of the CUDA handoff test on a 16-core machine).
// Isolated, the waiting thread runs only the work it spawned under the lock.
std::vector<RowBytes> HandoffSender::sent_states(const PoolShape& to, uint64_t seed,
                                                 const HandoffCall& call) {
  const std::lock_guard<std::mutex> lock(mutex_);
  return tbb::this_task_arena::isolate([&] { return sent(to, seed, call); });
}

RowBytes HandoffSender::receive(const PoolShape& to, uint64_t seed, const HandoffCall& call) {
  const std::lock_guard<std::mutex> lock(mutex_);
  return tbb::this_task_arena::isolate([&] {
    const std::vector<RowBytes>& states = sent(to, seed, call);
    return reslice_state(to.geometry, sender_geometry(to.geometry, call.from_tp, 0), states,
                         to.ssm_dtype, call.conv);
  });
}

}  // namespace specstate::sim
