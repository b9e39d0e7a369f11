// libFuzzer harness: any bytes as a matrix, through the whole foundation
// (matrix -> plan -> JSON, table, Dockerfiles). Bad input may only ever end
// in InputError; anything else -- a crash, a sanitizer report, another
// exception -- is a bug. Seeds: matrices/*.toml.
#include <cstdint>
#include <string>

#include "plan/plan.h"
#include "render/render.h"
#include "util/diag.h"

namespace {
const kiln::catalog::Catalog& cat() {
  static kiln::catalog::Catalog c = kiln::catalog::Catalog::load(std::string(KILN_SOURCE_DIR) + "/recipes");
  return c;
}
const kiln::render::Renderer& renderer() {
  static kiln::render::Renderer r(std::string(KILN_SOURCE_DIR) + "/templates");
  return r;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto m = kiln::matrix::parse_matrix_text(text, "fuzz.toml");
    kiln::plan::Query q{"535.104.05", {"P100"}};
    auto p = kiln::plan::make_plan(m, cat(), q);
    (void)kiln::plan::to_json(p).dump();
    (void)kiln::plan::to_table(p);
    size_t rendered = 0;
    for (const auto& c : p.combos)
      if (c.status == kiln::plan::Status::valid && rendered++ < 4) (void)renderer().render(c, p);
  } catch (const kiln::InputError&) {
  }
  return 0;
}
