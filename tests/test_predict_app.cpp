// tests/test_predict_app.cpp: predict as a user runs it: --help; every kind of bad input named with
// its fault while the rest are still answered (exit status 2); models recognised from their files
// (octa's and PyTorch's); and on the real MNIST, a model trained here on the CPU answering the
// same for PNGs written from the test images (--raw) as for the IDX file, and as well, within one
// point of accuracy, for the same digits drawn as scans and saved as PNG and JPEG. Models of K
// classes (train_gpu --task multiclass, or PyTorch's nn.Linear(128, K)) answer with the most
// probable class; a binary model of a named class (Fashion-MNIST's Bag) asks about it by name.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "engine/core/device_probe.hpp"
#include "engine/data/idx.hpp"
#include "engine/data/mnist.hpp"
#include "engine/io/checkpoint.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/model/param_table.hpp"
#include "engine/predict/image.hpp"
#include "engine/train/fast_cpu_backend.hpp"
#include "engine/train/trainer.hpp"
#include "tests/support/files.hpp"
#include "tests/support/png_craft.hpp"
#include "tests/support/real_data.hpp"
#include "tests/support/run_command.hpp"
#include "tests/support/scan.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/three_classes.hpp"

namespace fs = std::filesystem;
using octa::test::read_json;
using octa::test::run_command;
using octa::test::shell_quoted;

namespace {

octa::test::CommandResult predict(const std::string& args) {
  return run_command(OCTA_PREDICT_EXE, args);
}

// Freshly initialised weights of a model, as octa saves them.
fs::path init_weights(const fs::path& path, octa::Arch arch, int num_classes = 1) {
  const auto table = octa::ParamTable::for_arch(arch, num_classes);
  octa::ModelState s;
  s.values.resize(table.num_total());
  octa::init_parameters(table, s.values.data(), 4);
  octa::save_weights(path, table, s);
  return path;
}

// The same tensors without octa's metadata, as PyTorch's safetensors.torch.save_file writes them.
fs::path as_torch_state_dict(const fs::path& from, const fs::path& to) {
  const auto file = octa::io::read_safetensors(from);
  std::vector<octa::io::TensorRef> refs;
  for (const auto& t : file.tensors) refs.push_back({t.name, t.dtype, t.shape, t.data.data()});
  octa::io::write_safetensors(to, refs, {{"format", "pt"}});
  return to;
}

// An octa checkpoint of model A for the binary task of class `target` (and the dataset's names).
fs::path binary_checkpoint(const fs::path& path, int target,
                           std::vector<std::string> class_names = {}) {
  const auto table = octa::ParamTable::for_arch(octa::Arch::kA);
  octa::ModelState s;
  s.values.resize(table.num_total());
  octa::init_parameters(table, s.values.data(), 1);
  octa::TrainingState ts;
  ts.run_id = "r";
  ts.epochs_done = 1;
  ts.target_digit = target;
  ts.class_names = std::move(class_names);
  ts.optimizer_state.m.assign(table.num_trainable(), 0.0f);
  ts.optimizer_state.v.assign(table.num_trainable(), 0.0f);
  octa::save_checkpoint(path, table, s, ts);
  return path;
}

// A hand-drawn-looking digit: a dark ring (a zero) on light paper, as PNG bytes.
std::vector<std::uint8_t> drawn_ring_png() {
  octa::predict::Image img{90, 70, 1, std::vector<std::uint8_t>(90 * 70, 235)};
  for (int y = 0; y < 70; ++y) {
    for (int x = 0; x < 90; ++x) {
      const double r = std::hypot((x - 50) / 14.0, (y - 33) / 22.0);
      if (r > 0.75 && r < 1.0) img.pixels[static_cast<std::size_t>(y * 90 + x)] = 30;
    }
  }
  return octa::predict::encode_png(img);
}

std::map<std::string, nlohmann::json> by_input(const nlohmann::json& j) {
  std::map<std::string, nlohmann::json> m;
  for (const auto& p : j["predictions"]) m[p["input"].get<std::string>()] = p;
  return m;
}

}  // namespace

