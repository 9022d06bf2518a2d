// Byte counts for people, each in its own unit, so that a tiny model's kilobytes and a large
// model's gigabytes both read (a fixed GiB column printed 0.000 for every tiny figure).
#pragma once

#include <cstdio>
#include <string>

namespace specstate::cli {

// "512 B", "789 KiB", "45.6 MiB", "1.23 GiB"; a negative count (a saving that is a cost) keeps
// its sign: "-76 KiB".
inline std::string byte_text(double bytes) {
  const double b = bytes < 0 ? -bytes : bytes;
  const char* sign = bytes < 0 ? "-" : "";
  char buf[32];
  if (b >= 0x1p30) {
    std::snprintf(buf, sizeof buf, "%s%.2f GiB", sign, b / 0x1p30);
  } else if (b >= 0x1p20) {
    std::snprintf(buf, sizeof buf, "%s%.1f MiB", sign, b / 0x1p20);
  } else if (b >= 0x1p10) {
    std::snprintf(buf, sizeof buf, "%s%.0f KiB", sign, b / 0x1p10);
  } else {
    std::snprintf(buf, sizeof buf, "%s%.0f B", sign, b);
  }
  return buf;
}

}  // namespace specstate::cli
