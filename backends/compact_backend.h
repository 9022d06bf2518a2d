// Storage for the rows a trace touches. An engine's pool has pool_rows rows and its strategy's
// regions (draft rows, scratch, payload slots) sized for max_requests, but a trace recorded from
// it may touch a handful: recording.md's example names 4 of Qwen3-Next's 256 pool rows, whose
// full layouts need 223 GiB for the five strategies.
//
// A compact backend answers to the full shape (rows and slots keep the engine's numbers, every
// check and report uses them) and keeps only the stored rows and slots, in an inner backend of
// the same kind sized for them: stored row i of the list is inner row i. A row outside the
// list reads as the zero state, as a never-written row of the full pool would; a primitive that
// names one is a broken invariant (the list came from the same plans) and aborts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/state_backend.h"

namespace specstate {

struct StoredRows {
  std::vector<int32_t> rows;   // ascending, distinct, inside the full shape's state rows
  std::vector<int32_t> slots;  // ascending, distinct, inside its payload slots
};

// The shape the inner backend allocates: `full` with only the stored rows and slots.
PoolShape stored_shape(const PoolShape& full, const StoredRows& stored);

// A backend of `kind` ("cpu" | "cuda", backends/registry.h) over `full` that stores `stored`.
std::unique_ptr<StateBackend> make_compact_backend(const std::string& kind, const PoolShape& full,
                                                   StoredRows stored, uint64_t seed);

}  // namespace specstate
