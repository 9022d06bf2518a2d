// The extension module specstate._core: geometry, the deterministic inputs, digests and the
// reference (reference.cpp). The public API is the Python package around it
// (python/specstate/__init__.py); this file only moves values across.
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <tuple>

#include "backends/registry.h"
#include "backends/state_backend.h"
#include "core/errors.h"
#include "core/geometry.h"
#include "core/numerics/gdn_step.h"
#include "core/numerics/host_values.h"
#include "python/src/arrays.h"
#include "python/src/bindings.h"
#include "python/src/states.h"

namespace specstate::py_binding {
namespace {

using num::bf16_bits;

std::string gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(int64_t{1} << 30));
  return buf;
}

std::vector<int32_t> model_layer_ids(const ModelGeometry& g) {
  std::vector<int32_t> ids;
  for (int32_t l = 0; l < g.layers; ++l)
    ids.push_back(g.layer_id(l));
  return ids;
}

// The deterministic inputs and parameters of one seed, by model layer index.
class Inputs {
 public:
  Inputs(ModelGeometry geometry, uint64_t seed) : g_(std::move(geometry)), seed_(seed) {}

  const ModelGeometry& geometry() const { return g_; }
  uint64_t seed() const { return seed_; }

  // `lead` followed by the geometry's decay_shape ([HV], or [HV, K] for KDA).
  std::vector<py::ssize_t> per_decay(std::vector<py::ssize_t> lead = {}) const {
    for (int64_t d : g_.decay_shape())
      lead.push_back(py::ssize_t(d));
    return lead;
  }

  // x, a and b of positions position .. position+count-1: [count, conv_dim], a [count, HV] (KDA:
  // [count, HV, K]), b [count, HV].
  py::tuple tokens(uint64_t request, int64_t position, int32_t layer, int64_t count) const {
    check_layer(layer);
    if (position < 0) throw InputError("position " + std::to_string(position) + " is negative");
    if (count < 1 || count > (int64_t{1} << 24))
      throw InputError("count " + std::to_string(count) + " outside 1..2^24");
    // x [count, conv_dim], a [count, HV, A] and b [count, HV] bf16, and the arrays they move into.
    const int64_t bytes =
        count * (int64_t{g_.conv_dim()} + (g_.decay_values_per_head() + 1) * g_.num_v_heads) * 2;
    const MemoryLimit have = backend_memory_limit("cpu");
    if (have.bytes >= 0 && bytes > have.bytes) {
      throw InputError("count " + std::to_string(count) + ": the inputs of " +
                       std::to_string(count) + " tokens (x [count, conv_dim " +
                       std::to_string(g_.conv_dim()) + "], a and b [count, HV " +
                       std::to_string(g_.num_v_heads) + "], bf16) need " + gib(bytes) +
                       ", more than the " + gib(have.bytes) + " of " + have.what +
                       " (ask for fewer tokens at a time)");
    }
    std::vector<bf16_bits> x, a, b;
    x.reserve(size_t(count) * g_.conv_dim());
    a.reserve(size_t(count) * g_.num_v_heads * g_.decay_values_per_head());
    b.reserve(size_t(count) * g_.num_v_heads);
    for (int64_t i = 0; i < count; ++i) {
      num::TokenInputs t = num::token_inputs(g_, seed_, request, uint64_t(position + i), layer);
      x.insert(x.end(), t.x.begin(), t.x.end());
      a.insert(a.end(), t.a.begin(), t.a.end());
      b.insert(b.end(), t.b.begin(), t.b.end());
    }
    const py::ssize_t n = count;
    return py::make_tuple(adopt(std::move(x), {n, g_.conv_dim()}),
                          adopt(std::move(a), per_decay({n})),
                          adopt(std::move(b), {n, g_.num_v_heads}));
  }

  py::dict parameters(int32_t layer) const {
    check_layer(layer);
    num::LayerParameters p = num::layer_parameters(g_, seed_, layer);
    py::dict d;
    d["conv_weight"] = adopt(std::move(p.conv_weight), {g_.conv_dim(), g_.conv_width});
    d["A_log"] = adopt(std::move(p.a_log), {g_.num_v_heads});
    d["dt_bias"] = adopt(std::move(p.dt_bias), per_decay());
    return d;
  }

