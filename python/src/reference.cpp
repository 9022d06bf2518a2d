// specstate._core.Reference: one lane (backend x strategy) that follows a trace event by event,
// driven exactly as `specstate replay` drives its lanes (sim::plan_for, the plan executor), and
// that answers for any live or swapped-out request with its state.
#include <pybind11/stl.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "backends/compact_backend.h"
#include "sim/plan_executor.h"
#include "core/errors.h"
#include "core/strategy/pool_policy.h"
#include "core/trace/format.h"
#include "core/trace/validate.h"
#include "python/src/arrays.h"
#include "python/src/bindings.h"
#include "sim/simulator.h"
#include "sim/storage.h"

namespace specstate::py_binding {
namespace {

using num::bf16_bits;

class Reference {
 public:
  // `geometry`, when given, replaces the header's preset: the schedule does not depend on the
  // geometry, only the state bytes do.
  Reference(const std::string& path, const std::string& backend, const std::string& strategy,
            const std::string& layers, std::optional<ModelGeometry> geometry)
      : trace_(trace::read_trace(path)) {
    trace::validate_trace(trace_);
    PoolConfig config = sim::pool_config(trace_.header);
    if (geometry) config.geometry = *geometry;
    if (!layers.empty()) {
      config.geometry =
          with_layers(config.geometry, parse_layer_list(layers, config.geometry.layers));
    }
    const std::vector<StrategyKind> kinds = parse_strategies(strategy);
    if (kinds.size() != 1) throw InputError("one strategy, not 'all'");
    lane_ = {backend, kinds[0]};
    policy_ = std::make_unique<PoolPolicy>(kinds[0], config);
    backend_ = make_compact_backend(backend, policy_->layout().shape,
                                    sim::lane_storage(trace_, lane_, config), trace_.header.seed);
  }

  const trace::Trace& trace() const { return trace_; }
  const PoolShape& shape() const { return policy_->layout().shape; }
  std::string lane() const { return lane_.name(); }
  size_t next() const { return next_; }

  // Runs the next event; false at the end of the trace.
  bool step() {
    if (next_ == trace_.events.size()) return false;
    const trace::Line& line = trace_.events[next_];
    Plan plan;
    try {
      plan = sim::plan_for(*policy_, line.event);
    } catch (const InputError& e) {
      throw InputError(trace_.file, line.line, e.what());
    }
    sim::execute(plan, *backend_, swap_);
    for (const PlanCall& call : plan) {
      if (const auto* v = std::get_if<VerifyCall>(&call)) last_verify_requests_ = v->requests;
    }
    ++next_;
    return true;
  }

  // Request id -> "running" | "retracted", ascending ids.
  std::map<uint64_t, std::string> requests() const {
    std::map<uint64_t, std::string> out;
    for (const auto& [id, s] : policy_->table())
      out[id] = s.retracted ? "retracted" : "running";
    return out;
  }

  // The live state of a running request, or the saved state of a retracted one.
  RowBytes state(uint64_t request) {
    if (live(request).retracted) return swap_.saved.at(request);
    return backend_->read_state(readable(request));
  }

  uint64_t digest(uint64_t request) {
    if (live(request).retracted) return swap_.digests.at(request);
    return backend_->digest_state(readable(request));
  }

  // o of the last verify or decode: [tasks, tokens, layers, HV, V] bf16 bits, and the request
  // of each task (None for the padding task).
  py::tuple outputs() const {
    VerifyOutputs o = backend_->read_outputs();
    const ModelGeometry& g = shape().geometry;
    py::list requests;
    for (uint64_t r : last_verify_requests_)
      requests.append(r == kPaddingRequest ? py::none() : py::cast(r));
    return py::make_tuple(adopt(std::move(o.values), {o.tasks, o.tokens, g.layers, g.num_v_heads,
                                                      g.head_v_dim}),
                          requests);
  }

 private:
  const LiveState& live(uint64_t request) const {
    if (!policy_->has(request)) {
      throw InputError("request " + std::to_string(request) + " is not running or retracted " +
                       "after " + std::to_string(next_) + " events");
    }
    return policy_->live(request);
  }

  // Where a running request's state can be read (deferred: its pending tokens replayed into
  // the inspection row first, the live-state table unchanged).
  StateLoc readable(uint64_t request) {
    const PoolPolicy::Readable r = policy_->readable(request);
    sim::execute(r.plan, *backend_, swap_);
    return r.loc;
  }

  trace::Trace trace_;
  sim::LaneSpec lane_;
  std::unique_ptr<PoolPolicy> policy_;
  std::unique_ptr<StateBackend> backend_;
  sim::SwapSpace swap_;
  size_t next_ = 0;
  std::vector<uint64_t> last_verify_requests_;
};

// A state as arrays: ssm [layers, HV, K, V] in the pool dtype (float32, or uint16 bf16 bits),
// conv [layers, conv_dim, W-1] bf16 bits. The bytes move into the arrays, uncopied.
py::tuple state_arrays(RowBytes&& bytes, const PoolShape& shape) {
  const ModelGeometry& g = shape.geometry;
  const bool f32 = shape.ssm_dtype == SsmDtype::kF32;
  return py::make_tuple(
      adopt(std::move(bytes.ssm), f32 ? py::dtype("<f4") : py::dtype("<u2"), f32 ? 4 : 2,
            {g.layers, g.num_v_heads, g.head_k_dim, g.head_v_dim}),
      adopt(std::move(bytes.conv), {g.layers, g.conv_dim(), g.conv_state_cols()}));
}

}  // namespace

void bind_reference(py::module_& m) {
  using R = Reference;
  py::class_<R>(m, "Reference")
      .def(py::init<std::string, std::string, std::string, std::string,
                    std::optional<ModelGeometry>>(),
           py::arg("path"), py::arg("backend"), py::arg("strategy"), py::arg("layers"),
           py::arg("geometry"), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("file", [](const R& r) { return r.trace().file; })
      .def_property_readonly("header_json",
                             [](const R& r) { return trace::header_to_json(r.trace().header); })
      .def_property_readonly("geometry", [](const R& r) { return r.shape().geometry; })
      .def_property_readonly("ssm_dtype",
                             [](const R& r) { return std::string(to_string(r.shape().ssm_dtype)); })
      .def_property_readonly("lane", &R::lane)
      .def_property_readonly("next", &R::next)
      .def_property_readonly("num_events", [](const R& r) { return r.trace().events.size(); })
      .def("event_line", [](const R& r, size_t i) { return r.trace().events.at(i).line; })
      .def("event_json",
           [](const R& r, size_t i) { return trace::event_to_json(r.trace().events.at(i).event); })
      .def("step", &R::step, py::call_guard<py::gil_scoped_release>())
      .def("requests", &R::requests)
      .def("state",
           [](R& r, uint64_t request) {
             RowBytes bytes;
             {
               py::gil_scoped_release release;
               bytes = r.state(request);
             }
             return state_arrays(std::move(bytes), r.shape());
           })
      .def("digest", &R::digest, py::call_guard<py::gil_scoped_release>())
      .def("outputs", &R::outputs);
}

}  // namespace specstate::py_binding
