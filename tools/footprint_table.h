// The footprint table shared by `specstate footprint` and `specstate demo`.
#pragma once

#include "core/strategy/strategy.h"

namespace specstate::cli {

// Prints memory per strategy and the state bytes one verify step moves, for `config` with
// `config.max_requests` running requests.
void print_footprint_table(const PoolConfig& config);

}  // namespace specstate::cli
