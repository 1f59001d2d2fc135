// engine/data/mnist.cpp: locating, downloading and loading MNIST.
#include "engine/data/mnist.hpp"

#include <algorithm>
#include <cstdlib>
#include <set>
#include <system_error>

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "engine/core/error.hpp"
#include "engine/data/idx.hpp"

namespace octa::data {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kTrainImages = 0, kTrainLabels = 1, kTestImages = 2, kTestLabels = 3;

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

std::string join_url(const std::string& mirror, std::string_view file) {
  std::string url = mirror;
  if (!url.empty() && url.back() != '/') url.push_back('/');
  url.append(file);
  return url;
}

// What the user can do about missing files; `download_failed` says whether downloading was
// tried (then the network or the mirrors are the problem) or disabled.
std::string how_to_provide(const fs::path& data_dir, const fs::path& raw_dir,
                           bool download_failed) {
  std::vector<std::string> names;
  for (const auto& f : kMnistFiles) names.push_back(std::string(f.name) + ".gz");
  return fmt::format(
      "To provide them: copy the four files of an MNIST release ({}; plain or .gz) into {} or {}; "
      "or run scripts/setup.sh; or {}",
      fmt::join(names, ", "), data_dir.string(), raw_dir.string(),
      download_failed ? "point OCTA_MNIST_MIRRORS at mirrors this machine can reach "
                        "(comma-separated URL prefixes, file:// works too)"
                      : "allow downloading (from torchvision's mirrors, or those listed in "
                        "OCTA_MNIST_MIRRORS)");
}

// "MNIST not found: missing ... (looked in ...)" for the files still missing.
std::string not_found(const fs::path& data_dir, const fs::path& raw_dir,
                      const std::array<fs::path, 4>& found) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < found.size(); ++i) {
    if (found[i].empty()) names.push_back(std::string(kMnistFiles[i].name) + "[.gz]");
  }
  return fmt::format(
      "MNIST not found: missing {} (looked in {} and {}, each file plain or with .gz)",
      fmt::join(names, ", "), data_dir.string(), raw_dir.string());
}

void check_checksum(const fs::path& path, const std::string& sha256, const MnistFileSpec& spec,
                    std::vector<std::string>& warnings) {
  if (sha256 == spec.sha256) return;
  std::string msg = fmt::format(
      "{}: not the official MNIST {}: SHA-256 of its decompressed content is {}, expected {} "
      "(loading it anyway)",
      path.string(), spec.name, sha256, spec.sha256);
  spdlog::warn("{}", msg);
  warnings.push_back(std::move(msg));
}

Split make_split(IdxImages images, IdxLabels labels, const fs::path& image_path,
                 const fs::path& label_path) {
  OCTA_CHECK(images.rows == 28 && images.cols == 28,
             "{}: images are {}x{}, the models need MNIST's 28x28", image_path.string(),
             images.rows, images.cols);
  OCTA_CHECK(images.count > 0, "{}: holds no images", image_path.string());
  OCTA_CHECK(images.count == labels.count,
             "image/label count mismatch: {} holds {} images but {} "
             "holds {} labels",
             image_path.string(), images.count, label_path.string(), labels.count);
  Split s;
  s.count = images.count;
  s.rows = images.rows;
  s.cols = images.cols;
  s.pixels = std::move(images.pixels);
  s.labels = std::move(labels.labels);
  return s;
}

}  // namespace

std::vector<std::string> resolve_mirrors(const FindOptions& options) {
  if (!options.mirrors.empty()) return options.mirrors;
  if (const char* env = std::getenv("OCTA_MNIST_MIRRORS"); env != nullptr) {
    auto list = split_list(env);
    if (!list.empty()) return list;
  }
  return {kDefaultMnistMirrors.begin(), kDefaultMnistMirrors.end()};
}

