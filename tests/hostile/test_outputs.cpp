// Hostile outputs, in process: what core/io writes over devices, FIFOs, links, directories and
// planted names; that a terminating signal leaves no temporary file or directory; that sizes
// which overflow are InputErrors, not aborts; that integer flags refuse what does not fit; and
// that the memory limit sees `ulimit -v`. The command-line cases are in run_hostile.sh.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <string>
#include <thread>

#include "backends/registry.h"
#include "core/errors.h"
#include "core/geometry.h"
#include "core/io/output_file.h"
#include "core/strategy/strategy.h"
#include "tests/temp_dir.h"
#include "tools/integer_option.h"

namespace specstate {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

mode_t mode_of(const std::string& path) {
  struct stat st;
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st.st_mode;
}

// The InputError's message of `f()`, or "" when it does not throw one.
template <typename F>
std::string input_error(F f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(OutputFile, ReplacesARegularFileAndKeepsItsMode) {
  TempDir dir;
  write(dir / "out", "old");
  ASSERT_EQ(chmod((dir / "out").c_str(), 0640), 0);
  io::write_file_atomically(dir / "out", "new", "out");
  EXPECT_EQ(read(dir / "out"), "new");
  EXPECT_EQ(mode_of(dir / "out") & 07777, 0640u);
  EXPECT_EQ(dir.names(), std::set<std::string>{"out"});
}

TEST(OutputFile, CreatesAMissingFileWithTheUmasksMode) {
  TempDir dir;
  const mode_t old = umask(027);
  io::write_file_atomically(dir / "out", "new", "out");
  umask(old);
  EXPECT_EQ(read(dir / "out"), "new");
  EXPECT_EQ(mode_of(dir / "out") & 07777, 0640u);
}

TEST(OutputFile, FollowsASymlinkAndKeepsIt) {
  TempDir dir;
  write(dir / "target", "old");
  ASSERT_EQ(symlink("target", (dir / "link").c_str()), 0);
  ASSERT_EQ(symlink("link", (dir / "link2").c_str()), 0);  // a chain, relative
  io::write_file_atomically(dir / "link2", "new", "link2");
  EXPECT_TRUE(S_ISLNK(mode_of(dir / "link")));
  EXPECT_TRUE(S_ISLNK(mode_of(dir / "link2")));
  EXPECT_EQ(read(dir / "target"), "new");
  EXPECT_EQ(dir.names(), (std::set<std::string>{"link", "link2", "target"}));
}

TEST(OutputFile, ADanglingSymlinkCreatesItsTarget) {
  TempDir dir;
  ASSERT_EQ(symlink("target", (dir / "link").c_str()), 0);
  io::write_file_atomically(dir / "link", "new", "link");
  EXPECT_TRUE(S_ISLNK(mode_of(dir / "link")));
  EXPECT_EQ(read(dir / "target"), "new");
}

TEST(OutputFile, ASymlinkLoopIsAnInputError) {
  TempDir dir;
  ASSERT_EQ(symlink("b", (dir / "a").c_str()), 0);
  ASSERT_EQ(symlink("a", (dir / "b").c_str()), 0);
  EXPECT_NE(input_error([&] {
              io::write_file_atomically(dir / "a", "x", "a");
            }).find("too many levels of symbolic links"),
            std::string::npos);
}

// As the kernel's protected_symlinks: root must not follow /tmp/out -> /etc/passwd planted by
// another user.
TEST(OutputFile, RefusesAnotherUsersLinkInAStickyWorldWritableDirectory) {
  TempDir dir;
  ASSERT_EQ(chmod((dir / "").c_str(), 01777), 0);
  write(dir / "victim", "precious");
  ASSERT_EQ(symlink("victim", (dir / "link").c_str()), 0);
  if (lchown((dir / "link").c_str(), 65534, 65534) != 0) {
    GTEST_SKIP() << "cannot give a link to another user here: " << std::strerror(errno);
  }
  EXPECT_NE(input_error([&] {
              io::write_file_atomically(dir / "link", "x", "link");
            }).find("will not follow"),
            std::string::npos);
  EXPECT_EQ(read(dir / "victim"), "precious");
  EXPECT_TRUE(S_ISLNK(mode_of(dir / "link")));
}

TEST(OutputFile, WritesADeviceNodeInPlace) {
  TempDir dir;
  if (mknod((dir / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) {
    GTEST_SKIP() << "mknod of a character device not permitted here: " << std::strerror(errno);
  }
  io::write_file_atomically(dir / "null", "data", "null");
  EXPECT_TRUE(S_ISCHR(mode_of(dir / "null")));  // still the device, not a regular file
  EXPECT_EQ(dir.names(), std::set<std::string>{"null"});
}

TEST(OutputFile, AFullDeviceGivesTheReason) {
  TempDir dir;
  if (mknod((dir / "full").c_str(), S_IFCHR | 0666, makedev(1, 7)) != 0) {
    GTEST_SKIP() << "mknod of a character device not permitted here: " << std::strerror(errno);
  }
  EXPECT_EQ(input_error([&] { io::write_file_atomically(dir / "full", "data", "full"); }),
            "full: write failed: " + std::string(std::strerror(ENOSPC)));
  EXPECT_TRUE(S_ISCHR(mode_of(dir / "full")));
  EXPECT_EQ(dir.names(), std::set<std::string>{"full"});
}

TEST(OutputFile, WritesAFifoInPlace) {
  TempDir dir;
  ASSERT_EQ(mkfifo((dir / "fifo").c_str(), 0600), 0);
  std::string received;
  std::thread reader([&] { received = read(dir / "fifo"); });
  io::write_file_atomically(dir / "fifo", "through the pipe", "fifo");
  reader.join();
  EXPECT_EQ(received, "through the pipe");
  EXPECT_TRUE(S_ISFIFO(mode_of(dir / "fifo")));
  EXPECT_EQ(dir.names(), std::set<std::string>{"fifo"});
}

TEST(OutputFile, ADirectoryIsAnInputError) {
  TempDir dir;
  fs::create_directory(dir / "sub");
  EXPECT_EQ(input_error([&] { io::write_file_atomically(dir / "sub", "x", "sub"); }),
            "sub: is a directory");
  EXPECT_EQ(dir.names(), std::set<std::string>{"sub"});
}

// The old writer used OUT.tmp.PID and followed links: a planted link made it overwrite a victim.
TEST(OutputFile, APlantedTempNameIsNeverFollowed) {
  TempDir dir;
  write(dir / "victim", "precious");
  const std::string planted = dir / ("out.tmp." + std::to_string(getpid()));
  ASSERT_EQ(symlink((dir / "victim").c_str(), planted.c_str()), 0);
  io::write_file_atomically(dir / "out", "new", "out");
  EXPECT_EQ(read(dir / "victim"), "precious");
  EXPECT_EQ(read(dir / "out"), "new");
  EXPECT_EQ(dir.names(),
            (std::set<std::string>{"out", "victim", planted.substr(planted.rfind('/') + 1)}));
}

TEST(OutputFile, AnUncommittedFileLeavesTheOldOneAndNoTemp) {
  TempDir dir;
  write(dir / "out", "old");
  {
    io::OutputFile file(dir / "out", "out");
    file.stream() << "half";
    EXPECT_EQ(dir.names().size(), 2u);  // the old file and the temporary one
  }
  EXPECT_EQ(read(dir / "out"), "old");
  EXPECT_EQ(dir.names(), std::set<std::string>{"out"});
}

// A file size limit makes writes fail (EFBIG) as a full disk does (ENOSPC): the old file stays.
TEST(OutputFile, AFailedWriteKeepsTheOldFile) {
  TempDir dir;
  write(dir / "out", "old");
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{4096, 4096};
    setrlimit(RLIMIT_FSIZE, &limit);
    const std::string message = input_error(
        [&] { io::write_file_atomically(dir / "out", std::string(1 << 20, 'x'), "o"); });
    _exit(message == "o: write failed: " + std::string(std::strerror(EFBIG)) ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_EQ(read(dir / "out"), "old");
  EXPECT_EQ(dir.names(), std::set<std::string>{"out"});
}

// Runs `body` in a child that must end killed by `signal`; returns whether it did.
template <typename F>
bool dies_by(int signal, F body) {
  const pid_t child = fork();
  if (child == 0) {
    body();
    _exit(0);  // not reached when the signal ends it
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child) return false;
  return WIFSIGNALED(status) && WTERMSIG(status) == signal;
}

TEST(RemoveOnSignal, SigtermRemovesTheTemporaryFile) {
  TempDir dir;
  write(dir / "out", "old");
  EXPECT_TRUE(dies_by(SIGTERM, [&] {
    io::OutputFile file(dir / "out", "out");
    file.stream() << std::string(1 << 20, 'x') << std::flush;
    raise(SIGTERM);
  }));
  EXPECT_EQ(read(dir / "out"), "old");
  EXPECT_EQ(dir.names(), std::set<std::string>{"out"});
}

TEST(RemoveOnSignal, SigintRemovesTheTemporaryDirectoryTree) {
  TempDir dir;
  EXPECT_TRUE(dies_by(SIGINT, [&] {
    io::OutputDirectory out(dir / "dump", "--out dump");
    fs::create_directories(out.path() + "/layer00/deeper");
    write(out.path() + "/layer00/x.npy", "x");
    write(out.path() + "/layer00/deeper/y.npy", "y");
    write(out.path() + "/meta.json", "{}");
    raise(SIGINT);
  }));
  EXPECT_TRUE(dir.names().empty());
}

// Issue 28, defect 8: the temporary file survived SIGXFSZ, SIGPIPE, SIGQUIT, SIGALRM, SIGUSR1
// (300-350 MB dump folders left). Every signal whose default action ends the process removes it
// and still ends the process by that signal.
TEST(RemoveOnSignal, EveryTerminatingSignalRemovesTheTemporaryDirectory) {
  for (int sig : {SIGHUP, SIGQUIT, SIGPIPE, SIGALRM, SIGUSR1, SIGUSR2, SIGXCPU, SIGXFSZ, SIGVTALRM,
                  SIGPROF, SIGABRT}) {
    TempDir dir;
    EXPECT_TRUE(dies_by(sig, [&] {
      io::OutputDirectory out(dir / "dump", "--out dump");
      out.make_directory("layer00");
      ::close(out.open_file("layer00/x.npy", true));
      raise(sig);
    })) << strsignal(sig);
    EXPECT_TRUE(dir.names().empty()) << strsignal(sig);
  }
}

// Issue 28, defect 2: the staging directory took the target's mode (0777) at creation, so another
// user could plant meta.json -> /root/victim inside it while root's dump ran, and the victim was
// overwritten. It stays 0700 until the rename, and a link inside it is never followed.
TEST(OutputDirectory, StagingIsPrivateAndFollowsNoLinkInside) {
  TempDir dir;
  fs::create_directory(dir / "shared");
  ASSERT_EQ(chmod((dir / "shared").c_str(), 0777), 0);
  write(dir / "victim", "precious");
  io::OutputDirectory out(dir / "shared", "--out shared");
  EXPECT_EQ(mode_of(out.path()) & 07777, 0700u);
  ASSERT_EQ(symlink((dir / "victim").c_str(), (out.path() + "/meta.json").c_str()), 0);
  EXPECT_EQ(input_error([&] { ::close(out.open_file("meta.json", true)); }),
            "--out shared: cannot write " + out.path() + "/meta.json: " + std::strerror(EEXIST));
  EXPECT_EQ(input_error([&] { ::close(out.open_file("meta.json", false)); }),
            "--out shared: cannot write " + out.path() + "/meta.json: " + std::strerror(ELOOP));
  out.make_directory("layer00");
  ASSERT_EQ(symlink(dir.path().c_str(), (out.path() + "/layer01").c_str()), 0);
  EXPECT_EQ(input_error([&] { ::close(out.open_file("layer01/x.npy", true)); }),
            "--out shared: cannot open " + out.path() + "/layer01: " + std::strerror(ENOTDIR));
  EXPECT_EQ(read(dir / "victim"), "precious");
  ::close(out.open_file("layer00/x.npy", true));
  ASSERT_EQ(unlink((out.path() + "/meta.json").c_str()), 0);
  ASSERT_EQ(unlink((out.path() + "/layer01").c_str()), 0);
  out.commit();
  EXPECT_EQ(mode_of(dir / "shared") & 07777, 0777u);  // the target's mode, once in place
  EXPECT_TRUE(fs::exists(dir / "shared/layer00/x.npy"));
}

TEST(OutputDirectory, RenamesIntoPlaceOrLeavesNothing) {
  TempDir dir;
  {
    io::OutputDirectory out(dir / "gone", "--out gone");
    write(out.path() + "/f", "x");
  }
  EXPECT_TRUE(dir.names().empty());
  fs::create_directory(dir / "empty");
  ASSERT_EQ(symlink("empty", (dir / "link").c_str()), 0);
  io::OutputDirectory out(dir / "link/", "--out link/");
  write(out.path() + "/f", "x");
  out.commit();
  EXPECT_TRUE(S_ISLNK(mode_of(dir / "link")));
  EXPECT_EQ(read(dir / "empty/f"), "x");
  EXPECT_EQ(dir.names(), (std::set<std::string>{"empty", "link"}));
  EXPECT_EQ(input_error([&] { io::OutputDirectory again(dir / "empty", "--out empty"); }),
            "--out empty: exists and is not an empty directory");
}

// --batch 300000000 printed negative sizes, 500000000 aborted on "layout categories add up".
TEST(LayoutOverflow, RowsBeyondInt32AreAnInputErrorNamingTheSizes) {
  PoolConfig c;
  c.geometry = make_geometry("qwen3-next-80b-a3b", 1);
  c.tokens_per_verify = 4;
  for (int32_t batch : {800000000, 1000000000, std::numeric_limits<int32_t>::max()}) {
    c.max_requests = batch;
    c.pool_rows = batch;
    for (StrategyKind kind : {StrategyKind::kScatter, StrategyKind::kInline}) {
      const std::string message = input_error([&] { make_layout(kind, c); });
      EXPECT_NE(message.find("state rows exceed 2147483647 for pool_rows " + std::to_string(batch)),
                std::string::npos)
          << to_string(kind) << " batch " << batch << ": " << message;
    }
  }
  c.max_requests = std::numeric_limits<int32_t>::max();
  c.pool_rows = 1;
  EXPECT_NE(input_error([&] { make_layout(StrategyKind::kDeferred, c); }).find("payload slots"),
            std::string::npos);
}

TEST(IntegerOption, RefusesWhatDoesNotFitItsType) {
  auto check = [](auto type, std::string text) {
    return cli::integer_text<decltype(type)>()(text);  // "" when accepted
  };
  EXPECT_EQ(check(uint64_t{}, "18446744073709551615"), "");
  EXPECT_EQ(check(uint64_t{}, "-1"), "'-1' is not an integer in 0..18446744073709551615");
  EXPECT_EQ(check(uint64_t{}, "-0"), "'-0' is not an integer in 0..18446744073709551615");
  EXPECT_EQ(check(uint64_t{}, "18446744073709551616"),
            "'18446744073709551616' is not an integer in 0..18446744073709551615");
  EXPECT_EQ(check(int32_t{}, "-5"), "");
  EXPECT_EQ(check(int32_t{}, "2147483648"),
            "'2147483648' is not an integer in -2147483648..2147483647");
  EXPECT_NE(check(int32_t{}, "1e3"), "");
  EXPECT_NE(check(int32_t{}, ""), "");
  EXPECT_NE(check(int32_t{}, "12 "), "");
}

// Under `ulimit -v` the CPU backend's limit is what is left of the address space: a 100k-row
// pool passed the physical-memory check and then died of bad_alloc (exit 3).
TEST(MemoryLimit, CpuSeesTheAddressSpaceLimit) {
#if defined(SPECSTATE_TEST_ASAN)
  GTEST_SKIP() << "AddressSanitizer maps terabytes of shadow memory";
#endif
  constexpr int64_t kLeft = int64_t{2} << 30;
  const MemoryLimit unlimited = backend_memory_limit("cpu");
  if (unlimited.bytes <= kLeft) GTEST_SKIP() << "less than 2 GiB of physical memory";
  long long pages = 0;
  std::ifstream("/proc/self/statm") >> pages;
  ASSERT_GT(pages, 0);
  const rlim_t cap = rlim_t(pages * sysconf(_SC_PAGE_SIZE) + kLeft);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const rlimit limit{cap, RLIM_INFINITY};
    if (setrlimit(RLIMIT_AS, &limit) != 0) _exit(2);
    const MemoryLimit m = backend_memory_limit("cpu");
    const bool left = m.bytes > kLeft / 2 && m.bytes <= kLeft;  // the child maps a bit more
    _exit(left && m.what.find("ulimit -v") != std::string::npos ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 2) GTEST_SKIP() << "setrlimit(RLIMIT_AS) refused";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace specstate
