// A state between its bytes (RowBytes, all layers) and NumPy arrays: ssm [layers, HV, K, V] in
// the pool dtype (float32, or uint16 bf16 bits), conv [layers, conv_dim, W-1] bf16 bits.
#pragma once

#include <pybind11/numpy.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/pool_shape.h"
#include "core/primitives.h"
#include "python/src/arrays.h"

namespace specstate::py_binding {

// The bytes move into the arrays, uncopied.
inline py::tuple state_arrays(RowBytes&& bytes, const ModelGeometry& g, SsmDtype dtype) {
  const bool f32 = dtype == SsmDtype::kF32;
  return py::make_tuple(
      adopt(std::move(bytes.ssm), f32 ? py::dtype("<f4") : py::dtype("<u2"), f32 ? 4 : 2,
            {g.layers, g.num_v_heads, g.head_k_dim, g.head_v_dim}),
      adopt(std::move(bytes.conv), {g.layers, g.conv_dim(), g.conv_state_cols()}));
}

// The bytes of a state given as arrays of `g`'s shapes; the pool dtype is the ssm array's
// (float32: f32, uint16: bf16). InputError for another dtype or shape.
inline std::pair<RowBytes, SsmDtype> state_bytes(
    const ModelGeometry& g, const py::array& ssm,
    const py::array_t<uint16_t, py::array::c_style | py::array::forcecast>& conv) {
  // array_t's check goes through NumPy's C API (PyArray_EquivTypes), which is stable across
  // NumPy versions; pybind11 < 2.12 reads dtype sizes from a struct NumPy 2 changed.
  SsmDtype dtype;
  if (py::array_t<float>::check_(ssm)) {
    dtype = SsmDtype::kF32;
  } else if (py::array_t<uint16_t>::check_(ssm)) {
    dtype = SsmDtype::kBF16;
  } else {
    throw InputError("ssm must be float32 (an f32 pool) or uint16 bf16 bits (a bf16 pool)");
  }
  const std::vector<py::ssize_t> ssm_shape = {g.layers, g.num_v_heads, g.head_k_dim, g.head_v_dim};
  const std::vector<py::ssize_t> conv_shape = {g.layers, g.conv_dim(), g.conv_state_cols()};
  if (!std::equal(ssm_shape.begin(), ssm_shape.end(), ssm.shape(), ssm.shape() + ssm.ndim()) ||
      ssm.ndim() != 4) {
    throw InputError("ssm must have shape [layers, HV, K, V] of the geometry");
  }
  if (conv.ndim() != 3 ||
      !std::equal(conv_shape.begin(), conv_shape.end(), conv.shape(), conv.shape() + 3)) {
    throw InputError("conv must have shape [layers, conv_dim, W-1] of the geometry");
  }
  const py::array contiguous = py::array::ensure(ssm, py::array::c_style);
  RowBytes bytes;
  bytes.conv.assign(conv.data(), conv.data() + conv.size());
  const auto* first = static_cast<const uint8_t*>(contiguous.data());
  bytes.ssm.assign(first, first + contiguous.size() * ssm_element_bytes(dtype));
  return {std::move(bytes), dtype};
}

}  // namespace specstate::py_binding
