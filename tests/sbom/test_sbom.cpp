// The SBOM room: the parsers on real metadata shapes, and an inventory read
// from a docker-save archive (scripts/make-audit-image.py) whose later layer
// replaces dpkg's status: the final filesystem's database is the one listed.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

#include "sbom/sbom.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {

const char* kStatus = R"(Package: libcudart12
Status: install ok installed
Priority: optional
Section: non-free/libs
Installed-Size: 720
Maintainer: Debian NVIDIA Maintainers <pkg-nvidia-devel@lists.alioth.debian.org>
Architecture: amd64
Multi-Arch: same
Source: nvidia-cuda-toolkit (12.4.131~12.4.1-1)
Version: 12.4.127~12.4.1-1
Depends: libc6 (>= 2.34)
Description: NVIDIA CUDA Runtime Library
 The Compute Unified Device Architecture (CUDA) enables NVIDIA
 graphics processing units (GPUs) to be used for massively parallel
Homepage: https://developer.nvidia.com/cuda-zone

Package: oldpkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: base-files
Essential: yes
Status: install ok installed
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Version: 13.8
)";

const char* kMetadata = R"(Metadata-Version: 2.1
Name: Jinja2
Version: 3.1.4
Summary: A very fast and expressive template engine.
Classifier: Development Status :: 5 - Production/Stable
Classifier: License :: OSI Approved :: BSD License
License: BSD-3-Clause

Jinja is a fast, expressive, extensible templating engine.
License: MIT
)";

std::set<std::string> ids_of(const nlohmann::json& doc) {
  std::set<std::string> ids{doc["SPDXID"]};
  for (const auto& p : doc["packages"]) ids.insert(p["SPDXID"].get<std::string>());
  return ids;
}

}  // namespace

TEST_CASE("dpkg status: installed packages only, fields as dpkg wrote them") {
  auto pkgs = sbom::parse_dpkg_status(kStatus, "var/lib/dpkg/status");
  REQUIRE(pkgs.size() == 2);
  CHECK(pkgs[0].name == "libcudart12");
  CHECK(pkgs[0].version == "12.4.127~12.4.1-1");
  CHECK(pkgs[0].architecture == "amd64");
  CHECK(pkgs[0].source == "nvidia-cuda-toolkit");
  CHECK(pkgs[0].supplier == "Debian NVIDIA Maintainers (pkg-nvidia-devel@lists.alioth.debian.org)");
  CHECK(pkgs[0].homepage == "https://developer.nvidia.com/cuda-zone");
  CHECK(pkgs[1].name == "base-files");
  CHECK(pkgs[1].source.empty());
}

TEST_CASE("dist-info METADATA: headers only, licenses only when they are SPDX") {
  auto p = sbom::parse_python_metadata(kMetadata, "usr/lib/python3/dist-packages/Jinja2-3.1.4.dist-info");
  CHECK(p.name == "Jinja2");
  CHECK(p.version == "3.1.4");
  CHECK(p.license == "BSD-3-Clause");  // License:, not the body's "License: MIT"
  CHECK(p.purl == "pkg:pypi/jinja2@3.1.4");

  auto e = sbom::parse_python_metadata("Name: a_b.C\nVersion: 1.0+local\nLicense-Expression: Apache-2.0 OR MIT\n\n", "x");
  CHECK(e.license == "Apache-2.0 OR MIT");
  CHECK(e.purl == "pkg:pypi/a-b-c@1.0%2Blocal");

  auto c = sbom::parse_python_metadata("Name: x\nVersion: 1\nClassifier: License :: OSI Approved :: MIT License\n", "x");
  CHECK(c.license == "MIT");

  auto prose = sbom::parse_python_metadata("Name: x\nVersion: 1\nLicense: BSD\nClassifier: License :: Other/Proprietary License\n", "x");
  CHECK(prose.license.empty());
  CHECK(prose.license_text == "BSD; Other/Proprietary License");
}

TEST_CASE("SPDX expressions: known ids and operators, never prose") {
  CHECK(sbom::is_spdx_expression("MIT"));
  CHECK(sbom::is_spdx_expression("(MIT OR Apache-2.0) AND BSD-3-Clause"));
  CHECK(sbom::is_spdx_expression("Apache-2.0 WITH LLVM-exception"));
  CHECK_FALSE(sbom::is_spdx_expression("BSD"));
  CHECK_FALSE(sbom::is_spdx_expression("MIT OR"));
  CHECK_FALSE(sbom::is_spdx_expression("(MIT"));
  CHECK_FALSE(sbom::is_spdx_expression("see LICENSE file"));
  CHECK_FALSE(sbom::is_spdx_expression(""));
}

