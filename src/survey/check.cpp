// Reads every input and compares it with the catalog (compare.cpp).
#include <fmt/format.h>

#include "survey/internal.h"
#include "util/diag.h"
#include "util/sha256.h"

namespace kiln::survey {

Report check(const catalog::Catalog& cat, const Inputs& in) {
  using namespace detail;
  if (in.wheels.empty() && in.site_packages.empty() && in.indexes.empty() && in.redistribs.empty() &&
      in.dockerfiles.empty() && !in.online)
    throw InputError(Location{"kiln catalog check", 0, 0},
                     "nothing to check: give --wheel, --site-packages, --index, --redistrib, --dockerfile or --online");
  Report report;
  // Redistrib files first: a CUDA 13 wheel pins cuda-toolkit==X.Y.Z, whose
  // component versions (cuBLAS) only the redistrib JSON of X.Y.Z states.
  struct Doc {
    Fetched fetched;
    Redistrib redistrib;
  };
  std::vector<Doc> redistribs;
  std::vector<Redistrib> parsed;
  for (const auto& src : in.redistribs) {
    Fetched f = fetch(src, "application/json");
    Redistrib r = parse_redistrib(f.body, src);
    parsed.push_back(r);
    redistribs.push_back({std::move(f), std::move(r)});
  }
  for (const auto& w : in.wheels) compare_torch(cat, read_wheel(w), parsed, report);
  for (const auto& d : in.site_packages) compare_torch(cat, read_site_packages(d), parsed, report);
  for (const auto& src : in.indexes) {
    Fetched f = fetch(src, "application/vnd.pypi.simple.v1+json, text/html;q=0.1");
    compare_index(cat, parse_index(f.body, src), report);
  }
  for (const auto& d : redistribs)
    compare_redistrib(cat, d.redistrib, d.fetched.name, sha256_hex(d.fetched.body).substr(0, 16), report);
  for (const auto& src : in.dockerfiles) {
    Fetched f = fetch(src);
    compare_dockerfile(cat, parse_dockerfile(f.body, src), src, sha256_hex(f.body).substr(0, 16), report);
  }
  if (in.online) {
    Fetched f = fetch(in.pypi_url, "application/json");
    compare_pypi(cat, parse_pypi(f.body, in.pypi_url), in.pypi_url, report);
  }
  return report;
}

}  // namespace kiln::survey
