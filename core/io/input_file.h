// Input files that a hostile path cannot turn into a hang, a crash or an unbounded read:
// specstate compare reads dump folders made by other programs (docs/interop.md).
//
// A path is opened with O_NONBLOCK (so that a FIFO with no writer cannot block the open) and
// checked with fstat on the open descriptor (so that what is checked is what is read): anything
// but a regular file (a directory, a FIFO, a device, a socket) is refused. Symbolic links are
// followed; a loop is refused with the system's reason. Errors are InputErrors "FILE: reason",
// FILE as quote_file_name() writes it, with strerror's text where a system call failed.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace specstate::io {

class InputFile {
 public:
  explicit InputFile(const std::string& path);
  ~InputFile();
  InputFile(InputFile&& other) noexcept;
  InputFile& operator=(InputFile&&) = delete;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::string& path() const { return path_; }
  int64_t size() const { return size_; }  // as fstat saw it when the file was opened
  // Fills `out` from byte `offset`. Throws InputError when the file ends before (it shrank
  // since it was opened) or the read fails.
  void read_at(int64_t offset, std::span<char> out) const;

 private:
  std::string path_;
  int fd_ = -1;
  int64_t size_ = 0;
};

// The whole of a regular file as text. Throws InputError as InputFile does, and for a file of
// more than `max_bytes` (a limit on memory, named in the message).
std::string read_text_file(const std::string& path, int64_t max_bytes);

// The prefix of messages about `path`: quote_file_name(path) + ": ".
std::string file_prefix(const std::string& path);

}  // namespace specstate::io
