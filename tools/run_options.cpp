#include "tools/run_options.h"

#include <pthread.h>
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <latch>
#include <vector>

#include "core/errors.h"
#include "core/primitives.h"
#include "tools/integer_option.h"

namespace specstate::cli {

namespace {

int hardware_threads() {
  return tbb::info::default_concurrency();  // the CPUs this process may run on
}

int capped_threads(int requested) {
  const int most = kThreadsPerHardwareThread * hardware_threads();
  return requested > 0 ? std::min(requested, most) : hardware_threads();
}

// Starts `threads - 1` threads (the caller is the last) with TBB's stack size, all alive at
// once, then ends them: InputError naming the system's reason when one cannot start.
void check_threads_start(int threads, int requested) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(
      &attr, tbb::global_control::active_value(tbb::global_control::thread_stack_size));
  std::latch go(1);
  std::vector<pthread_t> started;
  int error = 0;
  while (error == 0 && int(started.size()) < threads - 1) {
    pthread_t thread;
    error = pthread_create(
        &thread, &attr,
        [](void* latch) -> void* {
          static_cast<std::latch*>(latch)->wait();
          return nullptr;
        },
        &go);
    if (error == 0) started.push_back(thread);
  }
  go.count_down();
  for (pthread_t thread : started)
    pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
  if (error != 0) {
    const std::string flag = requested > 0 ? "--threads " + std::to_string(requested)
                                           : "--threads (default: the hardware threads)";
    throw InputError(flag + ": cannot start " + std::to_string(threads) +
                     " threads: " + std::strerror(error));
  }
}

}  // namespace

void add_threads_option(CLI::App* cmd, int& threads) {
  add_integer(cmd, "--threads", threads,
              "Threads for the CPU backend, the lanes and the comparisons (default: the hardware "
              "threads, " +
                  std::to_string(hardware_threads()) + " here). At most " +
                  std::to_string(kThreadsPerHardwareThread) +
                  " per hardware thread start: more only add switching. A count the system "
                  "cannot start is refused. Results are bit-identical for any count")
      ->check(CLI::Range(1, 4096));
}

void add_ring_options(CLI::App* cmd, RingParams& ring) {
  const RingParams d;
  add_integer(cmd, "--ring-slots", ring.slots,
              "ring strategy: token positions of a request row's ring (default " +
                  std::to_string(d.slots) +
                  "; at least history + T, or + the tree nodes of a tree trace, at most " +
                  std::to_string(kMaxPayloadTokens) + ")");
  add_integer(cmd, "--ring-history", ring.max_history,
              "ring strategy: history tokens the ring holds at most between steps (default " +
                  std::to_string(d.max_history) + "; T .. " + std::to_string(kMaxReplayTokens) +
                  " - T)");
  add_integer(cmd, "--ring-fold-at", ring.fold_at,
              "ring strategy: a verify folds the history into the checkpoint first when it holds "
              "at least this many tokens (default: ring history - T + 1, the latest fold)");
}

struct ThreadPool::Arena {
  explicit Arena(int threads)
      : limit(tbb::global_control::max_allowed_parallelism, size_t(threads)), arena(threads) {}
  tbb::global_control limit;  // lets TBB start more workers than it would by default
  tbb::task_arena arena;
};

ThreadPool::ThreadPool(int requested) : requested_(requested), threads_(capped_threads(requested)) {
  check_threads_start(threads_, requested);
  arena_ = std::make_unique<Arena>(threads_);
  SPECSTATE_ASSERT(arena_->arena.max_concurrency() == threads_, "the arena runs the threads asked");
}

ThreadPool::~ThreadPool() = default;

std::string ThreadPool::describe() const {
  std::string text = std::to_string(threads_) + " threads";
  if (requested_ > threads_) {
    text += " (--threads " + std::to_string(requested_) + " capped at " +
            std::to_string(kThreadsPerHardwareThread) + " per hardware thread)";
  }
  return text;
}

int ThreadPool::run(const std::function<int()>& work) {
  return arena_->arena.execute(work);
}

namespace {

std::string duration(double seconds) {
  char buf[32];
  if (seconds < 60) {
    std::snprintf(buf, sizeof buf, "%.0f s", seconds);
  } else if (seconds < 3600) {
    std::snprintf(buf, sizeof buf, "%d min %02d s", int(seconds) / 60, int(seconds) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%d h %02d min", int(seconds) / 3600, int(seconds) / 60 % 60);
  }
  return buf;
}

}  // namespace

std::function<void(int64_t, int64_t, double, const std::string&)> progress_bar() {
  if (!isatty(STDERR_FILENO)) return {};
  return [drawn = -1.0](int64_t done, int64_t total, double seconds,
                        const std::string& detail) mutable {
    const bool finished = total > 0 && done >= total;
    if (finished) {
      if (drawn >= 0) std::fprintf(stderr, "\r\033[K");
      return;
    }
    if (seconds < 1.0 || seconds - drawn < 0.1) return;
    drawn = seconds;
    const double fraction = total > 0 ? double(done) / double(total) : 0.0;
    const int width = 30, filled = int(fraction * width);
    std::string eta = "?";
    if (done > 0) eta = duration(seconds * (1.0 - fraction) / fraction);
    std::fprintf(stderr, "\r\033[K  [%.*s%*s] %3d%%  %s, %s elapsed, about %s left", filled,
                 "##############################", width - filled, "", int(fraction * 100),
                 detail.c_str(), duration(seconds).c_str(), eta.c_str());
  };
}

}  // namespace specstate::cli