TEST_CASE("predict --help lists its options with examples", "[cpu][app][predict]") {
  const auto r = predict("--help");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  for (const char* flag : {"--weights", "--model", "--threshold", "--target-digit", "--json",
                           "--raw", "--save-preprocessed", "--device", "--batch-size", "--quiet"}) {
    CHECK_THAT(r.output, Catch::Contains(flag));
  }
  CHECK_THAT(r.output, Catch::Contains("Examples:") && Catch::Contains("Exit status"));
  const auto none = predict("");
  CHECK(none.exit_code != 0);
  CHECK_THAT(none.output, Catch::Contains("inputs"));
}

TEST_CASE("Bad inputs are each named with their fault and the others are still answered",
          "[cpu][app][predict]") {
  octa::test::TempDir dir("predict");
  const fs::path weights = init_weights(dir / "m.safetensors", octa::Arch::kA);
  const auto good_png = drawn_ring_png();
  const auto good = octa::predict::decode_image(good_png, "ring");
  const auto jpeg = octa::predict::encode_jpeg(good, 90);
  octa::test::PngSpec liar;
  liar.width = 100000;
  liar.height = 100000;
  liar.rows = {0, 1, 2, 3, 0, 4, 5, 6};
  octa::test::PngSpec deep;
  deep.width = 2;
  deep.height = 1;
  deep.bit_depth = 16;
  deep.rows = {0, 1, 2, 3, 4};
  auto corrupt = good_png;
  for (std::size_t i = 60; i < 90; ++i) corrupt[i] ^= 0x33;
  octa::predict::Image blank{40, 40, 1, std::vector<std::uint8_t>(1600, 240)};

  const std::vector<std::pair<std::string, std::vector<std::uint8_t>>> files = {
      {"good.png", good_png},
      {"good.jpg", jpeg},
      {"empty.png", {}},
      {"notes.png", {'d', 'e', 'a', 'r', ' ', 'm', 'u', 'm'}},
      {"truncated.png", {good_png.begin(), good_png.begin() + 100}},
      {"corrupt.png", corrupt},
      {"huge.png", octa::test::craft_png(liar)},
      {"deep.png", octa::test::craft_png(deep)},
      {"truncated.jpg", {jpeg.begin(), jpeg.begin() + static_cast<long>(jpeg.size() / 2)}},
      {"blank.png", octa::predict::encode_png(blank)},
  };
  std::string args;
  for (const auto& [name, bytes] : files) {
    args += " " + shell_quoted(octa::test::write_bytes(dir / "in" / name, bytes));
  }
  fs::create_directories(dir / "empty_folder");
  args += " " + shell_quoted(dir / "missing.png") + " " + shell_quoted(dir / "empty_folder");
  const auto r = predict(fmt::format("--device cpu --weights {} --json {}{}", shell_quoted(weights),
                                     shell_quoted(dir / "out.json"), args));
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, !Catch::Contains("Segmentation") && !Catch::Contains("terminate"));
  const std::map<std::string, std::string> expect = {
      {"empty.png", "empty file (0 bytes)"},
      {"notes.png", "not a PNG or JPEG image"},
      {"truncated.png", "corrupt or truncated PNG"},
      {"corrupt.png", "corrupt or truncated PNG"},
      {"huge.png", "claims 100000x100000 pixels"},
      {"deep.png", "16-bit PNG"},
      {"truncated.jpg", "corrupt or truncated JPEG"},
      {"blank.png", "no digit found"},
      {"missing.png", "no such file or folder"},
      {"empty_folder", "holds no .png, .jpg or .jpeg files"},
  };
  const auto j = read_json(dir / "out.json");
  REQUIRE(j["errors"].size() == expect.size());
  for (const auto& [name, message] : expect) {
    INFO(name);
    const std::string path = (name == "missing.png" || name == "empty_folder")
                                 ? (dir / name).string()
                                 : (dir / "in" / name).string();
    // On the terminal (stderr) and in the JSON, the file first and then what is wrong.
    CHECK_THAT(r.output,
               Catch::Contains("predict: error: " + path + ": ") && Catch::Contains(message));
    const auto e = std::find_if(j["errors"].begin(), j["errors"].end(),
                                [&](const auto& x) { return x["input"] == path; });
    REQUIRE(e != j["errors"].end());
    CHECK_THAT((*e)["error"].get<std::string>(), Catch::Contains(message));
  }
  // The good ones were answered, both ways of storing the same drawing alike.
  const auto p = by_input(j);
  REQUIRE(p.size() == 2);
  const auto& png_answer = p.at((dir / "in" / "good.png").string());
  const auto& jpg_answer = p.at((dir / "in" / "good.jpg").string());
  CHECK(png_answer["inverted"] == true);
  CHECK(png_answer["kind"] == "png");
  CHECK(jpg_answer["kind"] == "jpeg");
  CHECK(std::abs(png_answer["probability"].get<double>() -
                 jpg_answer["probability"].get<double>()) < 0.05);
  CHECK(j["summary"]["predicted"] == 2);
  CHECK(j["summary"]["failed"] == expect.size());
  // All fine: exit status 0.
  const auto ok = predict(fmt::format("--device cpu --quiet --weights {} {}", shell_quoted(weights),
                                      shell_quoted(dir / "in" / "good.png")));
  INFO(ok.output);
  CHECK(ok.exit_code == 0);
  CHECK_THAT(ok.output, Catch::Contains("1 predicted") && Catch::Contains("0 failed"));
}

