#include "sim/plan_executor.h"

#include <algorithm>
#include <variant>

#include "core/errors.h"

namespace specstate::sim {

namespace {

// Host transfers evaluate their guard when they run (they wait for the device anyway).
bool runs(const StateBackend& backend, const Guard& g) {
  return g.is_none() || backend.accepted(g.req_row) == g.count;
}

// One function per call type: std::visit over them does not compile while a type has none.
void run(const PrefillCall& c, StateBackend& backend, SwapSpace&) {
  backend.prefill(c.tasks);
}
void run(const VerifyCall& c, StateBackend& backend, SwapSpace&) {
  backend.verify(c.mode, c.tasks);
}
void run(const ReplayCall& c, StateBackend& backend, SwapSpace&) {
  backend.replay(c.tasks);
}
void run(const CopyCall& c, StateBackend& backend, SwapSpace&) {
  backend.copy_rows(c.tasks);
}
void run(const GatherCall& c, StateBackend& backend, SwapSpace&) {
  backend.gather_payload(c.tasks);
}
void run(const FillCall& c, StateBackend& backend, SwapSpace&) {
  for (const RowFill& t : c.tasks) {
    if (runs(backend, t.guard)) backend.fill_row(t.row, c.byte);
  }
}
void run(const AcceptCall& c, StateBackend& backend, SwapSpace&) {
  backend.set_accepted(c.counts);
}
void run(const SwapOutCall& c, StateBackend& backend, SwapSpace& swap) {
  if (!runs(backend, c.guard)) return;
  swap.saved[c.request] = backend.read_state(c.loc);
  swap.saved_from[c.request] = c.loc.ssm_row;
  swap.digests[c.request] = backend.digest_state(c.loc);
}
void forget(uint64_t request, SwapSpace& swap) {
  swap.saved.erase(request);
  swap.saved_from.erase(request);
  swap.digests.erase(request);
}
void run(const SwapInCall& c, StateBackend& backend, SwapSpace& swap) {
  if (!runs(backend, c.guard)) return;
  const auto it = swap.saved.find(c.request);
  SPECSTATE_ASSERT(it != swap.saved.end(), "swap-in of a request that was swapped out");
  backend.write_state(c.row, it->second);
  forget(c.request, swap);
}
void run(const DropSavedCall& c, StateBackend& backend, SwapSpace& swap) {
  if (runs(backend, c.guard)) forget(c.request, swap);
}
void run(const OffloadCall& c, StateBackend& backend, SwapSpace& swap) {
  swap.slots[c.slot] = backend.read_state(StateLoc::at(c.row));
  swap.slot_digests[c.slot] = backend.digest_state(StateLoc::at(c.row));
}
void run(const RestoreCall& c, StateBackend& backend, SwapSpace& swap) {
  const auto it = swap.slots.find(c.slot);
  SPECSTATE_ASSERT(it != swap.slots.end(), "restore of a host slot no offload filled");
  if (c.layers < 0) {
    backend.write_state(c.row, it->second);
    return;
  }
  // Part of the layers: the row as it is, those layers replaced by the slot's.
  const size_t layers = size_t(backend.shape().geometry.layers);
  SPECSTATE_ASSERT(c.first_layer >= 0 && size_t(c.first_layer + c.layers) <= layers,
                   "a partial restore names the row's layers");
  RowBytes state = backend.read_state(StateLoc::at(c.row));
  const size_t conv = state.conv.size() / layers, ssm = state.ssm.size() / layers;
  const size_t first = size_t(c.first_layer), count = size_t(c.layers);
  std::copy_n(it->second.conv.begin() + first * conv, count * conv,
              state.conv.begin() + first * conv);
  std::copy_n(it->second.ssm.begin() + first * ssm, count * ssm, state.ssm.begin() + first * ssm);
  backend.write_state(c.row, state);
}

void run(const HandoffCall& c, StateBackend& backend, SwapSpace& swap) {
  if (!swap.sender) swap.sender = std::make_shared<HandoffSender>();
  backend.write_state(c.row, swap.sender->receive(backend.shape(), backend.seed(), c));
}

}  // namespace

void execute(const Plan& plan, StateBackend& backend, SwapSpace& swap) {
  for (const PlanCall& call : plan)
    std::visit([&](const auto& c) { run(c, backend, swap); }, call);
}

}  // namespace specstate::sim
