// engine/data/mnist.cpp: locating, downloading and loading MNIST and the datasets of its format.
#include "engine/data/mnist.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <set>
#include <system_error>

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "engine/core/error.hpp"
#include "engine/data/hash.hpp"
#include "engine/data/idx.hpp"

namespace octa::data {
namespace fs = std::filesystem;

namespace {

// The largest label of a known release's files (its classes are 0..9).
constexpr int kKnownMaxLabel = 9;

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

fs::path raw_dir_of(const DatasetSpec& spec, const fs::path& data_dir) {
  return data_dir / std::string(spec.folder) / "raw";
}

// What the user can do about missing files; `download_failed` says whether downloading was
// tried (then the network or the mirrors are the problem) or disabled.
std::string how_to_provide(const DatasetSpec& spec, const fs::path& data_dir,
                           const fs::path& raw_dir, bool download_failed) {
  std::vector<std::string> names;
  for (const auto& f : spec.files) names.push_back(std::string(f.name) + ".gz");
  std::string download;  // nothing to say for a release without mirrors
  if (spec.can_download() && download_failed) {
    download = fmt::format(
        "; or point {} at mirrors this machine can reach (comma-separated URL prefixes, file:// "
        "works too)",
        spec.mirrors_env);
  } else if (spec.can_download()) {
    download =
        fmt::format("; or allow downloading (from torchvision's mirrors, or those listed in {})",
                    spec.mirrors_env);
  }
  return fmt::format(
      "To provide them: copy the four files of the {} release ({}; plain or .gz) into {} or {}; or "
      "run scripts/setup.sh (it copies MNIST and Fashion-MNIST from ../shared/data){}",
      spec.title, fmt::join(names, ", "), data_dir.string(), raw_dir.string(), download);
}

// "MNIST not found: missing ... (looked in ...)" for the files still missing.
std::string not_found(const DatasetSpec& spec, const fs::path& data_dir, const fs::path& raw_dir,
                      const std::array<fs::path, 4>& found) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < found.size(); ++i) {
    if (found[i].empty()) names.push_back(std::string(spec.files[i].name) + "[.gz]");
  }
  return fmt::format("{} not found: missing {} (looked in {} and {}, each file plain or with .gz)",
                     spec.title, fmt::join(names, ", "), data_dir.string(), raw_dir.string());
}

DatasetFiles to_files(const std::array<fs::path, 4>& found) {
  DatasetFiles files;
  files.train_images = found[kTrainImages];
  files.train_labels = found[kTrainLabels];
  files.test_images = found[kTestImages];
  files.test_labels = found[kTestLabels];
  return files;
}

std::array<fs::path, 4> as_array(const DatasetFiles& f) {
  return {f.train_images, f.train_labels, f.test_images, f.test_labels};
}

DatasetFiles find_known(const DatasetSpec& spec, const fs::path& data_dir,
                        const FindOptions& options) {
  const fs::path raw_dir = raw_dir_of(spec, data_dir);
  std::array<fs::path, 4> found;
  std::vector<std::size_t> missing;
  for (std::size_t i = 0; i < spec.files.size(); ++i) {
    const std::string base(spec.files[i].name);
    for (const fs::path& dir : {data_dir, raw_dir}) {
      for (const std::string& name : {base, base + ".gz"}) {
        std::error_code ec;
        if (found[i].empty() && fs::is_regular_file(dir / name, ec)) found[i] = dir / name;
      }
    }
    if (found[i].empty()) missing.push_back(i);
  }

  std::vector<fs::path> downloaded;
  if (!missing.empty()) {
    if (!options.allow_download) {
      throw Error(fmt::format("{}; downloading is disabled. {}",
                              not_found(spec, data_dir, raw_dir, found),
                              how_to_provide(spec, data_dir, raw_dir, false)));
    }
    const std::vector<std::string> mirrors = resolve_mirrors(spec, options);
    std::set<std::string> unreachable;  // a mirror that is down is not waited on again
    for (std::size_t i : missing) {
      const std::string gz = std::string(spec.files[i].name) + ".gz";
      const fs::path dest = raw_dir / gz;
      DownloadOptions dl = options.download;
      dl.expected_md5 = std::string(spec.files[i].gz_md5);
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
          downloaded.push_back(dest);
          break;
        } catch (const DownloadError& e) {
          spdlog::warn("{}", e.what());
          failures.push_back(e.what());
          if (e.unreachable()) unreachable.insert(mirror);
        }
      }
      if (found[i].empty()) {
        throw Error(fmt::format("{}; downloading {} failed from every mirror:\n  {}\n{}",
                                not_found(spec, data_dir, raw_dir, found), gz,
                                fmt::join(failures, "\n  "),
                                how_to_provide(spec, data_dir, raw_dir, true)));
      }
    }
  }
  DatasetFiles files = to_files(found);
  files.downloaded = std::move(downloaded);
  return files;
}

