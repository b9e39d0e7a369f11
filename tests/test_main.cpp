// Catch2's main, plus skips ctest can see: a test case that cannot run here
// (its tool, library or daemon is missing) says so with KILN_SKIP
// (tests/skip.h). When every test case a run selected skipped and none
// failed, the process exits 77, which kiln_test() registers as ctest's
// SKIP_RETURN_CODE: ctest reports "Skipped", never a pass that checked
// nothing. kiln_test_part() gives such cases a ctest entry of their own.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "skip.h"

namespace {

int ran = 0, skipped = 0;
bool current_skipped = false;

struct SkipCounter : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    current_skipped = false;
    TestEventListenerBase::testCaseStarting(info);
  }
  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    ++ran;
    skipped += current_skipped;
    TestEventListenerBase::testCaseEnded(stats);
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(SkipCounter)

namespace kiln::test {
void mark_skipped() { current_skipped = true; }
}  // namespace kiln::test

int main(int argc, char* argv[]) {
  const int failed = Catch::Session().run(argc, argv);
  if (failed == 0 && ran > 0 && skipped == ran) return kiln::test::kSkipExitCode;
  return failed;
}
