#include "core/io/output_file.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <streambuf>
#include <tuple>
#include <utility>

#include "core/errors.h"
#include "core/io/remove_on_signal.h"

namespace specstate::io {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxLinks = 40;  // as the kernel's ELOOP

[[noreturn]] void fail(const std::string& label, const std::string& what, int error) {
  throw InputError(label + ": " + what + ": " + std::strerror(error));
}

// The permission bits a new file or directory gets from open/mkdir: `bits` less the umask.
mode_t default_mode(mode_t bits) {
  const mode_t mask = umask(0);  // umask cannot be read without setting it
  umask(mask);
  return bits & ~mask;
}

// "DIR/.NAME.tmp-": hidden, and beside the target so that the final rename stays on one file
// system; create_temp adds the random part.
std::string temp_prefix(const std::string& target) {
  const fs::path path(target);
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::string name = path.filename().string();
  name.insert(0, 1, '.');  // not "." + name: GCC 12 warns falsely (-Wrestrict)
  return (dir / (name + ".tmp-")).string();
}

// A fresh temporary file or directory "PREFIX" + 12 random letters, made by `create(path)` (an
// exclusive open or mkdir: -1 and errno EEXIST when the name is taken, then another is tried),
// and registered for removal on a terminating signal before it exists, as mkstemp followed by
// remove_on_signal left a window in which a signal left the file behind. Returns the path and
// its slot; InputError when it cannot be made.
template <class Create>
std::pair<std::string, int> create_temp(const std::string& prefix, PathKind kind,
                                        const std::string& label, Create&& create) {
  static constexpr char kLetters[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  for (int attempt = 0; attempt < 100; ++attempt) {
    unsigned char random[12];
    if (getrandom(random, sizeof random, 0) != ssize_t(sizeof random))
      fail(label, "cannot draw a temporary name", errno);
    std::string path = prefix;
    for (unsigned char r : random)
      path += kLetters[r % (sizeof kLetters - 1)];
    const int slot = remove_on_signal(path, kind);
    if (create(path)) return {std::move(path), slot};
    const int error = errno;
    release_on_signal(slot);
    if (error != EEXIST) fail(label, "cannot create a temporary like " + path, error);
  }
  fail(label, "cannot create a temporary beside it: 100 names taken", EEXIST);
}

// A streambuf over a file descriptor that keeps the first write error's errno.
class FdBuffer : public std::streambuf {
 public:
  explicit FdBuffer(int fd) : fd_(fd) { setp(buffer_, buffer_ + sizeof buffer_); }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type c) override {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(c);
      pbump(1);
    }
    return traits_type::not_eof(c);
  }
  int sync() override { return drain() ? 0 : -1; }

 private:
  bool drain() {
    for (char* p = pbase(); p < pptr() && error_ == 0;) {
      const ssize_t n = ::write(fd_, p, size_t(pptr() - p));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) error_ = n < 0 ? errno : EIO;
      p += n > 0 ? n : 0;
    }
    setp(buffer_, buffer_ + sizeof buffer_);
    return error_ == 0;
  }

  int fd_;
  int error_ = 0;
  char buffer_[1 << 16];
};

// The kernel's fs.protected_symlinks rule, which following links by hand would bypass: a link
// in a sticky world-writable directory (/tmp) is followed only when it belongs to this user or
// to the directory's owner, so nobody can plant /tmp/out -> /etc/passwd for root to replace.
bool may_follow(const fs::path& link, const struct stat& link_st) {
  struct stat dir;
  const fs::path parent = link.has_parent_path() ? link.parent_path() : fs::path(".");
  if (stat(parent.c_str(), &dir) != 0) return false;
  const bool shared = (dir.st_mode & S_ISVTX) && (dir.st_mode & S_IWOTH);
  return !shared || link_st.st_uid == geteuid() || link_st.st_uid == dir.st_uid;
}

}  // namespace

std::string resolve_links(const std::string& path) {
  fs::path p(path);
  for (int links = 0;; ++links) {
    struct stat st;
    if (lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p.string();
    if (links == kMaxLinks) throw InputError(path + ": too many levels of symbolic links");
    if (!may_follow(p, st)) {
      throw InputError(path + ": will not follow " + p.string() +
                       ", a symbolic link of another user in a sticky world-writable directory");
    }
    std::string target(4096, '\0');
    const ssize_t n = readlink(p.c_str(), target.data(), target.size());
    if (n < 0) fail(path, "cannot read the symbolic link " + p.string(), errno);
    if (size_t(n) == target.size()) fail(path, "cannot read the symbolic link", ENAMETOOLONG);
    target.resize(size_t(n));
    p = fs::path(target).is_absolute() ? fs::path(target) : p.parent_path() / target;
  }
}

// Its destructor cleans up, so that a constructor that throws half-way leaves no temporary file.
struct OutputFile::State {
  std::string target, label, temp;  // temp empty: written in place
  int fd = -1;
  int slot = -1;
  mode_t mode = 0;
  bool committed = false;
  std::unique_ptr<FdBuffer> buffer;
  std::ostream stream{nullptr};

  ~State() {
    if (fd >= 0) close(fd);
    if (!temp.empty() && !committed) unlink(temp.c_str());
    release_on_signal(slot);
  }
};

OutputFile::OutputFile(const std::string& path, std::string label)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.label = std::move(label);
  if (path == "-") {  // standard output, written in place
    s.target = path;
    s.fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0);
    if (s.fd < 0) fail(s.label, "cannot write standard output", errno);
    s.buffer = std::make_unique<FdBuffer>(s.fd);
    s.stream.rdbuf(s.buffer.get());
    return;
  }
  s.target = resolve_links(path);
  struct stat st;
  const bool exists = stat(s.target.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) fail(s.label, "cannot inspect " + s.target, errno);
  if (exists && S_ISDIR(st.st_mode)) throw InputError(s.label + ": is a directory");
  if (exists && !S_ISREG(st.st_mode)) {
    // A device or FIFO is written in place: renaming over it would replace it by a file.
    s.fd = open(s.target.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (s.fd < 0) fail(s.label, "cannot open " + s.target + " for writing", errno);
  } else {
    int fd = -1;
    auto [temp, slot] = create_temp(
        temp_prefix(s.target), PathKind::kFile, s.label, [&fd](const std::string& path) {
          fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
          return fd >= 0;
        });
    s.temp = std::move(temp);  // cannot throw: State owns the file from here on
    s.fd = fd;
    s.slot = slot;
    s.mode = exists ? st.st_mode & 07777 : default_mode(0666);
  }
  s.buffer = std::make_unique<FdBuffer>(s.fd);
  s.stream.rdbuf(s.buffer.get());
}

