#include <catch2/catch.hpp>

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
