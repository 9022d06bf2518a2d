// What the long-running commands (replay, dump) share: the thread count, and a progress bar
// that tells the time left.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/strategy/strategy.h"

namespace specstate::cli {

// --threads N on `cmd`, into `threads` (0: the hardware threads).
void add_threads_option(CLI::App* cmd, int& threads);

// --ring-slots, --ring-history, --ring-fold-at: the ring strategy's parameters (RingParams;
// FlashInfer #4081's defaults), checked against T when a ring layout is made.
void add_ring_options(CLI::App* cmd, RingParams& ring);

// Runs work on exactly `threads` TBB threads (0: the hardware threads), more than the machine's
// cores if asked. The bits of every result are the same for any count; only the time changes.
class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  int threads() const { return threads_; }
  int run(const std::function<int()>& work);

 private:
  struct Arena;
  std::unique_ptr<Arena> arena_;
  int threads_;
};

// A bar on stderr over work units, with a detail such as "5 lanes, 12/225 events" and the time
// left: drawn only on a terminal, only once the run has taken a second (shorter ones stay
// silent), at most ten times a second; cleared when done. Empty when stderr is not a terminal.
std::function<void(int64_t done, int64_t total, double seconds, const std::string& detail)>
progress_bar();

}  // namespace specstate::cli