OutputFile::~OutputFile() = default;

std::ostream& OutputFile::stream() {
  return state_->stream;
}

void OutputFile::commit() {
  State& s = *state_;
  s.stream.flush();
  if (s.buffer->error() != 0) fail(s.label, "write failed", s.buffer->error());
  if (!s.temp.empty()) {
    if (fchmod(s.fd, s.mode) != 0) fail(s.label, "cannot set the mode of " + s.temp, errno);
    // Space is sometimes only claimed at writeback: sync before the old file is replaced.
    if (fsync(s.fd) != 0) fail(s.label, "write failed", errno);
  }
  const int fd = s.fd;
  s.fd = -1;
  if (close(fd) != 0) fail(s.label, "write failed", errno);
  if (!s.temp.empty()) {
    if (rename(s.temp.c_str(), s.target.c_str()) != 0)
      fail(s.label, "cannot rename " + s.temp + " to " + s.target, errno);
    release_on_signal(s.slot);
    s.slot = -1;
  }
  s.committed = true;
}

void write_file_atomically(const std::string& path, std::string_view text,
                           const std::string& label) {
  OutputFile file(path, label);
  file.stream().write(text.data(), std::streamsize(text.size()));
  file.commit();
}

OutputDirectory::OutputDirectory(const std::string& path, std::string label)
    : label_(std::move(label)) {
  fs::path normal = fs::path(path).lexically_normal();
  if (normal.filename().empty()) normal = normal.parent_path();  // "out/" names "out"
  target_ = resolve_links(normal.string());
  std::error_code ec;
  struct stat st;
  const bool exists = stat(target_.c_str(), &st) == 0;
  if (exists && (!S_ISDIR(st.st_mode) || !fs::is_empty(target_, ec) || ec))
    throw InputError(label_ + ": exists and is not an empty directory");
  mode_ = exists ? st.st_mode & 07777 : default_mode(0777);
  std::tie(temp_, slot_) =  // mode 0700 until commit()
      create_temp(temp_prefix(target_), PathKind::kDirectory, label_,
                  [](const std::string& path) { return mkdir(path.c_str(), 0700) == 0; });
  dir_ = open(temp_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat own;
  if (dir_ < 0 || fstat(dir_, &own) != 0) fail(label_, "cannot open " + temp_, errno);
  SPECSTATE_ASSERT(own.st_uid == geteuid() && (own.st_mode & 077) == 0,
                   "the temporary directory is this user's, private");
}

OutputDirectory::~OutputDirectory() {
  if (dir_ >= 0) close(dir_);
  std::error_code ec;
  if (!committed_) fs::remove_all(temp_, ec);
  release_on_signal(slot_);
}

int OutputDirectory::open_parent(const std::string& relative, std::string& name) const {
  SPECSTATE_ASSERT(!relative.empty() && relative.front() != '/',
                   "a path inside an output directory is relative");
  int parent = -1;  // dir_
  size_t start = 0;
  for (size_t slash; (slash = relative.find('/', start)) != std::string::npos; start = slash + 1) {
    const std::string part = relative.substr(start, slash - start);
    const int next = openat(parent < 0 ? dir_ : parent, part.c_str(),
                            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    const int error = errno;
    if (parent >= 0) close(parent);
    if (next < 0) fail(label_, "cannot open " + temp_ + "/" + relative.substr(0, slash), error);
    parent = next;
  }
  name = relative.substr(start);
  return parent;
}

void OutputDirectory::make_directory(const std::string& relative) const {
  std::string name;
  const int parent = open_parent(relative, name);
  const int rc = mkdirat(parent < 0 ? dir_ : parent, name.c_str(), 0777);
  const int error = errno;
  if (parent >= 0) close(parent);
  if (rc != 0) fail(label_, "cannot create " + temp_ + "/" + relative, error);
}

int OutputDirectory::open_file(const std::string& relative, bool create) const {
  std::string name;
  const int parent = open_parent(relative, name);
  const int flags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT | O_EXCL : O_APPEND);
  const int fd = openat(parent < 0 ? dir_ : parent, name.c_str(), flags, 0666);
  const int error = errno;
  if (parent >= 0) close(parent);
  if (fd < 0) fail(label_, "cannot write " + temp_ + "/" + relative, error);
  return fd;
}

void OutputDirectory::commit() {
  if (fchmod(dir_, mode_) != 0) fail(label_, "cannot set the mode of " + temp_, errno);
  if (rename(temp_.c_str(), target_.c_str()) != 0)
    fail(label_, "cannot rename " + temp_ + " into place", errno);
  release_on_signal(slot_);
  slot_ = -1;
  committed_ = true;
}

}  // namespace specstate::io
