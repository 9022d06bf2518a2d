// Test helpers shared by the suites that touch the file system or measure memory.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <set>
#include <stdexcept>
#include <string>

// SPECSTATE_TEST_ASAN: defined when AddressSanitizer instruments the build (its shadow memory
// makes RSS and address-space limits meaningless, so such checks skip).
#if defined(__SANITIZE_ADDRESS__)
#define SPECSTATE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPECSTATE_TEST_ASAN 1
#endif
#endif

namespace specstate::test {

// A fresh directory under the system temp dir (mkdtemp), removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "specstate-test") {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  // The names of the directory's entries.
  std::set<std::string> names() const {
    std::set<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path_))
      out.insert(e.path().filename().string());
    return out;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace specstate::test
