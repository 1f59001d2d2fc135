// tests/test_fuzz_regressions.cpp: every input with which a fuzz target (fuzz/) found a defect,
// byte for byte, with the behaviour now required of it. docs/RELIABILITY.md lists the findings.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/data/idx.hpp"
#include "engine/io/checkpoint.hpp"
#include "engine/io/output_guard.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/predict/image.hpp"
#include "engine/predict/inputs.hpp"
#include "tests/support/alloc_watch.hpp"
#include "tests/support/files.hpp"
#include "tests/support/png_craft.hpp"
#include "tests/support/temp_dir.hpp"

using Catch::Contains;
using octa::test::Bytes;
using octa::test::TempDir;

TEST_CASE(
    "fuzz idx #1: 0 images of 654311678x4278190108 pixels are refused, not accepted as "
    "negative sizes",
    "[fuzz][data][idx]") {
  // build-fuzz/artifacts/idx/crash-f7a5f6167386500933d4206728910c91036afc07: magic 2051, count 0,
  // rows 0x270000fe, cols 0xff00001c. No pixels are implied, so every size check passed and the
  // dimensions came back as negative ints.
  const Bytes input = {0x00, 0x00, 0x08, 0x03, 0x00, 0x00, 0x00, 0x00,
                       0x27, 0x00, 0x00, 0xfe, 0xff, 0x00, 0x00, 0x1c};
  TempDir dir("fuzz");
  for (const bool gzip : {false, true}) {
    INFO((gzip ? "gzip" : "plain"));
    const auto p = octa::test::write_bytes(dir / (gzip ? "crash.gz" : "crash"),
                                           gzip ? octa::data::gzip_compress(input) : input);
    CHECK_THROWS_WITH(octa::data::read_idx_images(p),
                      Contains(p.string()) && Contains("4278190108") &&
                          Contains("more than this reader accepts"));
  }
}

TEST_CASE(
    "fuzz safetensors #1: a header nested a million levels deep is an error, not a stack "
    "overflow",
    "[fuzz][io][safetensors]") {
  // Hand-made while fuzzing (libFuzzer's inputs stay below 4 KiB, too short to nest this deep):
  // the error messages printed the offending JSON value with json::dump(), which recurses once
  // per level, and overflowed the stack for a deep shape entry, data_offsets or metadata value.
  constexpr std::size_t kDepth = 1'000'000;
  const std::string deep = std::string(kDepth, '[') + std::string(kDepth, ']');
  struct Case {
    std::string name, header, expect;
  };
  const Case cases[] = {
      {"shape", R"({"t":{"dtype":"F32","shape":[)" + deep + R"(],"data_offsets":[0,0]}})",
       "shape entry (a JSON array of 1 entries) is not an integer"},
      {"offsets", R"({"t":{"dtype":"F32","shape":[],"data_offsets":)" + deep + "}}",
       "data_offsets (a JSON array of 1 entries) must be two"},
      {"metadata", R"({"__metadata__":{"k":)" + deep + "}}", "value for 'k' is not a string"},
      {"entry", R"({"t":)" + deep + "}", "entry is not a JSON object"},
  };
  TempDir dir("fuzz");
  for (const Case& c : cases) {
    INFO(c.name);
    Bytes file(8 + c.header.size());
    const std::uint64_t n = c.header.size();
    std::memcpy(file.data(), &n, 8);
    std::memcpy(file.data() + 8, c.header.data(), c.header.size());
    const auto p = octa::test::write_bytes(dir / (c.name + ".safetensors"), file);
    CHECK_THROWS_WITH(octa::io::read_safetensors(p), Contains(p.string()) && Contains(c.expect));
    CHECK_FALSE(octa::written_by_octa(p, octa::OutputKind::kSafetensors));
  }
}