TEST_CASE("an archive: the last layer's dpkg status and dist-info are listed, CUDA from audit, SPDX and CycloneDX") {
  const fs::path dir = fs::temp_directory_path() / ("kiln-sbom-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream(dir / "old-status") << "Package: gone\nStatus: install ok installed\nVersion: 0.1\n";
  }
  const std::string status = std::string(kStatus);
  const std::string cmd = "python3 " KILN_SOURCE_DIR "/scripts/make-audit-image.py " + (dir / "img.tar").string() +
                          " --layer var/lib/dpkg/status=" + (dir / "old-status").string() +
                          " --text 'var/lib/dpkg/status=" + status + "'" +
                          " --text 'usr/lib/python3/dist-packages/Jinja2-3.1.4.dist-info/METADATA=" + kMetadata + "'" +
                          " --text 'etc/os-release=ID=debian\nVERSION_ID=\"13\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n'" +
                          " --text 'usr/local/cuda/version.json={\"cuda\":{\"version\":\"12.4.1\"}}'";
  REQUIRE(std::system(cmd.c_str()) == 0);
  const sbom::Inventory inv = sbom::read_inventory(image::archive_source(dir / "img.tar"));
  fs::remove_all(dir);

  std::vector<std::string> names;
  for (const auto& p : inv.packages) names.push_back(std::string(sbom::to_string(p.kind)) + ":" + p.name + "=" + p.version);
  CHECK(names == std::vector<std::string>{"deb:base-files=13.8", "deb:libcudart12=12.4.127~12.4.1-1",
                                          "python:Jinja2=3.1.4", "cuda:cuda-toolkit=12.4.1"});
  CHECK(inv.os_id == "debian");
  CHECK(inv.config.digest.size() == 7 + 64);  // docker save's "<hex>.json" names the image id
  CHECK(inv.packages[1].purl == "pkg:deb/debian/libcudart12@12.4.127~12.4.1-1?arch=amd64&distro=debian-13");

  const nlohmann::json spdx = sbom::to_spdx(inv, {"img.tar", "", "test", "2026-12-01T00:00:00Z"});
  CHECK(spdx["spdxVersion"] == "SPDX-2.3");
  CHECK(spdx["dataLicense"] == "CC0-1.0");
  CHECK(spdx["creationInfo"]["created"] == "2026-12-01T00:00:00Z");
  CHECK(spdx["packages"].size() == 5);  // the image and four
  const auto ids = ids_of(spdx);
  CHECK(ids.size() == 6);  // unique
  std::size_t contains = 0;
  for (const auto& r : spdx["relationships"]) {
    CHECK(ids.contains(r["spdxElementId"].get<std::string>()));
    CHECK(ids.contains(r["relatedSpdxElement"].get<std::string>()));
    contains += r["relationshipType"] == "CONTAINS";
  }
  CHECK(contains == 4);
  CHECK(spdx["packages"][0]["primaryPackagePurpose"] == "CONTAINER");
  CHECK(spdx["packages"][0]["checksums"][0]["checksumValue"] == inv.config.digest.substr(7));
  CHECK(spdx["packages"][3]["licenseDeclared"] == "BSD-3-Clause");
  // Same inputs, same document (namespace included): reproducible.
  CHECK(sbom::to_spdx(inv, {"img.tar", "", "test", "2026-12-01T00:00:00Z"}) == spdx);

  const nlohmann::json cdx = sbom::to_cyclonedx(inv, {"img.tar", "", "test", "2026-12-01T00:00:00Z"});
  CHECK(cdx["bomFormat"] == "CycloneDX");
  CHECK(cdx["specVersion"] == "1.5");
  CHECK(cdx["components"].size() == 4);
  CHECK(cdx["metadata"]["component"]["type"] == "container");
  CHECK(cdx["serialNumber"].get<std::string>().size() == 9 + 36);
  CHECK(cdx["dependencies"][0]["dependsOn"].size() == 4);
}
