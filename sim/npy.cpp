#include "sim/npy.h"

#include <bit>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/errors.h"

namespace specstate::sim {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kPreamble = 10;  // magic, version, header length
constexpr size_t kAlign = 64;

int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::string shape_tuple(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// Values as little-endian bytes whatever the host's byte order.
void write_le(std::FILE* f, std::span<const float> values) {
  if constexpr (std::endian::native == std::endian::little) {
    std::fwrite(values.data(), sizeof(float), values.size(), f);
  } else {
    for (float v : values) {
      const uint32_t u = std::bit_cast<uint32_t>(v);
      const unsigned char b[4] = {uint8_t(u), uint8_t(u >> 8), uint8_t(u >> 16), uint8_t(u >> 24)};
      std::fwrite(b, 1, 4, f);
    }
  }
}

[[noreturn]] void bad_file(const std::filesystem::path& path, const std::string& what) {
  throw InputError(path.string() + ": " + what);
}

}  // namespace

std::string npy_header(const std::vector<int64_t>& shape) {
  std::string dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_tuple(shape) + ", }";
  const size_t unpadded = kPreamble + dict.size() + 1;  // + '\n'
  dict.append((kAlign - unpadded % kAlign) % kAlign, ' ');
  dict += '\n';
  std::string out(kMagic, kMagicLen);
  out += char(1);
  out += char(0);
  out += char(dict.size() & 0xFF);
  out += char(dict.size() >> 8);
  return out + dict;
}

NpyWriter::NpyWriter(const std::filesystem::path& path, std::vector<int64_t> shape)
    : path_(path), shape_(std::move(shape)), expected_(element_count(shape_)) {
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) bad_file(path_, std::string("cannot write: ") + std::strerror(errno));
  const std::string header = npy_header(shape_);
  std::fwrite(header.data(), 1, header.size(), file_);
  bytes_ = int64_t(header.size());
}

NpyWriter::~NpyWriter() {
  if (file_) std::fclose(file_);
}

void NpyWriter::append(std::span<const float> values) {
  SPECSTATE_ASSERT(file_ && written_ + int64_t(values.size()) <= expected_,
                   "an .npy stream receives no more values than its shape holds");
  write_le(file_, values);
  written_ += int64_t(values.size());
}

void NpyWriter::close() {
  SPECSTATE_ASSERT(written_ == expected_, "an .npy stream is closed with exactly its values");
  const bool failed = std::ferror(file_) != 0;
  const bool close_failed = std::fclose(file_) != 0;
  file_ = nullptr;
  if (failed || close_failed) bad_file(path_, "write failed (disk full?)");
  bytes_ += written_ * int64_t(sizeof(float));
}

void write_npy(const std::filesystem::path& path, const std::vector<int64_t>& shape,
               std::span<const float> values) {
  NpyWriter w(path, shape);
  w.append(values);
  w.close();
}

NpyArray read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) bad_file(path, "cannot open");
  const std::string bytes{std::istreambuf_iterator<char>(in), {}};
  if (bytes.size() < kPreamble || bytes.compare(0, kMagicLen, kMagic, kMagicLen) != 0)
    bad_file(path, "not an .npy file");
  if (bytes[6] != 1 || bytes[7] != 0) bad_file(path, "not .npy version 1.0");
  const size_t header_len = uint8_t(bytes[8]) | size_t(uint8_t(bytes[9])) << 8;
  if (bytes.size() < kPreamble + header_len) bad_file(path, "truncated header");
  const std::string dict = bytes.substr(kPreamble, header_len);
  if (dict.find("'descr': '<f4'") == std::string::npos) bad_file(path, "dtype is not '<f4'");
  if (dict.find("'fortran_order': False") == std::string::npos) bad_file(path, "not C order");
  const size_t open = dict.find("'shape': (");
  const size_t close = dict.find(')', open);
  if (open == std::string::npos || close == std::string::npos) bad_file(path, "no shape");
  NpyArray a;
  const std::string tuple = dict.substr(open + 10, close - open - 10);
  for (size_t pos = 0; pos < tuple.size();) {
    const size_t comma = std::min(tuple.find(',', pos), tuple.size());
    const std::string item = tuple.substr(pos, comma - pos);
    if (item.find_first_not_of(' ') != std::string::npos) a.shape.push_back(std::stoll(item));
    pos = comma + 1;
  }
  const size_t data = kPreamble + header_len;
  const int64_t n = element_count(a.shape);
  if (int64_t(bytes.size() - data) != n * int64_t(sizeof(float)))
    bad_file(path, "data size does not match the shape");
  a.values.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const auto* b = reinterpret_cast<const uint8_t*>(bytes.data() + data + 4 * i);
    a.values[i] = std::bit_cast<float>(uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 |
                                       uint32_t(b[3]) << 24);
  }
  return a;
}

}  // namespace specstate::sim
