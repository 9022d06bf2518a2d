// The CPU reference backend: zero-initialised calloc storage (pages cost memory only once
// written), Eigen for parameters, and the canonical step of core/numerics/gdn_step.h called
// directly: head_column over groups of 8 V columns (one AVX2 vector, each lane one column).
#pragma once

#include <memory>

#include "backends/state_backend.h"

namespace specstate {

// Throws InputError when the CPU backend does not run geometry `g` (K and V multiples of 8,
// W <= 8).
void check_cpu_geometry(const ModelGeometry& g);

std::unique_ptr<StateBackend> make_cpu_backend(const PoolShape& shape, uint64_t seed);

}  // namespace specstate
