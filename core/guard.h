// The one evaluation of a task's guard (core/primitives.h, Guard) against a backend's table of
// accepted counts, on the host (CPU backend, host transfers) and on the device (CUDA kernels).
#pragma once

#include <cstdint>

#include "core/numerics/hd.h"

namespace specstate {

// accepted: [request_rows] int32. A guard with req_row < 0 always passes.
SPECSTATE_HD inline bool guard_passes(const int32_t* accepted, int32_t req_row, int32_t count) {
  return req_row < 0 || accepted[req_row] == count;
}

}  // namespace specstate
