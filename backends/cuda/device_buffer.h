// An owning device allocation (cudaMalloc / cudaFree) of `count` elements of T. Plain C++ over
// the CUDA runtime API, usable from .cpp files (benchmarks, tests) and .cu files alike.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <span>
#include <utility>

namespace specstate::cuda {

void* device_alloc(size_t bytes);  // aborts with the CUDA error on failure
void device_free(void* ptr);

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) { resize_discard(count); }
  ~DeviceBuffer() { device_free(ptr_); }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(count_, o.count_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Reallocates (contents lost) when more than the current capacity is asked for.
  void resize_discard(size_t count) {
    if (count <= count_) return;
    device_free(ptr_);
    ptr_ = static_cast<T*>(device_alloc(count * sizeof(T)));
    count_ = count;
  }
  T* data() const { return ptr_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

}  // namespace specstate::cuda
