#include "backends/registry.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "backends/cpu/cpu_backend.h"
#include "core/errors.h"
#include "core/suggest.h"

#if SPECSTATE_WITH_CUDA
#include "backends/cuda/cuda_factory.h"
#endif

namespace specstate {
namespace {

std::string always_available() {
  return "";
}

void runs_every_step(const ModelGeometry&, int32_t) {}

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

BackendEntry cpu_entry() {
  return {
      .name = "cpu",
      .unavailable = always_available,
      .make = make_cpu_backend,
      .check_geometry = check_cpu_geometry,
      .check_step_tokens = runs_every_step,
      .memory_limit = cpu_memory_limit,
  };
}

#if SPECSTATE_WITH_CUDA
BackendEntry cuda_entry() {
  return {
      .name = "cuda",
      .unavailable = []() -> std::string {
        return cuda_device_count() > 0 ? "" : "no CUDA device is visible";
      },
      .make = make_cuda_backend,
      .check_geometry = check_cuda_geometry,
      .check_step_tokens = check_cuda_step_tokens,
      .memory_limit =
          [] {
            const int64_t free = cuda_free_bytes();
            return free < 0 ? MemoryLimit{} : MemoryLimit{free, "free device memory"};
          },
  };
}
#else
// A build without CUDA still names the backend, to say why it cannot make one.
BackendEntry cuda_entry() {
  return {
      .name = "cuda",
      .built = false,
      .unavailable = []() -> std::string {
        return "specstate was not built with CUDA (SPECSTATE_WITH_CUDA=OFF)";
      },
      .make = [](const PoolShape&, uint64_t) -> std::unique_ptr<StateBackend> {
        SPECSTATE_ASSERT(false, "make_backend checks that a backend is available");
      },
      .check_geometry = [](const ModelGeometry&) {},
      .check_step_tokens = runs_every_step,
      .memory_limit = [] { return MemoryLimit{}; },
  };
}
#endif

}  // namespace

void BackendEntry::check_available() const {
  const std::string why = unavailable();
  if (!why.empty()) throw InputError("backend '" + std::string(name) + "': " + why);
}

const std::vector<BackendEntry>& backend_entries() {
  static const std::vector<BackendEntry> entries = {cpu_entry(), cuda_entry()};
  return entries;
}

const BackendEntry& backend_entry(std::string_view name) {
  std::vector<std::string_view> names;
  std::string known;
  for (const BackendEntry& e : backend_entries()) {
    if (e.name == name) return e;
    names.push_back(e.name);
    known += (known.empty() ? "" : ", ") + std::string(e.name);
  }
  throw InputError("unknown backend '" + std::string(name) + "'" + did_you_mean(name, names) +
                   " (known: " + known + ")");
}

std::unique_ptr<StateBackend> make_backend(std::string_view name, const PoolShape& shape,
                                           uint64_t seed) {
  const BackendEntry& entry = backend_entry(name);
  entry.check_available();
  return entry.make(shape, seed);
}

void check_backend_name(std::string_view name) {
  backend_entry(name);
}

MemoryLimit backend_memory_limit(std::string_view name) {
  return backend_entry(name).memory_limit();
}

bool cuda_compiled() {
  return backend_entry("cuda").built;
}

bool cuda_available() {
  return backend_entry("cuda").available();
}

std::vector<std::string> available_backends() {
  std::vector<std::string> names;
  for (const BackendEntry& e : backend_entries()) {
    if (e.available()) names.emplace_back(e.name);
  }
  return names;
}

}  // namespace specstate
