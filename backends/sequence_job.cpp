#include "backends/sequence_job.h"

#include <algorithm>
#include <limits>

#include "core/errors.h"

namespace specstate {

std::vector<SequenceJob> sequence_jobs(std::span<const PrefillTask> tasks) {
  std::vector<SequenceJob> jobs;
  for (const PrefillTask& t : tasks) {
    SequenceJob& job = jobs.emplace_back();
    job.guard = t.guard;
    job.from_zero = t.from_zero;
    if (!t.from_zero) job.from = t.from;
    job.generated = t.tokens;
    job.count = t.tokens.count;
    job.writes = t.writes;
    std::stable_sort(
        job.writes.begin(), job.writes.end(),
        [](const StateWrite& a, const StateWrite& b) { return a.after_tokens < b.after_tokens; });
  }
  return jobs;
}

std::vector<SequenceJob> sequence_jobs(VerifyMode mode, std::span<const VerifyTask> tasks) {
  std::vector<SequenceJob> jobs;
  for (const VerifyTask& t : tasks) {
    SequenceJob& job = jobs.emplace_back();
    job.active = !t.from.is_none();
    job.guard = t.guard;
    job.from = t.from;
    job.generated = t.tokens;
    job.count = t.tokens.count;
    job.parents = t.parents;
    if (t.pending.count > 0) {
      job.pending = t.pending;
      // A verify starts from a stored state: the last pending token always rounds.
      job.round_after = t.pending.round_after | (1u << (t.pending.count - 1));
    }
    switch (mode) {
      case VerifyMode::kStateRows:
        for (int j = 0; j < t.tokens.count; ++j) {
          if (t.out_rows[j] != kNoRow) job.writes.push_back({j + 1, t.out_rows[j]});
        }
        break;
      case VerifyMode::kWindow:
        job.window = true;
        std::copy_n(t.out_rows.begin(), kMaxVerifyTokens, job.ssm_only_rows.begin());
        break;
      case VerifyMode::kPayload:
        job.payload_out_slot = t.payload_slot;
        job.payload_out_first = t.payload_first_token;
        break;
    }
  }
  return jobs;
}

std::vector<SequenceJob> sequence_jobs(std::span<const ReplayTask> tasks) {
  std::vector<SequenceJob> jobs;
  for (const ReplayTask& t : tasks) {
    SequenceJob& job = jobs.emplace_back();
    job.active = !t.from.is_none();
    job.guard = t.guard;
    job.from = t.from;
    job.in_slot = t.payload_slot;
    job.in_first = t.first_token;
    job.count = t.count;
    job.round_after = t.round_after;
    if (job.active) job.writes.push_back({t.count, t.dst_row});
  }
  return jobs;
}

SequenceJob prefill_part(const SequenceJob& job, int32_t first, int32_t n) {
  SPECSTATE_ASSERT(job.pending.count == 0 && job.generated && job.parents.empty() && !job.window &&
                       job.payload_out_slot == kNoRow && first >= 0 && n > 0 &&
                       first + n <= job.count,
                   "only prefills run in parts, and a part lies inside its job");
  SequenceJob part = job;
  part.generated->first_position += first;
  part.generated->count = n;
  part.count = n;
  part.writes.clear();
  for (const StateWrite& w : job.writes) {  // ascending after_tokens (sequence_jobs sorts them)
    if (w.after_tokens > first && w.after_tokens <= first + n)
      part.writes.push_back({w.after_tokens - first, w.row});
  }
  return part;
}

int32_t write_row(const SequenceJob& job, int32_t n) {
  for (const StateWrite& w : job.writes) {
    if (w.after_tokens == n + 1) return w.row;
  }
  return kNoRow;
}

std::vector<RecurStep> recurrence_steps(const SequenceJob& job, bool rows_exact) {
  SPECSTATE_ASSERT(job.tokens() <= std::numeric_limits<int16_t>::max(),
                   "a job whose recurrence order is listed has < 2^15 tokens (long prefills run "
                   "in parts: prefill_part)");
  std::vector<RecurStep> steps;
  const int pending = job.pending.count;
  for (int j = 0; j < pending; ++j)
    steps.push_back({int16_t(j), false, false, -1});
  if (job.parents.empty()) {
    for (int n = 0; n < job.count; ++n)
      steps.push_back({int16_t(pending + n), false, false, -1});
    return steps;
  }
  // Depth-first preorder: a stack of nodes, children pushed in reverse index order.
  std::vector<int> stack{0};
  int previous = -1;  // the node whose state is in flight (-1: the base)
  while (!stack.empty()) {
    const int n = stack.back();
    stack.pop_back();
    for (int c = job.count - 1; c > n; --c) {
      if (job.parents[size_t(c)] == n) stack.push_back(c);
    }
    const int parent = job.parents[size_t(n)];
    const int16_t token = int16_t(pending + n);
    if (parent == previous) {
      steps.push_back({token, false, false, -1});
    } else if (rows_exact && write_row(job, parent) != kNoRow) {
      steps.push_back({token, false, false, int16_t(parent)});
    } else {
      int16_t path[kMaxTreeNodes];
      int depth = 0;
      for (int a = parent; a >= 0; a = job.parents[size_t(a)])
        path[depth++] = int16_t(pending + a);
      for (int k = depth - 1; k >= 0; --k)
        steps.push_back({path[k], k == depth - 1, true, -1});
      steps.push_back({token, false, false, -1});
    }
    previous = n;
  }
  return steps;
}

bool has_restart(std::span<const RecurStep> steps) {
  return std::any_of(steps.begin(), steps.end(), [](const RecurStep& s) { return s.restart; });
}

}  // namespace specstate
