// Build contexts: streamed, deterministic tars of a directory.
#include "engine/internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <catch2/catch.hpp>

#include <fstream>

using kiln::engine::detail::ContextTar;
namespace fs = std::filesystem;

namespace {

struct TempTree {
  fs::path root;
  explicit TempTree(const std::string& name) {
    root = fs::temp_directory_path() / ("kiln-ctx-" + name + "-" + std::to_string(getpid()));
    fs::remove_all(root);
    fs::create_directories(root / "sub" / "deeper");
    write("Dockerfile", "FROM scratch\nCOPY . /\n");
    write("b.txt", "bee");
    write("a.txt", "ay");
    write("sub/deeper/big.bin", std::string(200000, 'z'));
    fs::permissions(root / "b.txt", fs::perms(0755));
  }
  ~TempTree() { fs::remove_all(root); }
  void write(const std::string& rel, const std::string& data) {
    std::ofstream(root / rel, std::ios::binary) << data;
  }
};

std::string drain(ContextTar& t, size_t chunk) {
  std::string out, buf(chunk, '\0');
  while (size_t n = t.read(buf.data(), chunk)) out.append(buf.data(), n);
  return out;
}

struct Member {
  std::string name;
  int type;
  int64_t mtime, uid, size;
  std::string data, link;
};

std::vector<Member> members(const std::string& tar) {
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  REQUIRE(archive_read_open_memory(a, tar.data(), tar.size()) == ARCHIVE_OK);
  std::vector<Member> out;
  archive_entry* e;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    Member m{archive_entry_pathname(e), static_cast<int>(archive_entry_filetype(e)),
             archive_entry_mtime(e), archive_entry_uid(e), archive_entry_size(e), {}, {}};
    if (archive_entry_symlink(e)) m.link = archive_entry_symlink(e);
    m.data.resize(static_cast<size_t>(m.size));
    if (m.size) archive_read_data(a, m.data.data(), m.data.size());
    out.push_back(std::move(m));
  }
  archive_read_free(a);
  return out;
}

}  // namespace

TEST_CASE("a context tar is deterministic and complete", "[engine][context]") {
  TempTree tree("det");
  ContextTar t1(tree.root);
  std::string one = drain(t1, 65536);
  // Touch every file: new mtimes must not change a byte.
  for (auto& p : fs::recursive_directory_iterator(tree.root))
    if (!p.is_symlink()) fs::last_write_time(p.path(), fs::file_time_type::clock::now() - std::chrono::hours(5));
  ContextTar t2(tree.root);
  std::string two = drain(t2, 7);  // tiny reads: the pull path in small steps
  CHECK(one == two);
  CHECK(one.size() % 512 == 0);

  auto ms = members(one);
  std::vector<std::string> names;
  for (auto& m : ms) names.push_back(m.name);
  CHECK(names == std::vector<std::string>{"Dockerfile", "a.txt", "b.txt", "sub/", "sub/deeper/", "sub/deeper/big.bin"});
  for (auto& m : ms) {
    CHECK(m.mtime == 0);
    CHECK(m.uid == 0);
  }
  CHECK(ms[1].data == "ay");
  CHECK(ms[3].type == AE_IFDIR);
  CHECK(ms[5].data == std::string(200000, 'z'));
}

// A link to /etc/shadow in a context dir would ship the host's file to the engine.
TEST_CASE("a symbolic link in a context is refused before anything is sent", "[engine][context]") {
  TempTree tree("link");
  fs::create_symlink("/etc/shadow", tree.root / "sub" / "shadow");
  CHECK_THROWS_WITH(ContextTar(tree.root), Catch::Contains("sub/shadow: is a symbolic link"));
}

TEST_CASE("a missing context directory is an error naming it", "[engine][context]") {
  CHECK_THROWS_WITH(ContextTar("/nonexistent/ctx"), Catch::Contains("/nonexistent/ctx"));
}

// POST /build has no channel for a secret but a build argument or the
// context, both recorded: the engine builder refuses before connecting.
TEST_CASE("the engine builder refuses a build with secrets, naming buildx", "[engine][secrets]") {
  kiln::engine::BuildRequest req;
  req.context_dir = ".";
  req.secrets.push_back({"pip-netrc", "PIP_NETRC", ""});
  kiln::engine::Client client(kiln::engine::Endpoint{"/nonexistent/kiln-test.sock"});
  try {
    client.build(req, nullptr, nullptr);
    FAIL("no exception");
  } catch (const kiln::engine::SecretsUnsupported& e) {
    CHECK(std::string(e.what()).find("cannot pass build secret 'pip-netrc'") != std::string::npos);
    CHECK(std::string(e.what()).find("backend = \"buildx\"") != std::string::npos);
  }
}
