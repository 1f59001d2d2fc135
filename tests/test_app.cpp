// tests/test_app.cpp: train_gpu as a user runs it: --help, errors that name the flag or file, and
// a short real run with metrics JSON, checkpoints and --resume.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/io/safetensors.hpp"
#include "tests/support/files.hpp"
#include "tests/support/idx_files.hpp"
#include "tests/support/real_data.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/three_classes.hpp"

namespace {

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs train_gpu with `args` (already shell-quoted as needed).
RunResult train_gpu(const std::string& args) {
  const std::string cmd = fmt::format("'{}' {} 2>&1", OCTA_TRAIN_GPU_EXE, args);
  RunResult r;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) r.output += buf;
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string quoted(const std::filesystem::path& p) {
  return fmt::format("'{}'", p.string());
}

// Writes the synthetic three-class IDX dataset into dir/shapes; returns the flags that train on
// it on the CPU path.
std::string three_class_data(const octa::test::TempDir& dir, std::uint32_t train,
                             std::uint32_t test) {
  const auto data = dir / "shapes";
  std::filesystem::create_directories(data);
  octa::test::write_three_classes(data, train, test);
  return fmt::format("--device cpu --no-download --dataset idx --data-dir {}", quoted(data));
}

// Each of `cases` (flags, then what the message must say) fails cleanly after `common`.
struct ErrorCase {
  std::string args, expect;
};
void check_errors(const std::string& common, const std::vector<ErrorCase>& cases) {
  for (const ErrorCase& c : cases) {
    const RunResult r = train_gpu(fmt::format("{} {} --epochs 1 --no-checkpoint", common, c.args));
    INFO(c.args << "\n" << r.output);
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.output, Catch::Contains(c.expect));
    CHECK_THAT(r.output, !Catch::Contains("Segmentation") && !Catch::Contains("terminate"));
  }
}

}  // namespace

TEST_CASE("train_gpu --help lists its options with examples", "[cpu][app]") {
  const RunResult r = train_gpu("--help");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  for (const char* flag :
       {"--data-dir",        "--model",     "--epochs",       "--lr",        "--batch-size",
        "--test-batch-size", "--seed",      "--target-digit", "--optimizer", "--max-train",
        "--max-test",        "--device",    "--metrics-out",  "--resume",    "--checkpoint",
        "--pos-weight",      "--log-level", "--conv",         "--threads",   "--loader-threads"}) {
    CHECK_THAT(r.output, Catch::Contains(flag));
  }
  CHECK_THAT(r.output, Catch::Contains("Examples:"));
  // --conv's three paths, each with what it is.
  CHECK_THAT(r.output, Catch::Contains("fused (octa's kernels, conv2 on the tensor cores") &&
                           Catch::Contains("fused-fp32 (octa's kernels, all on the CUDA cores") &&
                           Catch::Contains("cudnn"));
}

TEST_CASE("train_gpu rejects bad flags and missing data with messages that name them",
          "[cpu][app]") {
  octa::test::TempDir dir("app");
  check_errors(
      "--no-download",
      {
          {"--model c", "--model"},
          {"--device tpu", "--device"},
          {"--optimizer rmsprop", "--optimizer"},
          {"--lr -1", "--lr"},
          {"--loader-threads -2", "--loader-threads"},
          {"--log-level loud", "--log-level"},
          {fmt::format("--target-digit 11 --data-dir {}", quoted(dir.path())), "--target-digit"},
          {fmt::format("--data-dir {}", quoted(dir.path())), "train-images-idx3-ubyte"},
          {fmt::format("--resume {}", quoted(dir / "none.safetensors")), "none.safetensors"},
      });
}

TEST_CASE("train_gpu --conv rejects an unknown path, listing the three", "[cpu][app]") {
  const RunResult r = train_gpu("--conv fp32 --no-download");
  INFO(r.output);
  CHECK(r.exit_code != 0);
  // CLI11's IsMember check answers before the engine's parse_conv_path (tested in
  // test_gpu_train): "--conv: fp32 not in {fused,fused-fp32,cudnn}".
  CHECK_THAT(r.output, Catch::Contains("--conv") && Catch::Contains("fused-fp32") &&
                           Catch::Contains("cudnn"));
}

