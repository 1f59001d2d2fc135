// engine/data/datasets.cpp: looking a dataset descriptor up by its --dataset id.
#include "engine/data/datasets.hpp"

#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/core/error.hpp"

namespace octa::data {

const DatasetSpec& dataset_by_id(std::string_view id) {
  for (const DatasetSpec* s : kDatasets) {
    if (s->id == id) return *s;
  }
  throw Error(fmt::format("unknown dataset '{}': use one of {}", id, dataset_ids()));
}

std::string dataset_ids() {
  std::vector<std::string_view> ids;
  for (const DatasetSpec* s : kDatasets) ids.push_back(s->id);
  return fmt::format("{}", fmt::join(ids, ", "));
}

}  // namespace octa::data
