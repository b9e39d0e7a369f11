// kiln bench-retag (hidden): kiln's retag on its own, for bench/promote.sh.
//
//   kiln bench-retag HOST/REPO:REF TAG...   tags REF's manifest as each TAG
//       exactly as promote writes a release tag (promote::write_release_tag),
//       and with --record attaches a verification-shaped record once.
//   kiln bench-retag HOST/REPO:REF --soak N  N distinct manifests (REF's, with
//       an annotation naming the round), each put by digest, tagged the kiln
//       way and given its own record; then all read back: every tag must
//       name its manifest and every record must be found and name its round.
// One JSON document out; exit 0 when every tag (and record) is there, 1 if
// not, 2 when the registry cannot be reached.
#include <chrono>
#include <iostream>
#include <random>

#include <fmt/format.h>

#include "cli/commands.h"
#include "promote/promote.h"
#include "registry/registry.h"
#include "util/sha256.h"

namespace kiln::cli {

namespace {

constexpr const char* kRecordType = "application/vnd.kiln.verification.v1+json";

struct BenchArgs {
  std::string from;
  std::vector<std::string> tags;
  bool force = false, record = false;
  int soak = 0;
};

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

registry::Client client_for(const registry::Reference& ref) {
  registry::Options o;
  o.host = ref.host;
  o.insecure = registry::is_loopback_host(ref.host);
  return registry::Client(o);
}

registry::Reference tag_ref(const registry::Reference& from, const std::string& tag) {
  registry::Reference r = from;
  r.tag = tag;
  r.digest.clear();
  return r;
}

int retag(const BenchArgs& a) {
  registry::Reference from = registry::parse_reference(a.from);
  registry::Client reg = client_for(from);
  auto start = Clock::now();
  registry::Manifest m = reg.get_manifest(from.repo, from.ref());
  nlohmann::json tags = nlohmann::json::array();
  bool ok = true;
  for (const auto& t : a.tags) {
    promote::TagResult r = promote::write_release_tag(reg, tag_ref(from, t), m, a.force);
    ok &= r.action == promote::TagAction::retagged || r.action == promote::TagAction::unchanged;
    tags.push_back({{"tag", r.tag}, {"action", promote::to_string(r.action)}, {"digest", r.digest}, {"error", r.error}});
  }
  nlohmann::json out = {{"digest", m.digest}, {"tags", tags}};
  if (a.record) {
    auto at = reg.attach(from.repo, m.digest, kRecordType, nlohmann::json{{"schema", "kiln.verification/v1"}}.dump());
    out["record"] = at.mode == registry::AttachMode::Referrers ? "referrers" : "tag " + at.tag;
  }
  out["ms"] = ms_since(start);
  std::cout << out.dump() << '\n';
  return ok ? 0 : 1;
}

int soak(const BenchArgs& a) {
  registry::Reference from = registry::parse_reference(a.from);
  registry::Client reg = client_for(from);
  registry::Manifest base = reg.get_manifest(from.repo, from.ref());
  const std::string run = fmt::format("{:08x}", std::random_device{}());
  struct Round {
    std::string round, digest, tag;
  };
  std::vector<Round> rounds;
  size_t tagged = 0, attached = 0;
  auto start = Clock::now();
  for (int i = 0; i < a.soak; ++i) {
    Round r{fmt::format("{}-{}", run, i), "", fmt::format("soak-{}-{}", run, i)};
    nlohmann::json j = nlohmann::json::parse(base.bytes);
    j["annotations"]["io.kiln.soak"] = r.round;
    registry::Manifest m{base.media_type, "", j.dump()};
    m.digest = reg.put_manifest(from.repo, sha256_digest(m.bytes), m.bytes, m.media_type);
    r.digest = m.digest;
    rounds.push_back(r);
  }
  // Only the retags and their records are timed: the variant manifests above stand for earlier pushes.
  auto timed = Clock::now();
  for (const auto& r : rounds) {
    registry::Manifest m = reg.get_manifest(from.repo, r.digest);
    promote::TagResult t = promote::write_release_tag(reg, tag_ref(from, r.tag), m, false);
    tagged += t.action == promote::TagAction::retagged;
    nlohmann::json rec = {{"schema", "kiln.verification/v1"}, {"digest", r.digest}, {"soak", r.round}};
    reg.attach(from.repo, r.digest, kRecordType, rec.dump());
    ++attached;
  }
  double retag_ms = ms_since(timed);
  size_t tags_back = 0, records_back = 0;
  for (const auto& r : rounds) {
    auto d = reg.head_manifest(from.repo, r.tag);
    tags_back += d && d->digest == r.digest;
    for (const auto& desc : reg.attached(from.repo, r.digest, kRecordType)) {
      auto art = nlohmann::json::parse(reg.get_manifest(from.repo, desc.digest).bytes);
      auto doc = nlohmann::json::parse(reg.get_blob(from.repo, art["layers"][0]["digest"]), nullptr, false);
      if (doc.is_object() && doc.value("soak", std::string()) == r.round && doc.value("digest", std::string()) == r.digest) {
        ++records_back;
        break;
      }
    }
  }
  nlohmann::json out = {{"retags", a.soak}, {"tagged", tagged}, {"records_attached", attached},
                        {"tags_read_back", tags_back}, {"records_read_back", records_back},
                        {"lost", a.soak - static_cast<int>(std::min(tags_back, records_back))},
                        {"ms_per_retag_with_record", a.soak ? retag_ms / a.soak : 0}, {"total_ms", ms_since(start)}};
  std::cout << out.dump() << '\n';
  return out["lost"] == 0 && tagged == static_cast<size_t>(a.soak) ? 0 : 1;
}

}  // namespace

void register_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* sub = app.add_subcommand("bench-retag", "kiln's registry retag on its own (bench/promote.sh)");
  sub->group("");  // hidden: a benchmark's entry point, not a verb
  sub->add_option("from", a->from, "HOST/REPO:TAG or @DIGEST already in the registry")->required();
  sub->add_option("tags", a->tags, "Tags (same repository) to write");
  sub->add_flag("--force", a->force, "Move tags that name another image");
  sub->add_flag("--record", a->record, "Attach a record to the digest as well");
  sub->add_option("--soak", a->soak, "N retags of N distinct manifests, each with its record, then all read back");
  set_action(sub, [a]() -> int {
    try {
      return a->soak > 0 ? soak(*a) : retag(*a);
    } catch (const registry::Unreachable& e) {
      std::cerr << "kiln: error: registry: " << e.what() << '\n';
      return 2;
    }
  });
}

}  // namespace kiln::cli
