// fuzz/image_seeds.hpp: the seeds of fuzz_predict_image, written at fuzz time by fuzz_make_seeds
// (fuzz/make_seeds.cpp) with octa's own encoders and the tests' PNG crafting
// (tests/support/png_craft.hpp), so they never drift from what the decoders are tested with.
#pragma once

#include <filesystem>

namespace octa::fuzz {

// Writes the image seeds into dir (created); returns how many.
int write_image_seeds(const std::filesystem::path& dir);

}  // namespace octa::fuzz
