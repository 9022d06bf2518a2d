// Backends by name: a table with one entry per backend, the only place that knows whether the
// CUDA backend was compiled in. A new backend is an entry in registry.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/state_backend.h"

namespace specstate {

// Bytes a backend's pools may take at most, and what bounds them (for messages). bytes is -1
// when unknown (no device, or not built).
struct MemoryLimit {
  int64_t bytes = -1;
  std::string what;  // "physical memory", "address space left under ulimit -v", ...
};

// One backend: what it is called, whether it runs here, how one is made and what it runs.
struct BackendEntry {
  std::string_view name;  // "cpu", "cuda"
  bool built = true;      // compiled into this build
  // Why this build cannot make one here ("specstate was not built with CUDA ...", "no CUDA
  // device is visible"); empty when it can.
  std::string (*unavailable)() = nullptr;
  // A backend over `shape` (call only when available()). InputError for a geometry it does not
  // run.
  std::unique_ptr<StateBackend> (*make)(const PoolShape& shape, uint64_t seed) = nullptr;
  // InputError when it does not run geometry `g` (a custom geometry from a trace header): the
  // backend's own checks, which its constructor also runs.
  void (*check_geometry)(const ModelGeometry& g) = nullptr;
  // InputError when it cannot run a step of `tokens` tokens (pending + new) of geometry `g` in
  // one launch (the CUDA kernels' shared memory).
  void (*check_step_tokens)(const ModelGeometry& g, int32_t tokens) = nullptr;
  // The most its pools may take: for "cpu" physical memory, or less when the process's
  // address-space limit (RLIMIT_AS, `ulimit -v`) leaves less above what the process already
  // maps; for "cuda" the device's free memory (cudaMemGetInfo).
  MemoryLimit (*memory_limit)() = nullptr;

  bool available() const { return unavailable().empty(); }
  // InputError ("backend 'cuda': no CUDA device is visible") unless available(). Commands
  // check their backends with it before they print anything.
  void check_available() const;
};

// Every backend this build names, available here or not ("cpu", "cuda").
const std::vector<BackendEntry>& backend_entries();
// The entry of `name`; InputError for any other name ("unknown backend 'x'; did you mean
// 'cpu'? (known: cpu, cuda)").
const BackendEntry& backend_entry(std::string_view name);

// Shorthands for a backend known by name.
// The entry's backend; InputError for an unknown name or one not available here.
std::unique_ptr<StateBackend> make_backend(std::string_view name, const PoolShape& shape,
                                           uint64_t seed);
// InputError for an unknown name.
void check_backend_name(std::string_view name);
MemoryLimit backend_memory_limit(std::string_view name);
bool cuda_compiled();
// True when the CUDA backend is compiled in and a device is visible.
bool cuda_available();
// Names of the backends this build can run now ("cpu", plus "cuda" when available).
std::vector<std::string> available_backends();

}  // namespace specstate
