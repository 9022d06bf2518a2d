// Output files and directories that are never half-written and never clobber what they should
// not. Every command that writes a file goes through here (generate, demo, footprint --svg,
// dump).
//
// The target named by the user is first resolved: a symbolic link is followed to the file it
// names (the link stays). Then:
//  - a regular file, or nothing: the data goes to a fresh temporary file in the target's
//    directory (O_CREAT | O_EXCL under 12 random letters, a name nobody can plant a link on,
//    registered for removal on a signal before it exists), which is flushed, synced, given the
//    old file's mode (or the umask's default) and renamed over the target.
//    Until then the old file is untouched; on any error, or on SIGINT/SIGTERM/SIGHUP
//    (core/io/remove_on_signal.h), the temporary file is removed.
//  - a character device, a FIFO or another non-regular file: written in place (a rename would
//    replace /dev/null by a regular file).
//  - a directory: an InputError.
//  - "-": standard output, written in place.
// Errors are InputErrors naming the target and the system's reason ("No space left on device").
#pragma once

#include <sys/types.h>

#include <memory>
#include <ostream>
#include <string>
#include <string_view>

namespace specstate::io {

// `path` with its symbolic links followed, as far as they lead (a dangling link gives the path
// it points to, which is then created). InputError after 40 links (a loop), and for a link of
// another user in a sticky world-writable directory such as /tmp (the kernel's
// protected_symlinks rule, which reading links by hand would otherwise bypass).
std::string resolve_links(const std::string& path);

class OutputFile {
 public:
  // Opens the temporary file (or the target, written in place). `label` prefixes messages,
  // e.g. "-o out.jsonl" or the path itself.
  OutputFile(const std::string& path, std::string label);
  ~OutputFile();  // removes the temporary file unless commit() succeeded
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  std::ostream& stream();
  // Flushes and checks every write, then puts the file in place. Throws InputError on failure
  // (the target is then unchanged when it was a regular file or absent).
  void commit();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// OutputFile in one call.
void write_file_atomically(const std::string& path, std::string_view text,
                           const std::string& label);

// A directory filled under a temporary hidden name beside the target and renamed into place by
// commit(); until then the destructor (or a terminating signal) removes it with everything in
// it. The target, links followed, must not exist or be an empty directory.
//
// The temporary directory is private (0700) until commit() gives it the target's mode, and what
// goes inside is created through the directory's own descriptor with no link followed
// (make_directory, open_file): so nobody, and nothing planted inside or renamed beside it, can
// turn a write into the directory into a write elsewhere (root's dump into a world-writable
// folder included).
class OutputDirectory {
 public:
  OutputDirectory(const std::string& path, std::string label);
  ~OutputDirectory();
  OutputDirectory(const OutputDirectory&) = delete;
  OutputDirectory& operator=(const OutputDirectory&) = delete;

  const std::string& path() const { return temp_; }  // where it is until commit() (messages)
  const std::string& label() const { return label_; }
  // Creates the directory `relative` (components separated by '/', none of them a link).
  void make_directory(const std::string& relative) const;
  // Opens the file `relative` for writing: created (it must not exist: O_EXCL) or opened to
  // append. Returns a descriptor the caller closes; InputError naming the file and the reason.
  int open_file(const std::string& relative, bool create) const;
  void commit();

 private:
  // The directory holding the last component of `relative`, opened without following links
  // (-1 for the top, which is dir_); sets `name` to that last component.
  int open_parent(const std::string& relative, std::string& name) const;

  std::string target_, temp_, label_;
  int dir_ = -1;        // the temporary directory, held open from creation
  mode_t mode_ = 0700;  // the target's mode, given at commit()
  int slot_ = -1;       // remove_on_signal registration
  bool committed_ = false;
};

}  // namespace specstate::io
