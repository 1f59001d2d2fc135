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
#include "tests/support/files.hpp"
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
