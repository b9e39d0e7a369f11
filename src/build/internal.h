// Shared by the build room's files.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "build/build.h"
#include "build/placement.h"

namespace kiln::build::detail {

// One node of the build graph: a rendered combination.
struct Node {
  render::Rendered rendered;
  std::string context_dir;  // where its Dockerfile and context live
  int parent = -1;          // index of the parent node, or -1
  std::vector<int> children;
  Need need;                // what its engine must be: platform, labels, backend
};

struct Graph {
  std::vector<Node> nodes;  // parents before children
};

// Renders the selected combinations (plus the parents they need) into
// <state_dir>/contexts/<matrix>/ and links parents and children.
Graph make_graph(const plan::Plan& p, const render::Renderer& r, const Options& o);

// sha256 over everything that decides the image: the stage's files (sorted
// by name), the parent's or base's image id, the catalog version.
// Names, sizes and mtimes of the regular files under dir, sorted.
std::string directory_listing(const std::string& dir);

// Links (or, across file systems, copies) each rendered context_dirs entry
// into the node's context directory, replacing what an earlier build left.
void link_context_dirs(const Node& n);

std::string input_hash(const Node& n, const std::string& from_image_id, const std::string& catalog_version);

// Each engine's named buildx builder looked up (`docker buildx inspect`):
// its driver, its engine, the staging repository when it is not the
// runner's engine. Throws EnvironmentError (exit 2) for a builder buildx
// does not know, naming `docker buildx ls`, or one that must push while
// the matrix names no registry.
Options resolve_builders(Options o, const plan::Plan& p);

}  // namespace kiln::build::detail
