// The footprint reports of `specstate footprint` (also used by `specstate demo` and
// tests/footprint). All figures come from make_layout / verify_step_bytes, i.e. exactly what the
// backends allocate and the state bytes one verify step moves (docs/strategies.md).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "core/strategy/strategy.h"

namespace specstate::cli {

// Step bytes are means over verifies whose accepted lengths a = 1..T have the probabilities
// `accept_weights` (mean_verify_step_bytes; empty: every token accepted, a = T). Only the ring's
// state bytes depend on them beyond a: its history grows with them, and how often it folds.

// Prints memory per strategy and the state bytes one verify step moves, for `config` with
// `config.max_requests` running requests, and the host memory of `host_slots` host-tier slots.
void print_footprint_table(const PoolConfig& config, const std::vector<double>& accept_weights = {},
                           int32_t host_slots = 0);

// The report of `footprint --json` for one batch: the configuration, the host tier, and per
// strategy its bytes by category, the step bytes, and for the ring its folds and history per step.
nlohmann::json footprint_json(const PoolConfig& config,
                              const std::vector<double>& accept_weights = {},
                              int32_t host_slots = 0);

// CSV header line, then one line per strategy of `config` (bytes, all GDN layers, one rank).
std::string footprint_csv_header();
std::string footprint_csv_rows(const PoolConfig& config,
                               const std::vector<double>& accept_weights = {});

// "Before vs after": memory and state bytes per verify step of `after` against `before`,
// absolute and relative, for `config`.
std::string footprint_compare(const PoolConfig& config, StrategyKind before, StrategyKind after,
                              const std::vector<double>& accept_weights = {});

// An SVG line chart of total memory against batch size 1..max_batch, one line per strategy, for
// `config`'s model, TP, T and dtype; pool rows = pool_rows_per_request x batch.
std::string footprint_svg(const PoolConfig& config, int32_t max_batch,
                          int32_t pool_rows_per_request);

}  // namespace specstate::cli