TEST_CASE(
    "fuzz checkpoint #1: a weights file that fails the model's checks beside a matching "
    "optimiser state is an error, not an empty model",
    "[fuzz][io][checkpoint]") {
  // build-fuzz/artifacts/checkpoint/crash-2adb7a14...: a model B pair whose weights file names its
  // tensor "bn1.num_batches_tracked" "conv2.weighthes_tracked" instead (the header otherwise
  // intact, the optimiser state untouched). load_checkpoint returned a Checkpoint with no model
  // values at all. (The artifact is 334 KB; this builds the same pair.)
  TempDir dir("fuzz");
  const auto table = octa::ParamTable::for_arch(octa::Arch::kB);
  octa::ModelState model;
  model.values.assign(table.num_total(), 0.25f);
  octa::TrainingState ts;
  ts.epochs_done = 2;
  ts.run_id = "0123456789abcdef";
  ts.optimizer_state.m.assign(table.num_trainable(), 0.01f);
  ts.optimizer_state.v.assign(table.num_trainable(), 1e-4f);
  const auto ck = dir / "c.safetensors";
  octa::save_checkpoint(ck, table, model, ts);
  octa::io::SafetensorsFile weights = octa::io::read_safetensors(ck);
  std::vector<octa::io::TensorRef> refs;
  for (const auto& t : weights.tensors) {
    const std::string name =
        t.name == "bn1.num_batches_tracked" ? "conv2.weighthes_tracked" : t.name;
    refs.push_back({name, t.dtype, t.shape, t.data.data()});
  }
  octa::io::write_safetensors(ck, refs, weights.metadata);
  CHECK_THROWS_WITH(octa::load_checkpoint(ck, table),
                    Contains(ck.string()) && Contains("bn1.num_batches_tracked"));
}

TEST_CASE(
    "fuzz predict_image #1: a PNG chunk claiming 1 GB in a 111-byte file is refused before libpng "
    "allocates for it",
    "[fuzz][predict][image]") {
  // oom-2595558daad12b7f959bf56a5f75556d0d567fd5, from a trial run of fuzz_predict_image with
  // -rss_limit_mb=1000 (under 2048 it passes unreported, at 1.6 GB of RSS): a 4x3 palette PNG whose
  // third chunk, eXIf, claims 0x40a06699 = 1084253849 bytes. libpng's eXIf handler mallocs the
  // declared length before reading it (its 8 MB chunk limit does not cover that chunk), so a
  // 111-byte file cost 1 GB. The target found it with the PLTE's CRC made right (bytes 50..53);
  // both forms must be refused with the same error, by octa's chunk check, before libpng runs.
  const Bytes found = {0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49,
                       0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x03, 0x08, 0x03,
                       0x00, 0x00, 0x00, 0x83, 0x2a, 0x5e, 0xf4, 0x00, 0x00, 0x00, 0x09, 0x50, 0x4c,
                       0x54, 0x45, 0xfa, 0xfa, 0x50, 0xf0, 0x45, 0xfa, 0xfa, 0x50, 0x14, 0x14, 0x1e,
                       0x80, 0x00, 0x40, 0xa0, 0x66, 0x99, 0x65, 0x58, 0x49, 0x66, 0x02, 0x74, 0x52,
                       0x4e, 0x53, 0x00, 0xc8, 0x5b, 0x2c, 0x87, 0xba, 0x00, 0x00, 0x00, 0x1a, 0x49,
                       0x44, 0x41, 0x54, 0x78, 0x01, 0x01, 0x0f, 0x00, 0xf0, 0xff, 0x00, 0x00, 0x01,
                       0x01, 0x00, 0x00, 0x01, 0x02, 0x01, 0x00, 0x00, 0x00, 0x01, 0x1f, 0x00, 0x00,
                       0x4d, 0x00, 0x09, 0x5d, 0x00, 0x07, 0x21};
  REQUIRE(found.size() == 111);
  Bytes crc_fixed = found;
  const std::uint32_t plte_crc = octa::test::crc32_of(found.data() + 37, 4 + 9) ^ 0xffffffffu;
  for (int k = 0; k < 4; ++k) {
    crc_fixed[50 + static_cast<std::size_t>(k)] =
        static_cast<std::uint8_t>(plte_crc >> (24 - 8 * k));
  }
  REQUIRE(crc_fixed != found);
  TempDir dir("fuzz");
  for (const auto& [name, bytes] :
       {std::pair{"found.png", found}, std::pair{"crc_fixed.png", crc_fixed}}) {
    INFO(name);
    const auto p = octa::test::write_bytes(dir / name, bytes);
    const std::string start = p.string() + ": corrupt or truncated PNG";
    const std::string claim = "chunk 'eXIf' at byte 54 claims 1084253849 bytes";
    CHECK_THROWS_WITH(octa::predict::decode_image(bytes, p.string()),
                      Catch::StartsWith(start) && Contains(claim));
    CHECK_THROWS_WITH(octa::predict::read_image(p), Catch::StartsWith(start) && Contains(claim));
    CHECK_THROWS_WITH(octa::predict::read_image_input(p, {}),
                      Catch::StartsWith(start) && Contains(claim));
  }
  // The check refuses only chunks that run past the end: a valid PNG with bytes after its IEND
  // still decodes, and one cut inside a chunk is refused the same way.
  octa::predict::Image img{3, 2, 1, {10, 200, 30, 40, 250, 60}};
  const Bytes png = octa::predict::encode_png(img);
  Bytes trailing = png;
  trailing.insert(trailing.end(), {0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0});
  CHECK(octa::predict::decode_image(trailing, "trailing.png").pixels == img.pixels);
  const Bytes cut(png.begin(), png.end() - 13);  // IEND (12 bytes) and the IDAT's last CRC byte
  CHECK_THROWS_WITH(octa::predict::decode_image(cut, "cut.png"),
                    Contains("cut.png: corrupt or truncated PNG") && Contains("chunk 'IDAT'"));
}

