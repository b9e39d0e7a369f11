// Shared by `kiln audit` and `kiln check-driver`: turn an IMAGE argument into
// an audit (cmd_audit.cpp).
#pragma once
#include <string>
#include <vector>

#include "audit/audit.h"
#include "catalog/catalog.h"

namespace kiln::cli {

// IMAGE is a `docker save` or OCI tar, an OCI layout directory,
// `docker-daemon:NAME`, or an engine image name when no such file exists.
// Throws InputError naming IMAGE for anything unreadable (exit 2).
audit::ImageAudit audit_input(const std::string& image, const std::vector<audit::GpuTarget>& gpus,
                              const catalog::Catalog& c);

}  // namespace kiln::cli
