#include "backends/registry.h"

#include "backends/cpu/cpu_backend.h"
#include "core/errors.h"

#if SPECSTATE_WITH_CUDA
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

std::vector<std::string> available_backends() {
  std::vector<std::string> names{"cpu"};
  if (cuda_available()) names.push_back("cuda");
  return names;
}

}  // namespace specstate
