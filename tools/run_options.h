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

// A thread count beyond this many per hardware thread is capped: more only switch and start
// threads (--threads 1024 made a 0.2 s replay take 15 s).
constexpr int kThreadsPerHardwareThread = 4;

// --threads N on `cmd`, into `threads` (0: the hardware threads).
void add_threads_option(CLI::App* cmd, int& threads);

// --ring-slots, --ring-history, --ring-fold-at: the ring strategy's parameters (RingParams;
// FlashInfer #4081's defaults), checked against T when a ring layout is made.
void add_ring_options(CLI::App* cmd, RingParams& ring);

// Runs work on `requested` TBB threads (0: the hardware threads), at most
// kThreadsPerHardwareThread per hardware thread. The bits of every result are the same for any
// count; only the time changes. Throws InputError ("--threads N: cannot start N threads:
// Resource temporarily unavailable") when the system refuses that many threads (ulimit -u,
// ulimit -v), which TBB would find only in a worker, and abort.
class ThreadPool {
 public:
  explicit ThreadPool(int requested);
  ~ThreadPool();
  int threads() const { return threads_; }
  // "8 threads", or "8 threads (--threads 4096 capped at 4 per hardware thread)".
  std::string describe() const;
  int run(const std::function<int()>& work);

 private:
  struct Arena;
  int requested_;
  int threads_;
  std::unique_ptr<Arena> arena_;
};

// A bar on stderr over work units, with a detail such as "5 lanes, 12/225 events" and the time
// left: drawn only on a terminal, only once the run has taken a second (shorter ones stay
// silent), at most ten times a second; cleared when done. Empty when stderr is not a terminal.
std::function<void(int64_t done, int64_t total, double seconds, const std::string& detail)>
progress_bar();

}  // namespace specstate::cli