MnistFiles find_mnist(const fs::path& data_dir, const FindOptions& options) {
  const fs::path raw_dir = data_dir / "MNIST" / "raw";
  std::array<fs::path, 4> found;
  std::vector<std::size_t> missing;
  for (std::size_t i = 0; i < kMnistFiles.size(); ++i) {
    const std::string base(kMnistFiles[i].name);
    for (const fs::path& dir : {data_dir, raw_dir}) {
      for (const std::string& name : {base, base + ".gz"}) {
        std::error_code ec;
        if (found[i].empty() && fs::is_regular_file(dir / name, ec)) found[i] = dir / name;
      }
    }
    if (found[i].empty()) missing.push_back(i);
  }

  MnistFiles files;
  if (!missing.empty()) {
    if (!options.allow_download) {
      throw Error(fmt::format("{}; downloading is disabled. {}",
                              not_found(data_dir, raw_dir, found),
                              how_to_provide(data_dir, raw_dir, false)));
    }
    const std::vector<std::string> mirrors = resolve_mirrors(options);
    std::set<std::string> unreachable;  // a mirror that is down is not waited on again
    for (std::size_t i : missing) {
      const std::string gz = std::string(kMnistFiles[i].name) + ".gz";
      const fs::path dest = raw_dir / gz;
      DownloadOptions dl = options.download;
      dl.expected_md5 = std::string(kMnistFiles[i].gz_md5);
      std::vector<std::string> failures;
      for (const std::string& mirror : mirrors) {
        if (unreachable.count(mirror) != 0) {
          failures.push_back(fmt::format("{}: skipped, unreachable for an earlier file", mirror));
          continue;
        }
        const std::string url = join_url(mirror, gz);
        spdlog::info("downloading {} to {}", url, dest.string());
        try {
          download_file(url, dest, dl);
          found[i] = dest;
          files.downloaded.push_back(dest);
          break;
        } catch (const DownloadError& e) {
          spdlog::warn("{}", e.what());
          failures.push_back(e.what());
          if (e.unreachable()) unreachable.insert(mirror);
        }
      }
      if (found[i].empty()) {
        throw Error(fmt::format("{}; downloading {} failed from every mirror:\n  {}\n{}",
                                not_found(data_dir, raw_dir, found), gz,
                                fmt::join(failures, "\n  "),
                                how_to_provide(data_dir, raw_dir, true)));
      }
    }
  }
  files.train_images = found[kTrainImages];
  files.train_labels = found[kTrainLabels];
  files.test_images = found[kTestImages];
  files.test_labels = found[kTestLabels];
  return files;
}

Split take_first(const Split& split, std::size_t n) {
  const std::size_t keep = std::min(n, static_cast<std::size_t>(split.count));
  const std::size_t image =
      static_cast<std::size_t>(split.rows) * static_cast<std::size_t>(split.cols);
  Split s;
  s.count = static_cast<int>(keep);
  s.rows = split.rows;
  s.cols = split.cols;
  s.pixels.assign(split.pixels.begin(),
                  split.pixels.begin() + static_cast<std::ptrdiff_t>(keep * image));
  s.labels.assign(split.labels.begin(), split.labels.begin() + static_cast<std::ptrdiff_t>(keep));
  return s;
}

Mnist load_mnist(const fs::path& data_dir, const FindOptions& options) {
  Mnist m;
  m.files = find_mnist(data_dir, options);
  const MnistFiles& f = m.files;
  IdxImages train_images = read_idx_images(f.train_images);
  check_checksum(f.train_images, train_images.sha256, kMnistFiles[kTrainImages],
                 m.checksum_warnings);
  IdxLabels train_labels = read_idx_labels(f.train_labels);
  check_checksum(f.train_labels, train_labels.sha256, kMnistFiles[kTrainLabels],
                 m.checksum_warnings);
  IdxImages test_images = read_idx_images(f.test_images);
  check_checksum(f.test_images, test_images.sha256, kMnistFiles[kTestImages], m.checksum_warnings);
  IdxLabels test_labels = read_idx_labels(f.test_labels);
  check_checksum(f.test_labels, test_labels.sha256, kMnistFiles[kTestLabels], m.checksum_warnings);
  m.train =
      make_split(std::move(train_images), std::move(train_labels), f.train_images, f.train_labels);
  m.test = make_split(std::move(test_images), std::move(test_labels), f.test_images, f.test_labels);
  return m;
}

}  // namespace octa::data
