// What an image holds, read from its bytes (never by running it): Debian and
// Ubuntu packages from dpkg's status database (var/lib/dpkg/status, and the
// status.d/ files distroless images carry), Python distributions from
// *.dist-info/METADATA, and the CUDA components `kiln audit` finds. Written
// as SPDX 2.3 JSON or CycloneDX 1.5 JSON. See docs/sbom.md.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/components.h"
#include "image/image.h"

namespace kiln::sbom {

enum class Kind { deb, python, cuda };
std::string_view to_string(Kind k);  // "deb", "python", "cuda"

struct Package {
  Kind kind = Kind::deb;
  std::string name, version;
  std::string architecture;  // dpkg's Architecture; empty for the others
  std::string supplier;      // dpkg's Maintainer, METADATA's Author; empty: unknown
  std::string source;        // dpkg's Source (the source package), when it differs
  std::string homepage;
  // A valid SPDX license expression when the metadata gives one (METADATA's
  // License-Expression, a License field or trove classifier that maps to one
  // SPDX id); empty otherwise, the words the metadata had in license_text.
  std::string license;
  std::string license_text;
  std::string path;  // where it was read: "var/lib/dpkg/status", a dist-info directory, a library
  std::string purl;  // package URL (purl-spec): pkg:deb/debian/..., pkg:pypi/..., pkg:generic/...
};

struct Inventory {
  image::ImageConfig config;         // config digest (the image id), env, labels, repo tags
  std::string os_id, os_version_id;  // /etc/os-release ("debian", "13")
  std::string os_pretty_name;
  std::vector<Package> packages;     // debs, then Python distributions, then CUDA components; each sorted by name
  std::vector<std::string> warnings;
};

// Reads `fs` (its dpkg database and dist-info METADATA files are read again
// from the layers unless kept); `components` as audit::detect_components
// found them.
Inventory inventory(const image::ImageFs& fs, const audit::Components& components);

// One pass over the image's layers (digests checked as for `kiln audit`),
// keeping the small files the inventory needs, then inventory().
Inventory read_inventory(std::shared_ptr<image::BlobSource> source, image::ReadOptions options = {});

// Pure parsers (tested on their own).
// Every installed package of a dpkg status file (Status "... installed");
// status.d/ files hold one paragraph each.
std::vector<Package> parse_dpkg_status(std::string_view text, const std::string& path);
// A dist-info METADATA: Name, Version, Author, Home-page, License-Expression,
// License, Classifier: License :: ...
Package parse_python_metadata(std::string_view text, const std::string& path);
// "MIT", "Apache-2.0 OR MIT", "BSD-3-Clause": a syntactically valid SPDX
// license expression of known ids; false for prose ("BSD", "see LICENSE").
bool is_spdx_expression(std::string_view s);

// Who wrote the document and for what.
struct DocumentInfo {
  std::string name;             // the image as the user named it (a reference, a file)
  std::string manifest_digest;  // the registry manifest it describes, when known ("sha256:...")
  std::string tool_version;     // kiln's version
  std::string created;          // RFC 3339 UTC; empty: now, or SOURCE_DATE_EPOCH when set
};

// SPDX 2.3: one package for the image (primaryPackagePurpose CONTAINER) that
// the document DESCRIBES and that CONTAINS every package found.
nlohmann::json to_spdx(const Inventory& inv, const DocumentInfo& info);
// CycloneDX 1.5: metadata.component is the image (type container).
nlohmann::json to_cyclonedx(const Inventory& inv, const DocumentInfo& info);

inline constexpr const char* spdx_media_type = "application/spdx+json";
inline constexpr const char* cyclonedx_media_type = "application/vnd.cyclonedx+json";

}  // namespace kiln::sbom
