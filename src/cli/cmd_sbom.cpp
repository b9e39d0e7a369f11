// kiln sbom IMAGE: what an image holds (dpkg, Python dist-info, CUDA
// components), read from its bytes, as SPDX 2.3 or CycloneDX 1.5 JSON
// (docs/sbom.md).
#include <iostream>

#include "cli/audit_input.h"
#include "cli/commands.h"
#include "engine/engine.h"
#include "image/image.h"
#include "sbom/sbom.h"
#include "util/diag.h"
#include "util/json_out.h"
#include "util/text.h"

namespace kiln::cli {

namespace {

struct SbomArgs {
  std::string image;
  std::string format = "spdx";
  std::string output;
  InputOptions input;
};

int run_sbom(const SbomArgs& a) {
  OpenedImage in = open_image(a.image, a.input);
  image::ReadOptions ro;
  ro.verify_digests = a.input.verify_digests;
  ro.limits = a.input.limits;
  sbom::Inventory inv;
  try {
    inv = sbom::read_inventory(in.source, ro);
  } catch (const image::ImageError& e) {
    throw InputError({a.image}, e.what());
  }
  sbom::DocumentInfo info{a.image, in.manifest_digest, KILN_VERSION, ""};
  const nlohmann::json doc = a.format == "cyclonedx" ? sbom::to_cyclonedx(inv, info) : sbom::to_spdx(inv, info);
  for (const auto& w : inv.warnings) std::cerr << "kiln sbom: warning: " << w << '\n';
  const std::string text = json_text(doc, 2) + '\n';
  if (a.output.empty()) std::cout << text;
  else write_file_atomic(a.output, text);
  return 0;
}

}  // namespace

void register_sbom(CLI::App& app, Common&) {
  auto args = std::make_shared<SbomArgs>();
  CLI::App* sub = app.add_subcommand("sbom", "What an image holds (dpkg, Python, CUDA), read from its bytes, as SPDX or CycloneDX JSON");
  sub->add_option("image", args->image,
                  "docker save / OCI tar, OCI layout dir, docker://HOST/REPO[:TAG|@DIGEST], docker-daemon:NAME or engine image name")
      ->required();
  sub->add_option("--format", args->format, "spdx (SPDX 2.3 JSON, default) or cyclonedx (CycloneDX 1.5 JSON)")
      ->check(CLI::IsMember({"spdx", "cyclonedx"}));
  sub->add_option("-o,--output", args->output, "Write the document to FILE instead of stdout");
  add_input_flags(sub, args->input);
  set_action(sub, [args] { return run_sbom(*args); });
}

}  // namespace kiln::cli
