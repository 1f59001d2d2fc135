// engine/predict/inputs.cpp: paths -> files -> decoded, preprocessed 28x28 inputs (or errors).
#include "engine/predict/inputs.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <system_error>

#include "engine/core/error.hpp"
#include "engine/data/idx.hpp"
#include "engine/predict/mnist_style.hpp"

namespace octa::predict {
namespace fs = std::filesystem;

namespace {

bool has_image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

// The first four bytes of an IDX images file (magic 2051), or gzip's magic: IDX, not an image.
bool looks_like_idx(const fs::path& path) {
  std::array<unsigned char, 4> b{};
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(b.data()), 4);
  if (in.gcount() >= 2 && b[0] == 0x1f && b[1] == 0x8b) return true;
  return in.gcount() == 4 && b[0] == 0 && b[1] == 0 && b[2] == 0x08 && b[3] == 0x03;
}

PredictInput failed(std::string name, InputKind kind, std::string error) {
  PredictInput in;
  in.name = std::move(name);
  in.kind = kind;
  in.error = std::move(error);
  return in;
}

void add_idx(const fs::path& path, std::vector<PredictInput>& out) {
  data::IdxImages images;
  try {
    images = data::read_idx_images(path);
    OCTA_CHECK(images.rows == kDigitSide && images.cols == kDigitSide,
               "{}: IDX images of {}x{}; the model takes 28x28 (MNIST's size)", path.string(),
               images.rows, images.cols);
  } catch (const std::exception& e) {
    out.push_back(failed(path.string(), InputKind::kIdx, e.what()));
    return;
  }
  std::vector<std::uint8_t> labels;
  if (const auto lp = idx_labels_beside(path)) {
    try {
      data::IdxLabels l = data::read_idx_labels(*lp);
      if (l.count == images.count) labels = std::move(l.labels);
    } catch (const std::exception&) {
      // Labels are a convenience; an unreadable labels file only means no accuracy column.
    }
  }
  const std::size_t side = static_cast<std::size_t>(kDigitSide) * kDigitSide;
  for (int i = 0; i < images.count; ++i) {
    PredictInput in;
    in.name = fmt::format("{}#{}", path.string(), i);
    in.kind = InputKind::kIdx;
    const auto begin = images.pixels.begin() + static_cast<std::ptrdiff_t>(i * side);
    in.pixels.assign(begin, begin + static_cast<std::ptrdiff_t>(side));
    if (!labels.empty()) in.label = labels[static_cast<std::size_t>(i)];
    out.push_back(std::move(in));
  }
}

void add_file(const fs::path& path, const InputOptions& options, std::vector<PredictInput>& out) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec) && fs::file_size(path, ec) > 0 && looks_like_idx(path)) {
    add_idx(path, out);
    return;
  }
  try {
    out.push_back(read_image_input(path, options));
  } catch (const std::exception& e) {
    out.push_back(failed(path.string(), InputKind::kUnknown, e.what()));
  }
}

}  // namespace

const char* input_kind_name(InputKind k) {
  switch (k) {
    case InputKind::kPng:
      return "png";
    case InputKind::kJpeg:
      return "jpeg";
    case InputKind::kIdx:
      return "idx";
    case InputKind::kUnknown:
      break;
  }
  return "?";
}

std::optional<fs::path> idx_labels_beside(const fs::path& images) {
  std::string name = images.filename().string();
  const auto at = name.find("images-idx3");
  if (at == std::string::npos) return std::nullopt;
  name.replace(at, std::string("images-idx3").size(), "labels-idx1");
  std::vector<std::string> candidates{name};
  if (name.ends_with(".gz")) {
    candidates.push_back(name.substr(0, name.size() - 3));
  } else {
    candidates.push_back(name + ".gz");
  }
  for (const std::string& c : candidates) {
    std::error_code ec;
    const fs::path p = images.parent_path() / c;
    if (fs::is_regular_file(p, ec)) return p;
  }
  return std::nullopt;
}

PredictInput read_image_input(const fs::path& path, const InputOptions& options) {
  ImageFormat format = ImageFormat::kPng;
  const Image image = read_image(path, options.limits, &format);
  PredictInput in;
  in.name = path.string();
  in.kind = format == ImageFormat::kPng ? InputKind::kPng : InputKind::kJpeg;
  if (options.raw) {
    in.pixels = preprocess_raw(image, in.name);
  } else {
    MnistStyle m = preprocess_mnist_style(image, in.name);
    in.pixels = std::move(m.pixels);
    in.inverted = m.inverted;
  }
  return in;
}

std::vector<PredictInput> gather_inputs(const std::vector<fs::path>& paths,
                                        const InputOptions& options) {
  std::vector<PredictInput> out;
  for (const fs::path& path : paths) {
    std::error_code ec;
    const auto status = fs::status(path, ec);
    if (ec || !fs::exists(status)) {
      out.push_back(failed(path.string(), InputKind::kUnknown,
                           fmt::format("{}: no such file or folder", path.string())));
      continue;
    }
    if (!fs::is_directory(status)) {
      add_file(path, options, out);
      continue;
    }
    std::vector<fs::path> files;
    for (const fs::directory_entry& e : fs::directory_iterator(path, ec)) {
      const std::string name = e.path().filename().string();
      if (!name.starts_with(".") && has_image_extension(e.path()) && e.is_regular_file(ec)) {
        files.push_back(e.path());
      }
    }
    if (ec) {
      out.push_back(
          failed(path.string(), InputKind::kUnknown,
                 fmt::format("{}: cannot list the folder: {}", path.string(), ec.message())));
      continue;
    }
    if (files.empty()) {
      out.push_back(
          failed(path.string(), InputKind::kUnknown,
                 fmt::format("{}: the folder holds no .png, .jpg or .jpeg files", path.string())));
      continue;
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) add_file(f, options, out);
  }
  return out;
}

}  // namespace octa::predict
