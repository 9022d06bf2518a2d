// A seeded random scheduler for strategy tests: it plays a continuous-batching scheduler at the
// level of PoolPolicy operations (new requests with and without prefix hits, chunked prefill,
// verify with random accepted lengths, decode, retract / resume, finish with immediate row
// reuse, page-boundary snapshots, padding) and hands each operation to a callback.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <set>
#include <variant>
#include <vector>

#include "core/strategy/pool_policy.h"

namespace specstate::test {

struct OpExtend {
  ExtendOp op;
};
struct OpVerify {
  std::vector<VerifyOp> batch;
  int32_t padding = 0;
};
struct OpDecode {
  std::vector<VerifyOp> batch;
  int32_t padding = 0;
};
struct OpRetract {
  uint64_t request;
};
struct OpResume {
  uint64_t request;
  int32_t req_row;
  int32_t working_row;
};
struct OpFinish {
  uint64_t request;
};
using Op = std::variant<OpExtend, OpVerify, OpDecode, OpRetract, OpResume, OpFinish>;

struct ScheduleConfig {
  int32_t T = 4;
  int32_t pool_rows = 24;
  int32_t max_requests = 8;
  int32_t page_size = 8;
  int32_t steps = 60;
  int32_t tree_nodes = 0;  // > 0: most verifies run a random draft tree of up to this many nodes
  // Some verify entries are discarded (accepted 0, as an overlap engine records a step prepared
  // before it knew the request had finished); such a request finishes a little later.
  bool discards = false;
};

class RandomSchedule {
 public:
  RandomSchedule(uint64_t seed, const ScheduleConfig& config) : rng_(seed), cfg_(config) {
    for (int32_t r = cfg_.pool_rows - 1; r >= 0; --r)
      free_rows_.push_back(r);
    for (int32_t r = cfg_.max_requests - 1; r >= 0; --r)
      free_req_rows_.push_back(r);
  }

  void run(const std::function<void(const Op&)>& apply) {
    for (int32_t step = 0; step < cfg_.steps; ++step) {
      taken_this_op_.clear();
      if (!doomed_.empty() && pick(2) == 0) {
        apply(finish_doomed());
        continue;
      }
      const int choice = pick(100);
      if (choice < 25 || running_.empty()) {
        if (auto op = admit()) apply(*op);
      } else if (choice < 32) {
        apply(chunk());
      } else if (choice < 72) {
        apply(verify(/*decode=*/false));
      } else if (choice < 82) {
        apply(verify(/*decode=*/true));
      } else if (choice < 88) {
        apply(retract());
      } else if (choice < 94) {
        if (auto op = resume()) apply(*op);
      } else {
        apply(finish());
      }
    }
  }

 private:
  struct Req {
    int32_t req_row, working_row;
    int64_t length;
  };

  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  template <typename C>
  auto pick_from(const C& c) {
    auto it = c.begin();
    std::advance(it, pick(int(c.size())));
    return *it;
  }

  // A free row (freed rows first), else a cache row evicted; never a row this operation has
  // already handed out (two writes to one row in one step would be a scheduler bug).
  std::optional<int32_t> take_row() {
    if (!free_rows_.empty()) {
      const int32_t r = free_rows_.back();
      free_rows_.pop_back();
      taken_this_op_.insert(r);
      return r;
    }
    for (auto it = cache_.begin(); it != cache_.end(); ++it) {
      if (taken_this_op_.count(it->first)) continue;
      const int32_t r = it->first;
      cache_.erase(it);
      taken_this_op_.insert(r);
      return r;
    }
    return std::nullopt;
  }
  void release_row(int32_t row) { free_rows_.push_back(row); }

  // Snapshot rows for every page boundary in (from, to], as many as rows allow.
  std::vector<Snapshot> snapshots(int64_t from, int64_t to) {
    std::vector<Snapshot> out;
    for (int64_t b = (from / cfg_.page_size + 1) * cfg_.page_size; b <= to; b += cfg_.page_size) {
      if (pick(4) == 0) continue;  // the scheduler does not always cache
      auto row = take_row();
      if (!row) break;
      out.push_back({b, *row});
      cache_[*row] = b;
    }
    return out;
  }

