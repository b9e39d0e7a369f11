// kiln audit IMAGE...: which GPUs and drivers an image can serve, read from
// its bytes (docs/audit.md).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "audit/layer_cache.h"
#include "cli/audit_input.h"
#include "cli/commands.h"
#include "cli/exit_status.h"
#include "engine/engine.h"
#include "image/registry_source.h"
#include "matrix/matrix.h"
#include "util/diag.h"
#include "util/json_out.h"

namespace kiln::cli {

namespace {

namespace fs = std::filesystem;

image::ReadOptions read_options(const InputOptions& opts) {
  image::ReadOptions r;
  r.verify_digests = opts.verify_digests;
  r.limits = opts.limits;
  r.platform = opts.platform;
  return r;
}

// The layer cache the flags ask for; null with --no-cache.
std::unique_ptr<audit::LayerCache> layer_cache(const InputOptions& opts) {
  if (!opts.use_cache) return nullptr;
  return std::make_unique<audit::LayerCache>(opts.cache_dir.empty() ? audit::LayerCache::default_dir() : fs::path(opts.cache_dir),
                                             audit::LayerCache::default_max_bytes());
}

// Reads an image with the cache and the progress line the flags ask for.
audit::ImageAudit audit_source(std::shared_ptr<image::BlobSource> source, const std::string& input,
                               const std::vector<audit::GpuTarget>& gpus, const catalog::Catalog& c, const InputOptions& opts) {
  auto cache = layer_cache(opts);
  LayerProgress progress(opts.progress, input);
  return audit::audit_image_source(std::move(source), input, gpus, c, read_options(opts), cache.get(),
                                   [&](std::size_t done, std::size_t total, std::uint64_t bytes, std::size_t cached) {
                                     progress.update(done, total, bytes, cached);
                                   });
}

registry::Options registry_options(const registry::Reference& ref, const InputOptions& in) {
  registry::Options opts;
  opts.host = ref.host;
  opts.insecure = in.plain_http || registry::is_loopback_host(ref.host);
  return opts;
}

// kiln's own tags beside the images it promotes: records attached by the
// sha256-<hex>.kiln fallback, and the staging tags of a push in progress.
std::string kiln_tag_kind(const std::string& tag) {
  if (tag.starts_with("kiln-push-")) return "kiln's staging tag of a push";
  if (tag.starts_with("kiln-build-")) return "kiln's staging tag of a build (buildx docker driver of another engine)";
  if (tag.size() == 7 + 64 + 5 && tag.starts_with("sha256-") && tag.ends_with(".kiln")) return "kiln's record tag (attached verification record)";
  if (tag.size() == 7 + 64 + 5 && tag.starts_with("sha256-") && tag.ends_with(".sbom")) return "kiln's SBOM tag (attached SBOM)";
  if (tag.size() == 7 + 64 + 11 && tag.starts_with("sha256-") && tag.ends_with(".provenance")) return "kiln's provenance tag (attached provenance)";
  return {};
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
  std::string driver;
  InputOptions input;
};

int run_audit(const Common& common, const AuditArgs& a) {
  catalog::Catalog cat = catalog::Catalog::load(common.recipes());
  const auto gpus = audit::resolve_gpus(a.gpus.empty() ? audit::default_gpu_names() : a.gpus, cat);
  std::optional<Version> driver;
  if (!a.driver.empty()) {
    driver = Version::parse(a.driver);
    if (!driver) throw InputError({"--driver"}, "not a driver version: " + a.driver);
  }
  InputOptions input = a.input;
  // A progress line for people: on a terminal always; into a log only when
  // the output is not a JSON document meant for a program.
  input.progress = common.quiet ? Progress::Mode::quiet
                   : isatty(STDERR_FILENO) ? Progress::Mode::live
                   : a.format == "json" ? Progress::Mode::quiet : Progress::Mode::plain;
  std::vector<audit::ImageAudit> done;
  std::vector<audit::RepositoryAudit> repositories;
  nlohmann::json failed = nlohmann::json::array();
  int rc = 0;
  for (const auto& image : a.images) {
    try {
      if (names_repository(image)) {
        repositories.push_back(audit_repository(image, gpus, cat, input));
        repositories.back().driver = driver;
        for (const auto& t : repositories.back().tags) rc = t.error.empty() ? rc : 2;
      } else {
        done.push_back(audit_input(image, gpus, cat, input));
      }
    } catch (const InputError& e) {
      for (const auto& d : e.diagnostics()) std::cerr << d.str() << '\n';
      failed.push_back({{"input", image}, {"error", e.diagnostics().front().message}});
      rc = 2;
    }
  }
  if (a.format == "json") {
    nlohmann::json j = audit::to_json(done, gpus, cat);
    if (!repositories.empty()) j["repositories"] = nlohmann::json::array();
    for (const auto& r : repositories) {
      j["repositories"].push_back(audit::to_json(r, j["images"].size()));
      for (const auto& img : r.images) j["images"].push_back(audit::to_json(img));
    }
    for (auto& f : failed) j["images"].push_back(f);
    emit(common, json_text(j, 2) + '\n', true);
  } else {
    std::string out;
    for (const auto& d : done) out += (a.format == "md" ? audit::to_markdown(d, cat) : audit::to_table(d, cat)) + '\n';
    for (const auto& r : repositories) out += (a.format == "md" ? audit::to_markdown(r, cat) : audit::to_table(r, cat)) + '\n';
    emit(common, out, a.format == "md");  // markdown is a document; --quiet drops only the table
  }
  return rc;
}

}  // namespace

OpenedImage open_image(const std::string& image, const InputOptions& opts) {
  constexpr std::string_view daemon = "docker-daemon:";
  constexpr std::string_view registry = "docker://";
  OpenedImage out;
  auto from_engine = [&](const std::string& name) {
    try {
      engine::Client client;
      out.saved = std::make_shared<engine::SavedArchive>(client, name, fs::temp_directory_path());
    } catch (const engine::ApiError& e) {
      throw InputError({image}, fmt::format("the engine cannot save image \"{}\": {}", name, e.what()));
    } catch (const engine::Unreachable& e) {
      throw InputError({image}, fmt::format("no such file, and no engine to ask for image \"{}\": {}", name, e.what()));
    }
    out.source = image::archive_source(out.saved->path(), opts.limits);
    out.label = "engine " + engine::Endpoint::from_env().uri();
  };
  try {
    if (image.starts_with(daemon)) {
      from_engine(image.substr(daemon.size()));
    } else if (image.starts_with(registry)) {
      // docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX], streamed from the registry.
      const registry::Reference ref = registry::parse_reference(image.substr(registry.size()));
      out.source = image::registry_source(ref, registry_options(ref, opts));
      out.label = "registry " + ref.host;
      out.manifest_digest = ref.digest;
    } else if (std::error_code ec; !fs::exists(image, ec)) {
      if (looks_like_path(image)) throw InputError({image}, "no such file or directory");
      from_engine(image);
    } else {
      out.source = image::archive_source(image, opts.limits);
      out.label = fs::is_directory(image) ? "OCI layout directory" : "archive";
    }
    return out;
  } catch (const image::ImageError& e) {
    throw InputError({image}, e.what());
  } catch (const std::exception& e) {
    if (dynamic_cast<const InputError*>(&e) || is_bug(e)) throw;  // kiln's bug stays a bug (exit 70), not the image's fault
    throw InputError({image}, e.what());
  }
}

audit::ImageAudit audit_input(const std::string& image, const std::vector<audit::GpuTarget>& gpus, const catalog::Catalog& c,
                              const InputOptions& opts) {
  OpenedImage in = open_image(image, opts);
  try {
    audit::ImageAudit a = audit_source(in.source, image, gpus, c, opts);
    a.source = in.label;
    return a;
  } catch (const image::ImageError& e) {
    throw InputError({image}, e.what());
  } catch (const std::exception& e) {
    if (dynamic_cast<const InputError*>(&e) || is_bug(e)) throw;  // kiln's bug stays a bug (exit 70), not the image's fault
    throw InputError({image}, e.what());
  }
}

bool names_repository(const std::string& image) {
  constexpr std::string_view scheme = "docker://";
  if (!image.starts_with(scheme) || image.find('@') != std::string::npos) return false;
  const std::string rest = image.substr(scheme.size());
  const auto slash = rest.find('/');
  // HOST[:PORT]/REPO: a ':' after the host's first '/' would be a tag.
  return slash != std::string::npos && slash + 1 < rest.size() && rest.find(':', slash) == std::string::npos;
}

audit::RepositoryAudit audit_repository(const std::string& image, const std::vector<audit::GpuTarget>& gpus,
                                        const catalog::Catalog& c, const InputOptions& opts) {
  const std::string reference = image.substr(std::string_view("docker://").size());
  audit::RepositoryAudit out;
  out.repository = reference;
  registry::Reference ref;
  std::vector<std::string> tags;
  std::map<std::string, std::size_t> by_digest;  // manifest digest -> index in out.images
  try {
    ref = registry::parse_reference(reference);
    registry::Client client(registry_options(ref, opts));
    tags = client.tags(ref.repo);
    for (const auto& tag : tags) {
      audit::RepositoryTag row{tag, {}, SIZE_MAX, kiln_tag_kind(tag), {}};
      if (row.skipped.empty()) {
        try {
          auto d = client.head_manifest(ref.repo, tag);
          if (!d) row.error = "not found: the tag list names it, its manifest is gone";
          else row.digest = d->digest;
        } catch (const std::exception& e) {
          row.error = e.what();
        }
      }
      out.tags.push_back(std::move(row));
    }
  } catch (const std::invalid_argument& e) {
    throw InputError({image}, e.what());
  } catch (const std::exception& e) {
    if (is_bug(e)) throw;
    throw InputError({image}, std::string(e.what()).find("not found") != std::string::npos || dynamic_cast<const registry::NotFound*>(&e)
                                  ? std::string("not found: ") + e.what()
                                  : e.what());
  }
  if (tags.empty()) std::cerr << image << ": the repository has no tags\n";
  for (auto& row : out.tags) {
    if (!row.skipped.empty()) {
      std::cerr << image << ": skipped tag " << row.tag << ": " << row.skipped << '\n';
      continue;
    }
    if (!row.error.empty()) continue;
    if (auto it = by_digest.find(row.digest); it != by_digest.end()) {  // audited under another tag
      row.image = it->second;
      continue;
    }
    const std::string by_tag = "docker://" + ref.host + "/" + ref.repo + ":" + row.tag;
    try {
      registry::Reference one = ref;
      one.tag = row.tag;
      one.digest = row.digest;  // the manifest the tag named when listed, even if it moves meanwhile
      audit::ImageAudit a = audit_source(image::registry_source(one, registry_options(one, opts)), by_tag, gpus, c, opts);
      a.source = "registry " + ref.host;
      by_digest.emplace(row.digest, out.images.size());
      row.image = out.images.size();
      out.images.push_back(std::move(a));
    } catch (const std::exception& e) {
      row.error = e.what();
      std::cerr << by_tag << ": error: " << row.error << '\n';
    }
  }
  return out;
}

void add_input_flags(CLI::App* sub, InputOptions& opts) {
  sub->add_flag("!--no-cache", opts.use_cache,
                "Read every layer: neither use nor fill the audit layer cache (docs/audit.md, Layer cache)");
  sub->add_option("--cache-dir", opts.cache_dir,
                  "Audit layer cache directory (default $KILN_AUDIT_CACHE, $XDG_CACHE_HOME/kiln/audit or ~/.cache/kiln/audit)");
  sub->add_option("--platform", opts.platform,
                  "The platform to read when IMAGE is a multi-platform index (OCI image index or manifest list): "
                  "linux/amd64 (default) or linux/arm64")
      ->transform([](const std::string& in) -> std::string {
        auto word = matrix::platform_word(in);
        if (!word) throw CLI::ValidationError("--platform", "'" + in + "' is not linux/amd64 or linux/arm64");
        return matrix::oci_platform(*word);
      });
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
                  "docker save / OCI tar, OCI layout dir, docker://HOST/REPO[:TAG|@DIGEST] (no tag: every tag), docker-daemon:NAME or engine image name")
      ->required();
  sub->add_option("--gpu", args->gpus, "GPU name or sm_XY to judge (repeatable; default P100 V100 T4 A100 L4 H100 B200)");
  sub->add_option("--format", args->format, "table, json or md")->check(CLI::IsMember({"table", "json", "md"}));
  add_output_flag(sub, common);
  sub->add_option("--driver", args->driver,
                  "With docker://HOST/REPO: judge each tag on this driver version, e.g. 535.54.03 (one image: see check-driver)");
  add_input_flags(sub, args->input);
  set_action(sub, [&common, args] { return run_audit(common, *args); });
}

}  // namespace kiln::cli
