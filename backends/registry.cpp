#include "backends/registry.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "backends/cpu/cpu_backend.h"
#include "core/errors.h"
#include "core/suggest.h"

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

void check_backend_name(std::string_view name) {
  if (name != "cpu" && name != "cuda")
    throw InputError("unknown backend '" + std::string(name) + "'" +
                     did_you_mean(name, {"cpu", "cuda"}) + " (known: cpu, cuda)");
}

void check_backend_available(std::string_view name) {
  check_backend_name(name);
  if (name != "cuda") return;
#if SPECSTATE_WITH_CUDA
  if (cuda_device_count() == 0) throw InputError("backend 'cuda': no CUDA device is visible");
#else
  throw InputError("backend 'cuda': specstate was not built with CUDA (SPECSTATE_WITH_CUDA=OFF)");
#endif
}

std::unique_ptr<StateBackend> make_backend(std::string_view name, const PoolShape& shape,
                                           uint64_t seed) {
  check_backend_available(name);
  if (name == "cpu") return make_cpu_backend(shape, seed);
#if SPECSTATE_WITH_CUDA
  return make_cuda_backend(shape, seed);
#else
  SPECSTATE_ASSERT(false, "check_backend_available refuses cuda in a build without CUDA");
#endif
}

void check_backend_geometry(std::string_view name, const ModelGeometry& g) {
  check_backend_name(name);
  if (name == "cpu") check_cpu_geometry(g);
#if SPECSTATE_WITH_CUDA
  if (name == "cuda") check_cuda_geometry(g);
#endif
}

void check_backend_step_tokens(std::string_view name, const ModelGeometry& g, int32_t tokens) {
  check_backend_name(name);
#if SPECSTATE_WITH_CUDA
  if (name == "cuda") check_cuda_step_tokens(g, tokens);
#else
  (void)g;
  (void)tokens;
#endif
}

namespace {

// Bytes the process maps now (the first field of /proc/self/statm, in pages); -1 if unknown.
int64_t mapped_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return -1;
  long long pages = -1;
  const bool read = std::fscanf(f, "%lld", &pages) == 1;
  std::fclose(f);
  return read ? pages * sysconf(_SC_PAGE_SIZE) : -1;
}

MemoryLimit cpu_memory_limit() {
  MemoryLimit limit;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) limit = {int64_t{pages} * page, "physical memory"};
  // Under `ulimit -v` an allocation fails long before physical memory runs out.
  rlimit as{};
  const int64_t mapped = mapped_bytes();
  if (getrlimit(RLIMIT_AS, &as) != 0 || as.rlim_cur == RLIM_INFINITY || mapped < 0) return limit;
  const int64_t left = std::max<int64_t>(0, int64_t(as.rlim_cur) - mapped);
  if (limit.bytes < 0 || left < limit.bytes)
    limit = {left, "address space left under the process's limit (ulimit -v)"};
  return limit;
}

}  // namespace

MemoryLimit backend_memory_limit(std::string_view name) {
  if (name == "cpu") return cpu_memory_limit();
#if SPECSTATE_WITH_CUDA
  size_t free_bytes = 0, total_bytes = 0;
  if (name == "cuda" && cuda_device_count() > 0 &&
      cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
    return {int64_t(free_bytes), "free device memory"};
  }
#endif
  return {};
}

std::vector<std::string> available_backends() {
  std::vector<std::string> names{"cpu"};
  if (cuda_available()) names.push_back("cuda");
  return names;
}

}  // namespace specstate
