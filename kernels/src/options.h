// Command line of the smoke binaries (shared by kiln-smoke and kiln-smoke-torch).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kiln::smoke {

struct Options {
  std::string expect_cuda, expect_cudnn, expect_nccl, expect_torch;
  std::set<std::string> only, skip;
  std::optional<std::set<std::string>> require;  // nullopt: default (README.md)
  int gemm_size = 0;        // 0: chosen from device memory
  int copy_mb = 256;        // memory section transfer size
  int nccl_mb = 256;        // nccl section buffer per rank
  int json_indent = 2;      // --compact: -1
  std::string output;       // also write the JSON here
  std::uint64_t seed = 0;   // 0: fresh from the clock
  bool help = false;
};

// Parses argv against the known section names. Throws std::invalid_argument
// with a one-line message on bad input (exit 2 in the binaries).
Options parse_options(int argc, char** argv, const std::vector<std::string>& sections);

std::string usage(const std::string& tool, const std::vector<std::string>& sections);

// Whether --only/--skip select this section.
bool selected(const Options& o, const std::string& section);

// Whether a section must pass: --require when given, else every selected
// section that is built in (a compiled-out section is then reported absent
// without failing the run; name it in --require to insist on it).
bool required(const Options& o, const std::string& section, bool built_in);

}  // namespace kiln::smoke
