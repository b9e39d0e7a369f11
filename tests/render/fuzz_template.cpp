// libFuzzer harness for the template scanner (render/template_check): any
// bytes as a Dockerfile template plus two partials (split at "\x01"). The
// scanner may only ever throw InputError; a template it accepts must render
// through kainjow without a crash, a sanitizer report or unbounded memory --
// the promise the scanner makes for the library.
#include <cstdint>
#include <string>

#include "render/template_check.h"
#include "util/diag.h"

namespace mus = kainjow::mustache;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::string parts[3];
  size_t n = 0;
  for (char c : text) {
    if (c == '\x01' && n < 2) ++n;
    else parts[n] += c;
  }
  using kiln::render::detail::TemplateSource;
  std::map<std::string, TemplateSource> partials{{"a", {"a.mustache", parts[1]}}, {"b", {"b.mustache", parts[2]}}};
  mus::data values;
  values.set("base", "kiln/debian:12");
  values.set("devel", true);
  values.set("cudnn", false);
  mus::data list{mus::data::type::list};
  for (const char* v : {"x", "y", "z"}) {
    mus::data item;
    item.set("value", v);
    item.set("last", false);
    list.push_back(item);
  }
  values.set("tags", list);
  mus::data empty_item;
  empty_item.set("value", "");
  empty_item.set("last", true);
  try {
    kiln::render::detail::check_template({"t.mustache", parts[0]}, partials);
    kiln::render::detail::check_template({"t.mustache", parts[0]}, partials, values, empty_item);
  } catch (const kiln::InputError&) {
    return 0;
  }
  mus::data d = values;
  for (const auto& [name, src] : partials) {
    const std::string* body = &src.text;
    d.set(name, mus::partial([body] { return *body; }));
  }
  mus::mustache tmpl{parts[0]};
  tmpl.set_custom_escape([](const std::string& s) { return s; });
  (void)tmpl.render(d);
  return 0;
}
