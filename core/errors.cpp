#include "core/errors.h"

#include <cstdio>
#include <cstdlib>

namespace specstate {

void assert_fail(const char* expression, const char* message, const char* file, int line) {
  std::fprintf(stderr, "specstate: internal invariant broken at %s:%d: %s (%s)\n", file, line,
               message, expression);
  std::fflush(stderr);
  std::abort();
}

}  // namespace specstate
