// specstate presets: the model presets, their recurrence and geometry, so that a preset name is
// never learnt from an error message.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/geometry.h"
#include "core/pool_shape.h"
#include "tools/commands.h"

namespace specstate::cli {

Command add_presets(CLI::App& parent) {
  auto json_output = std::make_shared<bool>(false);
  CLI::App* cmd = parent.add_subcommand(
      "presets",
      "List the model presets: recurrent layers (of all layers), key and value heads H and HV on\n"
      "one rank at TP 1, head dims K and V, conv channels and width, one request's recurrent\n"
      "state (conv window + fp32 SSM, all layers) and the recurrence the layers run. `--tp N`\n"
      "elsewhere divides H and HV.");
  cmd->add_flag("--json", *json_output, "One JSON array instead of the table");
  return {cmd, [json_output] {
            nlohmann::ordered_json out = nlohmann::ordered_json::array();
            if (!*json_output) {
              std::printf("%-20s %9s %3s %3s %4s %4s %8s %2s %12s  %-20s  %s\n", "preset", "layers",
                          "H", "HV", "K", "V", "conv_dim", "W", "state/req", "recurrence", "model");
            }
            for (const PresetInfo& p : presets()) {
              const ModelGeometry g = make_geometry(p.name);
              PoolShape shape;
              shape.geometry = g;
              shape.conv_cols = g.conv_state_cols();
              const double mib = double(shape.state_row_bytes()) / (1 << 20);
              const std::string name(p.name), what(p.description),
                  recurrence(to_string(p.recurrence));
              if (*json_output) {
                out.push_back({{"name", name},
                               {"description", what},
                               {"recurrence", recurrence},
                               {"gdn_layers", p.gdn_layers},
                               {"total_layers", p.total_layers},
                               {"H", g.num_k_heads},
                               {"HV", g.num_v_heads},
                               {"K", g.head_k_dim},
                               {"V", g.head_v_dim},
                               {"conv_dim", g.conv_dim()},
                               {"W", g.conv_width},
                               {"state_bytes_per_request", shape.state_row_bytes()},
                               {"provisional", p.provisional}});
                continue;
              }
              const std::string layers =
                  std::to_string(p.gdn_layers) + "/" + std::to_string(p.total_layers);
              char size[32];
              if (mib >= 1) {
                std::snprintf(size, sizeof size, "%8.2f MiB", mib);
              } else {
                std::snprintf(size, sizeof size, "%8.2f KiB", mib * 1024);
              }
              std::printf("%-20s %9s %3d %3d %4d %4d %8d %2d %12s  %-20s  %s%s\n", name.c_str(),
                          layers.c_str(), g.num_k_heads, g.num_v_heads, g.head_k_dim, g.head_v_dim,
                          g.conv_dim(), g.conv_width, size, recurrence.c_str(), what.c_str(),
                          p.provisional ? " (provisional geometry)" : "");
            }
            if (*json_output) std::printf("%s\n", out.dump().c_str());
            return 0;
          }};
}

}  // namespace specstate::cli
