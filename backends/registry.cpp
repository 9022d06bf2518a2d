#include "backends/registry.h"

#include <unistd.h>

#include "backends/cpu/cpu_backend.h"
#include "core/errors.h"

#if SPECSTATE_WITH_CUDA
#include <cuda_runtime_api.h>

#include "backends/cuda/cuda_backend.h"
#endif

namespace specstate {

bool cuda_compiled() {
  return SPECSTATE_WITH_CUDA != 0;
}

bool cuda_available() {
#if SPECSTATE_WITH_CUDA
  return cuda_device_count() > 0;
#else
  return false;
#endif
}

std::unique_ptr<StateBackend> make_backend(std::string_view name, const PoolShape& shape,
                                           uint64_t seed) {
  if (name == "cpu") return make_cpu_backend(shape, seed);
  if (name == "cuda") {
#if SPECSTATE_WITH_CUDA
    if (cuda_device_count() == 0) throw InputError("backend 'cuda': no CUDA device is visible");
    return make_cuda_backend(shape, seed);
#else
    throw InputError("backend 'cuda': specstate was not built with CUDA (SPECSTATE_WITH_CUDA=OFF)");
#endif
  }
  throw InputError("unknown backend '" + std::string(name) + "' (known: cpu, cuda)");
}

int64_t backend_memory_bytes(std::string_view name) {
  if (name == "cpu") {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? int64_t{pages} * page : -1;
  }
#if SPECSTATE_WITH_CUDA
  size_t free_bytes = 0, total_bytes = 0;
  if (name == "cuda" && cuda_device_count() > 0 &&
      cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
    return int64_t(free_bytes);
  }
#endif
  return -1;
}

std::vector<std::string> available_backends() {
  std::vector<std::string> names{"cpu"};
  if (cuda_available()) names.push_back("cuda");
  return names;
}

}  // namespace specstate