TEST_CASE("train_gpu trains on real MNIST, writes metrics JSON and checkpoints, and resumes",
          "[cpu][app][real]") {
  const auto data = octa::test::real_mnist_dir();
  if (!data) OCTA_SKIP(octa::test::real_mnist_missing_reason());
  octa::test::TempDir dir("app");
  const std::string common = fmt::format(
      "--device cpu --no-download --data-dir {} --max-train 640 --max-test 500 --seed 5 "
      "--checkpoint {}",
      quoted(*data), quoted(dir / "m.safetensors"));
  const RunResult first = train_gpu(
      fmt::format("{} --epochs 1 --metrics-out {}", common, quoted(dir / "metrics1.json")));
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  CHECK_THAT(first.output,
             Catch::Contains("majority baseline") && Catch::Contains("confusion matrix"));
  CHECK(std::filesystem::exists(dir / "m.safetensors"));
  CHECK(std::filesystem::exists(dir / "m.optim.safetensors"));
  std::ifstream in1(dir / "metrics1.json");
  const auto j1 = nlohmann::json::parse(in1);
  CHECK(j1["epochs"].size() == 1);
  CHECK(j1["test"]["count"] == 500);
  CHECK(j1["test"]["accuracy"].get<double>() > 0.5);
  CHECK(j1["config"]["train_images"] == 640);

  const RunResult second =
      train_gpu(fmt::format("{} --epochs 2 --resume {} --metrics-out {}", common,
                            quoted(dir / "m.safetensors"), quoted(dir / "metrics2.json")));
  INFO(second.output);
  REQUIRE(second.exit_code == 0);
  CHECK_THAT(second.output, Catch::Contains("resumed"));
  // Exports for replaying a run elsewhere, and per-epoch evaluation.
  const RunResult exp = train_gpu(fmt::format(
      "{} --epochs 1 --no-checkpoint --eval-every-epoch --metrics-out {} --export-init {} "
      "--export-order {} --export-losses {}",
      common, quoted(dir / "metrics3.json"), quoted(dir / "init.safetensors"),
      quoted(dir / "order.safetensors"), quoted(dir / "losses.json")));
  INFO(exp.output);
  REQUIRE(exp.exit_code == 0);
  const auto init = octa::io::read_safetensors(dir / "init.safetensors");
  CHECK(init.find("conv1.weight") != nullptr);
  CHECK(init.find("fc2.bias") != nullptr);
  const auto order = octa::io::read_safetensors(dir / "order.safetensors");
  REQUIRE(order.find("order") != nullptr);
  CHECK(order.find("order")->shape == std::vector<std::int64_t>{1, 640});
  std::ifstream in_losses(dir / "losses.json");
  const auto losses = nlohmann::json::parse(in_losses);
  CHECK(losses["step_losses"].size() == 10);  // 640 images in batches of 64
  std::ifstream in3(dir / "metrics3.json");
  const auto j3 = nlohmann::json::parse(in3);
  CHECK(j3["epochs"][0].contains("test_accuracy"));

  // The reference path, for comparisons: --device cpu-ref.
  const RunResult ref = train_gpu(fmt::format(
      "--device cpu-ref --no-download --data-dir {} --max-train 128 --max-test 100 --epochs 1 "
      "--no-checkpoint",
      quoted(*data)));
  INFO(ref.output);
  CHECK(ref.exit_code == 0);
  CHECK_THAT(ref.output, Catch::Contains("cpu reference"));
  CHECK_THAT(first.output, Catch::Contains("on cpu (") && !Catch::Contains("cpu reference"));

  std::ifstream in2(dir / "metrics2.json");
  const auto j2 = nlohmann::json::parse(in2);
  REQUIRE(j2["epochs"].size() == 1);
  CHECK(j2["epochs"][0]["epoch"] == 2);
  CHECK(std::isfinite(j2["epochs"][0]["mean_loss"].get<double>()));
}

TEST_CASE("train_gpu --help shows the datasets, the tasks and their flags with examples",
          "[cpu][app][multiclass]") {
  const RunResult r = train_gpu("--help");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  for (const char* flag : {"--dataset", "--task", "--target-class", "--label-smoothing",
                           "--class-weights", "fashion-mnist", "kmnist", "--task multiclass",
                           "--target-class Bag", "--dataset idx --data-dir"}) {
    CHECK_THAT(r.output, Catch::Contains(flag));
  }
}

