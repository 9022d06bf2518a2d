// A trace summary as JSON (validate --json, generate --json): numbers as numbers.
#pragma once

#include <nlohmann/json.hpp>

#include "core/trace/validate.h"

namespace specstate::cli {

inline nlohmann::ordered_json summary_json(const trace::TraceSummary& s) {
  const trace::Header& h = s.header;
  return {{"header",
           {{"version", h.version},
            {"preset", h.model_name()},
            {"tp", h.tp},
            {"rank", h.rank},
            {"ssm_dtype", std::string(to_string(h.ssm_dtype))},
            {"draft_tokens", h.draft_tokens},
            {"T", h.tokens_per_verify()},
            {"pool_rows", h.pool_rows},
            {"max_requests", h.max_requests},
            {"page_size", h.page_size},
            {"seed", h.seed},
            {"overlap", h.overlap},
            {"host_slots", h.host_slots},
            {"prefill_tp", h.prefill_tp}}},
          {"events",
           {{"total", s.events},
            {"extend", s.extends},
            {"verify", s.verifies},
            {"decode", s.decodes},
            {"retract", s.retracts},
            {"resume", s.resumes},
            {"finish", s.finishes},
            {"check", s.checks},
            {"offload", s.offloads},
            {"restore", s.restores},
            {"handoff", s.handoffs}}},
          {"requests",
           {{"total", s.requests},
            {"running_at_end", s.running_at_end},
            {"retracted_at_end", s.retracted_at_end},
            {"peak_running", s.peak_running}}},
          {"tokens",
           {{"prefill", s.prefill_tokens},
            {"prefix_hits", s.prefix_hits},
            {"prefix_hit_tokens", s.prefix_hit_tokens},
            {"verified", s.verified_tokens},
            {"accepted", s.accepted_tokens},
            {"decoded", s.decode_tokens}}},
          {"acceptance", s.acceptance},  // [T]: verify entries with a = 1..T
          {"discarded", s.discarded},    // verify entries with a = 0 (overlap traces)
          {"snapshots", s.snapshots},
          {"padding_rows", s.padding_rows},
          {"max_batch", s.max_batch},
          {"peak_rows_in_use", s.peak_rows_in_use}};
}

}  // namespace specstate::cli
