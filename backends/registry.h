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

// The one check of a backend name: InputError for a name that is neither "cpu" nor "cuda"
// ("unknown backend 'x'; did you mean 'cpu'? (known: cpu, cuda)").
void check_backend_name(std::string_view name);

// InputError unless make_backend(name) can make one here: an unknown name, "cuda" in a build
// without CUDA ("not built with CUDA") or with no device visible. Commands check their backends
// with it before they print anything.
void check_backend_available(std::string_view name);

// Throws InputError when backend `name` does not run geometry `g` (a custom geometry from a
// trace header): the backends' own checks, which their constructors also run.
void check_backend_geometry(std::string_view name, const ModelGeometry& g);
// Throws InputError when backend `name` cannot run a step of `tokens` tokens (pending + new) of
// geometry `g` in one launch (the CUDA kernels' shared memory).
void check_backend_step_tokens(std::string_view name, const ModelGeometry& g, int32_t tokens);

bool cuda_compiled();
// True when the CUDA backend is compiled in and a device is visible.
bool cuda_available();

// Names of the backends this build can run now ("cpu", plus "cuda" when available).
std::vector<std::string> available_backends();

// Bytes a backend's pools may take at most, and what bounds them (for messages):
//  - "cpu": physical memory, or less when the process's address-space limit (RLIMIT_AS,
//    `ulimit -v`) leaves less above what the process already maps;
//  - "cuda": free device memory (cudaMemGetInfo).
// bytes is -1 when unknown (no device, or not built with CUDA).
struct MemoryLimit {
  int64_t bytes = -1;
  std::string what;  // "physical memory", "address space left under ulimit -v", ...
};
MemoryLimit backend_memory_limit(std::string_view name);

}  // namespace specstate
