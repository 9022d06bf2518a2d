// NumPy arrays over C++ vectors without a copy: the vector moves into a capsule that the array
// owns. bf16 values travel as uint16 bit patterns (NumPy has no bf16); the Python layer
// (python/specstate/_tensors.py) turns them into float32 where asked.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

namespace specstate::py_binding {

namespace py = pybind11;

// `values` as an array of `dtype` (elements of `item_bytes` bytes) and `shape`, C order. The
// strides are given, not left to pybind11: before 2.12 it reads the element size from NumPy's
// dtype struct, whose layout NumPy 2 changed.
template <class T>
py::array adopt(std::vector<T>&& values, const py::dtype& dtype, py::ssize_t item_bytes,
                std::vector<py::ssize_t> shape) {
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t stride = item_bytes;
  for (size_t d = shape.size(); d-- > 0;) {
    strides[d] = stride;
    stride *= shape[d];
  }
  auto* owned = new std::vector<T>(std::move(values));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array(dtype, std::move(shape), std::move(strides), owned->data(), owner);
}

template <class T>
py::array adopt(std::vector<T>&& values, std::vector<py::ssize_t> shape) {
  return adopt(std::move(values), py::dtype::of<T>(), sizeof(T), std::move(shape));
}

}  // namespace specstate::py_binding
