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

// `values` as an array of `dtype` and `shape` (C order); the element size of `dtype` times the
// element count must be the vector's size in bytes.
template <class T>
py::array adopt(std::vector<T>&& values, const py::dtype& dtype, std::vector<py::ssize_t> shape) {
  auto* owned = new std::vector<T>(std::move(values));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array(dtype, std::move(shape), owned->data(), owner);
}

template <class T>
py::array adopt(std::vector<T>&& values, std::vector<py::ssize_t> shape) {
  return adopt(std::move(values), py::dtype::of<T>(), std::move(shape));
}

}  // namespace specstate::py_binding