TEST_CASE(
    "fuzz predict_image #2: a 69-byte PNG claiming 7000x7000 RGBA pixels is refused before its "
    "196 MB pixel buffer",
    "[fuzz][predict][image]") {
  // Found while checking what drove the campaign's peak RSS (673 MB): a header within the
  // 50-megapixel limit over almost no image data made decode_png allocate (and zero) the whole
  // pixel buffer before libpng found the data missing ("Not enough image data"); under the fuzzer
  // such a file took 3 s and 455 MB. Deflate expands at most 1032-fold, so the image data's size
  // bounds the pixels it can hold.
  octa::test::PngSpec liar;
  liar.width = 7000;
  liar.height = 7000;
  liar.color_type = 6;  // RGBA: 196,000,000 bytes of pixels
  liar.rows = Bytes(9, 0);
  const Bytes file = octa::test::craft_png(liar);
  CHECK(file.size() < 100);
  std::string message;
  const auto stats = octa::test::watch_allocations([&] {
    try {
      octa::predict::decode_image(file, "liar.png");
    } catch (const octa::Error& e) {
      message = e.what();
    }
  });
  CHECK_THAT(message, Catch::StartsWith("liar.png: corrupt or truncated PNG") &&
                          Contains("claims 7000x7000 pixels, at least 196000000 bytes") &&
                          Contains("hold 20 compressed bytes"));
  CHECK(stats.largest < (std::size_t{1} << 20));
  // The bound refuses nothing real: a uniform image, zlib's best case (3000x3000 gray, 9 MB of
  // pixels in about 15 KB, some 600-fold), still decodes.
  octa::predict::Image flat{3000, 3000, 1, Bytes(9'000'000, 255)};
  const Bytes png = octa::predict::encode_png(flat);
  INFO("compressed to " << png.size() << " bytes");
  CHECK(octa::predict::decode_image(png, "flat.png").pixels == flat.pixels);
}
