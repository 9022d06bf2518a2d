#include "core/io/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/errors.h"

namespace specstate::io {
namespace {

const char* kind_of(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a file";
}

}  // namespace

std::string file_prefix(const std::string& path) {
  return quote_file_name(path) + ": ";
}

InputFile::InputFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd_ < 0) {
    throw InputError(file_prefix(path) + "cannot open for reading: " + std::strerror(errno));
  }
  struct stat st {};
  std::string refusal;
  if (::fstat(fd_, &st) != 0) {
    refusal = std::string("cannot stat: ") + std::strerror(errno);
  } else if (S_ISDIR(st.st_mode)) {
    refusal = "is a directory";
  } else if (!S_ISREG(st.st_mode)) {
    refusal = std::string("not a regular file (") + kind_of(st.st_mode) + ")";
  }
  if (!refusal.empty()) {
    ::close(fd_);
    throw InputError(file_prefix(path) + refusal);
  }
  size_ = int64_t(st.st_size);
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);  // needed only for the open
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

InputFile::InputFile(InputFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(other.fd_), size_(other.size_) {
  other.fd_ = -1;
}

void InputFile::read_at(int64_t offset, std::span<char> out) const {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, off_t(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw InputError(file_prefix(path_) + "read failed: " + std::strerror(errno));
    if (n == 0) {
      throw InputError(file_prefix(path_) + "ends at byte " + std::to_string(offset + done) +
                       ", before the " + std::to_string(size_) +
                       " bytes it had when opened (it was truncated)");
    }
    done += size_t(n);
  }
}

std::string read_text_file(const std::string& path, int64_t max_bytes) {
  const InputFile file(path);
  if (file.size() > max_bytes) {
    throw InputError(file_prefix(path) + std::to_string(file.size()) + " bytes, more than the " +
                     std::to_string(max_bytes) + " this file may hold");
  }
  std::string text(size_t(file.size()), '\0');
  file.read_at(0, text);
  return text;
}

}  // namespace specstate::io
