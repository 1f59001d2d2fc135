// engine/io/safetensors.cpp: the safetensors writer, and a reader that validates every header
// field before trusting it: a truncated or hostile file is an octa::Error, never a bad read.
#include "engine/io/safetensors.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "engine/core/atomic_file.hpp"
#include "engine/core/error.hpp"

// Tensor bytes are copied as they lie in memory; the format is little-endian.
static_assert(std::endian::native == std::endian::little,
              "safetensors I/O assumes a little-endian host");

namespace octa::io {
namespace {

constexpr const char* kMetadataKey = "__metadata__";
// The reference implementation refuses headers above this size; so do we, before allocating.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

// numel * dtype size, or false when it overflows 64 bits (a hostile shape must not wrap around).
bool checked_byte_count(const std::vector<std::int64_t>& shape, std::size_t elem_size,
                        std::uint64_t& bytes) {
  std::uint64_t n = elem_size;
  for (const std::int64_t d : shape) {
    const auto ud = static_cast<std::uint64_t>(d);
    if (ud != 0 && n > std::numeric_limits<std::uint64_t>::max() / ud) return false;
    n *= ud;
  }
  bytes = n;
  return true;
}

bool parse_dtype(const std::string& s, DType& d) {
  for (const DType c : {DType::kF32, DType::kF64, DType::kI64, DType::kU8}) {
    if (s == dtype_name(c)) {
      d = c;
      return true;
    }
  }
  return false;
}

std::string shape_string(const std::vector<std::int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::vector<std::byte> read_whole_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  OCTA_CHECK(in, "{}: cannot open safetensors file for reading: {}", path.string(),
             std::strerror(errno));
  const std::streamoff size = in.tellg();
  OCTA_CHECK(size >= 0, "{}: cannot determine the file size", path.string());
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  OCTA_CHECK(in.gcount() == size, "{}: read {} of {} bytes", path.string(), in.gcount(), size);
  return bytes;
}

// nlohmann::json keeps the last of duplicate keys silently; a parser callback sees every key, so
// a stack of per-object key sets catches duplicates (two tensors with one name) at any depth.
nlohmann::json parse_header_json(const std::filesystem::path& path, std::string_view text) {
  using nlohmann::json;
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  const json::parser_callback_t cb = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
            duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text.begin(), text.end(), cb);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: header is not valid JSON: {}", path.string(), e.what()));
  }
  OCTA_CHECK(duplicate.empty(), "{}: duplicate key '{}' in the header", path.string(), duplicate);
  return header;
}

// The header length from the first 8 bytes of a file of file_size bytes, checked against the
// limit and the file.
std::uint64_t header_length(const std::filesystem::path& path, const std::byte* first8,
                            std::uint64_t file_size) {
  std::uint64_t n = 0;
  std::memcpy(&n, first8, sizeof n);
  OCTA_CHECK(n <= kMaxHeaderBytes, "{}: header length {} exceeds the limit of {} bytes",
             path.string(), n, kMaxHeaderBytes);
  OCTA_CHECK(n <= file_size - 8, "{}: header length {} is larger than the file ({} bytes)",
             path.string(), n, file_size);
  return n;
}

void read_metadata(const std::filesystem::path& path, const nlohmann::json& value,
                   std::map<std::string, std::string>& metadata) {
  if (value.is_null()) return;  // the reference reader accepts an explicit null
  OCTA_CHECK(value.is_object(), "{}: __metadata__ is not a JSON object", path.string());
  for (const auto& [mk, mv] : value.items()) {
    OCTA_CHECK(mv.is_string(), "{}: __metadata__ value for '{}' is not a string (a JSON {})",
               path.string(), mk, mv.type_name());
    metadata[mk] = mv.get<std::string>();
  }
}

