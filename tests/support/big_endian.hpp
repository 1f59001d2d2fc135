// tests/support/big_endian.hpp: big-endian integers appended to a byte buffer, as IDX headers and
// PNG chunks spell them. No Catch2: the fuzzing build's seed writers use it too.
#pragma once

#include <cstdint>
#include <vector>

namespace octa::test {

inline void put_be32(std::vector<std::uint8_t>& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
}

}  // namespace octa::test