  // conv_out, q_hat, k_hat, alpha and beta of one token from a conv window [conv_dim, W-1]
  // (bf16 bits); without one, from the request's own inputs at the W-1 positions before
  // (zeros before position 0), the window of a request that started from the zero state.
  py::dict derive(uint64_t request, int64_t position, int32_t layer,
                  std::optional<py::array_t<uint16_t, py::array::c_style | py::array::forcecast>>
                      window) const {
    check_layer(layer);
    if (position < 0) throw InputError("position " + std::to_string(position) + " is negative");
    const int C = g_.conv_dim(), wc = g_.conv_state_cols();
    std::vector<bf16_bits> w(size_t(C) * wc, 0);
    if (window) {
      if (window->ndim() != 2 || window->shape(0) != C || window->shape(1) != wc) {
        throw InputError("window must have shape [conv_dim, W-1] = [" + std::to_string(C) + ", " +
                         std::to_string(wc) + "]");
      }
      std::copy(window->data(), window->data() + w.size(), w.begin());
    } else {
      for (int t = 0; t < wc; ++t) {
        const int64_t p = position - wc + t;
        if (p < 0) continue;
        const num::TokenInputs in = num::token_inputs(g_, seed_, request, uint64_t(p), layer);
        for (int c = 0; c < C; ++c)
          w[size_t(c) * wc + t] = in.x[c];
      }
    }
    const num::LayerParameters params = num::layer_parameters(g_, seed_, layer);
    const num::TokenInputs in = num::token_inputs(g_, seed_, request, uint64_t(position), layer);
    num::TokenDerived d = num::derive_token(g_, params, w, in);
    py::dict out;
    out["conv_out"] = adopt(std::move(d.conv_out), {C});
    out["q_hat"] = adopt(std::move(d.q_hat), {g_.num_k_heads, g_.head_k_dim});
    out["k_hat"] = adopt(std::move(d.k_hat), {g_.num_k_heads, g_.head_k_dim});
    out["alpha"] = adopt(std::move(d.alpha), per_decay());
    out["beta"] = adopt(std::move(d.beta), {g_.num_v_heads});
    return out;
  }

  // The canonical step of `count` tokens (request, position ..) of one layer from a given state,
  // as one primitive call runs them: the state stays fp32 from token to token. ssm [HV, K, V]
  // float32, window [conv_dim, W-1] bf16 bits; returns the states after each token: ssm
  // [count, HV, K, V] float32 (unrounded: the caller stores it in its pool dtype) and windows
  // [count, conv_dim, W-1] bf16 bits. Forensics (python/specstate/forensics.py) builds the
  // states a request held or would hold at other lengths from it.
  py::tuple advance(
      uint64_t request, int64_t position, int32_t layer, int64_t count,
      const py::array_t<float, py::array::c_style | py::array::forcecast>& ssm,
      const py::array_t<uint16_t, py::array::c_style | py::array::forcecast>& window) const {
    check_layer(layer);
    if (position < 0) throw InputError("position " + std::to_string(position) + " is negative");
    if (count < 1 || count > 4096)
      throw InputError("count " + std::to_string(count) + " outside 1..4096");
    const int HV = g_.num_v_heads, K = g_.head_k_dim, V = g_.head_v_dim;
    const int C = g_.conv_dim(), wc = g_.conv_state_cols(), ratio = HV / g_.num_k_heads;
    if (ssm.ndim() != 3 || ssm.shape(0) != HV || ssm.shape(1) != K || ssm.shape(2) != V)
      throw InputError("ssm must have shape [HV, K, V] of the geometry");
    if (window.ndim() != 2 || window.shape(0) != C || window.shape(1) != wc)
      throw InputError("window must have shape [conv_dim, W-1] of the geometry");
    std::vector<float> s(ssm.data(), ssm.data() + ssm.size());               // [HV, K, V] fp32
    std::vector<bf16_bits> w(window.data(), window.data() + window.size());  // [C, W-1] bf16
    std::vector<float> states;                                               // [count, HV, K, V]
    std::vector<bf16_bits> windows;                                          // [count, C, W-1]
    const num::LayerParameters params = num::layer_parameters(g_, seed_, layer);
    for (int64_t t = 0; t < count; ++t) {
      const num::TokenInputs in =
          num::token_inputs(g_, seed_, request, uint64_t(position + t), layer);
      const num::TokenDerived d = num::derive_token(g_, params, w, in);
      const int A = g_.decay_values_per_head();
      for (int h = 0; h < HV; ++h) {
        const float* k_hat = d.k_hat.data() + size_t(h / ratio) * K;
        const float* q_hat = d.q_hat.data() + size_t(h / ratio) * K;
        const float* alpha = d.alpha.data() + size_t(h) * A;
        for (int j = 0; j < V; ++j) {
          const float v = d.conv_out[size_t(2 * g_.key_dim()) + size_t(h) * V + j];
          num::head_column(s.data() + size_t(h) * K * V + j, V, K, k_hat, q_hat, v, alpha, A,
                           d.beta[h]);
        }
      }
      for (int c = 0; c < C; ++c) {
        for (int i = 0; i + 1 < wc; ++i)
          w[size_t(c) * wc + i] = w[size_t(c) * wc + i + 1];
        if (wc > 0) w[size_t(c) * wc + wc - 1] = in.x[c];
      }
      states.insert(states.end(), s.begin(), s.end());
      windows.insert(windows.end(), w.begin(), w.end());
    }
    const py::ssize_t n = count;
    return py::make_tuple(adopt(std::move(states), {n, HV, K, V}),
                          adopt(std::move(windows), {n, C, wc}));
  }

 private:
  void check_layer(int32_t layer) const {
    const std::vector<int32_t> ids = model_layer_ids(g_);
    if (std::find(ids.begin(), ids.end(), layer) == ids.end()) {
      throw InputError("layer " + std::to_string(layer) + " is not a layer of this geometry (" +
                       std::to_string(g_.layers) + " layers held)");
    }
  }

