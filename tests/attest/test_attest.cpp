// DSSE envelopes with keys made by the openssl CLI (real OpenSSL, both
// ways): an ECDSA P-256 signature kiln makes verifies with `openssl dgst
// -verify` over the PAE; Ed25519 too; a changed payload, a changed type,
// another key are refused; keys of other kinds are refused by name.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "attest/attest.h"
#include "util/base64.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {

struct Keys {
  fs::path dir = fs::temp_directory_path() / ("kiln-attest-" + std::to_string(getpid()));
  Keys() {
    fs::create_directories(dir);
    const std::string d = dir.string();
    const std::string cmd = "cd " + d + " && openssl ecparam -name prime256v1 -genkey -noout -out ec.pem 2>/dev/null &&"
                            " openssl ec -in ec.pem -pubout -out ec.pub 2>/dev/null &&"
                            " openssl ecparam -name prime256v1 -genkey -noout -out other.pem 2>/dev/null &&"
                            " openssl ec -in other.pem -pubout -out other.pub 2>/dev/null &&"
                            " openssl genpkey -algorithm ed25519 -out ed.pem 2>/dev/null &&"
                            " openssl pkey -in ed.pem -pubout -out ed.pub 2>/dev/null &&"
                            " openssl ecparam -name secp384r1 -genkey -noout -out p384.pem 2>/dev/null &&"
                            " openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  ~Keys() { fs::remove_all(dir); }
  fs::path operator/(const char* name) const { return dir / name; }
};

const std::string kType = "application/vnd.in-toto+json";
const std::string kPayload = R"({"_type":"https://in-toto.io/Statement/v1","subject":[]})";

}  // namespace

TEST_CASE("PAE is DSSE v1's") {
  CHECK(attest::pae("http://example.com/HelloWorld", "hello world") == "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
}

TEST_CASE("ECDSA P-256: kiln's signature is what openssl verifies; tampering is refused") {
  Keys k;
  const auto env = attest::sign_envelope(kType, kPayload, k / "ec.pem", "test-key");
  CHECK(env["payloadType"] == kType);
  CHECK(*base64_decode(env["payload"].get<std::string>()) == kPayload);
  CHECK(env["signatures"][0]["keyid"] == "test-key");

  // openssl itself, over the PAE, with the DER signature kiln wrote
  std::ofstream(k / "pae.bin", std::ios::binary) << attest::pae(kType, kPayload);
  std::ofstream(k / "sig.der", std::ios::binary) << *base64_decode(env["signatures"][0]["sig"].get<std::string>());
  const std::string cmd = "openssl dgst -sha256 -verify " + (k / "ec.pub").string() + " -signature " + (k / "sig.der").string() +
                          " " + (k / "pae.bin").string() + " >/dev/null";
  CHECK(std::system(cmd.c_str()) == 0);

  auto ok = attest::verify_envelope(env, k / "ec.pub");
  CHECK(ok.ok);
  CHECK(ok.payload == kPayload);
  CHECK(ok.payload_type == kType);

  auto changed = env;
  changed["payload"] = base64_encode(R"({"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x"}]})");
  auto bad = attest::verify_envelope(changed, k / "ec.pub");
  CHECK_FALSE(bad.ok);
  CHECK(bad.error.find("no signature verifies") != std::string::npos);

  auto retyped = env;
  retyped["payloadType"] = "application/spdx+json";
  CHECK_FALSE(attest::verify_envelope(retyped, k / "ec.pub").ok);

  CHECK_FALSE(attest::verify_envelope(env, k / "other.pub").ok);
  CHECK_FALSE(attest::verify_envelope(nlohmann::json{{"payload", "x"}}, k / "ec.pub").ok);
}

TEST_CASE("Ed25519 signs and verifies; other keys are refused by name") {
  Keys k;
  const auto env = attest::sign_envelope(kType, kPayload, k / "ed.pem");
  CHECK(attest::verify_envelope(env, k / "ed.pub").ok);
  CHECK_FALSE(attest::verify_envelope(env, k / "ec.pub").ok);
  CHECK_THROWS_WITH(attest::sign_envelope(kType, kPayload, k / "p384.pem"), Catch::Contains("not on P-256"));
  CHECK_THROWS_WITH(attest::sign_envelope(kType, kPayload, k / "rsa.pem"), Catch::Contains("neither an ECDSA P-256 nor an Ed25519 key"));
  CHECK_THROWS_WITH(attest::sign_envelope(kType, kPayload, k / "missing.pem"), Catch::Contains("cannot open the key file"));
}
