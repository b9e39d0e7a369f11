#include "promote/promote.h"

#include <algorithm>

#include <fmt/format.h>

#include "build/build.h"
#include "engine/engine.h"
#include "registry/registry.h"
#include "render/render.h"

namespace kiln::promote {

size_t Report::tagged() const {
  return static_cast<size_t>(std::count_if(combos.begin(), combos.end(), [](const ComboPromotion& c) { return c.tagged; }));
}

namespace {

constexpr const char* kRecordType = "application/vnd.kiln.verification.v1+json";

struct Target {
  registry::Reference ref;
  TagResult result;
};

// The image id a registry manifest stands for: its config digest (for an
// image manifest; an index is never the image kiln built).
std::string image_id_of(registry::Client& reg, const std::string& repo, const std::string& ref) {
  registry::Manifest m = reg.get_manifest(repo, ref);
  auto j = nlohmann::json::parse(m.bytes, nullptr, false);
  if (j.is_object() && j.contains("config") && j["config"].contains("digest")) return j["config"]["digest"];
  return "";
}

// Checks every tag before anything is written: existing tags that name
// another image are conflicts.
bool check_tags(std::vector<Target>& targets, registry::Client& reg, const std::string& image_id, bool force) {
  bool clear = true;
  for (auto& t : targets) {
    auto head = reg.head_manifest(t.ref.repo, t.ref.tag);
    if (!head) continue;
    t.result.previous = head->digest;
    if (image_id_of(reg, t.ref.repo, t.ref.tag) == image_id) {
      t.result.action = "unchanged";
      t.result.digest = head->digest;
      continue;
    }
    if (!force) {
      t.result.action = "conflict";
      t.result.error = fmt::format("{} already names {} (another image); --force moves it", t.ref.str(), head->digest);
      clear = false;
    }
  }
  return clear;
}

registry::Client registry_for(const plan::Plan& p, const std::string& host) {
  registry::Options ro;
  ro.host = host;
  ro.insecure = p.registry.insecure;
  return registry::Client(ro);
}

nlohmann::json record(const plan::Combo& c, const verify::ComboVerdict& v, const std::string& digest, const Options& o) {
  nlohmann::json checks = nlohmann::json::array();
  for (const auto& k : v.checks) checks.push_back({{"check", k.check}, {"runner", k.runner}, {"status", k.status}, {"detail", k.detail}});
  return {{"schema", "kiln.verification/v1"}, {"kiln_version", o.kiln_version}, {"combination", c.id},
          {"image_id", v.image_id}, {"digest", digest}, {"versions", plan::to_json(c)["versions"]},
          {"policy", {{"verify", c.policy.verify}, {"gpu_classes", c.policy.gpu_classes}}}, {"checks", checks}};
}

// Push once, retag the rest by manifest PUT, read every tag back.
void publish(ComboPromotion& cp, std::vector<Target>& targets, const plan::Combo& c, const verify::ComboVerdict& v,
             engine::Client& eng, registry::Client& reg, const Options& o) {
  const registry::Reference& first = targets.front().ref;
  std::string repo_name = first.host + "/" + first.repo;
  eng.tag_image(cp.image_id, repo_name, first.tag);
  auto creds = registry::lookup_credentials(first.host);
  engine::PushResult pushed = eng.push_image(repo_name, first.tag, registry::engine_auth(creds, first.host), nullptr);
  if (!pushed.ok) {
    targets.front().result.action = "failed";
    targets.front().result.error = pushed.error;
    cp.reason = "push failed: " + pushed.error;
    return;
  }
  cp.digest = pushed.digest;
  for (size_t i = 0; i < targets.size(); ++i) {
    TagResult& r = targets[i].result;
    if (i == 0) r.action = "pushed";
    else if (r.action != "unchanged" || r.digest != cp.digest) {
      reg.retag(targets[i].ref.repo, cp.digest, targets[i].ref.tag);
      r.action = "retagged";
    }
    auto head = reg.head_manifest(targets[i].ref.repo, targets[i].ref.tag);
    r.digest = head ? head->digest : "";
    if (r.digest != cp.digest) {
      r.action = "failed";
      r.error = fmt::format("{} reads back as {}, not {}", targets[i].ref.str(), r.digest, cp.digest);
    }
  }
  cp.tagged = std::all_of(targets.begin(), targets.end(), [](const Target& t) { return t.result.action != "failed"; });
  if (!cp.tagged) {
    cp.reason = "a tag did not read back as the pushed digest";
    return;
  }
  registry::Attached a = reg.attach(first.repo, cp.digest, kRecordType, record(c, v, cp.digest, o).dump());
  cp.record = a.mode == registry::AttachMode::Referrers ? "referrers" : "tag " + a.tag;
}

ComboPromotion promote_combo(const plan::Combo& c, const plan::Plan& p, const Options& o, engine::Client& eng) {
  ComboPromotion cp{c.id, "", false, false, "", "", {}, ""};
  auto info = eng.inspect_image(render::local_image(p, c.id));
  if (!info) {
    cp.reason = "not built";
    return cp;
  }
  cp.image_id = info->id;
  verify::ComboVerdict v = verify::recorded_verdict(c, cp.image_id, o.runners, o.state_dir);
  cp.verified = v.verified;
  if (!v.verified) {
    cp.reason = "not verified: " + v.reason;
    return cp;
  }
  std::vector<Target> targets;
  for (const auto& tag : c.tags) targets.push_back({registry::parse_reference(tag), {tag, "", "", "", ""}});
  if (targets.empty()) {
    cp.reason = "the plan gives it no tag";
    return cp;
  }
  registry::Client reg = registry_for(p, targets.front().ref.host);
  if (!check_tags(targets, reg, cp.image_id, o.force)) {
    cp.reason = "tag conflict: " + std::find_if(targets.begin(), targets.end(), [](const Target& t) {
                  return t.result.action == "conflict";
                })->result.error;
  } else if (o.dry_run) {
    for (size_t i = 0; i < targets.size(); ++i)
      if (targets[i].result.action.empty()) targets[i].result.action = i == 0 ? "would-push" : "would-retag";
    cp.reason = "dry run";
  } else {
    publish(cp, targets, c, v, eng, reg, o);
  }
  for (auto& t : targets) cp.tags.push_back(t.result);
  return cp;
}

}  // namespace

Report promote_plan(const plan::Plan& p, const Options& o) {
  if (o.runners.empty()) throw build::EnvironmentError("no runner: the engine holding the images is needed");
  engine::Client eng(o.runners.front().endpoint);
  Report report;
  for (const auto& c : p.combos) {
    if (c.status != plan::Status::valid) continue;
    if (!o.only.empty() && std::none_of(o.only.begin(), o.only.end(), [&](const std::string& g) { return build::matches_glob(g, c.id); }))
      continue;
    try {
      report.combos.push_back(promote_combo(c, p, o, eng));
    } catch (const registry::Unreachable& e) {
      throw build::EnvironmentError(fmt::format("registry: {}", e.what()));
    } catch (const registry::AuthError& e) {
      throw build::EnvironmentError(fmt::format("registry refused the credentials: {}", e.what()));
    } catch (const engine::Unreachable& e) {
      throw build::EnvironmentError(e.what());
    } catch (const std::exception& e) {  // this combination's failure; the others go on
      ComboPromotion cp{c.id, "", false, false, std::string("promotion failed: ") + e.what(), "", {}, ""};
      report.combos.push_back(cp);
    }
  }
  return report;
}

nlohmann::json to_json(const Report& r) {
  nlohmann::json combos = nlohmann::json::array();
  for (const auto& c : r.combos) {
    nlohmann::json tags = nlohmann::json::array();
    for (const auto& t : c.tags)
      tags.push_back({{"tag", t.tag}, {"action", t.action}, {"digest", t.digest}, {"previous", t.previous}, {"error", t.error}});
    combos.push_back({{"id", c.id}, {"image_id", c.image_id}, {"verified", c.verified}, {"tagged", c.tagged},
                      {"reason", c.reason}, {"digest", c.digest}, {"tags", tags}, {"record", c.record}});
  }
  return {{"schema", "kiln.promote/v1"}, {"tagged", r.tagged()}, {"combos", combos}};
}

}  // namespace kiln::promote
