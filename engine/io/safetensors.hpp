// engine/io/safetensors.hpp: reading and writing the safetensors format, so weights move between
// octa and PyTorch (safetensors.torch.load_file / save_file) in both directions.
//
// Format: an 8-byte little-endian header length N; N bytes of JSON mapping each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (plus an optional "__metadata__" object of
// string -> string); then the raw little-endian tensor bytes, offsets relative to that byte buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace octa::io {

enum class DType { kF32, kF64, kI64, kU8 };

const char* dtype_name(DType d);  // "F32", "F64", "I64", "U8"
std::size_t dtype_size(DType d);  // bytes per element

// A tensor to write: the caller keeps `data` alive during the call.
struct TensorRef {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;  // empty = scalar
  const void* data;
};

// A tensor read back: owns its bytes.
struct Tensor {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> data;
  std::int64_t numel() const;
};

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;
  std::vector<Tensor> tensors;                        // in file order (sorted by data offset)
  const Tensor* find(const std::string& name) const;  // nullptr if absent
};

// Writes atomically (temporary file, then rename). Tensor data are laid out in the given order.
// Throws octa::Error naming the path on any failure; names must be unique and non-empty.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The bytes write_safetensors writes, for callers that commit several files together
// (checkpoints: engine/core/atomic_file.hpp's PendingFile). `path` only names the file in errors.
std::string encode_safetensors(const std::filesystem::path& path,
                               const std::vector<TensorRef>& tensors,
                               const std::map<std::string, std::string>& metadata = {});

// Reads and validates: header length within the file, JSON well formed, known dtypes, shapes
// non-negative, data_offsets consistent with dtype x shape, inside the buffer, not overlapping and
// covering it. Every failure is an octa::Error naming the file and what is wrong.
SafetensorsFile read_safetensors(const std::filesystem::path& path);

// The header's __metadata__ only, reading no more of the file than its header (the header is
// checked as JSON and bounded by the file, the tensor entries are not). For recognising a file
// cheaply, however large it is. Throws octa::Error like read_safetensors.
std::map<std::string, std::string> read_safetensors_metadata(const std::filesystem::path& path);

}  // namespace octa::io
