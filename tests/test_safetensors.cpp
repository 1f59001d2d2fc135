// tests/test_safetensors.cpp: round trips, the on-disk layout, atomic failures, rejection of
// every kind of malformed file, and interop with the official Python package in both directions.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/core/error.hpp"
#include "engine/io/safetensors.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/temp_dir.hpp"

using octa::test::TempDir;

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using octa::io::DType;
using octa::io::read_safetensors;
using octa::io::TensorRef;
using octa::io::write_safetensors;

namespace {

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le_u64(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i)
    s[static_cast<std::size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from a header text and a data buffer of `buffer_bytes` zero bytes.
std::string craft(const std::string& header, std::size_t buffer_bytes) {
  return le_u64(header.size()) + header + std::string(buffer_bytes, '\0');
}

std::set<std::string> dir_entries(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

// The data a few test cases write: every dtype, a scalar, an empty tensor, awkward float bits.
struct Sample {
  std::vector<float> f32{1.0f,
                         -0.0f,
                         3.25f,
                         -1e-30f,
                         std::numeric_limits<float>::infinity(),
                         std::numeric_limits<float>::quiet_NaN()};
  std::vector<double> f64{0.1, -2.5, 1e-300, 6.02214076e23};
  std::int64_t scalar = 938;
  std::vector<std::int64_t> i64{-1, 0, std::numeric_limits<std::int64_t>::max()};
  std::vector<std::uint8_t> u8{0, 1, 127, 128, 254, 255};
  std::vector<TensorRef> refs() const {
    return {{"conv1.weight", DType::kF32, {2, 1, 3}, f32.data()},
            {"fc.bias", DType::kF64, {4}, f64.data()},
            {"bn1.num_batches_tracked", DType::kI64, {}, &scalar},
            {"index", DType::kI64, {3}, i64.data()},
            {"mask", DType::kU8, {2, 3}, u8.data()},
            {"empty", DType::kF32, {0, 5}, nullptr}};
  }
};

template <class T>
std::vector<std::byte> as_bytes(const std::vector<T>& v) {
  std::vector<std::byte> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

}  // namespace

TEST_CASE("safetensors: dtype names and sizes", "[io][safetensors]") {
  CHECK(std::string(octa::io::dtype_name(DType::kF32)) == "F32");
  CHECK(std::string(octa::io::dtype_name(DType::kF64)) == "F64");
  CHECK(std::string(octa::io::dtype_name(DType::kI64)) == "I64");
  CHECK(std::string(octa::io::dtype_name(DType::kU8)) == "U8");
  CHECK(octa::io::dtype_size(DType::kF32) == 4);
  CHECK(octa::io::dtype_size(DType::kF64) == 8);
  CHECK(octa::io::dtype_size(DType::kI64) == 8);
  CHECK(octa::io::dtype_size(DType::kU8) == 1);
}

TEST_CASE("safetensors: round trip of every dtype, a scalar and metadata is bit-identical",
          "[io][safetensors]") {
  TempDir dir("safetensors");
  const fs::path file = dir.path() / "model.safetensors";
  const Sample s;
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"model", "A"}, {"empty", ""}};
  write_safetensors(file, s.refs(), meta);

  const auto f = read_safetensors(file);
  CHECK(f.metadata == meta);
  const auto refs = s.refs();
  REQUIRE(f.tensors.size() == refs.size());
  // Written in the given order, read back in file (offset) order: the same order.
  for (std::size_t i = 0; i < refs.size(); ++i) {
    INFO("tensor " << refs[i].name);
    CHECK(f.tensors[i].name == refs[i].name);
    CHECK(f.tensors[i].dtype == refs[i].dtype);
    CHECK(f.tensors[i].shape == refs[i].shape);
  }
  CHECK(f.find("conv1.weight")->data == as_bytes(s.f32));  // NaN, -0 and inf bits included
  CHECK(f.find("fc.bias")->data == as_bytes(s.f64));
  CHECK(f.find("index")->data == as_bytes(s.i64));
  CHECK(f.find("mask")->data == as_bytes(s.u8));
  const auto* scalar = f.find("bn1.num_batches_tracked");
  REQUIRE(scalar != nullptr);
  CHECK(scalar->shape.empty());
  CHECK(scalar->numel() == 1);
  REQUIRE(scalar->data.size() == 8);
  std::int64_t v = 0;
  std::memcpy(&v, scalar->data.data(), 8);
  CHECK(v == 938);
  CHECK(f.find("empty")->numel() == 0);
  CHECK(f.find("empty")->data.empty());
  CHECK(f.find("conv1.weight")->numel() == 6);
  CHECK(f.find("no.such.tensor") == nullptr);

  // No metadata written -> none read; and an empty tensor list is a valid (header-only) file.
  write_safetensors(file, {});
  const auto empty = read_safetensors(file);
  CHECK(empty.tensors.empty());
  CHECK(empty.metadata.empty());
}

TEST_CASE("safetensors: on-disk layout: length prefix, aligned JSON header, packed buffer",
          "[io][safetensors]") {
  TempDir dir("safetensors");
  const fs::path file = dir.path() / "layout.safetensors";
  const Sample s;
  // Names of several lengths so at least some headers need padding.
  for (const std::string meta_value : {"", "x", "xyz", "abcdefg"}) {
    write_safetensors(file, s.refs(), {{"k", meta_value}});
    const std::string raw = read_bytes(file);
    REQUIRE(raw.size() >= 8);
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i)
      n = (n << 8) | static_cast<unsigned char>(raw[static_cast<std::size_t>(i)]);
    INFO("header length " << n);
    CHECK((8 + n) % 8 == 0);
    REQUIRE(8 + n <= raw.size());
    const std::string header = raw.substr(8, n);
    CHECK(header.front() == '{');
    const auto last = header.find_last_not_of(' ');  // only spaces may follow the closing brace
    REQUIRE(last != std::string::npos);
    CHECK(header[last] == '}');
    CHECK(header.size() - 1 - last < 8);  // padding never exceeds what alignment needs
    const auto j = nlohmann::json::parse(header);
    REQUIRE(j.is_object());
    CHECK(j["__metadata__"] == nlohmann::json({{"k", meta_value}}));
    std::uint64_t offset = 0;
    for (const auto& r : s.refs()) {
      INFO("tensor " << r.name);
      REQUIRE(j.contains(r.name));
      CHECK(j[r.name]["dtype"] == octa::io::dtype_name(r.dtype));
      CHECK(j[r.name]["shape"] == nlohmann::json(r.shape));
      std::uint64_t bytes = octa::io::dtype_size(r.dtype);
      for (const auto d : r.shape) bytes *= static_cast<std::uint64_t>(d);
      CHECK(j[r.name]["data_offsets"] == nlohmann::json({offset, offset + bytes}));
      offset += bytes;
    }
    CHECK(raw.size() == 8 + n + offset);
    // The first tensor's bytes start the buffer.
    CHECK(std::memcmp(raw.data() + 8 + n, s.f32.data(), s.f32.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("safetensors: a write into a directory that cannot be created fails and leaves nothing",
          "[io][safetensors]") {
  TempDir dir("safetensors");
  const fs::path blocker = dir.path() / "not-a-dir";
  write_bytes(blocker, "plain file");
  const fs::path file = blocker / "sub" / "model.safetensors";
  const Sample s;
  REQUIRE_THROWS_WITH(write_safetensors(file, s.refs()), Contains(file.string()));
  CHECK(dir_entries(dir.path()) == std::set<std::string>{"not-a-dir"});
  CHECK(read_bytes(blocker) == "plain file");

  // A path that is an existing directory: the final rename fails; no temporary is left behind.
  const fs::path as_dir = dir.path() / "is-a-dir.safetensors";
  fs::create_directory(as_dir);
  REQUIRE_THROWS_WITH(write_safetensors(as_dir, s.refs()), Contains(as_dir.string()));
  CHECK(fs::is_directory(as_dir));
  CHECK(fs::is_empty(as_dir));
  CHECK(dir_entries(dir.path()) == std::set<std::string>{"not-a-dir", "is-a-dir.safetensors"});
}

TEST_CASE("safetensors: a failing overwrite leaves the old file intact", "[io][safetensors]") {
  TempDir dir("safetensors");
  const fs::path file = dir.path() / "model.safetensors";
  const Sample s;
  write_safetensors(file, s.refs(), {{"version", "1"}});
  const std::string before = read_bytes(file);
  const float x = 1.0f;

  REQUIRE_THROWS_WITH(
      write_safetensors(file, {{"a", DType::kF32, {1}, &x}, {"a", DType::kF32, {1}, &x}}),
      Contains(file.string()) && Contains("duplicate tensor name 'a'"));
  REQUIRE_THROWS_WITH(write_safetensors(file, {{"", DType::kF32, {1}, &x}}),
                      Contains(file.string()) && Contains("empty name"));
  REQUIRE_THROWS_WITH(write_safetensors(file, {{"__metadata__", DType::kF32, {1}, &x}}),
                      Contains(file.string()) && Contains("reserved"));
  REQUIRE_THROWS_WITH(write_safetensors(file, {{"neg", DType::kF32, {2, -1}, &x}}),
                      Contains(file.string()) && Contains("negative dimension"));
  REQUIRE_THROWS_WITH(write_safetensors(file, {{"null", DType::kF32, {2}, nullptr}}),
                      Contains(file.string()) && Contains("no data"));

  CHECK(read_bytes(file) == before);
  CHECK(dir_entries(dir.path()) == std::set<std::string>{"model.safetensors"});
  CHECK(read_safetensors(file).metadata.at("version") == "1");
}

TEST_CASE("safetensors: malformed files are rejected with the file and the problem named",
          "[io][safetensors]") {
  TempDir dir("safetensors");
  const fs::path p = dir.path() / "bad.safetensors";
  const std::string name = p.string();
  auto expect_error = [&](const std::string& bytes, const std::string& problem) {
    write_bytes(p, bytes);
    INFO("expected problem: " << problem);
    REQUIRE_THROWS_WITH(read_safetensors(p), Contains(name) && Contains(problem));
  };
  const std::string ok_entry = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

  SECTION("missing file") {
    REQUIRE_THROWS_WITH(read_safetensors(dir.path() / "absent.safetensors"),
                        Contains("absent.safetensors") && Contains("cannot open"));
  }
  SECTION("shorter than the length prefix") {
    expect_error(std::string("\x05\0\0", 3), "too short");
  }
  SECTION("empty file") {
    expect_error("", "too short");
  }
  SECTION("header length larger than the file") {
    expect_error(le_u64(100) + "{}", "larger than the file");
  }
  SECTION("header length beyond the 100 MB cap") {
    expect_error(le_u64(200'000'000) + "{}", "exceeds the limit");
    expect_error(le_u64(std::numeric_limits<std::uint64_t>::max()) + "{}", "exceeds the limit");
  }
  SECTION("JSON parse error") {
    expect_error(craft(R"({"a": )", 0), "not valid JSON");
  }
  SECTION("invalid UTF-8 in the header") {
    expect_error(craft("{\"\xff\xfe\": 1}", 0), "not valid JSON");
  }
  SECTION("header not an object") {
    expect_error(craft("[1, 2]", 0), "not a JSON object");
  }
  SECTION("entry not an object") {
    expect_error(craft(R"({"a": 3})", 0), "not a JSON object");
  }
  SECTION("entry missing a field") {
    expect_error(craft(R"({"a":{"dtype":"F32","shape":[1]}})", 4),
                 "missing field \"data_offsets\"");
  }
  SECTION("unknown dtype") {
    expect_error(craft(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", 4),
                 "unsupported dtype 'BF16'");
  }
  SECTION("negative shape entry") {
    expect_error(craft(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
                 "shape entry -2 is negative");
  }
  SECTION("non-integer shape entry") {
    expect_error(craft(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}})", 8),
                 "is not an integer");
    expect_error(craft(R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", 8),
                 "is not an integer");
  }
  SECTION("data_offsets not two integers") {
    expect_error(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8),
                 "must be two non-negative integers");
    expect_error(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}})", 8),
                 "must be two non-negative integers");
    expect_error(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0.0,8.0]}})", 8),
                 "must be two non-negative integers");
    expect_error(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8),
                 "must be two non-negative integers");
  }
  SECTION("data_offsets not ordered") {
    expect_error(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8),
                 "not ordered");
  }
  SECTION("byte count does not match dtype x shape") {
    expect_error(craft(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "needs 12");
    expect_error(craft(R"({"a":{"dtype":"F64","shape":[],"data_offsets":[0,4]}})", 4), "needs 8");
  }
  SECTION("shape whose element count overflows") {
    expect_error(craft(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],)"
                       R"("data_offsets":[0,0]}})",
                       0),
                 "overflows");
  }
  SECTION("offsets outside the buffer") {
    expect_error(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 8),
                 "outside the 8-byte data buffer");
  }
  SECTION("overlapping tensors") {
    expect_error(craft(R"({"a":)" + ok_entry + R"(,"b":)" + ok_entry + "}", 8), "overlaps");
  }
  SECTION("hole between tensors") {
    expect_error(craft(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                       R"("b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}})",
                       12),
                 "hole in the data buffer");
  }
  SECTION("trailing bytes after the last tensor") {
    expect_error(craft(R"({"a":)" + ok_entry + "}", 12), "trailing bytes");
  }
  SECTION("metadata value not a string") {
    expect_error(craft(R"({"__metadata__":{"epochs":10}})", 0),
                 "__metadata__ value for 'epochs' is not a string");
    expect_error(craft(R"({"__metadata__":["x"]})", 0), "__metadata__ is not a JSON object");
  }
  SECTION("duplicate tensor names") {
    expect_error(craft(R"({"a":)" + ok_entry + R"(,"a":)" + ok_entry + "}", 8),
                 "duplicate key 'a'");
  }
  SECTION("a well-formed crafted file is accepted (the crafting itself is right)") {
    write_bytes(p, craft(R"({"a":)" + ok_entry +
                             R"(, "s":{"dtype":"I64","shape":[],)"
                             R"("data_offsets":[8,16]}, "__metadata__": null}  )",
                         16));
    const auto f = read_safetensors(p);
    REQUIRE(f.tensors.size() == 2);
    CHECK(f.tensors[0].name == "a");
    CHECK(f.tensors[1].name == "s");
    CHECK(f.tensors[1].numel() == 1);
  }
}

