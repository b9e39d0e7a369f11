// `kiln catalog check`: facts derived from the artifacts themselves (a torch
// wheel or installed site-packages, a package index page, NVIDIA's
// redistrib_X.Y.Z.json, an nvidia/cuda Dockerfile, PyPI's release list),
// compared with the catalog; and the catalog's TOML updated in place with the
// artifact's values and their source recorded. See docs/catalog.md.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "catalog/catalog.h"

namespace kiln::survey {

struct Inputs {
  std::vector<std::string> wheels;         // torch-*.whl files
  std::vector<std::string> site_packages;  // an installed torch (site-packages or a venv)
  std::vector<std::string> indexes;        // PEP 691 JSON / HTML simple pages: file or URL
  std::vector<std::string> redistribs;     // redistrib_X.Y.Z.json: file or URL
  std::vector<std::string> dockerfiles;    // nvidia/cuda base Dockerfile: file or URL
  bool online = false;                     // also list PyPI releases newer than the catalog
  std::string pypi_url = "https://pypi.org/pypi/torch/json";
};

// One fact as the catalog and an artifact state it.
struct Row {
  std::string fact;      // "pytorch 2.11.0 CUDA 13.0: cudnn"
  std::string catalog;   // "(none)" when the catalog lacks it
  std::string artifact;
  std::string source;    // which artifact, and where in it
  std::string detail;    // what exactly differs, when the values are long
  bool compared = true;  // false: reported only (component versions, installed packages)
  bool differs = false;
  bool updated = false;  // write() changed the catalog to the artifact's value
  std::string written;   // what --write did with it, or why it cannot
};

// A catalog update one artifact supports: the keys of one entry to set (TOML
// literals), the entry created when missing, and the source to record.
struct Change {
  enum class Target { torch_build, cuda_release };
  Target target = Target::torch_build;
  Version release;                                  // torch release, or the CUDA X.Y
  Version cuda;                                     // torch_build: the build's CUDA
  std::vector<std::pair<std::string, std::string>> set;  // key, TOML literal
  std::vector<std::string> add_python;              // torch: Python versions to list
  std::string source_key, source_text;              // recorded in sources.toml
  std::vector<std::size_t> rows;                    // the rows it answers
};

struct Report {
  std::vector<Row> rows;
  std::vector<Change> changes;
  std::vector<std::string> notes;
  std::size_t differences() const;  // rows that differ and were not updated
};

// Reads every input (fetching URLs with libcurl) and compares. Throws
// InputError for input that cannot be read (exit 2).
Report check(const catalog::Catalog& cat, const Inputs& in);

// Applies report.changes to the TOML under cat.root, editing the text in
// place (comments and layout survive); marks the rows it answered. Returns
// the files it changed. Throws InputError when the result would not load.
std::vector<std::string> write(const catalog::Catalog& cat, Report& report);

}  // namespace kiln::survey
