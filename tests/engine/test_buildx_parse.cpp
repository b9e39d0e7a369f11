// The buildx CLI's texts kiln reads: `docker buildx inspect NAME` (which
// driver, which endpoint) and --metadata-file (the pushed digest). The
// inputs are what buildx 0.13.1 printed on this machine (docker driver of a
// context, the docker-container driver, a registry push).
#include <catch2/catch.hpp>

#include "engine/engine.h"

using namespace kiln::engine;

TEST_CASE("buildx inspect: the docker driver of a context", "[engine][buildx]") {
  auto info = parse_buildx_inspect(
      "Name:   farm\nDriver: docker\n\nNodes:\nName:             farm\nEndpoint:         farm\n"
      "Status:           running\nBuildKit version: v0.8+unknown\nPlatforms:        linux/amd64, linux/386\n");
  REQUIRE(info);
  CHECK(info->name == "farm");
  CHECK(info->driver == "docker");
  CHECK(info->endpoint == "farm");
  CHECK(info->docker_host.empty());  // only inspect_buildx_builder asks the context
}

TEST_CASE("buildx inspect: docker-container and remote drivers", "[engine][buildx]") {
  auto dc = parse_buildx_inspect(
      "Name:          ci\nDriver:        docker-container\nLast Activity: 2026-12-01 06:40:00 +0000 UTC\n\n"
      "Nodes:\nName:      ci0\nEndpoint:  unix:///var/run/docker.sock\nDriver Options: network=\"host\"\n"
      "Status:    running\nBuildkitd daemon flags: --allow-insecure-entitlement=network.host\n");
  REQUIRE(dc);
  CHECK(dc->driver == "docker-container");
  CHECK(dc->endpoint == "unix:///var/run/docker.sock");
  auto remote = parse_buildx_inspect("Name: k\nDriver: remote\n\nNodes:\nName: k0\nEndpoint: tcp://buildkitd:1234\n");
  REQUIRE(remote);
  CHECK(remote->driver == "remote");
  CHECK(remote->endpoint == "tcp://buildkitd:1234");
}

TEST_CASE("buildx inspect: no Driver line is no builder", "[engine][buildx]") {
  CHECK_FALSE(parse_buildx_inspect(""));
  CHECK_FALSE(parse_buildx_inspect("ERROR: no builder \"x\" found\n"));
  CHECK_FALSE(parse_buildx_inspect("Name: x\nDriver:\n"));
}

TEST_CASE("buildx metadata: a push by digest", "[engine][buildx]") {
  auto m = parse_buildx_metadata(R"({
  "buildx.build.ref": "farm/farm/ja39pf2tk94858op8zmc161er",
  "containerimage.config.digest": "sha256:16af0a0b8b66bbaf5d0bca116cbb4b34964b8578a344e6eaa92df2aeec751c71",
  "containerimage.descriptor": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 480},
  "containerimage.digest": "sha256:7f27cfb3e459edeaa53ad07a9e15fb0569f00059e3317ccf60c44d1f684c337a",
  "image.name": "127.0.0.1:5000/kiln/x"
})");
  REQUIRE(m);
  CHECK(m->digest == "sha256:7f27cfb3e459edeaa53ad07a9e15fb0569f00059e3317ccf60c44d1f684c337a");
  CHECK(m->config_digest == "sha256:16af0a0b8b66bbaf5d0bca116cbb4b34964b8578a344e6eaa92df2aeec751c71");
  CHECK(m->image_name == "127.0.0.1:5000/kiln/x");
}

TEST_CASE("buildx metadata: missing or odd fields are empty, not JSON is nullopt", "[engine][buildx]") {
  auto m = parse_buildx_metadata(R"({"containerimage.digest": 7, "buildx.build.ref": "a/b/c"})");
  REQUIRE(m);
  CHECK(m->digest.empty());
  CHECK(m->config_digest.empty());
  CHECK_FALSE(parse_buildx_metadata("not json"));
  CHECK_FALSE(parse_buildx_metadata("[1, 2]"));
  CHECK_FALSE(parse_buildx_metadata(""));
}