  std::optional<Op> admit() {
    if (free_req_rows_.empty()) return std::nullopt;
    auto row = take_row();
    if (!row) return std::nullopt;
    ExtendOp op;
    op.request = next_id_++;
    op.req_row = free_req_rows_.back();
    free_req_rows_.pop_back();
    op.working_row = *row;
    op.tokens = 1 + pick(20);
    if (!cache_.empty() && pick(3) == 0) {
      const auto [src, len] = pick_from(cache_);
      op.prefix_len = len;
      op.cow_src_row = src;
    }
    op.snapshots = snapshots(op.prefix_len, op.prefix_len + op.tokens);
    running_[op.request] = {op.req_row, op.working_row, op.prefix_len + op.tokens};
    return OpExtend{op};
  }

  Op chunk() {
    const auto [id, req] = pick_from(running_);
    ExtendOp op;
    op.request = id;
    op.tokens = 1 + pick(12);
    op.snapshots = snapshots(req.length, req.length + op.tokens);
    running_[id].length += op.tokens;
    return OpExtend{op};
  }

  Op verify(bool decode) {
    std::vector<VerifyOp> batch;
    std::vector<uint64_t> discarded;
    for (auto& [id, req] : running_) {
      if (pick(4) == 0) continue;
      VerifyOp v;
      v.request = id;
      if (!decode && cfg_.discards && pick(6) == 0) {
        v.accepted = 0;
        discarded.push_back(id);
        batch.push_back(v);
        continue;
      }
      v.accepted = decode ? 1 : 1 + pick(cfg_.T);
      if (!decode && cfg_.tree_nodes > 0 && pick(4) != 0) {
        v.tree = random_tree();
        v.accepted = int32_t(v.tree->path.size());
      }
      auto snaps = snapshots(req.length, req.length + v.accepted);
      if (!snaps.empty()) v.snapshot = snaps.front();
      for (size_t i = 1; i < snaps.size(); ++i) {
        cache_.erase(snaps[i].row);
        release_row(snaps[i].row);
      }
      req.length += v.accepted;
      batch.push_back(v);
    }
    for (uint64_t id : discarded) {
      doomed_[id] = running_.at(id);
      running_.erase(id);
    }
    const int32_t padding = pick(3);
    if (decode) return OpDecode{batch, padding};
    return OpVerify{batch, padding};
  }

  // Nodes in any order a parent precedes its children: each node's parent is a random earlier
  // node above depth T-1; the accepted path goes down through random children.
  DraftTree random_tree() {
    DraftTree t;
    const int32_t n = 1 + pick(cfg_.tree_nodes);
    std::vector<int32_t> depth;
    for (int32_t i = 0; i < n; ++i) {
      if (i == 0) {
        t.parents.push_back(-1);
        depth.push_back(0);
        continue;
      }
      int32_t p = pick(i);
      while (depth[size_t(p)] >= cfg_.T - 1)
        p = pick(i);  // the root is always shallow enough
      t.parents.push_back(int8_t(p));
      depth.push_back(depth[size_t(p)] + 1);
    }
    t.path.push_back(0);
    for (;;) {
      const std::vector<int8_t> next = children(t, t.path.back());
      if (next.empty() || pick(5) == 0) break;
      t.path.push_back(next[size_t(pick(int(next.size())))]);
    }
    return t;
  }

  Op retract() {
    const auto [id, req] = pick_from(running_);
    release_row(req.working_row);
    free_req_rows_.push_back(req.req_row);
    retracted_[id] = req.length;
    running_.erase(id);
    return OpRetract{id};
  }

  std::optional<Op> resume() {
    if (retracted_.empty() || free_req_rows_.empty()) return std::nullopt;
    auto row = take_row();
    if (!row) return std::nullopt;
    const auto [id, length] = pick_from(retracted_);
    const int32_t req_row = free_req_rows_.back();
    free_req_rows_.pop_back();
    running_[id] = {req_row, *row, length};
    retracted_.erase(id);
    return OpResume{id, req_row, *row};
  }

  Op finish_doomed() { return finish_one(doomed_); }
  Op finish() { return finish_one(running_); }
  Op finish_one(std::map<uint64_t, Req>& requests) {
    const auto [id, req] = pick_from(requests);
    release_row(req.working_row);
    free_req_rows_.push_back(req.req_row);
    requests.erase(id);
    return OpFinish{id};
  }

  std::mt19937_64 rng_;
  ScheduleConfig cfg_;
  uint64_t next_id_ = 100;
  std::vector<int32_t> free_rows_, free_req_rows_;
  std::map<int32_t, int64_t> cache_;  // cache row -> snapshot length
  std::set<int32_t> taken_this_op_;
  std::map<uint64_t, Req> running_;
  std::map<uint64_t, int64_t> retracted_;
  std::map<uint64_t, Req> doomed_;  // a discarded entry: they only finish
};

}  // namespace specstate::test
