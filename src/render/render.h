// Renders a plan into build inputs: per valid combination a directory with
// its Dockerfile and kiln.json, plus plan.json and docker-bake.json for the
// whole matrix. Templates come from templates/ (Mustache); the output is
// byte-for-byte deterministic and builds with a plain `docker build`.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plan/plan.h"

namespace kiln::render {

// A build secret a stage needs: its id and where kiln takes it from (an
// environment variable's name or a file); never the value.
struct BuildSecret {
  std::string id, env, file;
};

struct Rendered {
  std::string id;
  std::string dockerfile;
  nlohmann::json inputs;  // kiln.json: resolved inputs of the combination
  std::string local_image;  // kiln.local/<matrix>:<id>, the unverified local name
  std::string parent;       // id of the combination this one builds FROM, or ""
  std::string base;         // the external base when there is no parent
  std::string platform;     // the image's OCI platform, "linux/amd64" | "linux/arm64" (the engine builds for it)
  std::map<std::string, std::string> context;  // extra build-context files: name -> bytes
  // Directories the build context must hold (name -> host directory), e.g.
  // a local wheelhouse that a RUN --mount=type=bind reads: never a layer.
  std::map<std::string, std::string> context_dirs;
  std::vector<BuildSecret> secrets;
  bool run_mounts = false;  // the Dockerfile uses RUN --mount (BuildKit or Buildah)
  // Every LABEL the Dockerfile sets (templates/partials/labels.mustache):
  // what the static check expects on the built image. The template is the
  // one place that names them.
  std::map<std::string, std::string> labels;
  // This combination's MATRIX.lock entry (plan::Combo::lock_entry): the
  // input hash covers it. Empty without a lock.
  std::string lock;
  std::string locked_base_id;  // the base's image id the lock pins; the build refuses another
};

// The LABEL key="value" pairs of a Dockerfile (continuation lines joined;
// values quoted or bare). Only what kiln's templates write: no variable
// expansion, no escapes but \" and \\.
std::map<std::string, std::string> dockerfile_labels(std::string_view dockerfile);

// The name a built, not yet verified image has on the engine
// (kiln.local/<matrix>:<id>). Release tags are only ever pushed by
// promotion, after verification.
std::string local_image(const plan::Plan& p, const std::string& combo_id);
// The smoke image verify builds on top of it (kiln.local/<matrix>-smoke:<id>).
std::string local_smoke_image(const plan::Plan& p, const std::string& combo_id);

// The combination a devel image builds on, when its recipe says so and the
// runtime sibling is in the plan; nullptr otherwise.
const plan::Combo* parent_of(const plan::Combo& combo, const plan::Plan& p);

// Throws InputError when a template is missing or malformed.
class Renderer {
 public:
  explicit Renderer(std::string templates_dir);
  Rendered render(const plan::Combo& combo, const plan::Plan& p) const;
  // The smoke image of a combination: the suite compiled in `devel_image`
  // for the combination's arch list, on top of `image` (templates/smoke.Dockerfile.mustache).
  std::string render_smoke(const plan::Combo& combo, const std::string& image, const std::string& devel_image) const;
  // The smoke template's text, as read: part of the smoke suite's hash.
  const std::string& smoke_template() const { return smoke_; }

 private:
  std::string dir_;
  std::string main_;
  std::string smoke_;
  std::map<std::string, std::string> context_;  // templates/context/*
  std::vector<std::pair<std::string, std::string>> partials_;  // name, text
};

// CMAKE_CUDA_ARCHITECTURES for an arch list: "75-real;90-real;90-virtual".
std::string cmake_architectures(const ArchList& arch);

// docker buildx bake file for the valid combinations; contexts are relative
// to the directory holding it.
nlohmann::json bake_file(const plan::Plan& p);
// A bake target name: ids hold dots, which bake does not allow.
std::string bake_target(const std::string& id);

// Writes the whole tree under out_dir; returns the combination directories
// written. out_dir/.kiln-generated lists every file and directory kiln wrote
// there; only those are overwritten, and those no longer in the plan are
// removed (a directory only when empty). A non-empty out_dir without that
// list, or a path kiln would write that exists but is not listed, is an
// InputError before anything is written.
std::vector<std::string> generate(const plan::Plan& p, const Renderer& r, const std::string& out_dir);

}  // namespace kiln::render
