// `kiln promote` attaches the SBOM and the provenance beside the
// verification record, read back here through the registry API of the
// shared local registry (127.0.0.1:5000, CNCF distribution: no referrers
// API, so the sha256-<hex>.sbom / .provenance tags). The verified image is
// the Debian 13 base (kiln/debian:13, made by scripts/make-bases.sh) under
// the combination's local name, its static verdict and its build written
// into the ledger the way verify and build write them. The SBOM's packages
// are compared with dpkg-query run in the image (by the test); a look-alike
// artifact someone else attached under another type is not taken for kiln's.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <map>
#include <set>
#include <sstream>

#include "attest/attest.h"
#include "engine/engine.h"
#include "promote/provenance.h"
#include "registry/registry.h"
#include "sbom/sbom.h"
#include "state/ledger.h"
#include "skip.h"
#include "util/sha256.h"

using nlohmann::json;
namespace fs = std::filesystem;
using namespace kiln;

namespace {

const std::string kRegistry = "127.0.0.1:5000";
const std::string kBase = "kiln/debian:13";
const std::string kCombo = "cuda12.4-debian13-devel";

std::string sh(const std::string& cmd) {
  std::array<char, 4096> buf;
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  if (!p) return out;
  while (fgets(buf.data(), buf.size(), p.get())) out += buf.data();
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

registry::Client registry_client() {
  registry::Options o;
  o.host = kRegistry;
  o.insecure = true;
  o.credentials = registry::Credentials{};
  return registry::Client(o);
}

// The one layer blob of an attached artifact's manifest.
json artifact_document(registry::Client& reg, const std::string& repo, const registry::Descriptor& d) {
  json m = json::parse(reg.get_manifest(repo, d.digest).bytes);
  REQUIRE(m["layers"].size() == 1);
  return json::parse(reg.get_blob(repo, m["layers"][0]["digest"]));
}

}  // namespace

TEST_CASE("promote attaches the SBOM and the provenance; both read back from the registry", "[sbom][promote]") {
  engine::Client eng;  // the shared engine (DOCKER_HOST or /var/run/docker.sock)
  std::optional<engine::ImageInfo> base;
  try {
    base = eng.inspect_image(kBase);
    registry_client().ping();
  } catch (const std::exception& e) {
    KILN_SKIP("no engine or no registry at " << kRegistry << ": " << e.what());
  }
  if (!base) {
    KILN_SKIP(kBase << " is not on the engine (scripts/make-bases.sh 13)");
  }
  const std::string word = std::to_string(getpid());
  const std::string matrix_name = "sbom-promote-" + word;
  const std::string repo = "sbom-" + word + "/debian";
  const fs::path dir = fs::temp_directory_path() / ("kiln-sbom-promote-" + word);
  fs::create_directories(dir / "state");
  std::ofstream(dir / "matrix.toml") << "name = \"" << matrix_name << "\"\n"
                                     << "targets = [\"T4\"]\n[axes]\ncuda = [\"12.4\"]\nos = [\"debian13\"]\n"
                                     << "flavor = [\"devel\"]\n[policy]\nverify = [\"static\"]\n"
                                     << "[registry]\nurl = \"" << kRegistry << "\"\nrepository = \"" << repo
                                     << "\"\ninsecure = true\n[tags]\ntemplates = [\"cuda{cuda}-{os}-{flavor}\"]\n"
                                     << "[[base]]\nos = \"debian13\"\nimage = \"" << kBase << "\"\n"
                                     << "[runners.local]\nbackend = \"engine\"\ngpu = \"none\"\n";
  const std::string local = "kiln.local/" + matrix_name;
  const std::string input_hash = sha256_hex("sbom-promote " + word);
  eng.tag_image(base->id, local, kCombo);
  {
    state::Ledger ledger((dir / "state" / "state.db").string());
    ledger.record_combo(matrix_name, kCombo, {kCombo});
    auto id = ledger.start_build({kCombo, input_hash, matrix_name, "unix:///var/run/docker.sock", "engine", "build.log"});
    ledger.finish_build(id, {state::BuildStatus::built, base->id, "", "", "", std::nullopt});
    ledger.record_verdict({base->id, "local", "static", "passed", "{}", 0});
  }
  // The user's signing key (ECDSA P-256, made by the openssl CLI), named in the environment.
  REQUIRE(std::system(("cd " + dir.string() + " && openssl ecparam -name prime256v1 -genkey -noout -out key.pem 2>/dev/null &&"
                       " openssl ec -in key.pem -pubout -out key.pub 2>/dev/null &&"
                       " openssl genpkey -algorithm ed25519 -out other.pem 2>/dev/null").c_str()) == 0);
  const std::string cmd = "KILN_SIGNING_KEY=" + (dir / "key.pem").string() + " " + std::string(std::getenv("KILN_BIN")) +
                          " --data-dir " + KILN_SOURCE_DIR + " promote " +
                          (dir / "matrix.toml").string() + " --state-dir " + (dir / "state").string() +
                          " --format json >" + (dir / "out.json").string() + " 2>" + (dir / "err.txt").string();
  const int st = std::system(cmd.c_str());
  try {
    eng.remove_image(local + ":" + kCombo);  // an untag: the base keeps its own names
  } catch (const std::exception&) {
  }
  const json report = json::parse(slurp(dir / "out.json"), nullptr, false);
  INFO("kiln stderr: " << slurp(dir / "err.txt") << "\nkiln stdout: " << slurp(dir / "out.json"));
  REQUIRE(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  REQUIRE(report.is_object());
  const json& cp = report["combos"][0];
  CHECK(cp["state"] == "tagged");
  CHECK(cp["recorded"] == true);
  const std::string digest = cp["digest"];
  REQUIRE(digest.starts_with("sha256:"));
  const std::string hex = digest.substr(7);

  registry::Client reg = registry_client();
  // This registry has no referrers API: each kind its own fallback tag.
  CHECK(cp["sbom"] == "tag sha256-" + hex + ".sbom");
  CHECK(cp["provenance"] == "tag sha256-" + hex + ".provenance");
  CHECK(cp["record"] == "tag sha256-" + hex + ".kiln");
  CHECK(cp["signed"] == true);
  {  // the key's bytes appear nowhere in what kiln printed
    const std::string pem = slurp(dir / "key.pem");
    const std::string body = pem.substr(pem.find('\n') + 1, 40);
    CHECK(slurp(dir / "out.json").find(body) == std::string::npos);
    CHECK(slurp(dir / "err.txt").find(body) == std::string::npos);
  }
  const std::string bin = std::getenv("KILN_BIN");
  auto verify_release = [&](const std::string& pub, json& out) {
    const std::string c = bin + " verify-release docker://" + kRegistry + "/" + repo + "@" + digest + " --key " + pub +
                          " --format json >" + (dir / "vr.json").string() + " 2>&1";
    const int rc = std::system(c.c_str());
    out = json::parse(slurp(dir / "vr.json"), nullptr, false);
    INFO(slurp(dir / "vr.json"));
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  };
  {  // kiln verify-release: the three signed attachments verify with the public key
    json vr;
    CHECK(verify_release((dir / "key.pub").string(), vr) == 0);
    REQUIRE(vr.is_object());
    CHECK(vr["verified"] == true);
    // the record, SBOM and provenance envelopes (referrers or .dsse tags),
    // then cosign's layout: the .sig signature and one .att per document
    CHECK(vr["checks"].size() == 7);
    for (const auto& c : vr["checks"]) CHECK(c["ok"] == true);
    CHECK(vr["checks"][3]["kind"] == "cosign-signature");
    CHECK(vr["checks"][4]["kind"] == "cosign-attestation:https://slsa.dev/provenance/v1");
    // by tag too
    const std::string c = bin + " verify-release " + kRegistry + "/" + repo + ":" + kCombo + " --key " + (dir / "key.pub").string() + " >/dev/null";
    CHECK(WEXITSTATUS(std::system(c.c_str())) == 0);
  }

  {  // cosign's layout, checked independently of kiln: curl + jq on the manifests, openssl on the signatures
    const std::string c = std::string("bash ") + KILN_SOURCE_DIR + "/tests/sbom/cosign_layout.sh check " + kRegistry + " " + repo +
                          " " + digest + " " + (dir / "key.pub").string() + " " + (dir / "cosign").string() + " >" +
                          (dir / "cosign.txt").string() + " 2>&1";
    const int rc = std::system(c.c_str());
    INFO(slurp(dir / "cosign.txt"));
    CHECK(WEXITSTATUS(rc) == 0);
    CHECK(slurp(dir / "cosign.txt").find("cosign layout OK") != std::string::npos);
  }
  {  // the SBOM: SPDX of the promoted digest, every package dpkg-query lists in the image
    auto found = reg.attached(repo, digest, sbom::spdx_media_type, "sbom");
    REQUIRE(found.size() == 1);
    CHECK(found[0].artifact_type == sbom::spdx_media_type);
    json m = json::parse(reg.get_manifest(repo, found[0].digest).bytes);
    CHECK(m["subject"]["digest"] == digest);
    CHECK(m["layers"][0]["mediaType"] == sbom::spdx_media_type);
    json doc = artifact_document(reg, repo, found[0]);
    CHECK(doc["spdxVersion"] == "SPDX-2.3");
    CHECK(doc["packages"][0]["versionInfo"] == digest);
    CHECK(doc["packages"][0]["name"] == kRegistry + "/" + repo);
    std::set<std::string> in_sbom, in_image;
    for (const auto& p : doc["packages"])
      if (p["SPDXID"].get<std::string>().starts_with("SPDXRef-deb-"))
        in_sbom.insert(p["name"].get<std::string>() + " " + p["versionInfo"].get<std::string>());
    std::istringstream lines(sh("docker run --rm --network none " + kBase +
                                " dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\\n'"));
    // "ii  base-files 13.8": the abbreviation is padded to 3 columns
    for (std::string line; std::getline(lines, line);)
      if (line.starts_with("ii ")) in_image.insert(line.substr(line.find_first_not_of(' ', 2)));
    CHECK(in_image.size() > 50);
    CHECK(in_sbom == in_image);
  }

  {  // the provenance: an in-toto statement v1, SLSA v1, about this digest, from the ledger and the plan
    auto found = reg.attached(repo, digest, promote::intoto_media_type, "provenance");
    REQUIRE(found.size() == 1);
    json st = artifact_document(reg, repo, found[0]);
    CHECK(st["_type"] == "https://in-toto.io/Statement/v1");
    CHECK(st["predicateType"] == "https://slsa.dev/provenance/v1");
    CHECK(st["subject"][0]["name"] == kRegistry + "/" + repo);
    CHECK(st["subject"][0]["digest"]["sha256"] == hex);
    const json& bd = st["predicate"]["buildDefinition"];
    CHECK(bd["buildType"] == promote::kiln_build_type);
    CHECK(bd["externalParameters"]["combination"] == kCombo);
    CHECK(bd["externalParameters"]["matrix"]["name"] == matrix_name);
    CHECK(bd["internalParameters"]["imageId"] == base->id);
    CHECK(bd["internalParameters"]["inputHash"] == input_hash);
    CHECK(bd["internalParameters"]["engine"] == "unix:///var/run/docker.sock");
    CHECK_FALSE(bd["internalParameters"]["catalogVersion"].get<std::string>().empty());
    std::map<std::string, json> deps;
    for (const auto& d : bd["resolvedDependencies"]) deps[d["name"]] = d;
    REQUIRE(deps.count("matrix"));
    CHECK(deps["matrix"]["digest"]["sha256"] == sha256_hex(slurp(dir / "matrix.toml")));
    REQUIRE(deps.count("Dockerfile"));
    CHECK(deps["Dockerfile"]["digest"]["sha256"].get<std::string>().size() == 64);
    REQUIRE(deps.count(kBase));
    CHECK(deps[kBase]["digest"]["sha256"] == base->id.substr(7));
    const json& rd = st["predicate"]["runDetails"];
    CHECK(rd["builder"]["id"].get<std::string>().starts_with("https://kiln.invalid/kiln@"));
    CHECK(rd["metadata"]["startedOn"].get<std::string>().ends_with("Z"));
    CHECK(rd["metadata"].contains("finishedOn"));
    bool verdict = false, record = false;
    for (const auto& b : rd["byproducts"]) {
      if (b["name"] == "verdict:static@local") verdict = b["annotations"]["status"] == "passed";
      if (b["name"] == "verification-record") record = b["digest"]["sha256"].get<std::string>().size() == 64;
    }
    CHECK(verdict);
    CHECK(record);
  }

  {  // a forged provenance (signed with another key) under kiln's tag: verify-release refuses it
    const std::string forged = R"({"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha256":")" + hex +
                               R"("}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}})";
    json env = attest::sign_envelope(promote::intoto_media_type, forged, dir / "other.pem");
    reg.attach(repo, digest, attest::dsse_media_type, env.dump(), attest::dsse_media_type, {{"org.kiln.signed", "provenance"}},
               "provenance.dsse");
    json vr;
    CHECK(verify_release((dir / "key.pub").string(), vr) == 1);
    REQUIRE(vr.is_object());
    CHECK(vr["verified"] == false);
    CHECK(vr["checks"][0]["ok"] == true);   // the record
    CHECK(vr["checks"][2]["kind"] == "provenance");
    CHECK(vr["checks"][2]["ok"] == false);
    CHECK(vr["checks"][2]["detail"].get<std::string>().find("no signature verifies") != std::string::npos);
  }

  {  // a look-alike under kiln's SBOM tag with another artifact type is not kiln's SBOM
    // Someone overwrites the .sbom tag with an artifact of another type for the same subject.
    reg.attach(repo, digest, "application/vnd.example.other+json", R"({"not":"an sbom"})", "application/json", {}, "sbom");
    CHECK(reg.attached(repo, digest, sbom::spdx_media_type, "sbom").empty());
    // and one whose subject is another image is not this image's
    CHECK(reg.attached(repo, "sha256:" + std::string(64, '0'), sbom::spdx_media_type, "sbom").empty());
  }
  {  // a tampered cosign attestation (the provenance statement changed, its signature kept) is refused
    const std::string c = std::string("bash ") + KILN_SOURCE_DIR + "/tests/sbom/cosign_layout.sh tamper " + kRegistry + " " + repo +
                          " " + digest + " " + (dir / "tamper").string() + " >" + (dir / "tamper.txt").string() + " 2>&1";
    const int rc = std::system(c.c_str());
    INFO(slurp(dir / "tamper.txt"));
    REQUIRE(WEXITSTATUS(rc) == 0);
    json vr;
    CHECK(verify_release((dir / "key.pub").string(), vr) == 1);
    REQUIRE(vr.is_object());
    bool refused = false, signature_still_ok = false;
    for (const auto& ch : vr["checks"]) {
      if (ch["kind"] == "cosign-attestation:https://slsa.dev/provenance/v1") refused = ch["ok"] == false;
      if (ch["kind"] == "cosign-signature") signature_still_ok = ch["ok"] == true;
    }
    CHECK(refused);
    CHECK(signature_still_ok);
    // and openssl agrees: the layout check fails on the changed statement
    const std::string again = std::string("bash ") + KILN_SOURCE_DIR + "/tests/sbom/cosign_layout.sh check " + kRegistry + " " +
                              repo + " " + digest + " " + (dir / "key.pub").string() + " " + (dir / "cosign2").string() +
                              " >/dev/null 2>&1";
    CHECK(WEXITSTATUS(std::system(again.c_str())) != 0);
  }
  {  // a signing key that cannot sign: exit 2 naming it, before anything is pushed
    const std::string c = "KILN_SIGNING_KEY=" + (dir / "missing.pem").string() + " " + bin + " --data-dir " + KILN_SOURCE_DIR +
                          " promote " + (dir / "matrix.toml").string() + " --state-dir " + (dir / "state").string() + " >" +
                          (dir / "bad.txt").string() + " 2>&1";
    const int rc = std::system(c.c_str());
    CHECK(WEXITSTATUS(rc) == 2);
    CHECK(slurp(dir / "bad.txt").find("KILN_SIGNING_KEY: cannot open the key file") != std::string::npos);
  }
  fs::remove_all(dir);
}
