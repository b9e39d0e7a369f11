// kiln build: turns the rendered combinations of a plan into images.
//
// Every valid combination is one stage; a devel image whose recipe builds
// on its runtime sibling has that stage as its parent, so shared layers are
// built once. Stages run in dependency order, `jobs` at a time, spread over
// one or more engines that match their platform and labels, within each
// engine's own `jobs` (a child runs on its parent's engine, where the
// parent image is); a stage whose engine stops answering is retried on
// another (docs/build.md, "Several engines"). A stage whose input hash (Dockerfile, context, parent
// or base image id, catalog version) has a built image in the ledger that
// still exists on its engine is not rebuilt. A failure skips the stage's
// dependants and nothing else, unless fail_fast.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "plan/plan.h"
#include "render/render.h"
#include "util/errors.h"
#include "util/select.h"

namespace kiln::build {

struct EngineSpec {
  std::string name;  // a runner name, or "default"
  engine::Endpoint endpoint;
  matrix::Backend backend = matrix::Backend::engine;
  // backend buildx: the runner's named builder ("" the engine's own). One
  // that is not this engine pushes each image by digest to the staging
  // registry (`staging`) instead of loading it here (docs/build-farm.md).
  std::string builder;
  // Filled by build_plan (`docker buildx inspect`): the builder's driver,
  // and whether its images land in this engine.
  std::string builder_driver;
  bool builder_is_engine = true;
  // The docker driver of another engine: that engine (bases are read there);
  // nullopt when unknown or not an engine (other drivers).
  std::optional<engine::Endpoint> builder_engine;
  std::string builder_context;  // the docker driver's context (buildx wants `docker --context` for it)
  std::string staging;  // "HOST/REPO" pushes go to; set when !builder_is_engine
  bool staging_insecure = false;            // [registry] insecure
  std::string staging_credential_helper;    // [registry] credential_helper
  // Where the scheduler may put a stage (docs/build.md, "Several engines"):
  // at most `jobs` builds at a time here (0: only Options::jobs limits it);
  // the OCI platforms it builds, "linux/amd64" or "linux/arm64" (empty: the
  // engine's own Os/Arch from GET /version; an engine with qemu's binfmt
  // handlers may declare both); labels a stage's [engine_labels] must find.
  int jobs = 0;
  std::vector<std::string> platforms;
  std::vector<std::string> labels;
};

struct Options {
  std::vector<EngineSpec> engines;  // at least one
  int jobs = 2;
  bool fail_fast = false;
  bool no_cache = false;
  std::string state_dir = ".kiln";  // ledger, logs, build contexts
  std::vector<std::string> only;    // combination ids or globs; empty = all
  // RUN steps' network. "host" because private test daemons run without a
  // bridge; the Debian mirror must be reachable from RUN apt-get.
  std::string network = "host";
  // The apt proxy every stage's apt steps go through (build argument
  // APT_PROXY); "" none. build_plan sets it from the plan's [cache] apt.
  std::string apt_proxy;
  // How many times a stage is tried again, on another engine, when its
  // engine stops answering (the engine is not used again in this run).
  int retries = 2;
};

enum class Outcome { built, cached, failed, skipped };
const char* to_string(Outcome o);

struct StageResult {
  std::string id;
  Outcome outcome = Outcome::skipped;
  std::string engine;  // EngineSpec name
  std::string image_id;
  std::string local_image;
  // Built by a builder that is not the engine: the image is only in the
  // registry, as "HOST/REPO@sha256:..." (and not in the engine).
  std::string image_ref;
  std::string input_hash;
  std::string failed_step;
  std::string error;
  std::string log_path;
  double seconds = 0;
  // 1, or more when the stage was tried again on another engine (the ledger
  // keeps every attempt: builds.attempt, builds.runner, builds.retry_reason).
  int attempts = 1;
  // The image's size and its largest layers (engine inspect and history),
  // for built and cached stages; 0 and empty when unknown.
  std::int64_t size = 0;
  std::vector<engine::HistoryEntry> largest_layers;
  // Set when the engine itself failed (unreachable, or silent past its time
  // limit), not the build: the caller's exit code says "environment" (2).
  std::string environment_error;
};

struct Report {
  std::vector<StageResult> stages;  // in plan order
  size_t count(Outcome o) const;
  bool ok() const { return count(Outcome::failed) == 0 && count(Outcome::skipped) == 0; }
  // The first stage's engine failure ("" when every failure was the build's own).
  std::string environment_error() const;
};

// What the progress display sees, from any worker thread (serialised).
struct Event {
  // retried: the stage goes back to the queue (line says why: its engine
  // stopped answering, or its parent must be rebuilt on another engine).
  enum Kind { queued, started, progressed, finished, retried } kind;
  std::string id;
  int step = 0, total = 0;
  std::string line;
  const StageResult* result = nullptr;  // for finished
};
using EventFn = std::function<void(const Event&)>;

// Thrown before anything is built when an engine does not answer (exit 2).
using EnvironmentError = kiln::EnvironmentError;

Report build_plan(const plan::Plan& p, const render::Renderer& r, const Options& o, const EventFn& on_event);

// "5.68 GB", "788 MB", "12 kB" (decimal, as `docker images` prints sizes).
std::string human_size(std::int64_t bytes);

// One layer as a line: "671 MB  RUN set -eux; . /etc/os-release; ..." (the
// instruction shortened; a layer with no instruction is the base's).
std::string layer_line(const engine::HistoryEntry& l, size_t width = 90);

// Each built or cached image's size and its largest layers, one block of
// lines after the build table ("" when no stage has a size).
std::string sizes_text(const Report& r);
// The same as JSON fields of a stage: "size" (bytes) and "largest_layers"
// ([{size, created_by}]).
void add_size_json(const StageResult& s, nlohmann::json& stage);

using kiln::matches_glob;  // util/select.h

}  // namespace kiln::build
