// NumPy .npy files, format version 1.0, float32 little-endian in C order: what the dump
// (sim/dump.h) writes so that external references load the exact numbers with np.load.
//
// Layout: the magic "\x93NUMPY", the version bytes 1 0, a little-endian uint16 header length,
// then the header, a Python dict literal
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// padded with spaces and ended by '\n' so that the data starts at a multiple of 64 bytes,
// then the values. Written by the project; no Python is needed to write or read them.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/io/input_file.h"

namespace specstate::sim {

// The 10-byte preamble plus the padded header for a float32 array of `shape`.
std::string npy_header(const std::vector<int64_t>& shape);

// Opens the file of an array for NpyWriter: creates it (create: true, called once, first) or
// opens it to append; returns a file descriptor, or throws InputError.
using NpyFileOpener = std::function<int(bool create)>;

// Streams one float32 array into a file: the header (with the final shape) first, then the
// values in C order over any number of append() calls. close() checks that exactly
// product(shape) values arrived. The file is open only while a buffer of values is written
// out, so a dump holds no descriptor per array (7 arrays per layer, and layers are many).
// Throws InputError naming `label` when the file cannot be written.
class NpyWriter {
 public:
  NpyWriter(NpyFileOpener open, std::string label, std::vector<int64_t> shape);
  NpyWriter(const NpyWriter&) = delete;
  NpyWriter& operator=(const NpyWriter&) = delete;

  void append(std::span<const float> values);
  void close();

  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t bytes() const { return bytes_; }  // header included, once closed

 private:
  void write_out(const char* data, size_t size, bool create);

  NpyFileOpener open_;
  std::string label_;
  std::vector<int64_t> shape_;
  std::vector<char> pending_;  // values not yet written, little-endian bytes
  int64_t expected_ = 0;
  int64_t written_ = 0;
  int64_t bytes_ = 0;
};

// A whole array at once, to `path` (created or truncated).
void write_npy(const std::filesystem::path& path, const std::vector<int64_t>& shape,
               std::span<const float> values);

// The header dictionary of an .npy file (the text after the 10-byte preamble), parsed as the
// Python literal it is: exactly the keys 'descr', 'fortran_order' and 'shape', once each, in
// any order, strings in single or double quotes, then nothing but spaces and newlines. Only
// '<f4' and '<f8' in C order are accepted. Throws InputError "header: ..." (no file name).
struct NpyHeader {
  std::vector<int64_t> shape;  // each dimension >= 0
  int item_bytes = 4;          // '<f4': 4, '<f8': 8
};
NpyHeader parse_npy_header(std::string_view dict);

// A float32 or float64 array read piecewise (specstate compare streams dumps of any size).
// Throws InputError "FILE: message" for a path that is not a regular file (io::InputFile), and
// for anything but a version 1.0, C-order '<f4' or '<f8' file whose size is exactly its
// header's and its shape's (every size computed without overflow).
class NpyReader {
 public:
  explicit NpyReader(const std::filesystem::path& path);
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t elements() const { return elements_; }
  int item_bytes() const { return item_bytes_; }
  // Elements first .. first+out.size()-1 in C order into `out`, as double (exact for both
  // dtypes). Memory: one byte buffer of out.size() items, kept for the next call.
  void read(int64_t first, std::span<double> out);

 private:
  io::InputFile file_;
  std::vector<int64_t> shape_;
  int item_bytes_ = 4;
  int64_t elements_ = 0;
  int64_t data_ = 0;         // offset of the first value
  std::vector<char> bytes_;  // [count * item_bytes] the last read's raw values
};

// A float32 array read back (tests). Throws InputError for anything but a version 1.0,
// C-order '<f4' file whose size matches its shape.
struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> values;
};
NpyArray read_npy(const std::filesystem::path& path);

}  // namespace specstate::sim
