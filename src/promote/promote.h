// kiln promote: push release tags for verified combinations, and nothing
// else.
//
// For each combination whose image the ledger holds passing verdicts for
// (under its policy), every tag is checked first: a tag that already names
// a different image is a conflict, and unless --force the combination gets
// no tag at all (never half a promotion). Then the image is pushed once
// through the engine under its first tag, the other tags are added by
// manifest PUT (no layer moves twice), each tag is read back and must name
// the pushed digest, and the verification record is attached to the digest
// (OCI referrers, or the sha256-<hex>.kiln tag where the registry has none).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plan/plan.h"
#include "verify/verify.h"

namespace kiln::promote {

struct Options {
  std::vector<verify::Runner> runners;  // whose verdicts count (policy)
  std::string state_dir = ".kiln";
  bool dry_run = false;
  bool force = false;  // move an existing tag to another image
  std::vector<std::string> only;
  std::string kiln_version;
};

struct TagResult {
  std::string tag;     // full reference
  std::string action;  // pushed | retagged | unchanged | conflict | would-push | would-retag | failed
  std::string digest;  // the manifest digest it names now (or would)
  std::string previous;  // what it named before, when it existed
  std::string error;
};

struct ComboPromotion {
  std::string id;
  std::string image_id;
  bool verified = false;
  bool tagged = false;   // every tag names the verified image
  std::string reason;    // why not tagged
  std::string digest;
  std::vector<TagResult> tags;
  std::string record;    // "referrers" | "tag <name>" | ""
};

struct Report {
  std::vector<ComboPromotion> combos;
  size_t tagged() const;
};

// Throws build::EnvironmentError when the registry or engine is unreachable
// or refuses the credentials.
Report promote_plan(const plan::Plan& p, const Options& o);
nlohmann::json to_json(const Report& r);

}  // namespace kiln::promote
