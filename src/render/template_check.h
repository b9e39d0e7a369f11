// Checks Mustache templates before kainjow::mustache sees them (internal to
// render/). Why a scanner of our own rather than a depth-limited partial
// resolver: kainjow parses sections recursively and copies every section's
// text (20,000 nested sections took 3.9 GB and the stack), expands partials
// lazily while rendering (a partial that includes itself recursed until
// SIGSEGV), renders an unknown {{name}} as nothing, and reports errors as
// byte offsets. A limit in the partial resolver would catch only the second.
// Scanning the tags ourselves -- a flat loop, no recursion deeper than the
// nesting limit -- lets every template reach the library already known to
// be well nested, shallow, free of partial cycles, naming only known values,
// and bounded in what it can render, with errors at file:line:col.
#pragma once
#include <map>
#include <string>

#include <kainjow/mustache.hpp>

namespace kiln::render::detail {

struct TemplateSource {
  std::string file;  // for messages: "templates/partials/labels.mustache"
  std::string text;
};

struct TemplateLimits {
  size_t max_section_depth = 32;    // nested sections, counted across partials
  size_t max_partial_depth = 8;     // partials including partials
  size_t max_output = 16u << 20;    // bytes one rendering may produce (upper bound)
  size_t max_work = 1u << 20;       // tags visited while checking (expansion guard)
};

// Structure only (no data yet): tags are closed, sections nest properly and
// not too deep, set-delimiter tags are absent, partials exist and never
// include themselves. Throws InputError at file:line:col.
void check_template(const TemplateSource& main, const std::map<std::string, TemplateSource>& partials,
                    const TemplateLimits& limits = {});

// Also against the values of one rendering: every {{name}}, section and
// dotted name resolves in the data (a list item of an empty list is
// `empty_item`), and the output's upper bound stays under max_output.
void check_template(const TemplateSource& main, const std::map<std::string, TemplateSource>& partials,
                    const kainjow::mustache::data& data, const kainjow::mustache::data& empty_item,
                    const TemplateLimits& limits = {});

}  // namespace kiln::render::detail
