// kiln promote: push release tags for verified combinations, and nothing
// else.
//
// For each combination whose image the ledger holds passing verdicts for
// (under its policy), every tag is checked first: a tag that already names
// a different image is a conflict, and unless --force the combination gets
// no tag at all (never half a promotion). A tag is absent only when its
// manifest and the tag list both say so (one wrong 404 must not move a tag).
//
// The image is pushed by identity: the engine pushes the verified image id
// under a kiln-owned staging tag (kiln-push-<image id hex>), the pushed
// manifest is read back from the registry, and unless its config digest is
// the verified image id nothing is tagged (someone re-pointed the name
// during the push). Then every release tag is a manifest PUT of those exact
// bytes (no layer moves twice), re-checked just before it is written and
// read back after: a tag another writer changed meanwhile is reported as a
// race, never as tagged. Last, the verification record, the SBOM (SPDX,
// read from the verified image's bytes) and the provenance (an in-toto
// statement, provenance.h) are attached to the digest (OCI referrers, or the
// sha256-<hex>.kiln / .sbom / .provenance tags where the registry has
// none); a promotion whose tags were written but whose attachments were not
// says exactly that (recorded = false, record_error).
//
// A matrix with a platform axis promotes the combinations that differ only
// in platform together: each platform's image pushed by digest, one OCI
// image index naming them all put in the registry, the tags written to the
// index -- and nothing at all while any platform is unbuilt or unverified
// (an index never names an unverified platform; no single-platform tag is
// written in its place).
//
// The registry failing (connection errors, resets, timeouts, 5xx/429 after
// the retries, from kiln's own calls or from the engine's push) stops the
// promotion with Report::environment_error set, whatever the fault's form:
// a caller exits 2 for it, as for refused credentials.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "plan/plan.h"
#include "registry/registry.h"
#include "verify/verify.h"

namespace kiln::promote {

struct Options {
  std::vector<verify::Runner> runners;  // whose verdicts count (policy)
  std::string state_dir = ".kiln";
  bool dry_run = false;
  bool force = false;  // move an existing tag to another image
  std::vector<std::string> only;
  std::string kiln_version;
  // Where templates/ is: the provenance names the rendered Dockerfile's
  // digest (rendered again here, as build rendered it). Empty: not named.
  std::string templates_dir;
  // A PEM private key (ECDSA P-256 or Ed25519) from KILN_SIGNING_KEY: the
  // record, the SBOM and the provenance are each also attached as a DSSE
  // envelope signed with it (tags sha256-<hex>.<kind>.dsse). Empty: unsigned.
  std::string signing_key;
  engine::PushRetry push_retry;  // the engine's push: transient failures retried
  std::function<void(const std::string&)> on_step;  // told which combination is promoted next (progress)
};

// The staging tag the verified image is pushed under: "kiln-push-<hex>" for
// image id "sha256:<hex>". kiln writes it, nobody else has reason to.
std::string staging_tag(const std::string& image_id);

// What happened to one release tag. to_string() is the word kiln.promote/v1
// writes ("would-push"); words() what a person reads in the table ("would
// tag"). Code decides on the enum, never on either string.
enum class TagAction {
  none,         // not reached: the combination stopped before this tag
  pushed,       // written by the push of the verified image
  retagged,     // written as a manifest PUT of the pushed bytes
  unchanged,    // it already named the verified image
  conflict,     // it names another image (--force moves it)
  would_push,   // dry run: the push would write it
  would_retag,  // dry run: a manifest PUT would write it
  race,         // another writer changed it meanwhile; not tagged
  refused,      // not written: the pushed image was not the verified one
  failed,       // the push failed
  drifted,      // not moved: [policy] drift = "refuse" and the rebuild's packages differ
};
const char* to_string(TagAction a);  // "" for none
const char* words(TagAction a);      // "tagged", "already tagged", "would tag", else to_string
// The tag names the verified image now (pushed, retagged or unchanged).
bool names_verified_image(TagAction a);

struct TagResult {
  std::string tag;     // full reference
  TagAction action = TagAction::none;
  std::string digest;  // the manifest digest it names now (or would)
  std::string previous;  // what it named before, when it existed
  std::string error;
};

struct ComboPromotion {
  std::string id;
  std::string image_id;
  bool verified = false;
  bool tagged = false;   // every tag names the verified image
  std::string reason;    // why not tagged, or why tagged without its record
  std::string digest;
  std::vector<TagResult> tags;
  std::string record;    // "referrers" | "tag <name>" | ""
  std::string sbom;        // the SBOM: "referrers" | "tag <name>" | ""
  std::string provenance;  // the provenance statement: the same
  bool signed_ = false;  // their DSSE envelopes are attached too (Options::signing_key)
  bool recorded = false;     // the verification record, SBOM and provenance are all attached
  std::string record_error;  // tagged, but attaching one of them failed: which, and why
  // The image's OCI platform ("linux/amd64"), and for a matrix with a
  // platform axis the digest of the OCI index its tags name (every platform
  // of the group, each verified); empty otherwise.
  std::string platform;
  std::string index;
  bool dry_run = false;      // only checked (Options::dry_run): tags say what would happen
  // "tagged" (tags and record), "tagged-without-record", "not-tagged".
  std::string state() const;
  bool complete() const { return tagged && recorded; }
  // For a person: a dry run's combination "would tag", or is "already tagged"
  // when every tag names the verified image; else tagged or not.
  enum class Outcome { not_tagged, tagged, would_tag, already_tagged };
  Outcome outcome() const;
};
const char* to_string(ComboPromotion::Outcome o);  // "not tagged", "tagged", "would tag", "already tagged"

struct Report {
  std::vector<ComboPromotion> combos;
  // Set when the registry or the engine failed (unreachable, resets,
  // timeouts, 5xx after retries, refused credentials): the promotion
  // stopped there; combos holds what was done until then.
  std::string environment_error;
  size_t tagged() const;
};

// One release tag for a manifest already in the registry, written the way
// promote writes each of its tags: what the tag names now is confirmed two
// ways, a tag naming another image is left alone unless `force` (action
// TagAction::conflict), the exact bytes are PUT after a last re-check, and the tag is
// read back (TagAction::race when another writer changed it). kiln's retag on its
// own: bench/promote.sh times it through `kiln bench-retag`.
TagResult write_release_tag(registry::Client& reg, const registry::Reference& ref, const registry::Manifest& m,
                            bool force);

// `kiln verify-release`: the signed attachments of an image digest, each
// checked with the public key: the envelope's signature over its type and
// payload, and that the payload speaks of this digest (the record's digest,
// the SBOM's image version, the provenance's subject). ok only when all
// three verify.
struct ReleaseCheck {
  std::string kind;     // "kiln" (the record), "sbom", "provenance"
  bool ok = false;
  std::string detail;   // what was verified, or why not
};
std::vector<ReleaseCheck> verify_release(registry::Client& reg, const std::string& repo, const std::string& digest,
                                         const std::string& public_key_pem);

// Throws kiln::EnvironmentError (util/errors.h) only when no runner names the
// engine or KILN_SIGNING_KEY cannot be used;
// registry and engine failures land in Report::environment_error.
Report promote_plan(const plan::Plan& p, const Options& o);
nlohmann::json to_json(const Report& r);

}  // namespace kiln::promote
