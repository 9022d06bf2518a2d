// specstate._core.Reference: one lane (sim/lane.h: backend x strategy, synchronous) that follows a
// trace event by event, planned, checked for row ownership and run exactly as `specstate replay`
// runs its lanes, and that answers for any live or swapped-out request with its state.
#include <pybind11/stl.h>

#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "backends/compact_backend.h"
#include "backends/registry.h"
#include "core/errors.h"
#include "core/strategy/pool_policy.h"
#include "core/strategy/strategy.h"
#include "core/trace/format.h"
#include "core/trace/validate.h"
#include "python/src/arrays.h"
#include "python/src/bindings.h"
#include "python/src/states.h"
#include "sim/lane.h"
#include "sim/simulator.h"
#include "sim/storage.h"
#include "tools/lane_checks.h"

namespace specstate::py_binding {
namespace {

using num::bf16_bits;

// Thread safety: one Reference may be shared by Python threads. Every method that reads or
// moves the lane (policy, backend, swap space, the event index) holds mutex_, so calls run one
// at a time and each sees whole events. The bindings release the GIL before calling in and touch
// no Python object while a method runs, so a thread holding the mutex never waits for the GIL:
// no deadlock between the two. The trace and the shape are fixed after construction and read
// without the lock.
class Reference {
 public:
  // `geometry`, when given, replaces the header's preset: the schedule does not depend on the
  // geometry, only the state bytes do.
  Reference(const std::string& path, const std::string& backend, const std::string& strategy,
            const std::string& layers, std::optional<ModelGeometry> geometry)
      : trace_(trace::read_trace(path)) {
    trace::validate_trace(trace_);
    check_backend_name(backend);  // an argument: no trace location
    const PoolConfig config = lane_config(layers, geometry);
    const std::vector<StrategyKind> kinds = parse_strategies(strategy);
    if (kinds.size() != 1) throw InputError("one strategy, not 'all'");
    lane_ = make_lane({backend, kinds[0]}, config,
                      geometry ? " (with the geometry given in place of the header's)" : "");
  }

  const trace::Trace& trace() const { return trace_; }
  const PoolShape& shape() const { return lane_->layout().shape; }
  std::string lane() const { return lane_->spec().name(); }

  size_t next() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return next_;
  }

  // Runs the next event, if there is one and its line is at most `until_line` (-1: any line),
  // and returns its index; nullopt otherwise. The check and the run are one step under the
  // lock, so threads that step together run each event once.
  std::optional<size_t> step(long until_line) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (next_ == trace_.events.size()) return std::nullopt;
    const trace::Line& line = trace_.events[next_];
    if (until_line >= 0 && line.line > until_line) return std::nullopt;
    sim::LanePlan planned;
    try {
      planned = lane_->plan(line.event, /*check_ownership=*/true);
    } catch (const InputError& e) {
      throw InputError(trace_.file, line.line, e.what());
    }
    // The lane has no injected fault: a write the protocol does not allow is a bug in
    // specstate, as `specstate replay` would report it on a clean lane.
    if (planned.ownership) {
      throw std::logic_error(trace_.file + ":" + std::to_string(line.line) + ": lane " + lane() +
                             ": ownership: " + *planned.ownership);
    }
    lane_->run(planned.plan);
    for (const PlanCall& call : planned.plan) {
      if (const auto* v = std::get_if<VerifyCall>(&call)) last_verify_requests_ = v->requests;
    }
    return next_++;
  }

