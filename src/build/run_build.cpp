// One stage: decide whether it must be built, build it, record it.
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "build/internal.h"
#include "build/stage.h"
#include "registry/registry.h"

namespace kiln::build::detail {

namespace fs = std::filesystem;

namespace {

StageResult failed(StageResult r, std::string error, std::string step = "") {
  r.outcome = Outcome::failed;
  r.error = std::move(error);
  r.failed_step = std::move(step);
  return r;
}

// The image id the stage builds FROM: its parent's fresh image, or the
// external base as the engine has it (a missing base is this stage's
// failure, with the fix in the message).
std::optional<std::string> from_image(const StageContext& ctx, engine::Client& client, std::string& error) {
  if (ctx.node.parent >= 0) return ctx.parent_result->image_id;
  if (!ctx.engine.staging.empty()) {  // a builder that is not this engine: the base is where it builds
    if (!ctx.engine.builder_engine) return "ref:" + ctx.node.rendered.base;  // BuildKit resolves it; not seen here
    engine::Client theirs(*ctx.engine.builder_engine);
    if (auto info = theirs.inspect_image(ctx.node.rendered.base)) return info->id;
    error = fmt::format("base image {} is not on builder '{}''s engine {}: make or pull it there", ctx.node.rendered.base,
                        ctx.engine.builder, ctx.engine.builder_engine->uri());
    return std::nullopt;
  }
  auto info = client.inspect_image(ctx.node.rendered.base);
  const std::string& locked = ctx.node.rendered.locked_base_id;
  if (info && !locked.empty() && info->id != locked) {
    // The name now names other bytes than the lock pinned (kiln lock).
    error = fmt::format("base image {} is {} on engine {}, but the matrix's lock pins {}: restore that image, "
                        "or move the lock with `kiln lock --update`", ctx.node.rendered.base, info->id, ctx.engine.name, locked);
    return std::nullopt;
  }
  if (info) return info->id;
  error = fmt::format("base image {} is not on engine {} ({}): make local bases with scripts/make-bases.sh, "
                      "or pull or mirror it there", ctx.node.rendered.base, ctx.engine.name, ctx.engine.endpoint.uri());
  return std::nullopt;
}

// An unchanged input whose image the engine still has needs no build.
// A pushed image is reused while the staging registry still has it.
bool reuse_pushed(const StageContext& ctx, const state::BuildRecord& rec, StageResult& r) {
  if (!rec.image_ref.starts_with(ctx.engine.staging + "@")) return false;
  registry::Reference ref = registry::parse_reference(rec.image_ref);
  registry::Options ro;
  ro.host = ref.host;
  ro.insecure = ctx.engine.staging_insecure || registry::is_loopback_host(ref.host);
  ro.credential_helper = ctx.engine.staging_credential_helper;
  try {
    if (!registry::Client(ro).head_manifest(ref.repo, ref.digest)) return false;
  } catch (const std::exception&) {  // unreadable now: build again (the push then says what is wrong)
    return false;
  }
  r.outcome = Outcome::cached;
  r.image_id = rec.image_id;
  r.image_ref = rec.image_ref;
  r.log_path = rec.log_path;
  return true;
}

bool reuse_cached(const StageContext& ctx, engine::Client& client, state::Ledger& ledger, StageResult& r) {
  if (ctx.options.no_cache) return false;
  auto rec = ledger.built(r.input_hash);
  if (rec && !ctx.engine.staging.empty()) return rec->engine == ctx.engine.endpoint.uri() && reuse_pushed(ctx, *rec, r);
  if (!rec || rec->engine != ctx.engine.endpoint.uri() || !client.image_exists(rec->image_id)) return false;
  auto colon = r.local_image.rfind(':');
  client.tag_image(rec->image_id, r.local_image.substr(0, colon), r.local_image.substr(colon + 1));
  r.outcome = Outcome::cached;
  r.image_id = rec->image_id;
  r.log_path = rec->log_path;
  return true;
}

engine::BuildRequest request_for(const StageContext& ctx, const StageResult& r) {
  engine::BuildRequest req;
  req.context_dir = ctx.node.context_dir;
  req.tags = {r.local_image};
  req.labels = {{"io.kiln.input-hash", r.input_hash}};
  if (ctx.node.parent >= 0)  // a pushed parent is read from the registry, by digest
    req.build_args["KILN_PARENT"] =
        ctx.parent_result->image_ref.empty() ? ctx.parent_result->local_image : ctx.parent_result->image_ref;
  req.no_cache = ctx.options.no_cache;
  req.network = ctx.options.network;
  // x86_64 images are built as before (the engine's own platform); others
  // name theirs, so an amd64 engine runs their RUN steps under binfmt_misc.
  if (ctx.node.rendered.platform != "linux/amd64") req.platform = ctx.node.rendered.platform;
  // Not part of the input hash: the proxy changes where apt downloads from,
  // never what the image holds.
  if (!ctx.options.apt_proxy.empty()) req.build_args["APT_PROXY"] = ctx.options.apt_proxy;
  for (const auto& s : ctx.node.rendered.secrets) req.secrets.push_back({s.id, s.env, s.file});
  return req;
}

// A failed build whose engine no longer answers its ping failed because of
// the engine, whatever the stream said last (a stopped dockerd may first
// send "context canceled" as a build error): that is the environment's
// failure, not the Dockerfile's. "" while the engine answers.
std::string engine_gone(engine::Client& client, const std::string& uri) {
  try {
    client.ping();
    return "";
  } catch (const std::exception& e) {
    return "engine " + uri + " stopped answering during the build: " + e.what();
  }
}

// Size and largest layers, read once the image exists; a failure to read
// them is no failure of the stage.
void record_size(engine::Client& client, StageResult& r) {
  try {
    if (auto info = client.inspect_image(r.image_id)) r.size = info->size;
    r.largest_layers = engine::largest_layers(client.image_history(r.image_id), 3);
  } catch (const std::exception&) {
  }
}

// The runner's named builder, and where its result goes: pushed to the
// staging repository when it is not this engine (by digest; the docker
// driver, which cannot, under a kiln-owned tag named for the input hash).
engine::BuildxOptions buildx_options(const StageContext& ctx, const StageResult& r) {
  engine::BuildxOptions o;
  if (ctx.engine.builder.empty()) return o;
  o.builder = ctx.engine.builder;
  o.context = ctx.engine.builder_context == "default" ? "" : ctx.engine.builder_context;
  o.push_repository = ctx.engine.staging;
  if (!o.push_repository.empty() && ctx.engine.builder_driver == "docker") o.push_tag = "kiln-build-" + r.input_hash.substr(0, 16);
  return o;
}

}  // namespace

StageResult run_stage(const StageContext& ctx, state::Ledger& ledger) {
  const render::Rendered& x = ctx.node.rendered;
  StageResult r;
  r.id = x.id;
  r.engine = ctx.engine.name;
  r.local_image = x.local_image;
  engine::Client client(ctx.engine.endpoint);
  try {
    std::string error;
    auto from = from_image(ctx, client, error);
    if (!from) return failed(r, error, "FROM " + x.base);
    r.input_hash = input_hash(ctx.node, *from, ctx.catalog_version);
    if (reuse_cached(ctx, client, ledger, r)) {
      if (r.image_ref.empty()) record_size(client, r);
      return r;
    }

    // A retry's log is its own: the failed attempt's log says what the engine did.
    r.log_path = ctx.attempt > 1 ? fmt::format("{}/logs/{}/{}.attempt{}.log", ctx.options.state_dir, ctx.matrix, x.id, ctx.attempt)
                                 : fmt::format("{}/logs/{}/{}.log", ctx.options.state_dir, ctx.matrix, x.id);
    fs::create_directories(fs::path(r.log_path).parent_path());
    std::ofstream log(r.log_path, std::ios::trunc);
    state::BuildStart start{x.id, r.input_hash, ctx.matrix, ctx.engine.endpoint.uri(), matrix::to_string(ctx.engine.backend), r.log_path};
    start.runner = ctx.engine.name;
    start.attempt = ctx.attempt;
    start.retry_reason = ctx.retry_reason;
    auto id = ledger.start_build(start);
    ctx.emit({Event::started, x.id, 0, 0, "", nullptr});

    engine::BuildResult b;
    try {
      auto builder = engine::make_builder(matrix::to_string(ctx.engine.backend), ctx.engine.endpoint, buildx_options(ctx, r));
      b = builder->build(
          request_for(ctx, r),
          [&](int step, int total, std::string_view line) { ctx.emit({Event::progressed, x.id, step, total, std::string(line), nullptr}); },
          [&](std::string_view line) { log << line << '\n' << std::flush; });
    } catch (const engine::Unreachable& e) {  // the engine went away or fell silent mid-build
      b.ok = false;
      b.error = e.what();
      r.environment_error = e.what();
      log << "kiln: " << e.what() << '\n';
    } catch (const std::runtime_error& e) {
      b.ok = false;
      b.error = e.what();
      log << "kiln: " << e.what() << '\n';
    }
    if (!b.ok && r.environment_error.empty()) r.environment_error = engine_gone(client, ctx.engine.endpoint.uri());
    r.seconds = b.seconds;
    r.image_id = b.image_id;
    r.image_ref = b.pushed;
    state::BuildOutcome out{b.ok ? state::BuildStatus::built : state::BuildStatus::failed, b.image_id, b.digest,
                            b.failed_step, b.error, b.seconds, b.pushed};
    ledger.finish_build(id, out);
    if (!b.ok) return failed(r, b.error, b.failed_step);
    r.outcome = Outcome::built;
    if (r.image_ref.empty()) record_size(client, r);  // a pushed image is not in this engine
    return r;
  } catch (const engine::Unreachable& e) {
    r.environment_error = e.what();
    return failed(r, e.what());
  } catch (const engine::ApiError& e) {
    return failed(r, e.what());
  }
}

}  // namespace kiln::build::detail