// A JSON value for an error message: short scalars as written, anything else described. Never
// json::dump() of a structure, which recurses once per level: a header nested a million levels
// deep overflowed the stack in the error message (found by a hand-made input while fuzzing).
std::string brief(const nlohmann::json& v) {
  if (v.is_structured()) {
    const bool flat =
        v.is_array() && v.size() <= 4 &&
        std::all_of(v.begin(), v.end(), [](const nlohmann::json& x) { return x.is_primitive(); });
    if (!flat) return fmt::format("(a JSON {} of {} entries)", v.type_name(), v.size());
  }
  std::string s = v.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

struct Entry {
  Tensor tensor;
  std::uint64_t begin = 0, end = 0;
};

Entry parse_entry(const std::filesystem::path& path, const std::string& name,
                  const nlohmann::json& info, std::uint64_t buffer_size) {
  const std::string where = fmt::format("{}: tensor '{}'", path.string(), name);
  OCTA_CHECK(info.is_object(), "{}: entry is not a JSON object", where);
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    OCTA_CHECK(info.contains(field), "{}: missing field \"{}\"", where, field);
  }
  Entry e;
  e.tensor.name = name;

  const auto& dtype = info["dtype"];
  OCTA_CHECK(dtype.is_string(), "{}: dtype is not a string", where);
  OCTA_CHECK(parse_dtype(dtype.get<std::string>(), e.tensor.dtype),
             "{}: unsupported dtype '{}' (supported: F32, F64, I64, U8)", where,
             dtype.get<std::string>());

  const auto& shape = info["shape"];
  OCTA_CHECK(shape.is_array(), "{}: shape is not an array", where);
  for (const auto& d : shape) {
    OCTA_CHECK(d.is_number_integer(), "{}: shape entry {} is not an integer", where, brief(d));
    OCTA_CHECK(d.is_number_unsigned() || d.get<std::int64_t>() >= 0,
               "{}: shape entry {} is negative", where, brief(d));
    OCTA_CHECK(!d.is_number_unsigned() ||
                   d.get<std::uint64_t>() <=
                       static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()),
               "{}: shape entry {} is too large", where, brief(d));
    e.tensor.shape.push_back(d.get<std::int64_t>());
  }

  const auto& offsets = info["data_offsets"];
  OCTA_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                 offsets[1].is_number_unsigned(),
             "{}: data_offsets {} must be two non-negative integers [begin, end]", where,
             brief(offsets));
  e.begin = offsets[0].get<std::uint64_t>();
  e.end = offsets[1].get<std::uint64_t>();
  OCTA_CHECK(e.begin <= e.end, "{}: data_offsets [{}, {}] are not ordered (begin > end)", where,
             e.begin, e.end);

  std::uint64_t bytes = 0;
  OCTA_CHECK(checked_byte_count(e.tensor.shape, dtype_size(e.tensor.dtype), bytes),
             "{}: shape {} overflows the element count", where, shape_string(e.tensor.shape));
  OCTA_CHECK(e.end - e.begin == bytes,
             "{}: data_offsets [{}, {}] span {} bytes but dtype {} x shape {} needs {}", where,
             e.begin, e.end, e.end - e.begin, dtype_name(e.tensor.dtype),
             shape_string(e.tensor.shape), bytes);
  OCTA_CHECK(e.end <= buffer_size, "{}: data_offsets [{}, {}] lie outside the {}-byte data buffer",
             where, e.begin, e.end, buffer_size);
  return e;
}

}  // namespace

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kF32:
      return "F32";
    case DType::kF64:
      return "F64";
    case DType::kI64:
      return "I64";
    case DType::kU8:
      return "U8";
  }
  throw Error("dtype_name: invalid DType value");
}

std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::kF32:
      return 4;
    case DType::kF64:
      return 8;
    case DType::kI64:
      return 8;
    case DType::kU8:
      return 1;
  }
  throw Error("dtype_size: invalid DType value");
}

std::int64_t Tensor::numel() const {
  std::int64_t n = 1;
  for (const std::int64_t d : shape) n *= d;
  return n;
}

