// The footprint reports of `specstate footprint` (also used by `specstate demo` and
// tests/footprint). All figures come from make_layout / verify_step_bytes, i.e. exactly what the
// backends allocate and the state bytes one verify step moves (docs/strategies.md).
#pragma once

#include <cstdint>
#include <string>

#include "core/strategy/strategy.h"

namespace specstate::cli {

// Prints memory per strategy and the state bytes one verify step moves, for `config` with
// `config.max_requests` running requests.
void print_footprint_table(const PoolConfig& config);

// CSV header line, then one line per strategy of `config` (bytes, all GDN layers, one rank).
std::string footprint_csv_header();
std::string footprint_csv_rows(const PoolConfig& config);

// "Before vs after": memory and state bytes per verify step of `after` against `before`,
// absolute and relative, for `config` (all tokens accepted).
std::string footprint_compare(const PoolConfig& config, StrategyKind before, StrategyKind after);

// An SVG line chart of total memory against batch size 1..max_batch, one line per strategy, for
// `config`'s model, TP, T and dtype; pool rows = pool_rows_per_request x batch.
std::string footprint_svg(const PoolConfig& config, int32_t max_batch,
                          int32_t pool_rows_per_request);

}  // namespace specstate::cli
