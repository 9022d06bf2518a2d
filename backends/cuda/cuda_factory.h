// The CUDA backend's factory and capability queries: a plain C++ header (no CUDA header), so that
// the registry and programs built without nvcc can name it. backends/cuda/cuda_backend.h
// declares the class itself for code that also talks to the CUDA runtime (benchmarks, device
// tests).
#pragma once

#include <cstdint>
#include <memory>

#include "backends/state_backend.h"

namespace specstate {

// Number of visible CUDA devices; 0 when there is no device or no driver (never an error).
int cuda_device_count();

// Free memory of the current device in bytes; -1 without a device or when it cannot be read.
int64_t cuda_free_bytes();

// Throws InputError when the kernels do not run geometry `g` (K = V = 16 or 128, W = 4).
void check_cuda_geometry(const ModelGeometry& g);

// Throws InputError when a step of `tokens` tokens (pending + new) of geometry `g` does not fit
// the current device's shared memory per block; nothing without a device.
void check_cuda_step_tokens(const ModelGeometry& g, int32_t tokens);

// A CUDA backend on the current device. Throws InputError for a geometry the kernels do not
// support (check_cuda_geometry).
std::unique_ptr<StateBackend> make_cuda_backend(const PoolShape& shape, uint64_t seed);

// Waits for all device work and aborts with a message if any CUDA error is pending (tests call
// it in TearDown so that an asynchronous kernel fault is attributed to the test that caused it).
void cuda_synchronize_checked();

}  // namespace specstate
