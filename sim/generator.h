// A synthetic continuous-batching scheduler that writes traces (docs/trace-format.md).
//
// From a seed, reproducibly: requests arrive over the first half of the run with random
// prompt lengths; prompts are prefilled in chunks, sometimes starting from a prefix-cache row
// (copy-on-write); running requests verify T tokens (or a draft tree) per step with an accepted
// length drawn from a configurable distribution, with occasional decode steps without drafts; page
// boundaries crossed are snapshotted into track rows; a request that waits too long for a
// row preempts (retracts) the longest-running one, which resumes later; finished requests
// free their rows, and freed rows are handed out again first (LIFO). Batches are padded up
// to a CUDA-graph bucket, and a check event follows every `check_every` steps.
//
// Every event is applied to a ScheduleTracker as it is written, so the output always
// validates. Events are handed out as they are made: the generator keeps the requests and the
// rows, never the steps, so its memory does not grow with --steps.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/pool_shape.h"
#include "core/trace/events.h"
#include "core/trace/validate.h"

namespace specstate::sim {

struct GeneratorOptions {
  // Header.
  std::string preset = "tiny";
  int32_t tp = 1;
  int32_t rank = 0;  // which rank of the tp the trace records (its heads' inputs)
  SsmDtype ssm_dtype = SsmDtype::kF32;
  int32_t draft_tokens = 3;  // T = draft_tokens + 1
  // Fewer pool rows than request rows, so rows run out and requests get retracted.
  int32_t pool_rows = 12;     // working rows + snapshot rows
  int32_t max_requests = 16;  // request rows: at most this many requests run at once
  int32_t page_size = 16;     // 0 = no snapshots and no prefix hits
  uint64_t seed = 1;

  // Workload.
  int32_t requests = 64;   // requests arriving over the first half of the run
  int32_t steps = 2000;    // forward steps (verify + decode); fewer if all finish early
  int32_t prompt_min = 8;  // prompt tokens after any prefix hit, uniform in [min, max]
  int32_t prompt_max = 160;
  int32_t output_min = 0;   // generated tokens, uniform in [min, max]; 0 and 0 = chosen
  int32_t output_max = 0;   // from steps and rows so that the run stays busy
  int32_t chunk_size = 64;  // prefill tokens per request per step
  // Chunks that end one token before a page boundary, on it or one token after it (at most
  // chunk_size tokens): chunked prefills at the page edges, where snapshots are taken.
  bool edge_chunks = false;
  double prefix_hit_prob = 0.3;  // a new request starts from a snapshot row, when one exists
  double snapshot_prob = 0.5;    // a crossed page boundary is snapshotted into a track row
  // A host tier of this many slots (format version 2): a snapshot row is offloaded to the
  // least recently used slot before the row is reused, and a new request's prefix hit is
  // sometimes served from a slot, restored into a row first. 0 = no host tier.
  int32_t host_slots = 0;
  // Prefill/decode disaggregation (format version 2, header prefill_tp): this instance decodes,
  // and about half the requests arrive from a prefill instance of this TP degree by a handoff
  // event with all but their last prompt token prefilled; their first extend hits the
  // handed-over row and runs that token. The row is not shared with later requests. 0 = no
  // prefill instance.
  int32_t prefill_tp = 0;

  // Speculative decoding.
  double accept_prob = 0.7;            // each draft token accepted with this probability, until the
                                       // first rejection: a = 1 + leading accepted drafts
  std::vector<double> accept_weights;  // T weights for a = 1..T; replaces accept_prob
  double decode_prob = 0.1;            // a step is a decode without drafts
  // Draft trees (format version 2): every verify runs the tree of this shape (top-k children per
  // level, core/draft_tree.h), cut after tree_nodes nodes when tree_nodes > 0; the accepted
  // path draws its length as above and descends through uniformly chosen children (shorter
  // where the cut tree ends). Empty: chains of T tokens.
  std::vector<int32_t> tree;
  int32_t tree_nodes = 0;

  // Overlap scheduling of this depth (format version 2, header overlap; 0: synchronous): up to
  // `overlap` steps in flight, each prepared before the results of those before it reach the
  // host, so a request that reaches its output target in a verify is in its next verify too, as a
  // discarded entry (accepted 0), and finishes after it; each step's batch comes in a shuffled
  // order (batches are condensed and reordered). With depth d > 1 (pipeline parallelism) a step
  // takes the requests that none of the d - 1 steps before it holds; when every ready request is
  // in flight, the host waits for them (and finishes those that are done) first.
  int32_t overlap = 0;

  // Scheduling.
  int32_t preempt_after = 32;  // steps a waiting request waits for a row before it retracts
                               // a running one; also the least time between two retracts
  std::vector<int32_t> graph_buckets = {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256};
  int32_t check_every = 50;  // steps between check events; 0 = none
};

// Throws InputError naming the option for a value out of range.
void check_options(const GeneratorOptions& options);

// The header of the trace `options` generate (file line 1). Throws InputError from
// check_options.
trace::Header generated_header(const GeneratorOptions& options);

// Generates the trace, handing each event to `sink` as soon as it is made, numbered as
// write_trace() lays them out (header on line 1, events from line 2); returns the trace's
// summary (validate_trace's). Throws InputError from check_options before the first event.
trace::TraceSummary generate_events(const GeneratorOptions& options,
                                    const std::function<void(const trace::Line&)>& sink);

// The whole trace in memory (tests, demo): generate_events' events collected.
trace::Trace generate_trace(const GeneratorOptions& options);

}  // namespace specstate::sim
