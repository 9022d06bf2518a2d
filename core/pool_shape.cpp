#include "core/pool_shape.h"

#include <string>

#include "core/errors.h"

namespace specstate {

std::string_view to_string(SsmDtype dtype) {
  return dtype == SsmDtype::kF32 ? "f32" : "bf16";
}

SsmDtype parse_ssm_dtype(std::string_view text) {
  if (text == "f32" || text == "fp32" || text == "float32") return SsmDtype::kF32;
  if (text == "bf16" || text == "bfloat16") return SsmDtype::kBF16;
  throw InputError("unknown SSM dtype '" + std::string(text) + "' (expected f32 or bf16)");
}

}  // namespace specstate
