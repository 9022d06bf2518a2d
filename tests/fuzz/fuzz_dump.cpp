// libFuzzer target over what specstate compare reads from a dump folder written by another
// program (docs/interop.md): the .npy header parser, the .npy reader over a file of these bytes,
// and the meta.json parser. Whatever the bytes, each must either succeed or throw an
// InputError: any other exception, crash, hang, unbounded allocation or sanitizer report is a
// finding. A header that parses must describe the data sizes without overflow, and the header
// specstate writes for its shape must parse back to the same shape.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.h"
#include "sim/dump_meta.h"
#include "sim/npy.h"

namespace {

using specstate::InputError;
namespace sim = specstate::sim;

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "finding: %s\n", what);
  std::abort();
}

void check_header(std::string_view bytes) {
  sim::NpyHeader h;
  try {
    h = sim::parse_npy_header(bytes);
  } catch (const InputError&) {
    return;
  }
  for (int64_t d : h.shape) {
    if (d < 0) finding("a negative dimension parsed");
  }
  if (h.item_bytes != 4 && h.item_bytes != 8) finding("an item size other than 4 or 8");
  // What the writer makes of this shape parses back to it (it may overflow: no data follows).
  const std::string written = sim::npy_header(h.shape);
  if (sim::parse_npy_header(std::string_view(written).substr(10)).shape != h.shape)
    finding("npy_header(shape) does not parse back to shape");
}

// The bytes as an .npy file, read whole in pieces: the reader checks the size against the shape,
// so what it reads is bounded by the input's length.
void check_reader(std::string_view bytes) {
  struct TempFile {  // one per process, removed at exit
    std::string path = "/tmp/specstate-fuzz-dump-" + std::to_string(getpid()) + ".npy";
    ~TempFile() { unlink(path.c_str()); }
  };
  static const TempFile file;
  const std::string& path = file.path;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) finding("cannot write the fuzzer's temporary file");
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  try {
    sim::NpyReader r(path);
    if (r.elements() * r.item_bytes() > int64_t(bytes.size()))
      finding("the reader accepted a shape larger than the file");
    std::vector<double> piece(7);
    for (int64_t first = 0; first < r.elements(); first += 7) {
      const int64_t n = std::min<int64_t>(7, r.elements() - first);
      r.read(first, std::span<double>(piece.data(), size_t(n)));
    }
  } catch (const InputError&) {
  }
}

void check_meta(std::string_view bytes) {
  sim::DumpMeta m;
  try {
    m = sim::parse_dump_meta(bytes, "fuzz/meta.json");
  } catch (const InputError&) {
    return;
  }
  const sim::DumpGeometry& g = m.model;
  if (g.H < 1 || g.HV < 1 || g.K < 1 || g.V < 1 || g.W < 1 || g.layer_ids.empty() ||
      g.conv_dim != 2 * g.H * g.K + g.HV * g.V || m.dumped_tokens < 0) {
    finding("parse_dump_meta accepted a geometry out of range");
  }
  for (int64_t row : {int64_t(-1), int64_t(0), int64_t(1), m.dumped_tokens - 1})
    (void)m.describe_row(row);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check_header(bytes);
  check_reader(bytes);
  check_meta(bytes);
  return 0;
}
