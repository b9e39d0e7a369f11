#include "support.h"

#include <archive.h>
#include <archive_entry.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace kiln::test {

std::string docker_socket() {
  if (const char* s = std::getenv("KILN_TEST_DOCKER_SOCKET"); s && *s) return s;
  static std::string sock = [] {
    std::string cmd = std::string(KILN_SOURCE_DIR) + "/tests/support/dockerd.sh start engine";
    FILE* p = popen(cmd.c_str(), "r");  // a fixed command: no input reaches the shell
    if (!p) return std::string();
    char buf[512] = "";
    std::string out = fgets(buf, sizeof buf, p) ? buf : "";
    if (pclose(p) != 0) return std::string();
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }();
  return sock;
}

namespace {

const char* kApplets[] = {"sh", "echo", "cat", "sleep", "ls", "touch", "false", "true", "env", "id"};

void add(archive* a, const std::string& name, mode_t type, int perm, const std::string& data = {},
         const std::string& link = {}) {
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, name.c_str());
  archive_entry_set_filetype(e, type);
  archive_entry_set_perm(e, perm);
  archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
  if (!link.empty()) archive_entry_set_symlink(e, link.c_str());
  archive_write_header(a, e);
  if (!data.empty()) archive_write_data(a, data.data(), data.size());
  archive_entry_free(e);
}

std::string busybox_rootfs() {
  std::ifstream in("/bin/busybox", std::ios::binary);
  if (!in) throw std::runtime_error("no /bin/busybox: apt-get install busybox-static");
  std::stringstream bin;
  bin << in.rdbuf();
  std::string tar(8 << 20, '\0');
  size_t used = 0;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open_memory(a, tar.data(), tar.size(), &used);
  for (const char* d : {"bin", "tmp", "etc", "proc", "sys", "dev"}) add(a, d, AE_IFDIR, 0755);
  add(a, "bin/busybox", AE_IFREG, 0755, bin.str());
  for (const char* app : kApplets) add(a, std::string("bin/") + app, AE_IFLNK, 0777, {}, "busybox");
  add(a, "etc/passwd", AE_IFREG, 0644, "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n");
  archive_write_close(a);
  archive_write_free(a);
  tar.resize(used);
  return tar;
}

}  // namespace

std::string busybox_image(engine::Client& c) {
  const std::string name = "kiln-test/busybox:1";
  if (c.image_exists(name)) return name;
  std::string tar = busybox_rootfs();
  size_t pos = 0;
  c.import_image(
      [&](char* buf, size_t n) {
        size_t take = std::min(n, tar.size() - pos);
        std::copy_n(tar.data() + pos, take, buf);
        pos += take;
        return take;
      },
      "kiln-test/busybox", "1");
  return name;
}

Context::Context(const std::string& dockerfile) {
  static int n = 0;
  dir = fs::temp_directory_path() / ("kiln-engine-test-" + std::to_string(getpid()) + "-" + std::to_string(n++));
  fs::create_directories(dir);
  std::ofstream(dir / "Dockerfile") << dockerfile;
}

Context::~Context() {
  std::error_code ec;
  fs::remove_all(dir, ec);
}

std::string unique_tag(const std::string& name) {
  return "kiln-test/" + name + ":p" + std::to_string(getpid());
}

}  // namespace kiln::test
