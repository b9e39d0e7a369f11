// Integration-test support: a real private dockerd and a tiny local base image.
#pragma once

#include "engine/engine.h"

#include <filesystem>
#include <string>

namespace kiln::test {

// The private test daemon's socket: $KILN_TEST_DOCKER_SOCKET (ctest's
// fixture started it), else tests/support/dockerd.sh start engine.
// Empty when no daemon can run here (tests then WARN and return).
std::string docker_socket();

// "kiln-test/busybox:1": /bin/busybox (static) and its applets, imported
// from a rootfs tar made here; created once per daemon.
std::string busybox_image(engine::Client& c);

// A fresh directory holding `dockerfile` as Dockerfile; removed at exit.
struct Context {
  std::filesystem::path dir;
  explicit Context(const std::string& dockerfile);
  ~Context();
};

// A tag unique to this test process, so runs in parallel never collide.
std::string unique_tag(const std::string& name);

}  // namespace kiln::test