TEST_CASE("predict recognises the model from its file, octa's or PyTorch's, and its digit",
          "[cpu][app][predict]") {
  octa::test::TempDir dir("predict");
  const fs::path image = octa::test::write_bytes(dir / "ring.png", drawn_ring_png());
  const fs::path b = init_weights(dir / "b.safetensors", octa::Arch::kB);
  const auto auto_b = predict(fmt::format("--device cpu --weights {} --json {} {}", shell_quoted(b),
                                          shell_quoted(dir / "b.json"), shell_quoted(image)));
  INFO(auto_b.output);
  CHECK(auto_b.exit_code == 0);
  CHECK_THAT(read_json(dir / "b.json")["model"].get<std::string>(), Catch::Contains("model B"));

  // A state_dict saved by PyTorch has no octa metadata: model B is told by its BatchNorm tensors.
  as_torch_state_dict(b, dir / "torch.safetensors");
  const auto torch = predict(fmt::format("--device cpu --weights {} --json {} {}",
                                         shell_quoted(dir / "torch.safetensors"),
                                         shell_quoted(dir / "t.json"), shell_quoted(image)));
  INFO(torch.output);
  CHECK(torch.exit_code == 0);
  CHECK(read_json(dir / "t.json")["predictions"][0]["logit"] ==
        read_json(dir / "b.json")["predictions"][0]["logit"]);

  const auto wrong = predict(
      fmt::format("--device cpu --model a --weights {} {}", shell_quoted(b), shell_quoted(image)));
  CHECK(wrong.exit_code == 1);
  CHECK_THAT(wrong.output, Catch::Contains("b.safetensors") && Catch::Contains("model B"));
  const auto missing = predict(
      fmt::format("--weights {} {}", shell_quoted(dir / "none.safetensors"), shell_quoted(image)));
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.output, Catch::Contains("none.safetensors"));

  // A checkpoint records the digit it was trained for; predict asks about that digit.
  binary_checkpoint(dir / "three.safetensors", 3);
  const auto three = predict(fmt::format("--device cpu --weights {} --json {} {}",
                                         shell_quoted(dir / "three.safetensors"),
                                         shell_quoted(dir / "3.json"), shell_quoted(image)));
  INFO(three.output);
  CHECK(three.exit_code == 0);
  CHECK_THAT(three.output, Catch::Contains("P(3)") && Catch::Contains("a 3?"));
  CHECK(read_json(dir / "3.json")["target_digit"] == 3);
  const auto clash =
      predict(fmt::format("--device cpu --target-digit 8 --weights {} {}",
                          shell_quoted(dir / "three.safetensors"), shell_quoted(image)));
  CHECK(clash.exit_code == 1);
  CHECK_THAT(clash.output, Catch::Contains("--target-digit 8") &&
                               Catch::Contains("trained to recognise the digit 3"));

  // Flags checked before any work.
  const fs::path a = init_weights(dir / "a.safetensors", octa::Arch::kA);
  for (const auto& [flags, expect] :
       std::vector<std::pair<std::string, std::string>>{{"--threshold 1.5", "--threshold"},
                                                        {"--threshold 0", "--threshold"},
                                                        {"--device tpu", "--device"},
                                                        {"--model c", "--model"},
                                                        {"--batch-size 0", "--batch-size"}}) {
    const auto r =
        predict(fmt::format("{} --weights {} {}", flags, shell_quoted(a), shell_quoted(image)));
    INFO(flags << "\n" << r.output);
    CHECK(r.exit_code != 0);
    CHECK(r.exit_code != 2);
    CHECK_THAT(r.output, Catch::Contains(expect));
  }
  if (!octa::probe_cuda_device().available) {
    const auto cuda =
        predict(fmt::format("--device cuda --weights {} {}", shell_quoted(a), shell_quoted(image)));
    CHECK(cuda.exit_code == 1);
    CHECK_THAT(cuda.output, Catch::Contains("--device cuda"));
    const auto fallback =
        predict(fmt::format("--device auto --weights {} {}", shell_quoted(a), shell_quoted(image)));
    CHECK(fallback.exit_code == 0);
    CHECK_THAT(fallback.output, Catch::Contains("No GPU") && Catch::Contains("CPU"));
  }
}

