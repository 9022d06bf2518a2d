#include "sim/npy.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>

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
  throw InputError(io::file_prefix(path.string()) + what);
}

// Bytes of data of `shape` with items of `item_bytes`, or InputError when that overflows.
int64_t data_bytes(const std::vector<int64_t>& shape, int item_bytes, const std::string& where) {
  int64_t bytes = item_bytes;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(bytes, d, &bytes)) {
      throw InputError(where + "shape " + shape_tuple(shape) +
                       " overflows 64 bits (its size in bytes)");
    }
  }
  return bytes;
}

// An unsigned integer of sizeof(T) little-endian bytes at `p`, whatever the host's byte order.
template <typename T>
T load_le(const char* p) {
  T v = 0;
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(&v, p, sizeof v);
  } else {
    for (size_t b = sizeof v; b-- > 0;)
      v = T(v << 8 | uint8_t(p[b]));
  }
  return v;
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

namespace {

// `text` for a message: at most 40 bytes, bytes outside printable ASCII as '?'.
std::string shown(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size() && i < 40; ++i)
    out += text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?';
  return text.size() > 40 ? out + "..." : out;
}

// A recursive-descent parser of the header's dict literal; every error is "header: ...".
class HeaderParser {
 public:
  explicit HeaderParser(std::string_view text) : s_(text) {}

  NpyHeader parse() {
    NpyHeader h;
    bool seen[3] = {false, false, false};
    skip_space();
    if (!eat('{')) fail("not a dictionary {...}");
    skip_space();
    while (!eat('}')) {
      const std::string key = string_literal("a key");
      const int k = key == "descr" ? 0 : key == "fortran_order" ? 1 : key == "shape" ? 2 : -1;
      if (k < 0) fail("unknown key '" + shown(key) + "'");
      if (seen[k]) fail("key '" + key + "' given twice");
      seen[k] = true;
      skip_space();
      if (!eat(':')) fail("no ':' after key '" + key + "'");
      skip_space();
      value(k, h);
      skip_space();
      if (eat(',')) {
        skip_space();
      } else if (peek() != '}') {
        fail("no ',' or '}' after the value of '" + key + "'");
      }
    }
    if (s_.substr(pos_).find_first_not_of(" \n") != std::string_view::npos)
      fail("bytes after the dictionary other than spaces and a newline");
    for (int k = 0; k < 3; ++k) {
      if (!seen[k]) fail(std::string("no key '") + kKeys[k] + "'");
    }
    return h;
  }

 private:
  static constexpr const char* kKeys[3] = {"descr", "fortran_order", "shape"};

  [[noreturn]] void fail(const std::string& what) const { throw InputError("header: " + what); }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool eat(char c) {
    if (peek() != c) return false;  // c is never '\0', which peek() gives at the end
    ++pos_;
    return true;
  }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t'))
      ++pos_;
  }

  // A quoted string without escapes (no valid header needs one).
  std::string string_literal(const char* what) {
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail(std::string("no quoted string for ") + what);
    const size_t end = s_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) fail("a string without its closing quote");
    const std::string_view text = s_.substr(pos_ + 1, end - pos_ - 1);
    if (text.find('\\') != std::string_view::npos) fail("a string with an escape");
    pos_ = end + 1;
    return std::string(text);
  }

  void value(int key, NpyHeader& h) {
    if (key == 0) {
      if (peek() != '\'' && peek() != '"') fail("'descr' must be a string");
      const std::string descr = string_literal("'descr'");
      if (descr != "<f4" && descr != "<f8") {
        fail("dtype '" + shown(descr) +
             "' is not '<f4' or '<f8' (little-endian float32 or float64)");
      }
      h.item_bytes = descr == "<f4" ? 4 : 8;
    } else if (key == 1) {
      if (s_.substr(pos_, 4) == "True") fail("Fortran order (fortran_order True): C order only");
      if (s_.substr(pos_, 5) != "False") fail("'fortran_order' must be True or False");
      pos_ += 5;
    } else {
      h.shape = shape();
    }
  }

  // "()", "(n,)", "(n, m)" or "(n, m,)": a tuple, so one dimension needs its comma.
  std::vector<int64_t> shape() {
    const char* wrong = "'shape' must be a tuple of integers >= 0";
    if (!eat('(')) fail(wrong);
    std::vector<int64_t> dims;
    bool comma = false;
    for (skip_space(); !eat(')'); skip_space()) {
      if (peek() < '0' || peek() > '9') fail(wrong);
      dims.push_back(dimension());
      skip_space();
      comma = eat(',');
      if (!comma && peek() != ')') fail(wrong);
    }
    if (dims.size() == 1 && !comma) fail(wrong);
    return dims;
  }

  int64_t dimension() {
    const size_t start = pos_;
    while (peek() >= '0' && peek() <= '9')
      ++pos_;
    const std::string_view digits = s_.substr(start, pos_ - start);
    int64_t v = 0;
    for (char c : digits) {
      if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, c - '0', &v))
        fail("dimension " + shown(digits) + " is too large");
    }
    return v;
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

NpyHeader parse_npy_header(std::string_view dict) {
  return HeaderParser(dict).parse();
}

NpyReader::NpyReader(const std::filesystem::path& path) : file_(path.string()) {
  const std::string where = io::file_prefix(path.string());
  char pre[kPreamble];
  if (file_.size() < int64_t(kPreamble)) throw InputError(where + "not an .npy file (too short)");
  file_.read_at(0, pre);
  if (std::memcmp(pre, kMagic, kMagicLen) != 0) throw InputError(where + "not an .npy file");
  if (pre[6] != 1 || pre[7] != 0) throw InputError(where + "not .npy version 1.0");
  const size_t header_len = uint8_t(pre[8]) | size_t(uint8_t(pre[9])) << 8;
  data_ = int64_t(kPreamble + header_len);
  if (file_.size() < data_) throw InputError(where + "truncated header");
  std::string dict(header_len, '\0');
  file_.read_at(int64_t(kPreamble), dict);
  try {
    NpyHeader h = parse_npy_header(dict);
    shape_ = std::move(h.shape);
    item_bytes_ = h.item_bytes;
  } catch (const InputError& e) {
    throw InputError(where + e.what());
  }
  const int64_t bytes = data_bytes(shape_, item_bytes_, where);
  elements_ = bytes / item_bytes_;
  if (bytes != file_.size() - data_) {
    throw InputError(where + std::to_string(file_.size() - data_) + " bytes of data, the shape " +
                     shape_tuple(shape_) + " of '<f" + std::to_string(item_bytes_) + "' needs " +
                     std::to_string(bytes));
  }
}

void NpyReader::read(int64_t first, std::span<double> out) {
  const int64_t count = int64_t(out.size());
  SPECSTATE_ASSERT(first >= 0 && first <= elements_ && count <= elements_ - first,
                   "a read inside the array");
  bytes_.resize(out.size() * size_t(item_bytes_));
  file_.read_at(data_ + first * item_bytes_, bytes_);
  const char* p = bytes_.data();
  for (size_t i = 0; i < out.size(); ++i, p += item_bytes_)
    out[i] = item_bytes_ == 4 ? double(std::bit_cast<float>(load_le<uint32_t>(p)))
                              : std::bit_cast<double>(load_le<uint64_t>(p));
}

NpyArray read_npy(const std::filesystem::path& path) {
  NpyReader r(path);
  if (r.item_bytes() != 4) bad_file(path, "dtype is not '<f4'");
  std::vector<double> values(size_t(r.elements()));
  r.read(0, values);
  return {r.shape(), std::vector<float>(values.begin(), values.end())};
}

}  // namespace specstate::sim
