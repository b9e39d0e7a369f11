// Test helper: writes a passing static verdict for an image into a ledger,
// as `kiln verify` writes it -- the drift test's images hold a stand-in
// package, not CUDA, so the real static check would (rightly) fail them,
// and promotion needs a verdict to consider them at all.
//   kiln_test_record_verdict STATE.db IMAGE_ID
#include <iostream>

#include "state/ledger.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: kiln_test_record_verdict STATE.db IMAGE_ID\n";
    return 2;
  }
  kiln::state::Ledger ledger(argv[1]);
  ledger.record_verdict({argv[2], "local", "static", "passed", "{}", 0});
  return 0;
}