  ModelGeometry g_;
  uint64_t seed_;
};

// digest_of over a state given as arrays (states.h).
uint64_t digest_state(
    const ModelGeometry& g, const py::array& ssm,
    const py::array_t<uint16_t, py::array::c_style | py::array::forcecast>& conv) {
  PoolShape shape;
  shape.geometry = g;
  RowBytes bytes;
  std::tie(bytes, shape.ssm_dtype) = state_bytes(g, ssm, conv);
  shape.conv_cols = g.conv_state_cols();
  return digest_of(bytes, shape, shape.conv_cols);
}

}  // namespace

void bind_basics(py::module_& m) {
  static py::exception<InputError> input_error(m, "InputError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InputError& e) {
      PyErr_SetString(input_error.ptr(), e.what());
    }
  });

  m.def("presets", [] {
    py::list out;
    for (const PresetInfo& p : presets()) {
      py::dict d;
      d["name"] = std::string(p.name);
      d["description"] = std::string(p.description);
      d["recurrence"] = std::string(to_string(p.recurrence));
      d["gdn_layers"] = p.gdn_layers;
      d["total_layers"] = p.total_layers;
      d["H"] = p.num_k_heads;
      d["HV"] = p.num_v_heads;
      d["provisional"] = p.provisional;
      out.append(d);
    }
    return out;
  });

  py::class_<ModelGeometry>(m, "Geometry")
      .def_readonly("preset", &ModelGeometry::preset)
      .def_readonly("tp", &ModelGeometry::tp)
      .def_readonly("rank", &ModelGeometry::rank)
      .def_property_readonly(
          "recurrence", [](const ModelGeometry& g) { return std::string(to_string(g.recurrence)); })
      .def_readonly("layers", &ModelGeometry::layers)
      .def_readonly("H", &ModelGeometry::num_k_heads)
      .def_readonly("HV", &ModelGeometry::num_v_heads)
      .def_readonly("K", &ModelGeometry::head_k_dim)
      .def_readonly("V", &ModelGeometry::head_v_dim)
      .def_readonly("W", &ModelGeometry::conv_width)
      .def_property_readonly("conv_dim", &ModelGeometry::conv_dim)
      .def_property_readonly("layer_ids", &model_layer_ids)
      .def("__repr__", [](const ModelGeometry& g) {
        return "Geometry(" + g.preset +
               (g.tp > 1 ? " TP" + std::to_string(g.tp) + " rank " + std::to_string(g.rank) : "") +
               ": layers=" + std::to_string(g.layers) + ", H=" + std::to_string(g.num_k_heads) +
               ", HV=" + std::to_string(g.num_v_heads) + ", K=" + std::to_string(g.head_k_dim) +
               ", V=" + std::to_string(g.head_v_dim) +
               ", conv_dim=" + std::to_string(g.conv_dim()) +
               ", W=" + std::to_string(g.conv_width) + ")";
      });

  m.def("preset_geometry", [](const std::string& preset, int32_t tp, int32_t rank) {
    return make_geometry(preset, tp, rank);
  });
  m.def("custom_geometry", [](int32_t layers, int32_t H, int32_t HV, int32_t K, int32_t V,
                              int32_t W, int32_t conv_dim, const std::string& recurrence) {
    const std::optional<RecurrenceKind> kind = find_recurrence(recurrence);
    if (!kind) {
      throw InputError("custom geometry: unknown recurrence '" + recurrence +
                       "' (known: " + recurrence_names_text() + ")");
    }
    return make_custom_geometry(layers, H, HV, K, V, W, conv_dim, *kind);
  });
  m.def("with_layers", [](const ModelGeometry& g, const std::string& list) {
    if (!g.layer_ids.empty()) throw InputError("the geometry already holds a subset of layers");
    return with_layers(g, parse_layer_list(list, g.layers));
  });

  py::class_<Inputs>(m, "Inputs")
      .def(py::init<ModelGeometry, uint64_t>())
      .def_property_readonly("geometry", &Inputs::geometry)
      .def_property_readonly("seed", &Inputs::seed)
      .def("tokens", &Inputs::tokens)
      .def("parameters", &Inputs::parameters)
      .def("derive", &Inputs::derive)
      .def("advance", &Inputs::advance);

  m.def("digest_state", &digest_state);
  // A conv channel and a value head named as the C++ reports name them (core/geometry.h).
  m.def("conv_channel_text",
        [](const ModelGeometry& g, int64_t c) { return conv_channel_text(g, c); });
  m.def("value_head_text", &value_head_text);
  m.def("backends", &available_backends);
  m.def("cuda_compiled", &cuda_compiled);
}

}  // namespace specstate::py_binding

PYBIND11_MODULE(_core, m) {
  m.doc() = "specstate's C++ core; use the package `specstate`, which wraps it.";
  specstate::py_binding::bind_basics(m);
  specstate::py_binding::bind_reference(m);
  specstate::py_binding::bind_handoff(m);
}
