// --preset, checked while the flags are parsed so that a mistyped name gets the nearest ones:
// "--preset: unknown preset 'qwen3-next'; did you mean 'qwen3-next-80b-a3b'? (specstate presets
// lists them)", exit 2.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/geometry.h"
#include "core/suggest.h"

namespace specstate::cli {

inline CLI::Option* add_preset_option(CLI::App* cmd, std::string& preset,
                                      const std::string& description) {
  const CLI::Validator known(
      [](std::string& name) -> std::string {
        std::vector<std::string_view> names;
        for (const PresetInfo& p : presets()) {
          if (p.name == name) return {};
          names.push_back(p.name);
        }
        return "unknown preset '" + name + "'" + did_you_mean(name, names) +
               " (specstate presets lists them)";
      },
      "");
  return cmd->add_option("--preset", preset, description)->check(known);
}

}  // namespace specstate::cli