const Tensor* SafetensorsFile::find(const std::string& name) const {
  for (const Tensor& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::string encode_safetensors(const std::filesystem::path& path,
                               const std::vector<TensorRef>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  const std::string file = path.string();
  // ordered_json keeps the caller's tensor order in the header, which makes files easy to diff.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& meta = header[kMetadataKey] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
  }
  std::set<std::string> names;
  std::vector<std::uint64_t> sizes;
  std::uint64_t offset = 0;
  for (const TensorRef& t : tensors) {
    OCTA_CHECK(!t.name.empty(), "{}: a tensor has an empty name", file);
    OCTA_CHECK(t.name != kMetadataKey, "{}: '{}' is reserved and cannot name a tensor", file,
               kMetadataKey);
    OCTA_CHECK(names.insert(t.name).second, "{}: duplicate tensor name '{}'", file, t.name);
    for (const std::int64_t d : t.shape) {
      OCTA_CHECK(d >= 0, "{}: tensor '{}' has a negative dimension in shape {}", file, t.name,
                 shape_string(t.shape));
    }
    std::uint64_t bytes = 0;
    OCTA_CHECK(checked_byte_count(t.shape, dtype_size(t.dtype), bytes),
               "{}: tensor '{}' shape {} overflows the element count", file, t.name,
               shape_string(t.shape));
    OCTA_CHECK(bytes == 0 || t.data != nullptr, "{}: tensor '{}' has no data", file, t.name);
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    sizes.push_back(bytes);
    offset += bytes;
  }

  std::string json = header.dump();
  // Trailing spaces (valid JSON whitespace) so the data buffer starts 8-byte aligned, as the
  // reference writer does: readers may then map tensors in place.
  json.append((8 - json.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + json.size() + offset);
  const std::uint64_t n = json.size();
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out += json;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (sizes[i] == 0) continue;
    out.append(static_cast<const char*>(tensors[i].data), sizes[i]);
  }
  return out;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_file_atomically(path, encode_safetensors(path, tensors, metadata));
}

SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  const std::string file = path.string();
  const std::vector<std::byte> bytes = read_whole_file(path);
  OCTA_CHECK(bytes.size() >= 8,
             "{}: file is {} bytes, too short for the 8-byte header length of a safetensors file",
             file, bytes.size());
  const std::uint64_t n = header_length(path, bytes.data(), bytes.size());

  const std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8,
                              static_cast<std::size_t>(n));
  const nlohmann::json header = parse_header_json(path, text);
  OCTA_CHECK(header.is_object(), "{}: header is not a JSON object", file);

  const std::uint64_t data_start = 8 + n;
  const std::uint64_t buffer_size = bytes.size() - data_start;
  SafetensorsFile result;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      read_metadata(path, value, result.metadata);
      continue;
    }
    OCTA_CHECK(!key.empty(), "{}: a tensor has an empty name", file);
    entries.push_back(parse_entry(path, key, value, buffer_size));
  }

  // Sorted by offset, each tensor must start where the previous one ended and the last must end at
  // the end of the file: no overlap (aliasing) and no unexplained bytes.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t expected = 0;
  for (const Entry& e : entries) {
    OCTA_CHECK(e.begin >= expected,
               "{}: tensor '{}' at [{}, {}] overlaps the previous tensor (which ends at {})", file,
               e.tensor.name, e.begin, e.end, expected);
    OCTA_CHECK(e.begin == expected,
               "{}: hole in the data buffer: bytes [{}, {}) belong to no tensor (next is '{}')",
               file, expected, e.begin, e.tensor.name);
    expected = e.end;
  }
  OCTA_CHECK(expected == buffer_size,
             "{}: hole in the data buffer: tensors cover {} of its {} bytes (trailing bytes)", file,
             expected, buffer_size);

  result.tensors.reserve(entries.size());
  for (Entry& e : entries) {
    const auto* first = bytes.data() + data_start + e.begin;
    e.tensor.data.assign(first, first + (e.end - e.begin));
    result.tensors.push_back(std::move(e.tensor));
  }
  return result;
}

std::map<std::string, std::string> read_safetensors_metadata(const std::filesystem::path& path) {
  const std::string file = path.string();
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  OCTA_CHECK(in, "{}: cannot open safetensors file for reading: {}", file, std::strerror(errno));
  const std::streamoff size = in.tellg();
  OCTA_CHECK(size >= 8,
             "{}: file is {} bytes, too short for the 8-byte header length of a safetensors file",
             file, size);
  in.seekg(0);
  std::array<std::byte, 8> first8{};
  in.read(reinterpret_cast<char*>(first8.data()), 8);
  OCTA_CHECK(in.gcount() == 8, "{}: cannot read the header length", file);
  const std::uint64_t n = header_length(path, first8.data(), static_cast<std::uint64_t>(size));
  std::string text(static_cast<std::size_t>(n), '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  OCTA_CHECK(static_cast<std::uint64_t>(in.gcount()) == n, "{}: read {} of the header's {} bytes",
             file, in.gcount(), n);
  const nlohmann::json header = parse_header_json(path, text);
  OCTA_CHECK(header.is_object(), "{}: header is not a JSON object", file);
  std::map<std::string, std::string> metadata;
  if (const auto it = header.find(kMetadataKey); it != header.end()) {
    read_metadata(path, *it, metadata);
  }
  return metadata;
}

}  // namespace octa::io
