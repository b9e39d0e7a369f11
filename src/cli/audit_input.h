// Shared by `kiln audit` and `kiln check-driver`: turn an IMAGE argument into
// an audit (cmd_audit.cpp).
#pragma once
#include <string>
#include <vector>

#include "audit/audit.h"
#include "catalog/catalog.h"

namespace CLI {
class App;
}

namespace kiln::cli {

// IMAGE is a `docker save` or OCI tar, an OCI layout directory,
// `docker-daemon:NAME`, `docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX]` (read
// from the registry: plain HTTP for a loopback host, or for any host with
// `plain_http`; TLS otherwise), or an engine image name when no such file
// exists. Throws InputError naming IMAGE for anything unreadable (exit 2).
audit::ImageAudit audit_input(const std::string& image, const std::vector<audit::GpuTarget>& gpus,
                              const catalog::Catalog& c, bool plain_http = false);

// The --plain-http flag of audit and check-driver (for audit_input).
void add_plain_http_flag(CLI::App* sub, bool& plain_http);

}  // namespace kiln::cli
