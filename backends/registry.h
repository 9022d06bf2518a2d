// Backends by name. The only place that knows whether the CUDA backend was compiled in.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/state_backend.h"

namespace specstate {

// "cpu" or "cuda". Throws InputError for an unknown name, for "cuda" in a build without CUDA
// ("not built with CUDA") and for "cuda" when no device is present.
std::unique_ptr<StateBackend> make_backend(std::string_view name, const PoolShape& shape,
                                           uint64_t seed);

bool cuda_compiled();
// True when the CUDA backend is compiled in and a device is visible.
bool cuda_available();

// Names of the backends this build can run now ("cpu", plus "cuda" when available).
std::vector<std::string> available_backends();

// Bytes a backend's pools may take at most: physical memory for "cpu", free device memory
// (cudaMemGetInfo) for "cuda"; -1 when unknown (no device, or not built with CUDA).
int64_t backend_memory_bytes(std::string_view name);

}  // namespace specstate
