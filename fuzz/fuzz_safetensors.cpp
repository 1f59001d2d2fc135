// fuzz/fuzz_safetensors.cpp: the safetensors reader (engine/io/safetensors.hpp) on arbitrary file
// content, its header-only metadata reader, and the output guard's recognisers of octa's files
// (engine/io/output_guard.hpp), which read the first bytes of any file a flag names.
#include <cstdint>

#include "engine/core/error.hpp"
#include "engine/io/output_guard.hpp"
#include "engine/io/safetensors.hpp"
#include "fuzz/fuzz_files.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using octa::fuzz::require;
  const auto path = octa::fuzz::write_input("input.safetensors", data, size);
  bool parsed = false;
  try {
    const octa::io::SafetensorsFile f = octa::io::read_safetensors(path);
    parsed = true;
    std::uint64_t covered = 0;
    for (const octa::io::Tensor& t : f.tensors) {
      std::uint64_t n = octa::io::dtype_size(t.dtype);
      for (const std::int64_t d : t.shape) {
        require(d >= 0, "shapes are non-negative");
        n *= static_cast<std::uint64_t>(d);
      }
      require(t.data.size() == n, "a tensor holds dtype x shape bytes");
      require(f.find(t.name) != nullptr, "every tensor can be found by name");
      covered += t.data.size();
    }
    require(covered <= size, "tensors lie inside the file");
  } catch (const octa::Error&) {
  }
  try {
    const auto meta = octa::io::read_safetensors_metadata(path);
    (void)meta;
  } catch (const octa::Error&) {
    require(!parsed, "a file that reads fully has readable metadata");
  }
  for (const auto kind :
       {octa::OutputKind::kSafetensors, octa::OutputKind::kJson, octa::OutputKind::kHtml}) {
    (void)octa::written_by_octa(path, kind);  // never throws
  }
  return 0;
}
