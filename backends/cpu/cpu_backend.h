// The CPU reference backend: zero-initialised calloc storage (pages cost memory only once
// written), Eigen for parameters, the canonical step of
// core/numerics/gdn_step.h vectorised across the V columns of each head (each SIMD lane is one
// column accumulating over K in ascending order, exactly gdn_column's sequence).
#pragma once

#include <memory>

#include "backends/state_backend.h"

namespace specstate {

std::unique_ptr<StateBackend> make_cpu_backend(const PoolShape& shape, uint64_t seed);

}  // namespace specstate
