// The main of the test binaries that read data files (examples, trace corpora). The build
// copies the files they read into test_data/ beside each such binary (specstate_test_data in
// tests/CMakeLists.txt); the tests run in the binary's own directory, as CTest runs them, and
// name their files test_data/..., so that the binary and its test_data/ folder, copied to
// another machine without the source tree, still find them.
#include <gtest/gtest.h>

#include <filesystem>

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  std::filesystem::current_path(std::filesystem::read_symlink("/proc/self/exe").parent_path());
  return RUN_ALL_TESTS();
}
