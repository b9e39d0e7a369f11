// KILN_SKIP(why): this test case cannot run here (no nvcc, no test dockerd,
// no host CUDA library). It warns and returns; a run in which every selected
// test case skipped exits kSkipExitCode, which ctest reports as skipped
// (tests/test_main.cpp).
#pragma once
#include <catch2/catch.hpp>

namespace kiln::test {
inline constexpr int kSkipExitCode = 77;
void mark_skipped();
}  // namespace kiln::test

#define KILN_SKIP(why)                  \
  do {                                  \
    ::kiln::test::mark_skipped();       \
    WARN(why << ": skipped");           \
    return;                             \
  } while (false)
