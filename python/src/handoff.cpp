// Both sides of a prefill/decode handoff for an engine's adapter: the states the prefill
// instance's ranks send (the CPU reference, sim/handoff.h) and the reference's reslicing of
// them to a receiving rank (core/reslice.h).
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/reslice.h"
#include "python/src/bindings.h"
#include "python/src/states.h"
#include "sim/handoff.h"

namespace specstate::py_binding {

void bind_handoff(py::module_& m) {
  // [(ssm, conv, geometry)] of every rank of the prefill instance at TP prefill_tp: the state
  // after request's first `length` tokens, for the receiving geometry `to`'s model and layers.
  m.def("sent_states", [](const ModelGeometry& to, const std::string& dtype, uint64_t seed,
                          uint64_t request, int64_t length, int32_t prefill_tp) {
    if (length < 1) throw InputError("a handoff sends at least one token's state");
    const SsmDtype ssm_dtype = parse_ssm_dtype(dtype);
    std::vector<RowBytes> states;
    {
      py::gil_scoped_release unlocked;
      PoolShape shape;
      shape.geometry = to;
      shape.ssm_dtype = ssm_dtype;
      sim::HandoffSender sender;
      states = sender.sent_states(shape, seed, {request, length, prefill_tp});
    }
    py::list out;  // (ssm, conv, the rank's geometry) per rank
    for (int32_t rank = 0; rank < prefill_tp; ++rank) {
      const ModelGeometry g = sim::sender_geometry(to, prefill_tp, rank);
      const py::tuple arrays = state_arrays(std::move(states[size_t(rank)]), g, ssm_dtype);
      out.append(py::make_tuple(arrays[0], arrays[1], g));
    }
    return out;
  });
  // The state rank to.rank holds, gathered from [(ssm, conv)] of every rank of `from`'s TP
  // degree (each of `from`'s model and layers at its own rank).
  m.def("reslice", [](const ModelGeometry& to, const ModelGeometry& from, const py::list& sent) {
    if (py::len(sent) != size_t(from.tp)) {
      throw InputError("reslice needs the state of each of the " + std::to_string(from.tp) +
                       " sending ranks, got " + std::to_string(py::len(sent)));
    }
    std::vector<RowBytes> states;
    SsmDtype dtype = SsmDtype::kF32;
    for (int32_t rank = 0; rank < from.tp; ++rank) {
      const auto pair = sent[size_t(rank)].cast<py::tuple>();
      ModelGeometry g = from;
      g.rank = rank;
      auto [bytes, d] = state_bytes(
          g, pair[0].cast<py::array>(),
          pair[1].cast<py::array_t<uint16_t, py::array::c_style | py::array::forcecast>>());
      if (rank > 0 && d != dtype) throw InputError("the sending ranks' SSM dtypes differ");
      dtype = d;
      states.push_back(std::move(bytes));
    }
    return state_arrays(reslice_state(to, from, states, dtype), to, dtype);
  });
}

}  // namespace specstate::py_binding
