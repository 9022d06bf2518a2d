// The process's mapped address space (VmSize of /proc/self/status): the witness of what a CPU
// backend allocated. Its pools are anonymous mappings (backends/cpu/cpu_backend.cpp) and its
// parameters come from malloc, which maps large blocks and grows the heap for small ones, so
// everything a constructor allocates shows here, rounded to pages.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace specstate::bench {

inline int64_t mapped_bytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmSize:") {
      int64_t kib = 0;
      status >> kib;
      return kib * 1024;
    }
    status.ignore(1 << 20, '\n');
  }
  return -1;
}

}  // namespace specstate::bench