// --- "idx": any four files, found by the end of their names ------------------------------------

// The names a role's file may end in (before an optional .gz).
std::vector<std::string_view> role_suffixes(std::size_t role) {
  switch (role) {
    case kTrainImages:
      return {"train-images-idx3-ubyte"};
    case kTrainLabels:
      return {"train-labels-idx1-ubyte"};
    case kTestImages:
      return {"t10k-images-idx3-ubyte", "test-images-idx3-ubyte"};
    default:
      return {"t10k-labels-idx1-ubyte", "test-labels-idx1-ubyte"};
  }
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

DatasetFiles find_idx(const DatasetSpec& spec, const fs::path& data_dir) {
  std::error_code ec;
  OCTA_CHECK(fs::is_directory(data_dir, ec),
             "{}: not a directory; --dataset {} reads the four IDX files of a dataset from a "
             "directory (--data-dir)",
             data_dir.string(), spec.id);
  // Per role: base name (without .gz) -> the file, the plain one where both exist.
  std::array<std::map<std::string, fs::path>, 4> candidates;
  for (const auto& entry : fs::directory_iterator(data_dir, ec)) {
    if (!entry.is_regular_file(ec)) continue;
    const std::string name = entry.path().filename().string();
    const bool gz = ends_with(name, ".gz");
    const std::string base = gz ? name.substr(0, name.size() - 3) : name;
    for (std::size_t role = 0; role < 4; ++role) {
      for (std::string_view suffix : role_suffixes(role)) {
        if (!ends_with(base, suffix)) continue;
        auto [it, inserted] = candidates[role].emplace(base, entry.path());
        if (!inserted && !gz) it->second = entry.path();
      }
    }
  }
  OCTA_CHECK(!ec, "{}: cannot list the directory: {}", data_dir.string(), ec.message());

  std::array<fs::path, 4> found;
  std::vector<std::string> missing;
  for (std::size_t role = 0; role < 4; ++role) {
    const auto& c = candidates[role];
    if (c.empty()) {
      missing.push_back(fmt::format("*{}[.gz]", fmt::join(role_suffixes(role), "[.gz] or *")));
      continue;
    }
    if (c.size() > 1) {
      std::vector<std::string> names;
      for (const auto& [base, path] : c) names.push_back(path.filename().string());
      throw Error(fmt::format(
          "{}: {} files could be the {}: {}; keep one of them in the directory (or use a "
          "directory per dataset)",
          data_dir.string(), c.size(), spec.files[role].name, fmt::join(names, ", ")));
    }
    found[role] = c.begin()->second;
  }
  if (!missing.empty()) {
    throw Error(
        fmt::format("{} not found in {}: no file named {} (names may carry a prefix, e.g. "
                    "emnist-digits-train-images-idx3-ubyte.gz); --dataset {} is never downloaded",
                    spec.title, data_dir.string(), fmt::join(missing, ", "), spec.id));
  }
  return to_files(found);
}

// --- checks after reading -----------------------------------------------------------------------

// The known release whose file `role` has this SHA-256, or null.
const DatasetSpec* release_of(const std::string& sha256, std::size_t role) {
  for (const DatasetSpec* s : kDatasets) {
    if (!s->files[role].sha256.empty() && s->files[role].sha256 == sha256) return s;
  }
  return nullptr;
}

void warn(Dataset& d, std::string msg) {
  spdlog::warn("{}", msg);
  d.checksum_warnings.push_back(std::move(msg));
}

void notice(Dataset& d, std::string msg) {
  spdlog::info("{}", msg);
  d.checksum_notices.push_back(std::move(msg));
}

// A file of a known release against its checksum: the SHA-256 of the content where recorded, else
// the MD5 of the .gz as stored.
void check_known_file(Dataset& d, const fs::path& path, const std::string& sha256,
                      std::size_t role) {
  const DatasetSpec& spec = *d.spec;
  const IdxFileSpec& f = spec.files[role];
  if (f.sha256.empty()) {
    if (!is_gzip_file(path)) {
      notice(d, fmt::format("{}: {} publishes no checksum of the decompressed {}: not checked",
                            path.string(), spec.title, f.name));
      return;
    }
    const std::string md5 = md5_file_hex(path);
    if (md5 == f.gz_md5) return;
    warn(d, fmt::format("{}: not the official {} {}.gz: its MD5 is {}, expected {} (loading it "
                        "anyway)",
                        path.string(), spec.title, f.name, md5, f.gz_md5));
    return;
  }
  if (sha256 == f.sha256) return;
  const DatasetSpec* other = release_of(sha256, role);
  const std::string hint =
      other != nullptr ? fmt::format("; it is {}'s: use --dataset {}", other->title, other->id)
                       : "";
  warn(d, fmt::format("{}: not the official {} {}: SHA-256 of its decompressed content is {}, "
                      "expected {}{} (loading it anyway)",
                      path.string(), spec.title, f.name, sha256, f.sha256, hint));
}

// "idx" files: a known release when all four match one, else a notice per file.
void check_idx_files(Dataset& d, const std::array<fs::path, 4>& paths,
                     const std::array<std::string, 4>& sha256) {
  const DatasetSpec* same = release_of(sha256[0], 0);
  for (std::size_t role = 1; role < 4 && same != nullptr; ++role) {
    if (release_of(sha256[role], role) != same) same = nullptr;
  }
  if (same != nullptr) {
    notice(d, fmt::format("{}: the official {} files (their checksums match)",
                          paths[0].parent_path().string(), same->title));
    if (!same->class_names.empty()) {
      d.class_names.assign(same->class_names.begin(), same->class_names.end());
    }
    return;
  }
  for (std::size_t role = 0; role < 4; ++role) {
    notice(d, fmt::format("{}: checksum not known to octa (SHA-256 of its content {}): loading it "
                          "as it is",
                          paths[role].string(), sha256[role]));
  }
}

Split make_split(IdxImages images, IdxLabels labels, const fs::path& image_path,
                 const fs::path& label_path) {
  OCTA_CHECK(images.rows == 28 && images.cols == 28,
             "{}: images are {}x{}; the models need MNIST's 28x28 single-channel images: resize "
             "them to 28x28 first",
             image_path.string(), images.rows, images.cols);
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

int classes_in(const Split& s) {
  return s.labels.empty() ? 0 : int{*std::max_element(s.labels.begin(), s.labels.end())} + 1;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

}  // namespace

std::vector<std::string> resolve_mirrors(const DatasetSpec& spec, const FindOptions& options) {
  if (!options.mirrors.empty()) return options.mirrors;
  if (!spec.mirrors_env.empty()) {
    if (const char* env = std::getenv(std::string(spec.mirrors_env).c_str()); env != nullptr) {
      auto list = split_list(env);
      if (!list.empty()) return list;
    }
  }
  return {spec.mirrors.begin(), spec.mirrors.end()};
}

std::vector<std::string> resolve_mirrors(const FindOptions& options) {
  return resolve_mirrors(kMnist, options);
}

DatasetFiles find_dataset(const DatasetSpec& spec, const fs::path& data_dir,
                          const FindOptions& options) {
  return spec.known() ? find_known(spec, data_dir, options) : find_idx(spec, data_dir);
}

MnistFiles find_mnist(const fs::path& data_dir, const FindOptions& options) {
  return find_dataset(kMnist, data_dir, options);
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

Dataset load_dataset(const DatasetSpec& spec, const fs::path& data_dir,
                     const FindOptions& options) {
  Dataset d;
  d.spec = &spec;
  d.files = find_dataset(spec, data_dir, options);
  const std::array<fs::path, 4> paths = as_array(d.files);
  const int max_label = spec.known() ? kKnownMaxLabel : 255;
  IdxImages train_images = read_idx_images(paths[kTrainImages]);
  IdxLabels train_labels = read_idx_labels(paths[kTrainLabels], max_label);
  IdxImages test_images = read_idx_images(paths[kTestImages]);
  IdxLabels test_labels = read_idx_labels(paths[kTestLabels], max_label);
  const std::array<std::string, 4> sha256{train_images.sha256, train_labels.sha256,
                                          test_images.sha256, test_labels.sha256};
  if (spec.known()) {
    for (std::size_t role = 0; role < 4; ++role) {
      check_known_file(d, paths[role], sha256[role], role);
    }
  } else {
    check_idx_files(d, paths, sha256);
  }
  d.train = make_split(std::move(train_images), std::move(train_labels), paths[kTrainImages],
                       paths[kTrainLabels]);
  d.test = make_split(std::move(test_images), std::move(test_labels), paths[kTestImages],
                      paths[kTestLabels]);

  // K from the training labels; the test split may lack a class, but may not add one.
  const int k_train = classes_in(d.train), k_test = classes_in(d.test);
  OCTA_CHECK(k_test <= k_train,
             "class mismatch between the splits: {} has labels 0..{} ({} classes) but {} has "
             "labels up to {}, a class the training split does not have",
             paths[kTrainLabels].string(), k_train - 1, k_train, paths[kTestLabels].string(),
             k_test - 1);
  OCTA_CHECK(k_train >= 2, "{}: every label is 0; a classifier needs at least two classes",
             paths[kTrainLabels].string());
  d.num_classes = k_train;
  if (d.class_names.empty() && static_cast<int>(spec.class_names.size()) == d.num_classes) {
    d.class_names.assign(spec.class_names.begin(), spec.class_names.end());
  }
  if (static_cast<int>(d.class_names.size()) != d.num_classes) {
    d.class_names.clear();
    for (int k = 0; k < d.num_classes; ++k) d.class_names.push_back(std::to_string(k));
  }
  return d;
}

Mnist load_mnist(const fs::path& data_dir, const FindOptions& options) {
  return load_dataset(kMnist, data_dir, options);
}

int resolve_class(const Dataset& dataset, std::string_view text) {
  const int K = dataset.num_classes;
  const bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
  if (digits && text.size() <= 3) {
    const int index = std::stoi(std::string(text));
    if (index < K) return index;
  }
  for (int k = 0; k < K && !digits; ++k) {
    if (dataset.class_names[static_cast<std::size_t>(k)] == text) return k;
  }
  for (int k = 0; k < K && !digits; ++k) {
    if (lower(dataset.class_names[static_cast<std::size_t>(k)]) == lower(text)) return k;
  }
  const bool named = dataset.class_names.size() == static_cast<std::size_t>(K) && K > 0 &&
                     dataset.class_names[0] != "0";
  if (!named) {
    throw Error(fmt::format("'{}' is not a class of {}: give a class index 0..{}", text,
                            dataset.spec->title, K - 1));
  }
  std::vector<std::string> listed;
  for (int k = 0; k < K; ++k) {
    listed.push_back(fmt::format("{} {}", k, dataset.class_names[static_cast<std::size_t>(k)]));
  }
  throw Error(fmt::format("'{}' is not a class of {}: give an index 0..{} or a class name ({})",
                          text, dataset.spec->title, K - 1, fmt::join(listed, ", ")));
}

}  // namespace octa::data