// ---------------------------------------------------------------------------------------------
// Interop with the official implementation (pip package `safetensors`), both directions.

namespace {

const char* python_missing_reason() {
  if (std::system("python3 --version > /dev/null 2>&1") != 0) return "python3 is not installed";
  if (std::system("python3 -c \"import safetensors.numpy, numpy\" > /dev/null 2>&1") != 0) {
    return "python packages safetensors/numpy are not installed (pip install safetensors numpy)";
  }
  return nullptr;
}

std::string script() {
  return std::string(OCTA_SOURCE_DIR) + "/tests/python/check_safetensors.py";
}

template <class T>
nlohmann::json spec_entry(const char* dtype, const std::vector<std::int64_t>& shape,
                          const std::vector<T>& values) {
  return {{"dtype", dtype}, {"shape", shape}, {"values", values}};
}

// Finite values only (JSON carries no NaN); all exactly representable in their dtype.
nlohmann::json interop_spec() {
  std::vector<float> w(2 * 1 * 3 * 3);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i) * 0.25f - 1.0f;
  nlohmann::json spec;
  spec["tensors"]["conv1.weight"] = spec_entry("F32", {2, 1, 3, 3}, w);
  // Sorted first by name, so the I64 tensors after it start at a 12-byte (not 8-aligned) offset.
  spec["tensors"]["a.odd"] = spec_entry("F32", {3}, std::vector<float>{0.5f, -1.0f, 65504.0f});
  spec["tensors"]["fc1.bias"] = spec_entry("F64", {3}, std::vector<double>{0.1, -2.5, 1e-300});
  spec["tensors"]["bn1.num_batches_tracked"] =
      spec_entry("I64", {}, std::vector<std::int64_t>{938});
  spec["tensors"]["bn1.index"] = spec_entry("I64", {2}, std::vector<std::int64_t>{-7, 1LL << 40});
  spec["tensors"]["mask"] = spec_entry("U8", {2, 2}, std::vector<std::uint8_t>{0, 1, 128, 255});
  spec["tensors"]["empty"] = spec_entry("F32", {0, 3}, std::vector<float>{});
  spec["metadata"] = {{"format", "np"}, {"source", "octa test"}};
  return spec;
}

