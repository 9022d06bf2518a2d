// One set of trace rules: every trace of tests/trace_rules gives, through the reader and the
// schedule validator, exactly the message expected.txt lists, or is valid where it says so. The
// Python checker is held to the same file (tests/python/test_trace_rules.py).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "core/errors.h"
#include "core/trace/format.h"
#include "core/trace/validate.h"

namespace specstate::trace {
namespace {

namespace fs = std::filesystem;
const fs::path kCorpus = "test_data/tests/trace_rules";  // beside the binary (tests/CMakeLists.txt)

std::map<std::string, std::string> expected() {
  std::map<std::string, std::string> cases;
  std::ifstream in(kCorpus / "expected.txt");
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    cases[line.substr(0, line.find(':'))] = line;
  }
  return cases;
}

// "NAME: valid", or the InputError "NAME:LINE: message" of reading and validating it.
std::string outcome(const std::string& name) {
  std::ifstream in(kCorpus / name, std::ios::binary);
  try {
    validate_trace(read_trace(in, name));
    return name + ": valid";
  } catch (const InputError& e) {
    return e.what();
  }
}

TEST(TraceRules, EveryTraceOfTheCorpusGivesItsExpectedMessage) {
  const auto cases = expected();
  size_t traces = 0;
  for (const auto& entry : fs::directory_iterator(kCorpus)) {
    if (entry.path().extension() != ".jsonl") continue;
    ++traces;
    const std::string name = entry.path().filename().string();
    ASSERT_TRUE(cases.count(name)) << name << " has no line in expected.txt";
    EXPECT_EQ(outcome(name), cases.at(name));
  }
  EXPECT_EQ(traces, cases.size());
  EXPECT_GE(traces, 60u);
}

}  // namespace
}  // namespace specstate::trace