TEST_CASE(
    "train_gpu --task multiclass on an IDX dataset of three classes: metrics, checkpoint, "
    "and the errors of the task's flags",
    "[cpu][app][multiclass]") {
  octa::test::TempDir dir("appmc");
  const std::string common = three_class_data(dir, 640, 200);
  const RunResult run = train_gpu(
      fmt::format("{} --task multiclass --epochs 2 --label-smoothing 0.05 --class-weights 1,1,2 "
                  "--checkpoint {} --metrics-out {}",
                  common, quoted(dir / "mc.safetensors"), quoted(dir / "mc.json")));
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.output, Catch::Contains("3 classes") && Catch::Contains("confusion matrix") &&
                             Catch::Contains("top-2 accuracy") && Catch::Contains("macro-F1"));
  // Files of no known release load with notices, not warnings.
  CHECK_THAT(run.output, !Catch::Contains("[warning]"));
  std::ifstream in(dir / "mc.json");
  const auto j = nlohmann::json::parse(in);
  CHECK(j["config"]["task"] == "multiclass");
  CHECK(j["config"]["dataset"] == "idx");
  CHECK(j["config"]["num_classes"] == 3);
  CHECK(j["config"]["class_weights"].size() == 3);
  CHECK(j["test"]["num_classes"] == 3);
  CHECK(j["test"]["count"] == 200);
  CHECK(j["test"]["accuracy"].get<double>() > 0.9);
  CHECK(j["test"]["confusion_matrix"]["counts"].size() == 3);
  CHECK(j["test"]["classes"].size() == 3);
  CHECK(j["trainable_parameters"] == 420481 + 2 * 129);
  const auto ck = octa::io::read_safetensors(dir / "mc.safetensors");
  REQUIRE(ck.find("fc2.weight") != nullptr);
  CHECK(ck.find("fc2.weight")->shape == std::vector<std::int64_t>{3, 128});
  // The K-class report beside the checkpoint, as for the binary task (test_report_app checks it).
  CHECK(std::filesystem::exists(dir / "mc.report.html"));

  check_errors(
      common,
      {
          {fmt::format("--resume {} --task binary --target-class 1",
                       quoted(dir / "mc.safetensors")),
           "holds a multi-class model of 3 classes"},
          {"--task multiclass --target-class 1", "--target-class belong to --task binary"},
          {"--task multiclass --pos-weight 3", "--pos-weight belongs to --task binary"},
          {"--target-class 7", "--target-class: '7' is not a class of IDX dataset"},
          {"--target-digit 9", "--target-digit: '9' is not a class"},
          {"--task multiclass --label-smoothing 1.5", "--label-smoothing: must be in [0, 1]"},
          {"--task multiclass --class-weights 1,2", "--class-weights: 2 weights for 3 classes"},
          {"--label-smoothing 0.1", "--task multiclass"},
          {"--task ternary", "--task"},
          {"--dataset cifar", "--dataset"},
          {"--target-digit 3 --target-class 3", "give one"},
      });
  // A binary run of one class against the rest of the same files: --target-class by index.
  const RunResult binary =
      train_gpu(fmt::format("{} --target-class 2 --epochs 1 --no-checkpoint --metrics-out {}",
                            common, quoted(dir / "b.json")));
  INFO(binary.output);
  REQUIRE(binary.exit_code == 0);
  std::ifstream bin(dir / "b.json");
  const auto jb = nlohmann::json::parse(bin);
  CHECK(jb["config"]["task"] == "binary");
  CHECK(jb["config"]["target_digit"] == 2);
  CHECK(jb["config"]["num_classes"] == 1);
}

TEST_CASE("train_gpu refuses IDX images that are not 28x28, naming the file", "[cpu][app]") {
  octa::test::TempDir dir("app14");
  const std::vector<std::uint8_t> labels = {0, 1, 2, 0};
  for (const char* split : {"train", "t10k"}) {
    octa::test::write_bytes(dir / fmt::format("x-{}-images-idx3-ubyte", split),
                            octa::test::idx_images_file(4, 14, 14));
    octa::test::write_bytes(dir / fmt::format("x-{}-labels-idx1-ubyte", split),
                            octa::test::idx_labels_file(labels));
  }
  const RunResult r = train_gpu(fmt::format(
      "--device cpu --no-download --dataset idx --data-dir {} --task multiclass --no-checkpoint",
      quoted(dir.path())));
  INFO(r.output);
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.output, Catch::Contains("x-train-images-idx3-ubyte") && Catch::Contains("14x14"));
}

