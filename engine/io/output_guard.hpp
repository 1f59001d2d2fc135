// engine/io/output_guard.hpp: octa never replaces a file it did not write. Every output flag
// (--checkpoint, --metrics-out, the exports, --report) is checked with check_output_path before
// any work starts; a file is octa's when it carries octa's marker for its kind:
//
//   safetensors   "octa.format" in the header's __metadata__ (checkpoints, weights, exports)
//   JSON          a top-level object with a string field "octa_format" (mark_octa_json)
//   HTML          kHtmlMarker within the first 4 KiB (put it in <head>)
//
// Only the start of a file is read (a safetensors header, a JSON file up to 64 MiB, 4 KiB of
// HTML), so checking a large foreign file is cheap.
#pragma once

#include <filesystem>
#include <string_view>

#include <nlohmann/json.hpp>

namespace octa {

enum class OutputKind { kSafetensors, kJson, kHtml };

// The safetensors marker: this key, with this value for every file octa writes today.
inline constexpr const char* kSafetensorsMarkerKey = "octa.format";
inline constexpr const char* kSafetensorsFormat = "octa-1";
inline constexpr const char* kJsonMarkerKey = "octa_format";
inline constexpr std::string_view kHtmlMarker = R"(<meta name="generator" content="octa">)";

// Adds the marker to a JSON document octa writes: j["octa_format"] = what (e.g. "metrics-1").
void mark_octa_json(nlohmann::json& j, std::string_view what);

// True when the regular file at path carries octa's marker for `kind`. Never throws: an
// unreadable or malformed file is not octa's.
bool written_by_octa(const std::filesystem::path& path, OutputKind kind);

// Returns when octa may write path: it does not exist, or it is a regular file octa wrote (as
// `kind`), or overwrite is set (--overwrite). Otherwise throws octa::Error naming the flag and the
// file: a file octa did not write needs --overwrite; a directory or other non-regular file
// (a device, a FIFO) is refused even then, since an atomic write would replace it by a file.
void check_output_path(const std::filesystem::path& path, OutputKind kind, std::string_view flag,
                       bool overwrite);

}  // namespace octa
