// The live-state table of a PoolPolicy (request -> LiveState), cheap to copy.
//
// Overlap scheduling (host_scheduler.h) copies the policy once per count a step may accept, twice
// a step: with a plain map every copy cost the whole table, so planning a one-entry step cost
// O(T x live requests) (16,384 live requests, T = 16: 97 ms a step). Here the entries sit in a
// shared, immutable base plus a layer of the entries changed since (erasures kept as marks): a
// copy shares the base and copies the layer. compact() merges a large layer into a fresh base (one
// pass over the table). It must be called where no entry reference is held: PoolPolicy compacts at
// the start of each operation past 2 x kCompactAt changes (so a table that is never copied stays
// bounded), and whoever copies a policy many times compacts it first (PoolPolicy::compact_table),
// so that the copies do not each compact.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>

#include "core/primitives.h"

namespace specstate {

// One request's entry in the live-state table.
struct LiveState {
  int32_t req_row = kNoRow;
  int32_t working_row = kNoRow;   // kNoRow while retracted
  int64_t length = 0;             // tokens in the logical live state (pending ones included)
  StateLoc loc;                   // where the state after length - pending tokens is
  int32_t pending = 0;            // deferred, ring: accepted tokens not yet replayed into loc
  int32_t pending_slot = kNoRow;  // deferred, ring: the payload slot holding them
  // Ring: the history's cursor (FlashInfer's cache_base; `pending` is hist_len) and the step
  // boundaries inside it (bit j: a step ended after history token j).
  int32_t pending_first = 0;
  uint32_t pending_rounds = 0;
  // Paged: the request's block table around its running page `page` (logical block index):
  // blocks[i] holds page + i, the running page's block first, then the lookahead pages' (T in
  // all, each one of the request's working row and its request row's T paged blocks).
  int64_t page = 0;
  std::array<int32_t, kMaxVerifyTokens> blocks{};
  bool retracted = false;
  bool discarded = false;  // its last step was discarded (accepted 0): it can only finish
};

class LiveTable {
 public:
  // Changed entries at which the owner of many copies compacts: a copy costs at most about this
  // many entries, a compaction the whole table once per kCompactAt changes.
  static constexpr size_t kCompactAt = 128;

  const LiveState* find(uint64_t request) const {
    if (auto it = layer_.find(request); it != layer_.end())
      return it->second.erased ? nullptr : &it->second.state;
    auto it = base_->find(request);
    return it == base_->end() ? nullptr : &it->second.state;
  }
  bool contains(uint64_t request) const { return find(request) != nullptr; }
  // The entry, moved into the layer to be changed; null when there is none.
  LiveState* find_mutable(uint64_t request) {
    if (auto it = layer_.find(request); it != layer_.end())
      return it->second.erased ? nullptr : &it->second.state;
    auto it = base_->find(request);
    if (it == base_->end()) return nullptr;
    return &layer_.emplace(request, it->second).first->second.state;
  }
  LiveState& set(uint64_t request, const LiveState& s) {
    return (layer_[request] = Entry{s, false}).state;
  }
  void erase(uint64_t request) { layer_[request] = Entry{{}, true}; }

  // Merges the layer into a new base when it holds `at` entries or more. Invalidates references
  // from find_mutable() and set().
  void compact(size_t at) {
    if (layer_.size() < at || layer_.empty()) return;
    auto base = std::make_shared<Map>(*base_);
    for (auto& [request, entry] : layer_) {
      if (entry.erased) {
        base->erase(request);
      } else {
        (*base)[request] = entry;
      }
    }
    base_ = std::move(base);
    layer_.clear();
  }

  // Every entry, by ascending request.
  std::map<uint64_t, LiveState> entries() const {
    std::map<uint64_t, LiveState> out;
    for (const auto& [request, entry] : *base_)
      out.emplace(request, entry.state);
    for (const auto& [request, entry] : layer_) {
      if (entry.erased) {
        out.erase(request);
      } else {
        out[request] = entry.state;
      }
    }
    return out;
  }

 private:
  struct Entry {
    LiveState state;
    bool erased = false;  // in the layer: the request has no entry, whatever the base says
  };
  using Map = std::map<uint64_t, Entry>;

  std::shared_ptr<const Map> base_ = std::make_shared<const Map>();
  Map layer_;
};

}  // namespace specstate