TEST_CASE("MNIST test digits: PNGs with --raw answer as the IDX file, and scans as accurately",
          "[cpu][app][predict][real]") {
  const auto data = octa::test::real_mnist_dir();
  if (!data) OCTA_SKIP(octa::test::real_mnist_missing_reason());
  octa::data::FindOptions find;
  find.allow_download = false;
  const auto mnist = octa::data::load_mnist(*data, find);
  octa::test::TempDir dir("predict");

  // A model trained here on the CPU path (the fast backend, as predict's): one epoch on 6,000
  // training images (a few seconds).
  octa::BackendConfig bc;
  bc.max_batch = 1000;
  bc.train_batch = 64;
  auto backend = octa::make_fast_cpu_backend(bc);
  octa::TrainOptions to;
  to.epochs = 1;
  const auto test_split = octa::data::take_first(mnist.test, 1000);
  const auto report =
      octa::train(*backend, octa::data::take_first(mnist.train, 6000), test_split, to);
  const fs::path weights = dir / "model.safetensors";
  octa::save_weights(weights, backend->table(), backend->model_state());

  // The first 1000 test images as an IDX file (labels beside it), as 28x28 PNGs, and as scans.
  constexpr int kCount = 1000;
  std::vector<std::uint8_t> idx{0, 0, 8, 3, 0, 0, 0x03, 0xe8, 0, 0, 0, 28, 0, 0, 0, 28};
  idx.insert(idx.end(), test_split.pixels.begin(), test_split.pixels.end());
  std::vector<std::uint8_t> labels{0, 0, 8, 1, 0, 0, 0x03, 0xe8};
  labels.insert(labels.end(), test_split.labels.begin(), test_split.labels.end());
  const fs::path idx_path =
      octa::test::write_bytes(dir / "t1k-images-idx3-ubyte.gz", octa::data::gzip_compress(idx));
  octa::test::write_bytes(dir / "t1k-labels-idx1-ubyte", labels);
  for (int i = 0; i < kCount; ++i) {
    const std::uint8_t* p = test_split.pixels.data() + static_cast<std::size_t>(i) * 784;
    const std::string name = fmt::format("{:04d}", i);
    octa::predict::write_png(dir / "raw" / (name + ".png"),
                             {28, 28, 1, std::vector<std::uint8_t>(p, p + 784)});
    octa::test::ScanLook look;
    look.x = 8 + (i * 7) % 80;
    look.y = 3 + (i * 5) % 35;
    look.seed = static_cast<std::uint64_t>(i);
    octa::predict::write_png(dir / "scan_png" / (name + ".png"), octa::test::scan_of(p, look));
    look.rgb = true;
    octa::test::write_bytes(dir / "scan_jpg" / (name + ".jpg"),
                            octa::predict::encode_jpeg(octa::test::scan_of(p, look), 90));
  }

  const auto run = [&](const std::string& what, const std::string& flags) {
    const fs::path out = dir / (what + ".json");
    const auto r = predict(fmt::format("--device cpu --quiet --weights {} --json {} {}",
                                       shell_quoted(weights), shell_quoted(out), flags));
    INFO(what << ": " << r.output);
    REQUIRE(r.exit_code == 0);
    return read_json(out);
  };
  const auto from_idx = run("idx", shell_quoted(idx_path));
  const auto from_raw = run("raw", "--raw " + shell_quoted(dir / "raw"));
  const auto from_png = run("scan_png", shell_quoted(dir / "scan_png"));
  const auto from_jpg = run("scan_jpg", "--save-preprocessed " + shell_quoted(dir / "seen") + " " +
                                            shell_quoted(dir / "scan_jpg"));
  REQUIRE(from_idx["predictions"].size() == kCount);
  REQUIRE(from_raw["predictions"].size() == kCount);
  REQUIRE(from_png["predictions"].size() == kCount);
  REQUIRE(from_jpg["predictions"].size() == kCount);

  // The IDX file's labels were found beside it; its accuracy is the in-process evaluation's.
  CHECK(from_idx["summary"]["labelled"] == kCount);
  CHECK(from_idx["summary"]["accuracy"].get<double>() == Approx(report.test.accuracy));
  // Same bytes, same logits: bit for bit.
  for (int i = 0; i < kCount; ++i) {
    INFO("image " << i);
    REQUIRE(from_raw["predictions"][i]["logit"] == from_idx["predictions"][i]["logit"]);
    REQUIRE(from_raw["predictions"][i]["logit"].get<float>() == report.test_logits[i]);
  }
  // The scans, preprocessed back to MNIST, are classified as accurately within one point.
  const auto accuracy = [&](const nlohmann::json& j) {
    int correct = 0;
    for (int i = 0; i < kCount; ++i) {
      const bool is8 = test_split.labels[static_cast<std::size_t>(i)] == 8;
      if (j["predictions"][i]["is_target"].get<bool>() == is8) ++correct;
    }
    return static_cast<double>(correct) / kCount;
  };
  const double raw = accuracy(from_raw), png = accuracy(from_png), jpg = accuracy(from_jpg);
  WARN("accuracy on the first 1000 test digits: raw " << raw << ", PNG scans " << png
                                                      << ", JPEG scans " << jpg);
  CHECK(raw == Approx(report.test.accuracy));
  CHECK(raw > 0.95);
  CHECK(std::abs(png - raw) <= 0.01);
  CHECK(std::abs(jpg - raw) <= 0.01);
  for (const auto& p : from_jpg["predictions"]) CHECK(p["inverted"] == true);

  // --save-preprocessed wrote what the model saw: predicting those PNGs with --raw gives the
  // scans' logits again, exactly.
  const auto seen = run("seen", "--raw " + shell_quoted(dir / "seen"));
  REQUIRE(seen["predictions"].size() == kCount);
  for (int i = 0; i < kCount; ++i) {
    REQUIRE(seen["predictions"][i]["logit"] == from_jpg["predictions"][i]["logit"]);
    REQUIRE(from_jpg["predictions"][i]["preprocessed"].is_string());
  }
}

