#include "sim/plan_executor.h"

#include <type_traits>

#include "core/errors.h"

namespace specstate::sim {

namespace {

// Host transfers evaluate their guard when they run (they wait for the device anyway).
bool runs(const StateBackend& backend, const Guard& g) {
  return g.is_none() || backend.accepted(g.req_row) == g.count;
}

}  // namespace

void execute(const Plan& plan, StateBackend& backend, SwapSpace& swap) {
  for (const PlanCall& call : plan) {
    std::visit(
        [&](const auto& c) {
          using C = std::decay_t<decltype(c)>;
          if constexpr (requires { c.guard; }) {
            if (!runs(backend, c.guard)) return;
          }
          if constexpr (std::is_same_v<C, PrefillCall>) {
            backend.prefill(c.tasks);
          } else if constexpr (std::is_same_v<C, VerifyCall>) {
            backend.verify(c.mode, c.tasks);
          } else if constexpr (std::is_same_v<C, ReplayCall>) {
            backend.replay(c.tasks);
          } else if constexpr (std::is_same_v<C, CopyCall>) {
            backend.copy_rows(c.copies);
          } else if constexpr (std::is_same_v<C, GatherCall>) {
            backend.gather_payload(c.gathers);
          } else if constexpr (std::is_same_v<C, SwapOutCall>) {
            swap.saved[c.request] = backend.read_state(c.loc);
            swap.saved_from[c.request] = c.loc.ssm_row;
            swap.digests[c.request] = backend.digest_state(c.loc);
          } else if constexpr (std::is_same_v<C, SwapInCall>) {
            auto it = swap.saved.find(c.request);
            SPECSTATE_ASSERT(it != swap.saved.end(), "swap-in of a request that was swapped out");
            backend.write_state(c.row, it->second);
            swap.saved.erase(it);
            swap.saved_from.erase(c.request);
            swap.digests.erase(c.request);
          } else if constexpr (std::is_same_v<C, DropSavedCall>) {
            swap.saved.erase(c.request);
            swap.saved_from.erase(c.request);
            swap.digests.erase(c.request);
          } else if constexpr (std::is_same_v<C, FillCall>) {
            for (size_t i = 0; i < c.rows.size(); ++i) {
              if (runs(backend, c.guards[i])) backend.fill_row(c.rows[i], c.byte);
            }
          } else if constexpr (std::is_same_v<C, AcceptCall>) {
            backend.set_accepted(c.counts);
          }
        },
        call);
  }
}

}  // namespace specstate::sim