DType dtype_of(const std::string& s) {
  if (s == "F32") return DType::kF32;
  if (s == "F64") return DType::kF64;
  if (s == "I64") return DType::kI64;
  return DType::kU8;
}

// The raw little-endian bytes the spec's values must have.
std::vector<std::byte> spec_bytes(const nlohmann::json& t) {
  const std::string d = t["dtype"];
  if (d == "F32") return as_bytes(t["values"].get<std::vector<float>>());
  if (d == "F64") return as_bytes(t["values"].get<std::vector<double>>());
  if (d == "I64") return as_bytes(t["values"].get<std::vector<std::int64_t>>());
  return as_bytes(t["values"].get<std::vector<std::uint8_t>>());
}

}  // namespace

TEST_CASE("safetensors: files octa writes load in the official safetensors.numpy",
          "[io][safetensors][python]") {
  if (const char* reason = python_missing_reason()) OCTA_SKIP(reason);
  TempDir dir("safetensors");
  const auto spec = interop_spec();
  std::vector<std::vector<std::byte>> storage;
  std::vector<TensorRef> refs;
  for (const auto& [name, t] : spec["tensors"].items()) storage.push_back(spec_bytes(t));
  std::size_t k = 0;
  for (const auto& [name, t] : spec["tensors"].items()) {
    refs.push_back({name, dtype_of(t["dtype"]), t["shape"].get<std::vector<std::int64_t>>(),
                    storage[k++].data()});
  }
  const fs::path file = dir.path() / "octa.safetensors";
  write_safetensors(file, refs, spec["metadata"].get<std::map<std::string, std::string>>());
  const fs::path spec_file = dir.path() / "expected.json";
  write_bytes(spec_file, spec.dump());

  const std::string cmd =
      fmt::format("python3 '{}' check '{}' '{}'", script(), file.string(), spec_file.string());
  INFO(cmd);
  CHECK(std::system(cmd.c_str()) == 0);

  // The check must be able to fail: a spec that differs in one value is caught.
  auto wrong = spec;
  wrong["tensors"]["mask"]["values"][3] = 254;
  write_bytes(spec_file, wrong.dump());
  CHECK(std::system((cmd + " 2> /dev/null").c_str()) != 0);
}

TEST_CASE("safetensors: files written by the official safetensors.numpy read back in octa",
          "[io][safetensors][python]") {
  if (const char* reason = python_missing_reason()) OCTA_SKIP(reason);
  TempDir dir("safetensors");
  const auto spec = interop_spec();
  const fs::path spec_file = dir.path() / "spec.json";
  write_bytes(spec_file, spec.dump());
  const fs::path file = dir.path() / "python.safetensors";
  const std::string cmd =
      fmt::format("python3 '{}' write '{}' '{}'", script(), spec_file.string(), file.string());
  INFO(cmd);
  REQUIRE(std::system(cmd.c_str()) == 0);

  const auto f = read_safetensors(file);
  CHECK(f.metadata == spec["metadata"].get<std::map<std::string, std::string>>());
  REQUIRE(f.tensors.size() == spec["tensors"].size());
  for (const auto& [name, t] : spec["tensors"].items()) {
    INFO("tensor " << name);
    const auto* got = f.find(name);
    REQUIRE(got != nullptr);
    CHECK(got->dtype == dtype_of(t["dtype"]));
    CHECK(got->shape == t["shape"].get<std::vector<std::int64_t>>());
    CHECK(got->data == spec_bytes(t));
  }
}
