// Checks for every CUDA runtime call and every kernel launch. A CUDA error leaves the context in
// an unknown state, so the only safe reaction is to report the failing expression and abort.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

namespace specstate::cuda {

[[noreturn]] inline void cuda_fail(cudaError_t error, const char* expression, const char* file,
                                   int line) {
  std::fprintf(stderr, "CUDA error %s (%s) in %s at %s:%d\n", cudaGetErrorName(error),
               cudaGetErrorString(error), expression, file, line);
  std::abort();
}

}  // namespace specstate::cuda

#define CUDA_CHECK(expr)                                                              \
  do {                                                                                \
    const cudaError_t specstate_cuda_error_ = (expr);                                 \
    if (specstate_cuda_error_ != cudaSuccess) {                                       \
      ::specstate::cuda::cuda_fail(specstate_cuda_error_, #expr, __FILE__, __LINE__); \
    }                                                                                 \
  } while (0)

// After every <<<...>>>: catches bad launch configurations at once (faults inside the kernel
// surface at the next synchronising call, which is checked too).
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
