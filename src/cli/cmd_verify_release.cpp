// kiln verify-release IMAGE --key PUB: are the verification record, the SBOM
// and the provenance attached to this image digest signed with the key, and
// about this digest? Without cosign (docs/sbom.md).
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "promote/promote.h"
#include "registry/registry.h"
#include "util/diag.h"
#include "util/json_out.h"
#include "util/table.h"

namespace kiln::cli {

namespace {

struct VerifyReleaseArgs {
  std::string image;
  std::string key;
  std::string format = "table";
  bool plain_http = false;
};

int run_verify_release(const Common& common, const VerifyReleaseArgs& a) {
  std::string reference = a.image;
  if (reference.starts_with("docker://")) reference = reference.substr(9);
  registry::Reference ref;
  try {
    ref = registry::parse_reference(reference);
  } catch (const std::exception& e) {
    throw InputError({a.image}, e.what());
  }
  registry::Options o;
  o.host = ref.host;
  o.insecure = a.plain_http || registry::is_loopback_host(ref.host);
  registry::Client reg(o);
  std::string digest = ref.digest;
  if (digest.empty()) {
    auto d = reg.head_manifest(ref.repo, ref.tag);
    if (!d) throw InputError({a.image}, "no such tag in the registry");
    digest = d->digest;
  }
  const auto checks = promote::verify_release(reg, ref.repo, digest, a.key);
  bool all = !checks.empty();
  nlohmann::json list = nlohmann::json::array();
  for (const auto& c : checks) {
    all = all && c.ok;
    list.push_back({{"kind", c.kind}, {"ok", c.ok}, {"detail", c.detail}});
  }
  const bool json = a.format == "json";
  std::string text;
  if (json) {
    text = json_text({{"schema", "kiln.verify-release/v1"}, {"image", a.image}, {"digest", digest}, {"verified", all},
                      {"checks", list}}, 2) + '\n';
  } else {
    Table t({"ATTACHMENT", "RESULT", "DETAIL"});
    for (const auto& c : checks) t.add_row({c.kind, c.ok ? "verified" : "NOT", c.detail});
    text = fmt::format("{} ({})\n", a.image, digest) + t.str("  ") + (all ? "release verified\n" : "release NOT verified\n");
  }
  emit(common, text, json);
  return all ? 0 : 1;
}

}  // namespace

void register_verify_release(CLI::App& app, Common& common) {
  auto args = std::make_shared<VerifyReleaseArgs>();
  CLI::App* sub = app.add_subcommand("verify-release", "Check the signed record, SBOM and provenance attached to an image digest");
  sub->add_option("image", args->image, "docker://HOST/REPO[:TAG|@DIGEST] or HOST/REPO[:TAG|@DIGEST]")->required();
  sub->add_option("--key", args->key, "The public key (PEM) the attachments must be signed with")->required()->check(CLI::ExistingFile);
  sub->add_option("--format", args->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  sub->add_flag("--plain-http", args->plain_http, "Plain HTTP to a registry that is not on this machine");
  add_output_flag(sub, common);
  set_action(sub, [&common, args] { return run_verify_release(common, *args); });
}

}  // namespace kiln::cli
