#include <catch2/catch.hpp>

#include "util/sha256.h"
#include "util/text.h"

TEST_CASE("brace templates expand known names and report unknown ones", "[text]") {
  std::vector<std::string> unknown;
  auto out = kiln::expand_braces("{pytorch}-cuda{cuda}-{nope}", {{"pytorch", "2.6.0"}, {"cuda", "12.4"}}, &unknown);
  CHECK(out == "2.6.0-cuda12.4-{nope}");
  REQUIRE(unknown.size() == 1);
  CHECK(unknown[0] == "nope");
  CHECK(kiln::expand_braces("no braces {", {}) == "no braces {");
}

TEST_CASE("split keeps empty fields", "[text]") {
  auto parts = kiln::split("a;;b", ';');
  REQUIRE(parts.size() == 3);
  CHECK(parts[1].empty());
}

TEST_CASE("lower is ASCII only", "[text]") {
  CHECK(kiln::lower("Bearer REALM=X") == "bearer realm=x");
  CHECK(kiln::lower("\xc3\x84") == "\xc3\x84");  // UTF-8 bytes stay as they are
}

TEST_CASE("a digest is sha256:<64 lowercase hex> and nothing else", "[text][digest]") {
  const std::string hex(64, 'a');
  CHECK(kiln::is_sha256_digest("sha256:" + hex));
  CHECK(kiln::is_sha256_digest("sha256:" + kiln::sha256_hex("x")));
  CHECK(kiln::sha256_digest("x") == "sha256:" + kiln::sha256_hex("x"));  // the one helper every room uses
  CHECK(kiln::sha256_digest("") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(kiln::is_sha256_digest(kiln::sha256_digest("x")));
  CHECK_FALSE(kiln::is_sha256_digest("sha256:" + std::string(64, 'A')));  // upper case
  CHECK_FALSE(kiln::is_sha256_digest("sha256:" + hex.substr(1)));         // 63 digits
  CHECK_FALSE(kiln::is_sha256_digest("sha512:" + hex));
  CHECK_FALSE(kiln::is_sha256_digest("sha256:../" + hex.substr(3)));
  CHECK_FALSE(kiln::is_sha256_digest(hex));
}