TEST_CASE(
    "train_gpu --lr-schedule: each epoch's lr in the progress and the metrics JSON, a resume "
    "continues the checkpoint's schedule, and the flags' errors",
    "[cpu][app][lr_schedule]") {
  octa::test::TempDir dir("applr");
  const std::string common = three_class_data(dir, 256, 64) + " --task multiclass";
  const auto ck = dir / "lr.safetensors";
  const auto lrs_of = [](const std::filesystem::path& metrics) {
    const auto j = octa::test::read_json(metrics);
    std::vector<double> lrs;
    for (const auto& e : j["epochs"]) lrs.push_back(e["lr"].get<double>());
    return std::pair{j["config"]["lr_schedule"], lrs};
  };
  const RunResult run =
      train_gpu(fmt::format("{} --epochs 3 --lr-schedule step --lr-step-size 2 --lr-gamma 0.5 "
                            "--checkpoint {} --metrics-out {}",
                            common, quoted(ck), quoted(dir / "a.json")));
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.output, Catch::Contains("epoch 1/3: mean loss") && Catch::Contains("lr 0.001,") &&
                             Catch::Contains("epoch 3/3: mean loss") &&
                             Catch::Contains("lr 0.0005,"));
  const auto [schedule, lrs] = lrs_of(dir / "a.json");
  CHECK(schedule == nlohmann::json{{"kind", "step"}, {"step_size", 2}, {"gamma", 0.5}});
  CHECK(lrs == std::vector<double>{1e-3, 1e-3, 5e-4});

  // Resumed without the schedule's flags: the checkpoint's schedule goes on (epoch 4: 5e-4).
  const RunResult resumed =
      train_gpu(fmt::format("{} --epochs 4 --resume {} --checkpoint {} --metrics-out {}", common,
                            quoted(ck), quoted(dir / "r.safetensors"), quoted(dir / "r.json")));
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.output, Catch::Contains("continuing the checkpoint's lr schedule step "
                                             "(step_size 2, gamma 0.5)"));
  const auto [resumed_schedule, resumed_lrs] = lrs_of(dir / "r.json");
  CHECK(resumed_schedule == schedule);
  CHECK(resumed_lrs == std::vector<double>{5e-4});

  check_errors(
      common,
      {
          {"--lr-schedule linear", "--lr-schedule: unknown schedule 'linear'"},
          {"--lr-schedule step", "--lr-step-size: --lr-schedule step needs a positive step size"},
          {"--lr-schedule step --lr-step-size 2 --lr-gamma -1", "--lr-gamma: must be a positive"},
          {"--lr-schedule cosine --lr-min 0.01", "--lr-min: must be in [0, --lr)"},
          {"--lr-schedule cosine --lr-step-size 2", "belong to --lr-schedule step"},
          {"--lr-min 0.0001", "--lr-min belongs to --lr-schedule cosine"},
          {fmt::format("--resume {} --lr-schedule cosine", quoted(ck)),
           "was trained with the lr schedule step (step_size 2, gamma 0.5); this command gives "
           "cosine (T_max 1, eta_min 0)"},
      });
}

TEST_CASE("train_gpu --resume keeps the checkpoint's optimiser unless a flag changes a value",
          "[cpu][app][resume]") {
  octa::test::TempDir dir("appopt");
  const std::string common = three_class_data(dir, 256, 64) + " --task multiclass --no-report";
  const auto ck = dir / "sgd.safetensors";
  const auto config_of = [](const std::filesystem::path& metrics) {
    return octa::test::read_json(metrics)["config"];
  };
  const RunResult first =
      train_gpu(fmt::format("{} --epochs 1 --optimizer sgd --lr 0.02 --momentum 0.9 --nesterov "
                            "--weight-decay 0.0001 --checkpoint {} --metrics-out {}",
                            common, quoted(ck), quoted(dir / "a.json")));
  INFO(first.output);
  REQUIRE(first.exit_code == 0);

  // No optimiser flags: SGD with the checkpoint's lr, momentum, Nesterov and weight decay (as
  // PyTorch's optimizer.load_state_dict restores its param_groups), not the defaults' Adam 1e-3.
  const RunResult resumed =
      train_gpu(fmt::format("{} --epochs 2 --resume {} --checkpoint {} --metrics-out {}", common,
                            quoted(ck), quoted(dir / "r.safetensors"), quoted(dir / "r.json")));
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  const auto r = config_of(dir / "r.json");
  CHECK(r["optimizer"] == "sgd");
  CHECK(r["lr"] == 0.02);
  CHECK(r["momentum"] == 0.9);
  CHECK(r["nesterov"] == true);
  CHECK(r["weight_decay"] == 0.0001);

  // A flag given changes its value, and the log says it replaced the checkpoint's.
  const RunResult lower = train_gpu(
      fmt::format("{} --epochs 2 --resume {} --lr 0.005 --checkpoint {} --metrics-out {}", common,
                  quoted(ck), quoted(dir / "l.safetensors"), quoted(dir / "l.json")));
  INFO(lower.output);
  REQUIRE(lower.exit_code == 0);
  CHECK_THAT(lower.output, Catch::Contains("--lr 0.005 replaces the checkpoint's 0.02"));
  const auto l = config_of(dir / "l.json");
  CHECK(l["lr"] == 0.005);
  CHECK(l["momentum"] == 0.9);

  // Another optimiser cannot continue SGD's state.
  const RunResult adam =
      train_gpu(fmt::format("{} --epochs 2 --resume {} --optimizer adam "
                            "--no-checkpoint",
                            common, quoted(ck)));
  INFO(adam.output);
  CHECK(adam.exit_code != 0);
  CHECK_THAT(adam.output,
             Catch::Contains("--optimizer adam") && Catch::Contains("was trained with sgd"));
}
