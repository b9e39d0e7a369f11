#include "promote/promote.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "util/errors.h"
#include "util/select.h"
#include "attest/attest.h"
#include "drift/drift.h"
#include "image/registry_source.h"
#include "engine/engine.h"
#include "image/image.h"
#include "image/registry_source.h"
#include "promote/cosign.h"
#include "promote/provenance.h"
#include "registry/registry.h"
#include "render/render.h"
#include "sbom/sbom.h"
#include "state/ledger.h"
#include "util/diag.h"
#include "util/json_out.h"
#include "util/sha256.h"
#include "util/text.h"

namespace kiln::promote {

size_t Report::tagged() const {
  return static_cast<size_t>(std::count_if(combos.begin(), combos.end(), [](const ComboPromotion& c) { return c.tagged; }));
}

std::string ComboPromotion::state() const {
  if (!tagged) return "not-tagged";
  return recorded ? "tagged" : "tagged-without-record";
}

ComboPromotion::Outcome ComboPromotion::outcome() const {
  if (tagged) return Outcome::tagged;
  if (!dry_run) return Outcome::not_tagged;
  bool all_there = !tags.empty() && std::all_of(tags.begin(), tags.end(), [](const TagResult& t) {
    return t.action == TagAction::unchanged;
  });
  return all_there ? Outcome::already_tagged : Outcome::would_tag;
}

const char* to_string(ComboPromotion::Outcome o) {
  switch (o) {
    case ComboPromotion::Outcome::tagged: return "tagged";
    case ComboPromotion::Outcome::would_tag: return "would tag";
    case ComboPromotion::Outcome::already_tagged: return "already tagged";
    case ComboPromotion::Outcome::not_tagged: break;
  }
  return "not tagged";
}

const char* to_string(TagAction a) {
  switch (a) {
    case TagAction::none: return "";
    case TagAction::pushed: return "pushed";
    case TagAction::retagged: return "retagged";
    case TagAction::unchanged: return "unchanged";
    case TagAction::conflict: return "conflict";
    case TagAction::would_push: return "would-push";
    case TagAction::would_retag: return "would-retag";
    case TagAction::race: return "race";
    case TagAction::refused: return "refused";
    case TagAction::failed: return "failed";
    case TagAction::drifted: return "drifted";
  }
  return "";
}

const char* words(TagAction a) {
  switch (a) {
    case TagAction::pushed:
    case TagAction::retagged: return "tagged";
    case TagAction::unchanged: return "already tagged";
    case TagAction::would_push:
    case TagAction::would_retag: return "would tag";
    default: return to_string(a);
  }
}

bool names_verified_image(TagAction a) {
  return a == TagAction::pushed || a == TagAction::retagged || a == TagAction::unchanged;
}

std::string staging_tag(const std::string& image_id) {
  std::string hex = image_id.substr(image_id.find(':') + 1);
  return "kiln-push-" + hex;
}

namespace {

constexpr const char* kRecordType = "application/vnd.kiln.verification.v1+json";

// The registry (or the engine's push to it) failed in a way that is not this
// combination's: the promotion stops and the caller exits 2. One class for
// every form of the fault -- a 500 and a reset end the same way.
struct Unavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

bool registry_unavailable(const registry::ApiError& e) { return e.status == 429 || e.status >= 500; }

// The image id a registry manifest stands for: its config digest (for an
// image manifest; an index is never the image kiln built).
std::string config_digest(const registry::Manifest& m) {
  auto j = nlohmann::json::parse(m.bytes, nullptr, false);
  if (j.is_object() && j.contains("config") && j["config"].is_object() && j["config"].contains("digest") &&
      j["config"]["digest"].is_string())
    return j["config"]["digest"];
  return "";
}

// What a tag names now: nullopt when absent (confirmed two ways, see
// registry::Client::confirmed_tag), else its manifest digest and image id.
struct Named {
  std::string digest, image_id;
};
std::optional<Named> named_by(registry::Client& reg, const registry::Reference& ref) {
  auto d = reg.confirmed_tag(ref.repo, ref.tag);
  if (!d) return std::nullopt;
  return Named{d->digest, config_digest(reg.get_manifest(ref.repo, d->digest))};
}

// Checks every tag before anything is written: existing tags that name
// another image are conflicts.
bool check_tags(ComboPromotion& cp, const std::vector<registry::Reference>& refs, registry::Client& reg, bool force) {
  bool clear = true;
  for (size_t i = 0; i < refs.size(); ++i) {
    TagResult& t = cp.tags[i];
    auto now = named_by(reg, refs[i]);
    if (!now) continue;
    t.previous = now->digest;
    if (now->image_id == cp.image_id) {
      t.action = TagAction::unchanged;
      t.digest = now->digest;
      continue;
    }
    if (!force) {
      t.action = TagAction::conflict;
      t.error = fmt::format("{} already names {} (another image); --force moves it", refs[i].str(), now->digest);
      clear = false;
    }
  }
  return clear;
}

registry::Client registry_for(const plan::Plan& p, const std::string& host) {
  registry::Options ro;
  ro.host = host;
  ro.insecure = p.registry.insecure;
  ro.credential_helper = p.registry.credential_helper;
  return registry::Client(ro);
}

nlohmann::json record(const plan::Combo& c, const verify::ComboVerdict& v, const std::string& digest, const Options& o) {
  nlohmann::json checks = nlohmann::json::array();
  for (const auto& k : v.checks) checks.push_back({{"check", k.check}, {"runner", k.runner}, {"status", verify::to_string(k.status)}, {"detail", k.detail}});
  return {{"schema", "kiln.verification/v1"}, {"kiln_version", o.kiln_version}, {"combination", c.id},
          {"image_id", v.image_id}, {"digest", digest}, {"versions", plan::to_json(c)["versions"]},
          {"policy", {{"verify", c.policy.verify}, {"gpu_classes", c.policy.gpu_classes}}}, {"checks", checks}};
}

// The engine pushes the verified image id under kiln's staging tag; returns
// the pushed manifest's digest. The staging name is dropped again when it
// still names the verified image (an untag; never a removal of another).
std::string push_staged(const std::string& image_id, const registry::Reference& first, engine::Client& eng,
                        const Options& o, const std::string& credential_helper, std::string& error) {
  const std::string repo_name = first.host + "/" + first.repo;
  const std::string staging = staging_tag(image_id);
  eng.tag_image(image_id, repo_name, staging);
  auto creds = registry::lookup_credentials(first.host, registry::docker_config_dir(), credential_helper);
  engine::PushResult pushed = eng.push_image(repo_name, staging, registry::engine_auth(creds, first.host), nullptr, o.push_retry);
  try {
    if (auto still = eng.inspect_image(repo_name + ":" + staging); still && still->id == image_id)
      eng.remove_image(repo_name + ":" + staging);
  } catch (const engine::ApiError&) {  // a leftover local name; harmless
  }
  if (pushed.ok) return pushed.digest;
  if (pushed.transient)
    throw Unavailable(fmt::format("the engine's push to {} failed {} times: {}", first.host, pushed.attempts, pushed.error));
  error = "push failed: " + pushed.error;
  return "";
}

// A pushed image (a buildx builder that is not the engine, docs/build-farm.md)
// is already in the registry: no engine push. Its manifest is made present
// in the release repository by digest (blobs mounted from the staging
// repository when it is another one); returns the digest. The release tags
// are then written as for an engine push, by manifest PUT.
std::string stage_pushed(const verify::PushedImage& img, const registry::Reference& first, registry::Client& reg,
                         std::string& error) {
  registry::Reference from = registry::parse_reference(img.ref);
  if (from.host != first.host) {
    error = fmt::format("{} was pushed to {}, and its release tags are on {}: kiln copies by digest within one registry; "
                        "set the builder's staging registry ([registry] url) to the release registry",
                        img.ref, from.host, first.host);
    return "";
  }
  if (from.repo != first.repo) return reg.copy(from.repo, from.digest, first.repo, from.digest);
  if (reg.head_manifest(from.repo, from.digest)) return from.digest;
  error = img.ref + " is no longer in the registry: run kiln build again";
  return "";
}

// The SBOM of the verified image, read from its bytes as the engine saves
// them (the image is never run), or from the registry for a pushed one.
std::string sbom_document(const std::string& image_id, const std::string& name, const std::string& digest,
                          engine::Client& eng, const Options& o, const registry::Client* reg = nullptr) {
  sbom::Inventory inv;
  if (reg) {
    inv = sbom::read_inventory(image::registry_source(registry::parse_reference(name + "@" + digest), reg->options()));
  } else {
    engine::SavedArchive saved(eng, image_id, o.state_dir + "/tmp");
    inv = sbom::read_inventory(image::archive_source(saved.path()));
  }
  return json_text(sbom::to_spdx(inv, {name, digest, o.kiln_version, ""}));
}


// What the provenance says, from the plan, the engine and the ledger.
ProvenanceInputs provenance_inputs(const plan::Combo& c, const plan::Plan& p, const verify::ComboVerdict& v,
                                   const ComboPromotion& cp, const registry::Reference& first, engine::Client& eng,
                                   const Options& o, const std::string& record_digest) {
  ProvenanceInputs in;
  in.subject_name = first.host + "/" + first.repo;
  in.subject_digest = cp.digest;
  in.image_id = cp.image_id;
  in.combination = c.id;
  in.matrix_name = p.matrix_name;
  in.matrix_path = p.matrix_path;
  try {
    in.matrix_digest = sha256_digest(read_file(p.matrix_path));
  } catch (const std::exception&) {  // an embedded or vanished matrix: no digest to give
  }
  if (!p.lock_sha256.empty()) {
    in.lock_path = p.lock_path;
    in.lock_digest = "sha256:" + p.lock_sha256;
  }
  in.catalog_version = p.catalog_version;
  if (!o.templates_dir.empty()) in.dockerfile_digest = sha256_digest(render::Renderer(o.templates_dir).render(c, p).dockerfile);
  const plan::Combo* parent = render::parent_of(c, p);
  const std::string base = parent ? render::local_image(p, parent->id) : c.base;
  if (auto info = eng.inspect_image(base)) in.bases.push_back({base, info->id, info->repo_digests});
  in.kiln_version = o.kiln_version;
  for (const auto& k : v.checks) in.verdicts.push_back({k.check, k.runner, verify::to_string(k.status)});
  in.record_digest = record_digest;
  // The build attempt that made this image, from the ledger.
  state::Ledger ledger(o.state_dir + "/state.db");
  for (const auto& cs : ledger.combos(p.matrix_name)) {
    if (cs.combo_id != c.id || cs.stage_ids.empty()) continue;
    auto history = ledger.history(cs.stage_ids.back());
    for (auto it = history.rbegin(); it != history.rend(); ++it) {
      if (it->image_id != cp.image_id || it->status != state::BuildStatus::built) continue;
      in.started_ms = it->started_at;
      in.finished_ms = it->finished_at;
      in.engine = it->engine;
      in.backend = it->backend;
      in.input_hash = it->input_hash;
      break;
    }
  }
  return in;
}

std::string where(const registry::Attached& a) {
  return a.mode == registry::AttachMode::Referrers ? "referrers" : "tag " + a.tag;
}

// The SBOM and the provenance, after the record (whose digest the
// provenance names). The first failure is reported as the record's are.
// One attachment's DSSE envelope, signed with the user's key, attached
// beside it under sha256-<hex>.<kind>.dsse.
void attach_signed(registry::Client& reg, const std::string& repo, const std::string& digest, const std::string& kind,
                   const std::string& type, const std::string& doc, const Options& o) {
  const nlohmann::json env = attest::sign_envelope(type, doc, o.signing_key);
  reg.attach(repo, digest, attest::dsse_media_type, json_text(env), attest::dsse_media_type, {{"org.kiln.signed", kind}},
             kind + ".dsse");
}

void attach_attestations(ComboPromotion& cp, const registry::Reference& first, const plan::Combo& c, const plan::Plan& p,
                         const verify::ComboVerdict& v, engine::Client& eng, registry::Client& reg, const Options& o,
                         const std::string& record_digest, const std::string& record_text, bool pushed) {
  std::string what = "SBOM";
  try {
    const std::string doc = sbom_document(cp.image_id, first.host + "/" + first.repo, cp.digest, eng, o, pushed ? &reg : nullptr);
    cp.sbom = where(reg.attach(first.repo, cp.digest, sbom::spdx_media_type, doc, sbom::spdx_media_type, {}, "sbom"));
    what = "provenance";
    const std::string stmt = json_text(provenance_statement(provenance_inputs(c, p, v, cp, first, eng, o, record_digest)));
    cp.provenance = where(reg.attach(first.repo, cp.digest, intoto_media_type, stmt, intoto_media_type, {}, "provenance"));
    if (!o.signing_key.empty()) {
      what = "signatures (DSSE)";
      attach_signed(reg, first.repo, cp.digest, "kiln", kRecordType, record_text, o);
      attach_signed(reg, first.repo, cp.digest, "sbom", sbom::spdx_media_type, doc, o);
      attach_signed(reg, first.repo, cp.digest, "provenance", intoto_media_type, stmt, o);
      what = "signatures (cosign layout)";
      const std::string subject = first.host + "/" + first.repo;
      attach_cosign(reg, first.repo, cp.digest,
                    {{slsa_provenance_v1, stmt},
                     {spdx_predicate, statement_for(subject, cp.digest, spdx_predicate, doc)},
                     {kiln_verification_predicate, statement_for(subject, cp.digest, kiln_verification_predicate, record_text)}},
                    o.signing_key);
      cp.signed_ = true;
    }
  } catch (const std::exception& e) {
    cp.recorded = false;
    cp.record_error = "the " + what + " was not attached: " + e.what();
    cp.reason = "tagged, but " + cp.record_error;
    throw;
  }
}

// Writes one release tag: re-checked just before the PUT when time passed
// since the check (a writer that came after it is a race, not something to
// overwrite), and read back.
void write_tag(TagResult& r, const registry::Reference& ref, const registry::Manifest& m, TagAction action,
               registry::Client& reg, bool recheck) {
  if (r.action != TagAction::unchanged || r.digest != m.digest) {
    auto before = recheck ? reg.confirmed_tag(ref.repo, ref.tag) : std::nullopt;
    std::string was = before ? before->digest : "";
    if (!was.empty() && was != r.previous && was != m.digest) {
      r.action = TagAction::race;
      r.error = fmt::format("tag {} now names {}, expected {} (another writer since the check); not moved", ref.str(), was,
                            r.previous.empty() ? "no tag" : r.previous);
      return;
    }
    reg.put_manifest(ref.repo, ref.tag, m.bytes, m.media_type);
    r.action = action;
  }
  auto after = reg.confirmed_tag(ref.repo, ref.tag);
  r.digest = after ? after->digest : "";
  if (r.digest != m.digest) {
    r.action = TagAction::race;
    r.error = fmt::format("tag {} now names {}, expected {} (another writer raced this one)", ref.str(),
                          r.digest.empty() ? "nothing" : r.digest, m.digest);
  }
}

// The engine pushes the verified image (or, for an image a buildx builder
// pushed, the registry copies it by digest); the manifest that arrived is
// read back and must be that image (its config digest). False with
// cp.reason set (and the tags marked) when it is not.
bool push_verified(ComboPromotion& cp, const registry::Reference& first, engine::Client& eng, registry::Client& reg,
                   const Options& o, const std::optional<verify::PushedImage>& pushed, registry::Manifest& m) {
  std::string error;
  std::string digest = pushed ? stage_pushed(*pushed, first, reg, error)
                              : push_staged(cp.image_id, first, eng, o, reg.options().credential_helper, error);
  if (digest.empty()) {
    cp.tags.front().action = TagAction::failed;
    cp.tags.front().error = error;
    cp.reason = error;
    return false;
  }
  m = reg.get_manifest(first.repo, digest);
  if (std::string pushed_image = config_digest(m); pushed_image != cp.image_id) {
    cp.reason = fmt::format(
        "the engine pushed {} (image {}), not the verified image {}: {}/{}:{} was re-pointed during the push; "
        "no release tag written",
        digest, pushed_image.empty() ? "unknown" : pushed_image, cp.image_id, first.host, first.repo,
        staging_tag(cp.image_id));
    for (auto& t : cp.tags) {
      if (t.action != TagAction::none) continue;  // unchanged tags still name the verified image
      t.action = TagAction::refused;
      t.error = "not written: the pushed image is not the verified one";
    }
    return false;
  }
  cp.digest = digest;
  return true;
}

// Every tag was written and read back as `m`; else cp.reason says which not.
bool all_tagged(ComboPromotion& cp) {
  cp.tagged = std::all_of(cp.tags.begin(), cp.tags.end(), [](const TagResult& t) {
    return names_verified_image(t.action);
  });
  if (!cp.tagged) {
    auto bad = std::find_if(cp.tags.begin(), cp.tags.end(), [](const TagResult& t) { return !t.error.empty(); });
    cp.reason = bad != cp.tags.end() ? bad->error : "a tag did not read back as the pushed digest";
  }
  return cp.tagged;
}

// The verification record, then the SBOM and provenance, on cp.digest.
void attach_record(ComboPromotion& cp, const registry::Reference& first, const plan::Combo& c, const plan::Plan& p,
                   const verify::ComboVerdict& v, engine::Client& eng, registry::Client& reg, const Options& o,
                   bool pushed) {
  std::string record_digest;
  const std::string record_text = json_text(record(c, v, cp.digest, o));
  try {
    registry::Attached a = reg.attach(first.repo, cp.digest, kRecordType, record_text);
    cp.record = where(a);
    record_digest = a.digest;
  } catch (const std::exception& e) {
    cp.record_error = e.what();
    cp.reason = std::string("tagged, but the verification record was not attached: ") + e.what();
    throw;  // promote_plan decides: the registry failing stops the run, anything else is this combination's
  }
  attach_attestations(cp, first, c, p, v, eng, reg, o, record_digest, record_text, pushed);
  cp.recorded = true;
}

// [policy] drift = "refuse": a tag that names another image moves only to
// a rebuild holding the same packages (dpkg, Python, CUDA) as the image it
// names now. "" when every tag may move; otherwise why not. An image that
// cannot be read is refused too (fail closed).
std::string drift_refusal(ComboPromotion& cp, const std::vector<registry::Reference>& refs, const plan::Plan& p,
                          engine::Client& eng, const Options& o) {
  std::optional<sbom::Inventory> mine;
  for (size_t i = 0; i < refs.size(); ++i) {
    TagResult& t = cp.tags[i];
    if (t.previous.empty() || t.action == TagAction::unchanged) continue;
    std::string why;
    try {
      if (!mine) {
        engine::SavedArchive saved(eng, cp.image_id, o.state_dir + "/tmp");
        mine = sbom::read_inventory(image::archive_source(saved.path()));
      }
      registry::Reference prev = refs[i];
      prev.digest = t.previous;
      registry::Options ro;
      ro.insecure = p.registry.insecure;
      ro.credential_helper = p.registry.credential_helper;
      sbom::Inventory theirs = sbom::read_inventory(image::registry_source(prev, ro));
      auto changes = drift::compare_packages(theirs, *mine);
      if (changes.empty()) continue;
      std::vector<std::string> words;
      for (const auto& ch : changes) words.push_back(ch.str());
      why = fmt::format("policy drift = \"refuse\": {} names {}, and this rebuild's packages differ from it ({})", refs[i].str(),
                        t.previous, join(words, "; "));
    } catch (const std::exception& e) {
      why = fmt::format("policy drift = \"refuse\": {} names {}, and the two images could not be compared ({}); not moved",
                        refs[i].str(), t.previous, e.what());
    }
    t.action = TagAction::drifted;
    t.error = why;
    return why;
  }
  return "";
}

// Push by identity, check what arrived, then write every tag and the record.
void publish(ComboPromotion& cp, const std::vector<registry::Reference>& refs, const plan::Combo& c, const plan::Plan& p,
             const verify::ComboVerdict& v, engine::Client& eng, registry::Client& reg, const Options& o,
             const std::optional<verify::PushedImage>& pushed) {
  const registry::Reference& first = refs.front();
  registry::Manifest m;
  if (!push_verified(cp, first, eng, reg, o, pushed, m)) return;
  for (size_t i = 0; i < refs.size(); ++i) write_tag(cp.tags[i], refs[i], m, i == 0 ? TagAction::pushed : TagAction::retagged, reg, true);
  if (!all_tagged(cp)) return;
  attach_record(cp, first, c, p, v, eng, reg, o, pushed.has_value());
}

void promote_combo(ComboPromotion& cp, const plan::Combo& c, const plan::Plan& p, const Options& o, engine::Client& eng) {
  // Pushed by a builder that is not the engine: in the registry only.
  const std::optional<verify::PushedImage> pushed = verify::pushed_image(c, p, o.state_dir);
  auto info = pushed ? std::nullopt : eng.inspect_image(render::local_image(p, c.id));
  if (!info && !pushed) {
    cp.reason = "not built";
    return;
  }
  cp.image_id = pushed ? pushed->image_id : info->id;
  verify::ComboVerdict v = verify::recorded_verdict(c, cp.image_id, o.runners, o.state_dir);
  cp.verified = v.verified;
  if (!v.verified) {
    cp.reason = "not verified: " + v.reason;
    return;
  }
  std::vector<registry::Reference> refs;
  for (const auto& tag : c.tags) {
    refs.push_back(registry::parse_reference(tag));
    cp.tags.push_back({tag});
  }
  if (refs.empty()) {
    cp.reason = "the plan gives it no tag";
    return;
  }
  registry::Client reg = registry_for(p, refs.front().host);
  if (!check_tags(cp, refs, reg, o.force)) {
    cp.reason = "tag conflict: " + std::find_if(cp.tags.begin(), cp.tags.end(), [](const TagResult& t) {
                  return t.action == TagAction::conflict;
                })->error;
  } else if (std::string why = c.policy.drift == "refuse" ? drift_refusal(cp, refs, p, eng, o) : ""; !why.empty()) {
    cp.reason = why;
  } else if (o.dry_run) {
    for (size_t i = 0; i < cp.tags.size(); ++i)
      if (cp.tags[i].action == TagAction::none) cp.tags[i].action = i == 0 ? TagAction::would_push : TagAction::would_retag;
    cp.dry_run = true;
    cp.reason = "dry run";
  } else {
    publish(cp, refs, c, p, v, eng, reg, o, pushed);
  }
}

// ---- several platforms under one tag: an OCI image index -----------------
//
// Combinations that differ only in platform share their tags (the plan lets
// them). Each platform's image is verified on its own and pushed by digest;
// then one index naming every platform's manifest is put in the registry
// and the tags name it. Fail-closed: while any platform is unbuilt or
// unverified nothing of the group is pushed or tagged (no index naming an
// unverified platform, and no single-platform tag in its place).

struct Member {
  const plan::Combo* combo;
  ComboPromotion* cp;
  verify::ComboVerdict verdict;
  registry::Manifest manifest;
};

// The image ids a registry manifest stands for: its config digest, or for
// an index each child's, sorted. Compares "the same images" across an
// index re-serialised with another order or annotation.
std::vector<std::string> images_of(registry::Client& reg, const std::string& repo, const std::string& digest) {
  registry::Manifest m = reg.get_manifest(repo, digest);
  std::vector<std::string> ids;
  auto j = nlohmann::json::parse(m.bytes, nullptr, false);
  if (j.is_object() && j.contains("manifests") && j["manifests"].is_array()) {
    for (const auto& d : j["manifests"])
      if (d.is_object() && d.contains("digest") && d["digest"].is_string())
        ids.push_back(config_digest(reg.get_manifest(repo, d["digest"].get<std::string>())));
  } else {
    ids.push_back(config_digest(m));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

// The index's bytes: one descriptor per platform, in the plan's order.
std::string index_bytes(const std::vector<Member>& members) {
  nlohmann::json manifests = nlohmann::json::array();
  for (const auto& mb : members) {
    const std::string oci = matrix::oci_platform(mb.combo->platform);  // "linux/arm64"
    manifests.push_back({{"mediaType", mb.manifest.media_type},
                         {"digest", mb.manifest.digest},
                         {"size", mb.manifest.bytes.size()},
                         {"platform", {{"os", oci.substr(0, oci.find('/'))}, {"architecture", oci.substr(oci.find('/') + 1)}}}});
  }
  nlohmann::json index = {{"schemaVersion", 2}, {"mediaType", registry::media::oci_index}, {"manifests", manifests}};
  return index.dump();
}

void not_tagged(std::vector<Member>& members, const std::string& why) {
  for (auto& mb : members)
    if (mb.cp->reason.empty()) mb.cp->reason = why;
}

void promote_group(std::vector<Member>& members, const plan::Plan& p, const Options& o, engine::Client& eng) {
  // 1. Every platform built and verified, or nothing happens.
  std::vector<std::string> missing;
  for (auto& mb : members) {
    ComboPromotion& cp = *mb.cp;
    auto info = eng.inspect_image(render::local_image(p, mb.combo->id));
    if (!info) {
      cp.reason = "not built";
      missing.push_back(mb.combo->platform + " (" + mb.combo->id + ": not built)");
      continue;
    }
    cp.image_id = info->id;
    mb.verdict = verify::recorded_verdict(*mb.combo, cp.image_id, o.runners, o.state_dir);
    cp.verified = mb.verdict.verified;
    if (!cp.verified) {
      cp.reason = "not verified: " + mb.verdict.reason;
      missing.push_back(mb.combo->platform + " (" + mb.combo->id + ": not verified: " + mb.verdict.reason + ")");
    }
  }
  const plan::Combo& lead = *members.front().combo;
  if (lead.tags.empty()) return not_tagged(members, "the plan gives it no tag");
  if (!missing.empty())
    return not_tagged(members, fmt::format("the index {} is not written: an index never names an unverified platform, "
                                           "and {} is not ready: {}", lead.tags.front(),
                                           missing.size() == 1 ? "this platform" : "these platforms", join(missing, "; ")));

  // 2. The tags: absent, or naming exactly these images (else a conflict).
  std::vector<registry::Reference> refs;
  for (const auto& tag : lead.tags) refs.push_back(registry::parse_reference(tag));
  registry::Client reg = registry_for(p, refs.front().host);
  std::vector<std::string> ours;
  for (const auto& mb : members) ours.push_back(mb.cp->image_id);
  std::sort(ours.begin(), ours.end());
  std::vector<TagResult> tags;
  std::string conflict;
  for (const auto& ref : refs) {
    TagResult t{ref.str()};
    if (auto now = reg.confirmed_tag(ref.repo, ref.tag)) {
      t.previous = now->digest;
      if (images_of(reg, ref.repo, now->digest) != ours && !o.force) {
        t.action = TagAction::conflict;
        t.error = fmt::format("{} already names {} (other images); --force moves it", ref.str(), now->digest);
        if (conflict.empty()) conflict = t.error;
      }
    }
    tags.push_back(t);
  }
  for (auto& mb : members) mb.cp->tags = tags;
  if (!conflict.empty()) return not_tagged(members, "tag conflict: " + conflict);
  if (o.dry_run) {
    for (auto& mb : members)
      for (size_t i = 0; i < mb.cp->tags.size(); ++i)
        if (mb.cp->tags[i].action == TagAction::none)
          mb.cp->tags[i].action = i == 0 ? TagAction::would_push : TagAction::would_retag;
    for (auto& mb : members) mb.cp->dry_run = true;
    return not_tagged(members, "dry run");
  }

  // 3. Each platform's image by digest (its staging tag), checked.
  for (auto& mb : members) {
    // Group members are engine images: a platform group built by a pushing
    // buildx builder is not supported yet (promote_group reads the engine).
    if (push_verified(*mb.cp, refs.front(), eng, reg, o, std::nullopt, mb.manifest)) continue;
    return not_tagged(members, fmt::format("the index is not written: {} ({}) was not pushed: {}", mb.combo->platform,
                                           mb.combo->id, mb.cp->reason));
  }

  // 4. The index by its digest, read back, then every tag.
  const std::string bytes = index_bytes(members);
  const std::string digest = sha256_digest(bytes);
  reg.put_manifest(refs.front().repo, digest, bytes, registry::media::oci_index);
  registry::Manifest index = reg.get_manifest(refs.front().repo, digest);
  for (size_t i = 0; i < refs.size(); ++i)
    write_tag(tags[i], refs[i], index, i == 0 ? TagAction::pushed : TagAction::retagged, reg, true);
  for (auto& mb : members) {
    mb.cp->tags = tags;
    mb.cp->index = index.digest;
    mb.cp->platform = matrix::oci_platform(mb.combo->platform);
    all_tagged(*mb.cp);
  }
  if (!members.front().cp->tagged) return;

  // 5. Each platform's record, SBOM and provenance on its own digest.
  for (auto& mb : members) attach_record(*mb.cp, refs.front(), *mb.combo, p, mb.verdict, eng, reg, o, false);
}

// The valid combinations differing from `c` only in platform, `c` among
// them, in plan order; just `c` when the matrix has no platform axis.
std::vector<const plan::Combo*> platform_group(const plan::Combo& c, const plan::Plan& p) {
  std::vector<const plan::Combo*> out;
  if (!c.axes.count("platform")) return {&c};
  auto key = c.axes;
  key.erase("platform");
  for (const auto& x : p.combos) {
    if (x.status != plan::Status::valid) continue;
    auto k = x.axes;
    k.erase("platform");
    if (k == key) out.push_back(&x);
  }
  return out;
}

// Keeps the most precise reason: one set where the failure happened wins.
void fail(ComboPromotion& cp, const std::string& why) {
  if (cp.reason.empty()) cp.reason = why;
}

}  // namespace

TagResult write_release_tag(registry::Client& reg, const registry::Reference& ref, const registry::Manifest& m,
                            bool force) {
  TagResult r{ref.str()};
  if (auto now = named_by(reg, ref)) {
    r.previous = now->digest;
    if (now->image_id == config_digest(m)) {
      r.action = TagAction::unchanged;
      r.digest = now->digest;
    } else if (!force) {
      r.action = TagAction::conflict;
      r.error = fmt::format("{} already names {} (another image); --force moves it", ref.str(), now->digest);
      return r;
    }
  }
  write_tag(r, ref, m, TagAction::retagged, reg, false);  // checked just now
  return r;
}

std::vector<ReleaseCheck> verify_release(registry::Client& reg, const std::string& repo, const std::string& digest,
                                         const std::string& public_key_pem) {
  struct Kind {
    const char* name;
    const char* type;
  };
  std::vector<ReleaseCheck> out;
  for (const Kind& k : {Kind{"kiln", kRecordType}, Kind{"sbom", sbom::spdx_media_type}, Kind{"provenance", intoto_media_type}}) {
    ReleaseCheck rc{k.name, false, ""};
    std::vector<registry::Descriptor> found;
    for (const auto& d : reg.attached(repo, digest, attest::dsse_media_type, std::string(k.name) + ".dsse")) {
      auto it = d.annotations.find("org.kiln.signed");
      if (it == d.annotations.end() || it->second == k.name) found.push_back(d);
    }
    if (found.empty()) {
      rc.detail = "no signed " + std::string(k.name) + " attached";
      out.push_back(rc);
      continue;
    }
    for (const auto& d : found) {
      auto m = nlohmann::json::parse(reg.get_manifest(repo, d.digest).bytes, nullptr, false);
      if (!m.is_object() || !m.contains("layers") || !m["layers"].is_array() || m["layers"].size() != 1) {
        rc.detail = "the envelope's manifest " + d.digest + " is not one layer";
        continue;
      }
      auto env = nlohmann::json::parse(reg.get_blob(repo, m["layers"][0].value("digest", "")), nullptr, false);
      attest::Verified ver = attest::verify_envelope(env, public_key_pem);
      if (!ver.ok) {
        rc.detail = ver.error;
        continue;
      }
      if (ver.payload_type != k.type) {
        rc.detail = "signed, but its payload type is " + ver.payload_type + ", not " + k.type;
        continue;
      }
      auto doc = nlohmann::json::parse(ver.payload, nullptr, false);
      std::string about;  // the digest the signed document speaks of
      if (std::string(k.name) == "kiln") about = doc.is_object() ? doc.value("digest", "") : "";
      else if (std::string(k.name) == "sbom" && doc.is_object() && doc.contains("packages") && doc["packages"].is_array() &&
               !doc["packages"].empty())
        about = doc["packages"][0].value("versionInfo", "");
      else if (doc.is_object() && doc.contains("subject") && doc["subject"].is_array() && !doc["subject"].empty())
        about = "sha256:" + doc["subject"][0]["digest"].value("sha256", "");
      if (about != digest) {
        rc.detail = "signed, but about " + (about.empty() ? std::string("nothing") : about) + ", not " + digest;
        continue;
      }
      rc.ok = true;
      rc.detail = "signature verified; about " + digest.substr(0, 19) + " (envelope " + d.digest.substr(0, 19) + ")";
      break;
    }
    out.push_back(rc);
  }
  // cosign's layout (.sig / .att tags), as `cosign verify --key` and
  // `cosign verify-attestation --key` read it.
  for (auto& c : verify_cosign(reg, repo, digest, {slsa_provenance_v1, spdx_predicate, kiln_verification_predicate}, public_key_pem))
    out.push_back({c.kind, c.ok, c.detail});
  return out;
}

Report promote_plan(const plan::Plan& p, const Options& o) {
  // A matrix without [registry] url gets local names ("kiln/<name>:tag"),
  // which a push would send to Docker Hub: release tags go only where the
  // matrix says, never to a default registry.
  if (p.registry.url.empty())
    throw InputError({p.matrix_path, 0, 0}, fmt::format("matrix '{}' has no [registry] url (nor does a config file, docs/config.md): promote pushes release tags "
                                                        "only to a registry the matrix names", p.matrix_name));
  if (o.runners.empty()) throw EnvironmentError("no runner: the engine holding the images is needed");
  // A signing key that cannot sign stops the promotion before anything is
  // pushed, not after the tags (exit 2, naming the file).
  if (!o.signing_key.empty()) {
    try {
      attest::sign_envelope("application/octet-stream", "", o.signing_key);
    } catch (const attest::KeyError& e) {
      throw EnvironmentError(std::string("KILN_SIGNING_KEY: ") + e.what());
    }
  }
  engine::Client eng(o.runners.front().endpoint);
  Report report;
  std::set<std::string> done;  // members of a platform group already promoted with it
  for (const auto& c : p.combos) {
    if (c.status != plan::Status::valid) continue;
    if (!selected(c.id, o.only) || done.count(c.id))
      continue;
    std::vector<const plan::Combo*> group = platform_group(c, p);
    std::vector<ComboPromotion> cps(group.size());
    std::vector<Member> members;
    for (size_t i = 0; i < group.size(); ++i) {
      cps[i].id = group[i]->id;
      cps[i].platform = matrix::oci_platform(group[i]->platform);
      done.insert(group[i]->id);
      members.push_back({group[i], &cps[i], {}, {}});
    }
    ComboPromotion& cp = cps.front();
    if (o.on_step) o.on_step("promote " + c.id);
    try {
      if (group.size() > 1) promote_group(members, p, o, eng);
      else promote_combo(cp, c, p, o, eng);
    } catch (const Unavailable& e) {
      report.environment_error = fmt::format("registry: {}", e.what());
    } catch (const registry::Unreachable& e) {
      report.environment_error = fmt::format("registry: {}", e.what());
    } catch (const registry::ApiError& e) {
      if (registry_unavailable(e)) report.environment_error = fmt::format("registry: {}", e.what());
      fail(cp, std::string("promotion failed: ") + e.what());
    } catch (const registry::AuthError& e) {
      report.environment_error = fmt::format("registry refused the credentials: {}", e.what());
    } catch (const engine::Unreachable& e) {
      report.environment_error = e.what();
    } catch (const std::exception& e) {  // this combination's failure; the others go on
      fail(cp, std::string("promotion failed: ") + e.what());
    }
    for (auto& x : cps) {
      if (!report.environment_error.empty()) fail(x, "stopped: " + report.environment_error);
      else if (&x != &cp && !cp.reason.empty() && x.reason.empty()) fail(x, cp.reason);  // one group, one fate
      report.combos.push_back(std::move(x));
    }
    if (!report.environment_error.empty()) break;
  }
  return report;
}

nlohmann::json to_json(const Report& r) {
  nlohmann::json combos = nlohmann::json::array();
  for (const auto& c : r.combos) {
    nlohmann::json tags = nlohmann::json::array();
    for (const auto& t : c.tags)
      tags.push_back({{"tag", t.tag}, {"action", to_string(t.action)}, {"digest", t.digest}, {"previous", t.previous}, {"error", t.error}});
    combos.push_back({{"id", c.id}, {"image_id", c.image_id}, {"verified", c.verified}, {"tagged", c.tagged},
                      {"state", c.state()}, {"reason", c.reason}, {"digest", c.digest}, {"tags", tags},
                      {"record", c.record}, {"sbom", c.sbom}, {"provenance", c.provenance}, {"signed", c.signed_}, {"recorded", c.recorded},
                      {"record_error", c.record_error}, {"platform", c.platform},
                      {"index", c.index.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.index)}});
  }
  nlohmann::json out = {{"schema", "kiln.promote/v1"}, {"tagged", r.tagged()}, {"combos", combos}};
  out["environment_error"] = r.environment_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.environment_error);
  return out;
}

}  // namespace kiln::promote