TEST_CASE("A model of K classes answers with the most probable class, as train_gpu evaluated it",
          "[cpu][app][predict][multiclass]") {
  octa::test::TempDir dir("predict");
  octa::test::write_three_classes(dir / "shapes", 640, 200);
  const fs::path weights = dir / "k3.safetensors", metrics = dir / "k3.json";
  const auto trained = run_command(
      OCTA_TRAIN_GPU_EXE,
      fmt::format("--device cpu --dataset idx --data-dir {} --task multiclass --epochs 1 --seed 3 "
                  "--no-report --checkpoint {} --metrics-out {}",
                  shell_quoted(dir / "shapes"), shell_quoted(weights), shell_quoted(metrics)));
  INFO(trained.output);
  REQUIRE(trained.exit_code == 0);
  const double test_accuracy = read_json(metrics)["test"]["accuracy"].get<double>();

  // The test split's IDX file, its labels found beside it: predict's accuracy is the evaluation's.
  const fs::path images = dir / "shapes" / "shapes-test-images-idx3-ubyte";
  const auto r =
      predict(fmt::format("--device cpu --weights {} --json {} {}", shell_quoted(weights),
                          shell_quoted(dir / "p.json"), shell_quoted(images)));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("runner-up") &&
                           Catch::Contains("each the most probable of 3 classes") &&
                           Catch::Contains("accuracy on the 200 labelled"));
  const nlohmann::json j = read_json(dir / "p.json");
  CHECK(j["task"] == "multiclass");
  CHECK(j["num_classes"] == 3);
  CHECK(j["class_names"] == nlohmann::json({"0", "1", "2"}));
  REQUIRE(j["predictions"].size() == 200);
  CHECK(j["summary"]["labelled"] == 200);
  CHECK(j["summary"]["accuracy"].get<double>() == Approx(test_accuracy).margin(1e-12));
  CHECK(test_accuracy > 0.9);  // the shapes are easy: a trained model, not chance (1/3)
  std::vector<std::size_t> per_class(3, 0);
  for (const auto& p : j["predictions"]) {
    const auto probabilities = p["probabilities"].get<std::vector<double>>();
    const auto logits = p["logits"].get<std::vector<float>>();
    REQUIRE(probabilities.size() == 3);
    REQUIRE(logits.size() == 3);
    const auto k =
        static_cast<std::size_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    CHECK(p["class"] == k);
    CHECK(p["class_name"] == std::to_string(k));
    CHECK(p["probability"].get<double>() == probabilities[k]);
    CHECK(probabilities[0] + probabilities[1] + probabilities[2] == Approx(1.0).margin(1e-12));
    // softmax: the probabilities' ratios are the exponentials of the logits' differences
    CHECK(std::log(probabilities[0] / probabilities[1]) ==
          Approx(static_cast<double>(logits[0]) - logits[1]).margin(1e-5));
    ++per_class[k];
  }
  CHECK(j["summary"]["per_class"].get<std::vector<std::size_t>>() == per_class);

  // The binary task's flags say why they do not apply.
  for (const char* flag : {"--threshold 0.7", "--target-digit 1"}) {
    const auto bad = predict(fmt::format("--device cpu {} --weights {} {}", flag,
                                         shell_quoted(weights), shell_quoted(images)));
    INFO(bad.output);
    CHECK(bad.exit_code == 1);
    CHECK_THAT(bad.output,
               Catch::Contains(std::string(flag).substr(0, std::string(flag).find(' '))) &&
                   Catch::Contains("answers 3 classes"));
  }

  // A PyTorch state_dict of nn.Linear(128, 10) (no octa metadata): ten classes from fc2's shape.
  as_torch_state_dict(init_weights(dir / "ten.safetensors", octa::Arch::kA, 10),
                      dir / "torch10.safetensors");
  const auto torch = predict(fmt::format("--device cpu --weights {} --json {} {}",
                                         shell_quoted(dir / "torch10.safetensors"),
                                         shell_quoted(dir / "t.json"), shell_quoted(images)));
  INFO(torch.output);
  REQUIRE(torch.exit_code == 0);
  const nlohmann::json t = read_json(dir / "t.json");
  CHECK(t["num_classes"] == 10);
  CHECK(t["predictions"][0]["probabilities"].size() == 10);
}

TEST_CASE("A binary model of a named class asks about it by name", "[cpu][app][predict]") {
  octa::test::TempDir dir("predict");
  const fs::path image = octa::test::write_bytes(dir / "ring.png", drawn_ring_png());
  binary_checkpoint(dir / "bag.safetensors", 8,
                    {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot"});
  const auto r = predict(fmt::format("--device cpu --weights {} --json {} {}",
                                     shell_quoted(dir / "bag.safetensors"),
                                     shell_quoted(dir / "bag.json"), shell_quoted(image)));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("P(Bag)") && Catch::Contains("a Bag?"));
  CHECK_THAT(r.output, !Catch::Contains("P(8)") && !Catch::Contains("an 8?"));
  const nlohmann::json j = read_json(dir / "bag.json");
  CHECK(j["task"] == "binary");
  CHECK(j["target_digit"] == 8);
  CHECK(j["target_class_name"] == "Bag");
  const auto clash =
      predict(fmt::format("--device cpu --target-digit 9 --weights {} {}",
                          shell_quoted(dir / "bag.safetensors"), shell_quoted(image)));
  CHECK(clash.exit_code == 1);
  CHECK_THAT(clash.output, Catch::Contains("trained to recognise class 8 (Bag)"));
}
