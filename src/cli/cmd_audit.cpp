// kiln audit IMAGE...: which GPUs and drivers an image can serve, read from
// its bytes (docs/audit.md).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "cli/audit_input.h"
#include "cli/commands.h"
#include "engine/engine.h"
#include "image/registry_source.h"
#include "util/diag.h"
#include "util/json_out.h"

namespace kiln::cli {

namespace {

namespace fs = std::filesystem;

image::ReadOptions read_options(const InputOptions& opts) {
  image::ReadOptions r;
  r.verify_digests = opts.verify_digests;
  r.limits = opts.limits;
  return r;
}

audit::ImageAudit from_engine(const std::string& input, const std::string& name, const std::vector<audit::GpuTarget>& gpus,
                              const catalog::Catalog& c, const InputOptions& opts) {
  std::unique_ptr<engine::SavedArchive> saved;
  try {
    engine::Client client;
    saved = std::make_unique<engine::SavedArchive>(client, name, fs::temp_directory_path());
  } catch (const engine::ApiError& e) {
    throw InputError({input}, fmt::format("the engine cannot save image \"{}\": {}", name, e.what()));
  } catch (const engine::Unreachable& e) {
    throw InputError({input}, fmt::format("no such file, and no engine to ask for image \"{}\": {}", name, e.what()));
  }
  audit::ImageAudit a = audit::audit_image_archive(saved->path(), input, gpus, c, read_options(opts));
  a.source = "engine " + engine::Endpoint::from_env().uri();
  return a;
}

// docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX], streamed from the registry.
audit::ImageAudit from_registry(const std::string& input, const std::string& reference, const InputOptions& in,
                                const std::vector<audit::GpuTarget>& gpus, const catalog::Catalog& c) {
  const registry::Reference ref = registry::parse_reference(reference);  // a bad one: InputError, by audit_input
  registry::Options opts;
  // Docker's rule: a registry on this machine speaks plain HTTP; any other needs TLS unless told.
  opts.insecure = in.plain_http || registry::is_loopback_host(ref.host);
  audit::ImageAudit a = audit::audit_image_source(image::registry_source(ref, std::move(opts)), input, gpus, c, read_options(in));
  a.source = "registry " + ref.host;
  return a;
}

// An argument that names a file, not an engine image ("x.tar", "./dir").
bool looks_like_path(const std::string& s) {
  for (const char* end : {".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.xz"})
    if (s.ends_with(end)) return true;
  return s.starts_with("/") || s.starts_with("./") || s.starts_with("../");
}

struct AuditArgs {
  std::vector<std::string> images;
  std::vector<std::string> gpus;
  std::string format = "table";
  InputOptions input;
};

int run_audit(const Common& common, const AuditArgs& a) {
  catalog::Catalog cat = catalog::Catalog::load(common.recipes());
  const auto gpus = audit::resolve_gpus(a.gpus.empty() ? audit::default_gpu_names() : a.gpus, cat);
  std::vector<audit::ImageAudit> done;
  nlohmann::json failed = nlohmann::json::array();
  int rc = 0;
  for (const auto& image : a.images) {
    try {
      done.push_back(audit_input(image, gpus, cat, a.input));
    } catch (const InputError& e) {
      for (const auto& d : e.diagnostics()) std::cerr << d.str() << '\n';
      failed.push_back({{"input", image}, {"error", e.diagnostics().front().message}});
      rc = 2;
    }
  }
  if (a.format == "json") {
    nlohmann::json j = audit::to_json(done, gpus, cat);
    for (auto& f : failed) j["images"].push_back(f);
    std::cout << json_text(j, 2) << '\n';
  } else {
    for (const auto& d : done) std::cout << (a.format == "md" ? audit::to_markdown(d, cat) : audit::to_table(d, cat)) << '\n';
  }
  return rc;
}

}  // namespace

audit::ImageAudit audit_input(const std::string& image, const std::vector<audit::GpuTarget>& gpus, const catalog::Catalog& c,
                              const InputOptions& opts) {
  constexpr std::string_view daemon = "docker-daemon:";
  constexpr std::string_view registry = "docker://";
  try {
    if (image.starts_with(daemon)) return from_engine(image, image.substr(daemon.size()), gpus, c, opts);
    if (image.starts_with(registry)) return from_registry(image, image.substr(registry.size()), opts, gpus, c);
    std::error_code ec;
    if (!fs::exists(image, ec)) {
      if (looks_like_path(image)) throw InputError({image}, "no such file or directory");
      return from_engine(image, image, gpus, c, opts);
    }
    audit::ImageAudit a = audit::audit_image_archive(image, image, gpus, c, read_options(opts));
    a.source = fs::is_directory(image) ? "OCI layout directory" : "archive";
    return a;
  } catch (const image::ImageError& e) {
    throw InputError({image}, e.what());
  } catch (const std::exception& e) {
    if (dynamic_cast<const InputError*>(&e)) throw;
    throw InputError({image}, e.what());
  }
}

void add_input_flags(CLI::App* sub, InputOptions& opts) {
  sub->add_flag("--plain-http", opts.plain_http,
                "Read docker:// images over plain HTTP from any host (loopback hosts always are)");
  sub->add_flag("!--no-verify-digests", opts.verify_digests,
                "Trust the layers' bytes: skip their sha256 (a read then costs headers, not the hash of every layer)");
  // Bounds on what a hostile image can make kiln expand, hold or write
  // (docs/audit.md, "Bounds on hostile input"); breaches exit 2.
  sub->add_option("--max-member-size", opts.limits.max_member_size,
                  "Most bytes one file of an image may be read as (held or written to a temporary file), e.g. 8GiB")
      ->transform(CLI::AsSizeValue(false))
      ->default_str("4GiB");
  sub->add_option("--max-total-size", opts.limits.max_total_size, "Most bytes all files read from one image may add up to")
      ->transform(CLI::AsSizeValue(false))
      ->default_str("64GiB");
  sub->add_option("--max-expansion", opts.limits.max_expansion,
                  "Most a layer may expand past 256 MiB, as a multiple of its stored bytes (decompression, sparse holes)")
      ->check(CLI::Range(std::uint64_t(1), std::uint64_t(1) << 40))
      ->default_str("100");
}

void register_audit(CLI::App& app, Common& common) {
  auto args = std::make_shared<AuditArgs>();
  CLI::App* sub = app.add_subcommand("audit", "Which GPUs and drivers an image can serve, read from its bytes");
  sub->add_option("image", args->images,
                  "docker save / OCI tar, OCI layout dir, docker://HOST/REPO[:TAG|@DIGEST], docker-daemon:NAME or engine image name")
      ->required();
  sub->add_option("--gpu", args->gpus, "GPU name or sm_XY to judge (repeatable; default P100 V100 T4 A100 L4 H100 B200)");
  sub->add_option("--format", args->format, "table, json or md")->check(CLI::IsMember({"table", "json", "md"}));
  add_input_flags(sub, args->input);
  set_action(sub, [&common, args] { return run_audit(common, *args); });
}

}  // namespace kiln::cli
