#include "promote/cosign.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "attest/attest.h"
#include "util/base64.h"
#include "util/json_out.h"

namespace kiln::promote {

namespace {

using json = nlohmann::json;
constexpr const char* kConfigType = "application/vnd.oci.image.config.v1+json";

json descriptor(const std::string& media_type, const std::string& digest, size_t size) {
  return {{"mediaType", media_type}, {"digest", digest}, {"size", size}};
}

// The layers already under `tag` (another signer's, an earlier promotion's):
// kept, as `cosign sign` appends rather than replaces.
json existing_layers(registry::Client& reg, const std::string& repo, const std::string& tag) {
  if (!reg.head_manifest(repo, tag)) return json::array();
  auto m = json::parse(reg.get_manifest(repo, tag).bytes, nullptr, false);
  if (!m.is_object() || !m.contains("layers") || !m["layers"].is_array()) return json::array();
  return m["layers"];
}

// An image manifest of these layers, as go-containerregistry writes
// cosign's: an OCI config whose rootfs lists the (uncompressed) layers.
void put_layers(registry::Client& reg, const std::string& repo, const std::string& tag, const json& layers) {
  json diff_ids = json::array();
  for (const auto& l : layers) diff_ids.push_back(l.value("digest", ""));
  const std::string config =
      json_text({{"architecture", ""}, {"os", ""}, {"config", json::object()}, {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}});
  const std::string config_digest = reg.push_blob(repo, config);
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", registry::media::oci_manifest},
                   {"config", descriptor(kConfigType, config_digest, config.size())},
                   {"layers", layers}};
  reg.put_manifest(repo, tag, json_text(manifest), registry::media::oci_manifest);
}

json layer(registry::Client& reg, const std::string& repo, const std::string& media_type, const std::string& bytes,
           const json& annotations) {
  json d = descriptor(media_type, reg.push_blob(repo, bytes), bytes.size());
  d["annotations"] = annotations;
  return d;
}

std::string subject_hex(const std::string& digest) { return digest.substr(digest.find(':') + 1); }

}  // namespace

std::string simple_signing_payload(const std::string& docker_reference, const std::string& digest) {
  return json_text({{"critical",
                     {{"identity", {{"docker-reference", docker_reference}}},
                      {"image", {{"docker-manifest-digest", digest}}},
                      {"type", "cosign container image signature"}}},
                    {"optional", nullptr}});
}

std::string statement_for(const std::string& subject_name, const std::string& digest, const std::string& predicate_type,
                          const std::string& predicate_json) {
  return json_text({{"_type", "https://in-toto.io/Statement/v1"},
                    {"subject", json::array({{{"name", subject_name}, {"digest", {{"sha256", subject_hex(digest)}}}}})},
                    {"predicateType", predicate_type},
                    {"predicate", json::parse(predicate_json)}});
}

std::vector<std::string> attach_cosign(registry::Client& reg, const std::string& repo, const std::string& digest,
                                       const std::vector<std::pair<std::string, std::string>>& statements,
                                       const std::string& private_key_pem) {
  const std::string reference = reg.options().host + "/" + repo;
  const std::string sig_tag = registry::fallback_tag(digest, "sig");
  const std::string att_tag = registry::fallback_tag(digest, "att");

  const std::string payload = simple_signing_payload(reference, digest);
  const std::string sig = base64_encode(attest::sign_bytes(payload, private_key_pem));
  json sigs = existing_layers(reg, repo, sig_tag);
  sigs.push_back(layer(reg, repo, attest::cosign_simplesigning_media_type, payload, {{attest::cosign_signature_annotation, sig}}));
  put_layers(reg, repo, sig_tag, sigs);

  json atts = existing_layers(reg, repo, att_tag);
  for (const auto& [predicate_type, statement] : statements) {
    const std::string env = json_text(attest::sign_envelope(attest::in_toto_payload_type, statement, private_key_pem));
    atts.push_back(layer(reg, repo, attest::dsse_media_type, env,
                         {{attest::cosign_signature_annotation, ""}, {"predicateType", predicate_type}}));
  }
  put_layers(reg, repo, att_tag, atts);
  return {sig_tag, att_tag};
}

std::vector<CosignCheck> verify_cosign(registry::Client& reg, const std::string& repo, const std::string& digest,
                                       const std::vector<std::string>& predicate_types, const std::string& public_key_pem) {
  std::vector<CosignCheck> out;
  CosignCheck s{"cosign-signature", false, ""};
  const std::string sig_tag = registry::fallback_tag(digest, "sig");
  json sigs = existing_layers(reg, repo, sig_tag);
  if (sigs.empty()) s.detail = "no " + sig_tag + " in " + repo;
  for (const auto& l : sigs) {
    if (l.value("mediaType", "") != attest::cosign_simplesigning_media_type) continue;
    const std::string payload = reg.get_blob(repo, l.value("digest", ""));
    auto ann = l.value("annotations", json::object());
    auto sig = base64_decode(ann.value(attest::cosign_signature_annotation, ""));
    if (!sig || !attest::verify_bytes(payload, *sig, public_key_pem)) {
      s.detail = "no signature in " + sig_tag + " verifies with " + public_key_pem;
      continue;
    }
    auto p = json::parse(payload, nullptr, false);
    std::string about, type;
    if (p.is_object() && p.contains("critical") && p["critical"].is_object()) {
      const json& c = p["critical"];
      type = c.value("type", "");
      if (c.contains("image") && c["image"].is_object()) about = c["image"].value("docker-manifest-digest", "");
    }
    if (type != "cosign container image signature" || about != digest) {
      s.detail = "signed, but the payload names " + (about.empty() ? std::string("nothing") : about) + ", not " + digest;
      continue;
    }
    s.ok = true;
    s.detail = "simple signing payload verified (" + sig_tag + ")";
    break;
  }
  out.push_back(s);

  const std::string att_tag = registry::fallback_tag(digest, "att");
  json atts = existing_layers(reg, repo, att_tag);
  for (const auto& want : predicate_types) {
    CosignCheck a{"cosign-attestation:" + want, false, "no attestation of this predicateType in " + att_tag};
    for (const auto& l : atts) {
      if (l.value("mediaType", "") != attest::dsse_media_type) continue;
      auto ann = l.value("annotations", json::object());
      if (ann.value("predicateType", "") != want) continue;
      auto env = json::parse(reg.get_blob(repo, l.value("digest", "")), nullptr, false);
      attest::Verified v = attest::verify_envelope(env, public_key_pem);
      if (!v.ok) {
        a.detail = v.error;
        continue;
      }
      auto st = json::parse(v.payload, nullptr, false);
      std::string about;
      if (st.is_object() && st.contains("subject") && st["subject"].is_array() && !st["subject"].empty() &&
          st["subject"][0].contains("digest") && st["subject"][0]["digest"].is_object())
        about = "sha256:" + st["subject"][0]["digest"].value("sha256", "");
      if (v.payload_type != attest::in_toto_payload_type || !st.is_object() || st.value("predicateType", "") != want ||
          about != digest) {
        a.detail = "signed, but not an in-toto statement of " + want + " about " + digest;
        continue;
      }
      a.ok = true;
      a.detail = "DSSE envelope verified (" + att_tag + ")";
      break;
    }
    out.push_back(a);
  }
  return out;
}

}  // namespace kiln::promote
