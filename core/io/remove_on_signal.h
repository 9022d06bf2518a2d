// Paths that a terminating signal (any whose default action ends the process: SIGINT, SIGTERM,
// SIGHUP, SIGPIPE, SIGXFSZ, SIGABRT, ...) must not leave behind: the
// temporary files and directories of core/io/output_file.h. Their owners remove them on every
// other way out (destructors); this covers the one where no destructor runs.
//
// The handler runs only async-signal-safe system calls (unlink, openat, getdents64, unlinkat),
// then restores the default action and re-raises the signal, so the process still ends "killed
// by SIGTERM" (exit status 143 in a shell). A signal the process ignores (nohup) stays ignored.
#pragma once

#include <string>

namespace specstate::io {

enum class PathKind { kFile, kDirectory };

// Registers `path` (absolute, or relative to a working directory that does not change) and
// returns its slot, or -1 when every slot is taken: the path is then removed only by its owner.
int remove_on_signal(const std::string& path, PathKind kind);

// Forgets a slot from remove_on_signal (after the path was renamed or removed); -1 is ignored.
void release_on_signal(int slot);

}  // namespace specstate::io
