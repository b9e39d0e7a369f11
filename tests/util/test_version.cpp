#include <catch2/catch.hpp>

#include "util/version.h"

using kiln::Version;
using kiln::VersionRange;

TEST_CASE("versions compare numerically, padding with zeros", "[version]") {
  CHECK(Version::must("525.60.13") > Version::must("525.60.2"));
  CHECK(Version::must("12.4") == Version::must("12.4.0"));
  CHECK(Version::must("2.10") > Version::must("2.9"));
  CHECK(Version::must("450.80.02") == Version::must("450.80.2"));
}

TEST_CASE("versions keep the text they were written as", "[version]") {
  CHECK(Version::must("450.80.02").str() == "450.80.02");
  CHECK(Version::must("12.4.1").prefix(2).str() == "12.4");
}

TEST_CASE("a version pattern matches on the components written", "[version]") {
  CHECK(Version::must("2.6.0").matches(Version::must("2.6")));
  CHECK_FALSE(Version::must("2.6.0").matches(Version::must("2.6.1")));
  CHECK(Version::must("9.1.0.70").matches(Version::must("9")));
  CHECK_FALSE(Version::must("8.9.2.26").matches(Version::must("9")));
}

TEST_CASE("bad versions are rejected, not misread", "[version]") {
  for (const char* bad : {"", ".", "1.", ".1", "1..2", "a.b", "1.2x", "-1", "99999999999"})
    CHECK_FALSE(Version::parse(bad));
}

TEST_CASE("version ranges compare on the components they name", "[version]") {
  auto r = *VersionRange::parse("12.0..12.9");
  CHECK(r.contains(Version::must("12.4.1")));
  CHECK(r.contains(Version::must("12.9")));
  CHECK_FALSE(r.contains(Version::must("13.0")));
  CHECK_FALSE(r.contains(Version::must("11.8")));
  CHECK(VersionRange::parse("11.8")->contains(Version::must("11.8.89")));
  CHECK_FALSE(VersionRange::parse("12.9..12.0"));
}
