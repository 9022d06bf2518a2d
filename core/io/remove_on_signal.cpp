#include "core/io/remove_on_signal.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>

namespace specstate::io {
namespace {

constexpr int kSlots = 16;
constexpr int kMaxDepth = 16;  // dump writes OUT/layerNN/file.npy: depth 2
// Every signal whose default action ends the process: asked for (SIGINT, SIGTERM, SIGHUP,
// SIGQUIT), from limits and timers (SIGXFSZ, SIGXCPU, SIGALRM, SIGVTALRM, SIGPROF), a closed
// pipe (SIGPIPE), unhandled user signals, and faults (SIGABRT of a broken invariant included).
constexpr int kSignals[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGTERM,   SIGPIPE, SIGALRM, SIGUSR1,
                            SIGUSR2, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGPOLL, SIGPWR,
                            SIGSYS,  SIGTRAP, SIGABRT, SIGBUS,    SIGFPE,  SIGILL,  SIGSEGV};

enum SlotState : int { kFree, kFilling, kReady };

struct Slot {
  std::atomic<int> state{kFree};
  PathKind kind = PathKind::kFile;
  char path[4096] = {};
};

Slot slots[kSlots];

// Removes everything below the directory open as `dir` (closed here). Deleting while reading
// may skip entries, so it reads again until a pass deletes nothing.
void remove_below(int dir, int depth) {
  alignas(8) char buffer[4096];
  for (bool removed = true; removed;) {
    removed = false;
    lseek(dir, 0, SEEK_SET);
    for (ssize_t n; (n = getdents64(dir, buffer, sizeof buffer)) > 0;) {
      for (ssize_t at = 0; at < n;) {
        const auto* entry = reinterpret_cast<const dirent64*>(buffer + at);
        at += entry->d_reclen;
        const char* name = entry->d_name;
        if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
        if (unlinkat(dir, name, 0) == 0) {
          removed = true;
          continue;
        }
        const int sub =
            depth < kMaxDepth ? openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) : -1;
        if (sub < 0) continue;
        remove_below(sub, depth + 1);
        removed = unlinkat(dir, name, AT_REMOVEDIR) == 0 || removed;
      }
    }
  }
  close(dir);
}

void remove_slots_and_reraise(int signal) {
  for (Slot& slot : slots) {
    if (slot.state.load() != kReady) continue;
    if (slot.kind == PathKind::kFile) {
      unlink(slot.path);
      continue;
    }
    const int dir = open(slot.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (dir < 0) continue;
    remove_below(dir, 0);
    rmdir(slot.path);
  }
  struct sigaction action = {};
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  sigaction(signal, &action, nullptr);
  raise(signal);  // delivered when the handler returns and the signal is unblocked
}

void install_handlers() {
  for (int signal : kSignals) {
    struct sigaction old = {};
    if (sigaction(signal, nullptr, &old) != 0 || old.sa_handler == SIG_IGN) continue;
    if (old.sa_handler != SIG_DFL) continue;  // someone else handles it; do not take it away
    struct sigaction action = {};
    action.sa_handler = remove_slots_and_reraise;
    sigemptyset(&action.sa_mask);
    for (int other : kSignals)
      sigaddset(&action.sa_mask, other);  // one handler at a time
    sigaction(signal, &action, nullptr);
  }
}

}  // namespace

int remove_on_signal(const std::string& path, PathKind kind) {
  static std::once_flag installed;
  std::call_once(installed, install_handlers);
  if (path.size() >= sizeof(Slot::path)) return -1;
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (!slots[i].state.compare_exchange_strong(expected, kFilling)) continue;
    slots[i].kind = kind;
    std::memcpy(slots[i].path, path.c_str(), path.size() + 1);
    slots[i].state.store(kReady);
    return i;
  }
  return -1;
}

void release_on_signal(int slot) {
  if (slot >= 0 && slot < kSlots) slots[slot].state.store(kFree);
}

}  // namespace specstate::io
