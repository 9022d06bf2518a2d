// Delta debugging of a diverging trace (`specstate minimize`, docs/minimize.md): the smallest
// valid trace that still diverges the same way, found by replaying candidates.
//
// "The same way" (Signature): a replay through the divergence's lanes reports a divergence of
// the same kind — the compared quantity: per-token outputs, snapshot row, live state,
// swapped-out state, missing swapped-out state, physical row, ownership, a backend's refusal —
// between the same lanes (backend, strategy, schedule and fault: the lane names), at any line.
// A candidate the validator refuses is never interesting, so every trace kept is valid.
//
// Each test replays only the divergence's lanes (the reference and the faulty lane; the faulty
// lane alone for an ownership violation), of one layer when that reproduces the divergence,
// and stops at the first divergence; events after it are cut as soon as a candidate is kept.
// Candidates already refused are remembered (a hash of their text) and not replayed again.
//
// Stages, coarse to fine, repeated until a round keeps nothing:
//  1. requests:  ddmin over whole requests (every event and batch entry naming them);
//  2. events:    ddmin over events, twice: removed steps shorten their requests, then removed
//                steps leave their accepted tokens to the request's prefill (so that the page
//                boundaries later steps cross stay put); then each extend merged into the
//                request's previous extend (one chunk of a chunked prefill);
//  3. entries:   ddmin over the entries of verify and decode batches, the same two ways;
//  4. snapshots: ddmin over track writes and prefix hits (a hit removed prefills its prefix);
//  5. numbers:   each step's padding, extend's tokens and verify entry's accepted length made
//                as small as stays interesting (the least value first, then bisection); an
//                extend first loses whole pages, its request's later track writes moved along;
//  6. rows:      scheduler rows, request rows and request ids renumbered densely in order of
//                first use, the header's pool_rows and max_requests cut to what is used;
//  7. model:     the fewest draft tokens (accepted lengths clamped), the tiny preset (when all
//                layers are replayed), page_size 0 once no snapshot is left.
// Removals keep the schedule rules through repair(); what it cannot mend the validator refuses.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/trace/events.h"
#include "sim/simulator.h"

namespace specstate::sim {

// What a divergence is, for "diverges the same way": its kind and its lanes, not its line.
struct Signature {
  std::string kind;            // Divergence::what up to its first ':' ("ownership", "live state")
  std::string lane_a, lane_b;  // lane names; lane_b empty for ownership and backend refusals
  static Signature of(const Divergence& d);
  bool operator==(const Signature&) const = default;
};

struct MinimizeOptions {
  std::vector<LaneSpec> lanes;  // as `specstate replay` runs them, the reference first
  std::vector<int32_t> layers;  // the model layers replayed (parse_layer_list); empty: all
  RingParams ring;
  bool check_ownership = true;
  // Called after every test.
  std::function<void(const std::string& stage, size_t events, size_t replays, double seconds)>
      progress;
};

// What one stage cost over all rounds.
struct StageCost {
  std::string name;
  size_t replays = 0;
  size_t kept = 0;  // candidates kept
  double seconds = 0;
};

struct MinimizeResult {
  trace::Trace trace;           // the smallest trace found; lines 2, 3, ... as written
  Divergence original, result;  // the input's divergence (all lanes) and the result's
  Signature signature;
  std::vector<LaneSpec> lanes;  // the lanes each test replayed
  std::vector<int32_t> layers;  // the layers each test replayed (empty: all)
  size_t replays = 0;           // tests that ran a replay
  size_t invalid = 0;           // candidates the validator refused (no replay)
  size_t repeated = 0;          // candidates refused before (no replay)
  size_t rounds = 0;
  std::vector<StageCost> stages;
  double input_seconds = 0;  // the input's replay through every lane
  double seconds = 0;        // all of it, that replay included
};

// Throws InputError("FILE:LINE: ...") when the trace does not diverge through `options.lanes`,
// or when a lane's policy refuses it (as replay() does).
MinimizeResult minimize(const trace::Trace& trace, const MinimizeOptions& options);

// `trace` after events, entries or fields were removed or changed, mended where a local fix
// keeps the schedule rules: events naming a request that is not running (or, for resume, not
// retracted; for finish, gone) and batch entries of such requests are dropped, steps left
// empty are dropped, track writes no longer crossing their page boundary (or landing on a
// running request's working row) are dropped, a prefix hit whose snapshot is gone prefills
// its prefix instead, and a later extend that repeats a different row loses the field. A
// valid trace comes back unchanged. Events are renumbered 2, 3, ... under a header on line 1.
// nullopt when the result still breaks a rule.
std::optional<trace::Trace> repair(const trace::Trace& trace);

}  // namespace specstate::sim