  // Request id -> "running" | "retracted", ascending ids.
  std::map<uint64_t, std::string> requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::map<uint64_t, std::string> out;
    for (const auto& [id, s] : lane_->policy().table())
      out[id] = s.retracted ? "retracted" : "running";
    return out;
  }

  // The live state of a running request, or the saved state of a retracted one.
  RowBytes state(uint64_t request) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (live(request).retracted) return lane_->swap().saved.at(request);
    return lane_->backend().read_state(lane_->readable(request));
  }

  uint64_t digest(uint64_t request) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (live(request).retracted) return lane_->swap().digests.at(request);
    return lane_->digest_live(request);
  }

  // o of the last verify or decode, and the request of each of its tasks.
  std::pair<VerifyOutputs, std::vector<uint64_t>> outputs() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return {lane_->backend().read_outputs(), last_verify_requests_};
  }

 private:
  static std::string gib(int64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(int64_t{1} << 30));
    return buf;
  }

  const LiveState& live(uint64_t request) const {
    if (!lane_->policy().has(request)) {
      throw InputError("request " + std::to_string(request) + " is not running or retracted " +
                       "after " + std::to_string(next_) + " events");
    }
    return lane_->policy().live(request);
  }

  // The header's pool, with `geometry` in place of its preset and only `layers` (empty: all).
  PoolConfig lane_config(const std::string& layers,
                         const std::optional<ModelGeometry>& geometry) const {
    PoolConfig config = sim::pool_config(trace_.header);
    if (geometry) config.geometry = *geometry;
    if (!layers.empty()) {
      config.geometry =
          with_layers(config.geometry, parse_layer_list(layers, config.geometry.layers));
    }
    return config;
  }

  // What the header sets (the geometry, the rows, T) and the strategy, a backend or the memory
  // refuses is reported at the header line, as `specstate replay` reports it; `given` says
  // when the geometry is the caller's.
  std::unique_ptr<sim::Lane> make_lane(const sim::LaneSpec& spec, const PoolConfig& config,
                                       const std::string& given) const {
    PoolShape full;
    try {
      full = make_layout(spec.strategy, config).shape;
    } catch (const InputError& e) {
      throw InputError(trace_.file, trace_.header_line, e.message() + given);
    }
    StoredRows storage = sim::lane_storage(trace_, spec, config);
    const PoolShape stored = stored_shape(full, storage);
    try {
      cli::check_lanes_can_run(trace_, {spec}, {stored}, 0, "hold fewer layers: layers=");
    } catch (const InputError& e) {
      throw InputError(e.file(), e.line(), e.message() + given);
    }
    try {
      return std::make_unique<sim::Lane>(spec, config, std::move(storage), trace_.header.seed);
    } catch (const std::bad_alloc&) {  // the memory check passed, the allocation did not
      throw InputError(trace_.file, trace_.header_line,
                       "the pools need " + gib(stored.total_bytes()) + " on the " + spec.backend +
                           " backend for the rows the trace touches, and allocating them "
                           "failed (out of memory); hold fewer layers: layers=" +
                           given);
    }
  }

  trace::Trace trace_;
  mutable std::mutex mutex_;  // guards the lane's state and the members below
  std::unique_ptr<sim::Lane> lane_;
  size_t next_ = 0;
  std::vector<uint64_t> last_verify_requests_;
};

}  // namespace

void bind_reference(py::module_& m) {
  using R = Reference;
  // Every method that takes the lock releases the GIL first (see Reference): a thread waiting
  // for the lock lets the others run Python, and the one holding it never waits for the GIL.
  using release = py::call_guard<py::gil_scoped_release>;
  py::class_<R>(m, "Reference")
      .def(py::init<std::string, std::string, std::string, std::string,
                    std::optional<ModelGeometry>>(),
           py::arg("path"), py::arg("backend"), py::arg("strategy"), py::arg("layers"),
           py::arg("geometry"), release())
      .def_property_readonly("file", [](const R& r) { return r.trace().file; })
      .def_property_readonly("header_line", [](const R& r) { return r.trace().header_line; })
      .def_property_readonly("header_json",
                             [](const R& r) { return trace::header_to_json(r.trace().header); })
      .def_property_readonly("geometry", [](const R& r) { return r.shape().geometry; })
      .def_property_readonly("ssm_dtype",
                             [](const R& r) { return std::string(to_string(r.shape().ssm_dtype)); })
      .def_property_readonly("lane", &R::lane)
      .def_property_readonly("next", &R::next, release())
      .def_property_readonly("num_events", [](const R& r) { return r.trace().events.size(); })
      .def("event_line", [](const R& r, size_t i) { return r.trace().events.at(i).line; })
      .def("event_json",
           [](const R& r, size_t i) { return trace::event_to_json(r.trace().events.at(i).event); })
      .def("step", &R::step, py::arg("until_line") = -1, release())
      .def("requests", &R::requests, release())
      .def("state",
           [](R& r, uint64_t request) {
             RowBytes bytes;
             {
               py::gil_scoped_release unlocked;
               bytes = r.state(request);
             }
             return state_arrays(std::move(bytes), r.shape().geometry, r.shape().ssm_dtype);
           })
      .def("digest", &R::digest, release())
      // o: [tasks, tokens, layers, HV, V] bf16 bits, and the request of each task (None for the
      // padding task).
      .def("outputs", [](const R& r) {
        std::pair<VerifyOutputs, std::vector<uint64_t>> o;
        {
          py::gil_scoped_release unlocked;
          o = r.outputs();
        }
        const ModelGeometry& g = r.shape().geometry;
        py::list requests;
        for (uint64_t id : o.second)
          requests.append(id == kPaddingRequest ? py::none() : py::cast(id));
        return py::make_tuple(
            adopt(std::move(o.first.values),
                  {o.first.tasks, o.first.tokens, g.layers, g.num_v_heads, g.head_v_dim}),
            requests);
      });
}

}  // namespace specstate::py_binding
