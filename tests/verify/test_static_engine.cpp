// The whole static check against a real local image: built by the private
// test dockerd from scratch (its config: env, labels, user; its files: the
// CUDA 12.4 userland's library names), then read back the way `kiln verify`
// reads it (inspect, docker save, the audit layer cache).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "engine/support.h"
#include "render/render.h"
#include "skip.h"
#include "util/cc.h"
#include "verify/internal.h"

using namespace kiln;
namespace fs = std::filesystem;

namespace {

plan::Combo planned() {
  plan::Combo c;
  c.id = "cuda12.4-debian13-runtime";
  c.versions.cuda = "12.4.1";
  c.versions.nccl = "2.22.3";
  c.versions.flavor = "runtime";
  c.arch = *ArchList::parse("8.0;9.0");
  c.require_cuda = "cuda>=12.4 brand=tesla,driver>=470,driver<471";
  return c;
}

// A Dockerfile for the planned combination; `label_combo` lets a case lie.
std::string dockerfile(const plan::Combo& c, const std::string& label_combo, const std::string& user) {
  return "FROM scratch\nCOPY usr /usr\n"
         "ENV NVIDIA_REQUIRE_CUDA=\"" + c.require_cuda + "\" NVIDIA_REQUIRE_ARCH=\"" + require_arch(c.arch) + "\"\n"
         "LABEL io.kiln.combo=\"" + label_combo + "\" io.kiln.cuda.version=\"" + c.versions.cuda +
         "\" io.kiln.nccl.version=\"" + c.versions.nccl + "\" io.kiln.cudnn.version=\"\" io.kiln.pytorch.version=\"\" "
         "io.kiln.arch_list=\"" + c.arch.str() + "\"\n"
         "USER " + user + "\n";
}

struct Built {
  engine::Client client;
  std::string id;
  fs::path state;
  Built(const std::string& sock, const std::string& df) : client(engine::Endpoint{sock}) {
    test::Context ctx(df);
    const fs::path lib = ctx.dir / "usr/lib/x86_64-linux-gnu";
    fs::create_directories(lib);
    for (const char* name : {"libcudart.so.12.4.127", "libnccl.so.2.22.3"}) std::ofstream(lib / name) << "x";
    engine::BuildRequest req{.context_dir = ctx.dir, .tags = {test::unique_tag("verify-static")}};
    auto r = engine::make_builder("engine", client.endpoint())->build(req, nullptr, nullptr);
    INFO(r.error);
    REQUIRE(r.ok);
    id = r.image_id;
    state = fs::temp_directory_path() / ("kiln-verify-static-" + id.substr(7, 12));
  }
  ~Built() {
    std::error_code ec;
    fs::remove_all(state, ec);
    try {
      client.remove_image(id, true);
    } catch (const std::exception&) {
    }
  }
  // Checked against the labels `planned_dockerfile` sets, as verify checks
  // against the rendered Dockerfile's.
  verify::CheckResult check(const plan::Combo& c, const std::string& user, const std::string& planned_dockerfile) {
    plan::Plan p;
    p.user = user;
    verify::Options o;
    o.state_dir = state.string();
    fs::create_directories(state / "tmp");
    return verify::detail::static_check(c, p, render::dockerfile_labels(planned_dockerfile), id, client, o);
  }
};

}  // namespace

TEST_CASE("static check of a real local image: config and files against the plan", "[verify][static][integration]") {
  const std::string sock = test::docker_socket();
  if (sock.empty()) {
    KILN_SKIP("no test dockerd here (needs root)");
  }
  const plan::Combo c = planned();
  SECTION("the image the plan describes passes") {
    Built b(sock, dockerfile(c, c.id, "kiln"));
    auto r = b.check(c, "kiln", dockerfile(c, c.id, "kiln"));
    INFO(r.problems.size() << (r.problems.empty() ? "" : r.problems[0]));
    CHECK(r.status == verify::CheckStatus::passed);
    CHECK(r.detail["user"] == "kiln");
    CHECK(r.detail["found"]["CUDA runtime"][0]["version"] == "12.4.127");
  }
  SECTION("a wrong label, another user and an old NVIDIA_REQUIRE_CUDA are each named") {
    plan::Combo other = c;
    other.require_cuda = "cuda>=12.3";
    Built b(sock, dockerfile(other, "someone-else", "root"));
    auto r = b.check(c, "kiln", dockerfile(c, c.id, "kiln"));
    CHECK(r.status == verify::CheckStatus::failed);
    std::string all;
    for (const auto& p : r.problems) all += p + "\n";
    CHECK_THAT(all, Catch::Contains("label io.kiln.combo is \"someone-else\", the plan says \"cuda12.4-debian13-runtime\""));
    CHECK_THAT(all, Catch::Contains("the image runs as \"root\", the plan says \"kiln\""));
    CHECK_THAT(all, Catch::Contains("NVIDIA_REQUIRE_CUDA is \"cuda>=12.3\""));
  }
  SECTION("an image the engine does not have is an error, not a failure") {
    Built b(sock, dockerfile(c, c.id, "kiln"));
    plan::Plan p;
    verify::Options o;
    o.state_dir = b.state.string();
    auto r = verify::detail::static_check(c, p, {}, "sha256:" + std::string(64, '0'), b.client, o);
    CHECK(r.status == verify::CheckStatus::error);
    CHECK_THAT(r.problems.at(0), Catch::Contains("is not on the engine: run kiln build first"));
  }
}
