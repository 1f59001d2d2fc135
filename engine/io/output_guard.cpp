// engine/io/output_guard.cpp: recognising octa's own files before replacing one.
#include "engine/io/output_guard.hpp"

#include <fstream>
#include <iterator>
#include <string>

#include "engine/core/error.hpp"
#include "engine/io/safetensors.hpp"

namespace octa {
namespace fs = std::filesystem;

namespace {

constexpr std::uintmax_t kMaxJsonBytes = std::uintmax_t{64} << 20;
constexpr std::size_t kHtmlMarkerWindow = 4096;

const char* kind_name(OutputKind kind) {
  switch (kind) {
    case OutputKind::kSafetensors:
      return "safetensors";
    case OutputKind::kJson:
      return "JSON";
    case OutputKind::kHtml:
      return "HTML";
  }
  return "?";
}

std::string read_prefix(const fs::path& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::string s(max_bytes, '\0');
  in.read(s.data(), static_cast<std::streamsize>(max_bytes));
  s.resize(static_cast<std::size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  return s;
}

}  // namespace

void mark_octa_json(nlohmann::json& j, std::string_view what) {
  j[kJsonMarkerKey] = std::string(what);
}

bool written_by_octa(const fs::path& path, OutputKind kind) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  switch (kind) {
    case OutputKind::kSafetensors:
      try {
        return io::read_safetensors_metadata(path).contains(kSafetensorsMarkerKey);
      } catch (const Error&) {
        return false;
      }
    case OutputKind::kJson: {
      const std::uintmax_t size = fs::file_size(path, ec);
      if (ec || size > kMaxJsonBytes) return false;
      const nlohmann::json j =
          nlohmann::json::parse(read_prefix(path, static_cast<std::size_t>(size)), nullptr,
                                /*allow_exceptions=*/false);
      if (!j.is_object()) return false;
      const auto it = j.find(kJsonMarkerKey);
      return it != j.end() && it->is_string();
    }
    case OutputKind::kHtml:
      return read_prefix(path, kHtmlMarkerWindow).find(kHtmlMarker) != std::string::npos;
  }
  return false;
}

void check_output_path(const fs::path& path, OutputKind kind, std::string_view flag,
                       bool overwrite) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return;  // nothing there (or nothing we can see): a new file
  if (!fs::is_regular_file(st)) {
    throw Error(fmt::format(
        "{} {}: exists and is not a regular file ({}); octa writes a new "
        "file in its place, so choose a file path",
        flag, path.string(), fs::is_directory(st) ? "a directory" : "a device, FIFO or socket"));
  }
  if (overwrite || written_by_octa(path, kind)) return;
  throw Error(fmt::format(
      "{} {}: the file exists and octa did not write it (it is not an octa {} file); refusing to "
      "replace it. Choose another path, or pass --overwrite to replace it",
      flag, path.string(), kind_name(kind)));
}

}  // namespace octa
