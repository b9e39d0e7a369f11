// SPDX 2.3 and CycloneDX 1.5 JSON documents from an inventory.
#include <cstdlib>
#include <ctime>

#include <fmt/format.h>

#include "sbom/sbom.h"
#include "util/sha256.h"
#include "util/text.h"

namespace kiln::sbom {

namespace {

using json = nlohmann::json;

// SOURCE_DATE_EPOCH (reproducible builds) when set, else the clock.
std::string created_at(const DocumentInfo& info) {
  if (!info.created.empty()) return info.created;
  if (const char* e = std::getenv("SOURCE_DATE_EPOCH"); e && *e) {
    char* end = nullptr;
    const long long secs = std::strtoll(e, &end, 10);
    if (end && *end == '\0' && secs >= 0) return utc_time(std::int64_t{secs} * 1000, "%Y-%m-%dT%H:%M:%SZ");
  }
  return utc_now("%Y-%m-%dT%H:%M:%SZ");
}

std::string hex_of(const std::string& digest) {
  auto colon = digest.find(':');
  return colon == std::string::npos ? digest : digest.substr(colon + 1);
}

// SPDX ids: letters, digits, '.', '-'.
std::string spdx_id(std::string_view kind, std::string_view name, std::size_t index) {
  std::string s = fmt::format("SPDXRef-{}-", kind);
  for (unsigned char c : name) s += (std::isalnum(c) || c == '.' || c == '-') ? static_cast<char>(c) : '-';
  return s + "-" + std::to_string(index);
}

// What identifies the document's content: the image and every package, so
// two documents of the same image agree (the namespace and serial number
// are made from it plus the creation time).
std::string content_hash(const Inventory& inv, const DocumentInfo& info, const std::string& created) {
  Sha256 h;
  h.update(info.name + '\n' + info.manifest_digest + '\n' + inv.config.digest + '\n' + created + '\n');
  for (const auto& p : inv.packages) h.update(p.purl + '\n' + p.path + '\n');
  return h.hex();
}

std::string image_purl(const Inventory& inv, const DocumentInfo& info) {
  const std::string digest = info.manifest_digest.empty() ? inv.config.digest : info.manifest_digest;
  if (digest.empty()) return "";
  // pkg:oci/NAME@sha256%3A... : NAME is the repository's last component
  std::string name = info.name;
  if (auto at = name.find('@'); at != std::string::npos) name.resize(at);
  if (auto slash = name.rfind('/'); slash != std::string::npos) name = name.substr(slash + 1);
  if (auto colon = name.find(':'); colon != std::string::npos) name.resize(colon);
  if (name.empty()) name = "image";
  std::string out;
  for (unsigned char c : name) out += (std::isalnum(c) || c == '.' || c == '-' || c == '_') ? static_cast<char>(std::tolower(c)) : '-';
  return "pkg:oci/" + out + "@sha256%3A" + hex_of(digest);
}

json spdx_package(const Package& p, std::size_t index) {
  json j = {
      {"SPDXID", spdx_id(to_string(p.kind), p.name, index)},
      {"name", p.name},
      {"versionInfo", p.version},
      {"downloadLocation", "NOASSERTION"},
      {"filesAnalyzed", false},
      {"supplier", p.supplier.empty() ? "NOASSERTION" : "Organization: " + p.supplier},
      {"licenseConcluded", "NOASSERTION"},
      {"licenseDeclared", p.license.empty() ? "NOASSERTION" : p.license},
      {"copyrightText", "NOASSERTION"},
      {"primaryPackagePurpose", p.kind == Kind::python ? "LIBRARY" : p.kind == Kind::cuda ? "LIBRARY" : "INSTALL"},
      {"sourceInfo", fmt::format("{} read from {}", p.kind == Kind::deb ? "dpkg status" : p.kind == Kind::python ? "dist-info METADATA" : "kiln audit", p.path)},
  };
  if (!p.license_text.empty()) j["licenseComments"] = "as the metadata words it: " + p.license_text;
  if (!p.homepage.empty()) j["homepage"] = p.homepage;
  if (!p.purl.empty())
    j["externalRefs"] = json::array({{{"referenceCategory", "PACKAGE-MANAGER"}, {"referenceType", "purl"}, {"referenceLocator", p.purl}}});
  if (!p.source.empty()) j["comment"] = "built from the source package " + p.source;
  return j;
}

}  // namespace

json to_spdx(const Inventory& inv, const DocumentInfo& info) {
  const std::string created = created_at(info);
  const std::string hash = content_hash(inv, info, created);
  json image = {
      {"SPDXID", "SPDXRef-Image"},
      {"name", info.name},
      {"versionInfo", info.manifest_digest.empty() ? inv.config.digest : info.manifest_digest},
      {"downloadLocation", "NOASSERTION"},
      {"filesAnalyzed", false},
      {"supplier", "NOASSERTION"},
      {"licenseConcluded", "NOASSERTION"},
      {"licenseDeclared", "NOASSERTION"},
      {"copyrightText", "NOASSERTION"},
      {"primaryPackagePurpose", "CONTAINER"},
  };
  if (!inv.config.digest.empty())
    image["checksums"] = json::array({{{"algorithm", "SHA256"}, {"checksumValue", hex_of(inv.config.digest)}}});
  if (auto purl = image_purl(inv, info); !purl.empty())
    image["externalRefs"] = json::array({{{"referenceCategory", "PACKAGE-MANAGER"}, {"referenceType", "purl"}, {"referenceLocator", purl}}});
  std::string comment = "image id (config digest) " + inv.config.digest;
  if (!inv.os_pretty_name.empty()) comment += "; " + inv.os_pretty_name;
  image["comment"] = comment;
  json packages = json::array({image});
  json relationships = json::array(
      {{{"spdxElementId", "SPDXRef-DOCUMENT"}, {"relationshipType", "DESCRIBES"}, {"relatedSpdxElement", "SPDXRef-Image"}}});
  for (std::size_t i = 0; i < inv.packages.size(); ++i) {
    json p = spdx_package(inv.packages[i], i + 1);
    relationships.push_back({{"spdxElementId", "SPDXRef-Image"}, {"relationshipType", "CONTAINS"}, {"relatedSpdxElement", p["SPDXID"]}});
    packages.push_back(std::move(p));
  }
  json doc = {
      {"spdxVersion", "SPDX-2.3"},
      {"dataLicense", "CC0-1.0"},
      {"SPDXID", "SPDXRef-DOCUMENT"},
      {"name", "kiln sbom " + info.name},
      {"documentNamespace", "https://kiln.invalid/spdx/" + hex_of(inv.config.digest).substr(0, 64) + "-" + hash.substr(0, 16)},
      {"creationInfo", {{"created", created}, {"creators", json::array({"Tool: kiln-" + info.tool_version})}}},
      {"documentDescribes", json::array({"SPDXRef-Image"})},
      {"packages", packages},
      {"relationships", relationships},
  };
  if (!inv.warnings.empty()) doc["comment"] = "kiln warned: " + join(inv.warnings, "; ");
  return doc;
}

json to_cyclonedx(const Inventory& inv, const DocumentInfo& info) {
  const std::string created = created_at(info);
  const std::string hash = content_hash(inv, info, created);
  // A UUID made from the content hash (version 4 layout bits set), so the
  // same document gets the same serial number.
  std::string uuid = fmt::format("{}-{}-4{}-{}{}-{}", hash.substr(0, 8), hash.substr(8, 4), hash.substr(13, 3),
                                 "89ab"[std::stoi(hash.substr(16, 1), nullptr, 16) & 3], hash.substr(17, 3), hash.substr(20, 12));
  json image = {{"type", "container"}, {"bom-ref", "image"}, {"name", info.name},
                {"version", info.manifest_digest.empty() ? inv.config.digest : info.manifest_digest}};
  if (auto purl = image_purl(inv, info); !purl.empty()) image["purl"] = purl;
  if (!inv.config.digest.empty())
    image["hashes"] = json::array({{{"alg", "SHA-256"}, {"content", hex_of(inv.config.digest)}}});
  json components = json::array();
  json refs = json::array();
  for (std::size_t i = 0; i < inv.packages.size(); ++i) {
    const Package& p = inv.packages[i];
    const std::string ref = spdx_id(to_string(p.kind), p.name, i + 1).substr(8);  // without "SPDXRef-"
    json c = {{"type", p.kind == Kind::deb ? "application" : "library"}, {"bom-ref", ref}, {"name", p.name}, {"version", p.version}};
    if (!p.purl.empty()) c["purl"] = p.purl;
    if (!p.supplier.empty()) c["supplier"] = {{"name", p.supplier}};
    if (!p.license.empty()) c["licenses"] = json::array({{{"expression", p.license}}});
    else if (!p.license_text.empty()) c["licenses"] = json::array({{{"license", {{"name", p.license_text}}}}});
    json props = json::array({{{"name", "kiln:kind"}, {"value", to_string(p.kind)}}, {{"name", "kiln:path"}, {"value", p.path}}});
    if (!p.architecture.empty()) props.push_back({{"name", "kiln:architecture"}, {"value", p.architecture}});
    if (!p.source.empty()) props.push_back({{"name", "kiln:source-package"}, {"value", p.source}});
    c["properties"] = props;
    components.push_back(std::move(c));
    refs.push_back(ref);
  }
  return {
      {"bomFormat", "CycloneDX"},
      {"specVersion", "1.5"},
      {"serialNumber", "urn:uuid:" + uuid},
      {"version", 1},
      {"metadata",
       {{"timestamp", created},
        {"tools", {{"components", json::array({{{"type", "application"}, {"name", "kiln"}, {"version", info.tool_version}}})}}},
        {"component", image}}},
      {"components", components},
      {"dependencies", json::array({{{"ref", "image"}, {"dependsOn", refs}}})},
  };
}

}  // namespace kiln::sbom
