#include "sim/npy.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
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

// Values appended to `out` as little-endian bytes whatever the host's byte order.
void append_le(std::vector<char>& out, std::span<const float> values) {
  const size_t at = out.size();
  out.resize(at + values.size() * sizeof(float));
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(out.data() + at, values.data(), values.size() * sizeof(float));
  } else {
    for (size_t i = 0; i < values.size(); ++i) {
      const uint32_t u = std::bit_cast<uint32_t>(values[i]);
      for (int k = 0; k < 4; ++k)
        out[at + 4 * i + k] = char(u >> (8 * k));
    }
  }
}

// Bytes held before they are written out: a token's values of one stream are small for small
// geometries, and one write per token per stream would cost a system call each.
constexpr size_t kWriteBuffer = size_t{64} << 10;

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

NpyWriter::NpyWriter(NpyFileOpener open, std::string label, std::vector<int64_t> shape)
    : open_(std::move(open)),
      label_(std::move(label)),
      shape_(std::move(shape)),
      expected_(element_count(shape_)) {
  const std::string header = npy_header(shape_);
  write_out(header.data(), header.size(), true);
  bytes_ = int64_t(header.size());
}

void NpyWriter::write_out(const char* data, size_t size, bool create) {
  const int fd = open_(create);
  int error = 0;
  for (size_t done = 0; done < size && error == 0;) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) error = n < 0 ? errno : EIO;
    done += n > 0 ? size_t(n) : 0;
  }
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0) bad_file(label_, std::string("write failed: ") + std::strerror(error));
}

void NpyWriter::append(std::span<const float> values) {
  SPECSTATE_ASSERT(written_ + int64_t(values.size()) <= expected_,
                   "an .npy stream receives no more values than its shape holds");
  append_le(pending_, values);
  written_ += int64_t(values.size());
  if (pending_.size() >= kWriteBuffer) {
    write_out(pending_.data(), pending_.size(), false);
    pending_.clear();
  }
}

void NpyWriter::close() {
  SPECSTATE_ASSERT(written_ == expected_, "an .npy stream is closed with exactly its values");
  if (!pending_.empty()) write_out(pending_.data(), pending_.size(), false);
  pending_ = {};
  bytes_ += written_ * int64_t(sizeof(float));
}

void write_npy(const std::filesystem::path& path, const std::vector<int64_t>& shape,
               std::span<const float> values) {
  auto open = [&](bool create) {
    const int fd =
        ::open(path.c_str(), O_WRONLY | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : O_APPEND), 0666);
    if (fd < 0) bad_file(path, std::string("cannot write: ") + std::strerror(errno));
    return fd;
  };
  NpyWriter w(open, path.string(), shape);
  w.append(values);
  w.close();
}

NpyReader::NpyReader(const std::filesystem::path& path) : path_(path) {
  in_.open(path, std::ios::binary);
  if (!in_) bad_file(path, "cannot open");
  char pre[kPreamble];
  if (!in_.read(pre, kPreamble) || std::memcmp(pre, kMagic, kMagicLen) != 0)
    bad_file(path, "not an .npy file");
  if (pre[6] != 1 || pre[7] != 0) bad_file(path, "not .npy version 1.0");
  const size_t header_len = uint8_t(pre[8]) | size_t(uint8_t(pre[9])) << 8;
  std::string dict(header_len, '\0');
  if (!in_.read(dict.data(), std::streamsize(header_len))) bad_file(path, "truncated header");
  if (dict.find("'descr': '<f4'") != std::string::npos) {
    item_bytes_ = 4;
  } else if (dict.find("'descr': '<f8'") != std::string::npos) {
    item_bytes_ = 8;
  } else {
    bad_file(path, "dtype is not '<f4' or '<f8' (little-endian float32 or float64)");
  }
  if (dict.find("'fortran_order': False") == std::string::npos) bad_file(path, "not C order");
  const size_t open = dict.find("'shape': (");
  const size_t close = dict.find(')', open);
  if (open == std::string::npos || close == std::string::npos) bad_file(path, "no shape");
  const std::string tuple = dict.substr(open + 10, close - open - 10);
  for (size_t pos = 0; pos < tuple.size();) {
    const size_t comma = std::min(tuple.find(',', pos), tuple.size());
    const std::string item = tuple.substr(pos, comma - pos);
    if (item.find_first_not_of(' ') != std::string::npos) {
      const size_t digits = item.find_first_not_of(' ');
      if (item.find_first_not_of("0123456789 ", digits) != std::string::npos ||
          item.size() - digits > 15) {
        bad_file(path, "bad shape (" + tuple + ")");
      }
      shape_.push_back(std::stoll(item));
    }
    pos = comma + 1;
  }
  data_ = int64_t(kPreamble + header_len);
  const auto size = std::filesystem::file_size(path);
  if (int64_t(size) - data_ != elements() * item_bytes_)
    bad_file(path, "data size does not match the shape");
}

int64_t NpyReader::elements() const {
  return element_count(shape_);
}

std::vector<double> NpyReader::read(int64_t first, int64_t count) {
  SPECSTATE_ASSERT(first >= 0 && count >= 0 && first + count <= elements(),
                   "a read inside the array");
  std::vector<unsigned char> bytes(size_t(count * item_bytes_));
  in_.seekg(data_ + first * item_bytes_);
  if (!in_.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(bytes.size())))
    bad_file(path_, "read failed");
  std::vector<double> out(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    uint64_t u = 0;
    for (int b = item_bytes_ - 1; b >= 0; --b)
      u = u << 8 | bytes[size_t(i * item_bytes_ + b)];
    out[size_t(i)] = item_bytes_ == 4 ? double(std::bit_cast<float>(uint32_t(u)))
                                      : std::bit_cast<double>(u);
  }
  return out;
}

NpyArray read_npy(const std::filesystem::path& path) {
  NpyReader r(path);
  if (r.item_bytes() != 4) bad_file(path, "dtype is not '<f4'");
  NpyArray a;
  a.shape = r.shape();
  for (double v : r.read(0, r.elements()))
    a.values.push_back(float(v));
  return a;
}

}  // namespace specstate::sim
