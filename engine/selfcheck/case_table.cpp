// engine/selfcheck/case_table.cpp: the whole case table (case_table.hpp).
#include "engine/selfcheck/case_table.hpp"

#include <utility>

namespace octa::selfcheck {

std::vector<KernelCase> all_cases(const CaseOptions& options) {
  std::vector<KernelCase> cases = kernel_cases(options);
  for (KernelCase& c : library_cases()) cases.push_back(std::move(c));
  return cases;
}

}  // namespace octa::selfcheck
