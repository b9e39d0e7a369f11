#include "options.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include "checks.h"

namespace kiln::smoke {

static std::set<std::string> split_sections(const std::string& flag, const std::string& value,
                                            const std::vector<std::string>& known) {
  std::set<std::string> out;
  std::stringstream ss(value);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    if (std::find(known.begin(), known.end(), item) == known.end())
      throw std::invalid_argument(flag + ": unknown section '" + item + "'");
    out.insert(item);
  }
  return out;
}

static int positive_int(const std::string& flag, const std::string& v) {
  try {
    std::size_t used = 0;
    int n = std::stoi(v, &used);
    if (used == v.size() && n > 0) return n;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument(flag + ": expected a positive integer, got '" + v + "'");
}

static std::string version_arg(const std::string& flag, const std::string& v) {
  if (!parse_version(v)) throw std::invalid_argument(flag + ": not a version: '" + v + "'");
  return v;
}

Options parse_options(int argc, char** argv, const std::vector<std::string>& sections) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string value;
    // Accept both "--flag value" and "--flag=value".
    auto eq = a.find('=');
    bool inline_value = a.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    auto next = [&]() -> std::string {
      if (inline_value) return value;
      if (i + 1 >= argc) throw std::invalid_argument(a + ": missing value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") o.help = true;
    else if (a == "--expect-cuda") o.expect_cuda = version_arg(a, next());
    else if (a == "--expect-cudnn") o.expect_cudnn = version_arg(a, next());
    else if (a == "--expect-nccl") o.expect_nccl = version_arg(a, next());
    else if (a == "--expect-torch") o.expect_torch = next();
    else if (a == "--only") o.only = split_sections(a, next(), sections);
    else if (a == "--skip") o.skip = split_sections(a, next(), sections);
    else if (a == "--require") o.require = split_sections(a, next(), sections);
    else if (a == "--gemm-size") o.gemm_size = positive_int(a, next());
    else if (a == "--copy-mb") o.copy_mb = positive_int(a, next());
    else if (a == "--nccl-mb") o.nccl_mb = positive_int(a, next());
    else if (a == "--seed") o.seed = static_cast<std::uint64_t>(positive_int(a, next()));
    else if (a == "--output" || a == "-o") o.output = next();
    else if (a == "--compact") o.json_indent = -1;
    else throw std::invalid_argument("unknown argument '" + a + "'");
  }
  return o;
}

std::string usage(const std::string& tool, const std::vector<std::string>& sections) {
  std::string names;
  for (const auto& s : sections) names += (names.empty() ? "" : ",") + s;
  return "usage: " + tool +
         " [--expect-cuda X.Y] [--expect-cudnn X.Y.Z] [--expect-nccl X.Y.Z] [--expect-torch V]\n"
         "       [--only LIST] [--skip LIST] [--require LIST] [--gemm-size N] [--copy-mb N]\n"
         "       [--nccl-mb N] [--seed N] [--output FILE] [--compact]\n"
         "sections: " + names + "\n"
         "exit: 0 required sections passed, 1 a check failed, 2 bad usage, 3 no usable GPU\n";
}

bool selected(const Options& o, const std::string& section) {
  if (!o.only.empty() && !o.only.count(section)) return false;
  return !o.skip.count(section);
}

bool required(const Options& o, const std::string& section, bool built_in) {
  if (o.require) return o.require->count(section) > 0;
  return built_in && selected(o, section);
}

}  // namespace kiln::smoke
