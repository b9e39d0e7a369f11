#include "render/template_check.h"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "util/diag.h"
#include "util/text.h"
#include "util/validate.h"

namespace kiln::render::detail {

namespace mus = kainjow::mustache;

namespace {

enum class Kind { text, variable, section, inverted, close, partial };

struct Tag {
  Kind kind = Kind::text;
  std::string name;
  unsigned line = 0, column = 0;
  size_t bytes = 0;  // text runs: their length
};

struct Tokens {
  std::string file;
  std::vector<Tag> tags;
};

bool name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

// Splits a template into text runs and tags exactly as kainjow::mustache
// does: "{{" opens a tag, "}}" closes it ("}}}" after "{{{"), the contents
// are trimmed, the first character says the kind. Comments are dropped.
Tokens tokenize(const TemplateSource& src) {
  Tokens out{src.file, {}};
  const std::string& s = src.text;
  unsigned line = 1, column = 1;
  size_t pos = 0;
  auto advance = [&](size_t to) {
    for (; pos < to; ++pos) {
      if (s[pos] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
  };
  while (pos < s.size()) {
    size_t open = s.find("{{", pos);
    if (open == std::string::npos) open = s.size();
    if (open > pos) out.tags.push_back({Kind::text, "", line, column, open - pos});
    advance(open);
    if (open == s.size()) break;
    Location at{src.file, line, column};
    bool triple = open + 2 < s.size() && s[open + 2] == '{';
    size_t start = open + 2 + (triple ? 1 : 0);
    std::string_view end = triple ? "}}}" : "}}";
    size_t close = s.find(end, start);
    if (close == std::string::npos)
      throw InputError(at, fmt::format("unclosed tag: '{}' without '{}'", triple ? "{{{" : "{{", end));
    std::string contents(trim(std::string_view(s).substr(start, close - start)));
    Tag tag{Kind::variable, contents, line, column, 0};
    if (!triple && !contents.empty()) {
      char sigil = contents.front();
      bool has_sigil = true;
      switch (sigil) {
        case '#': tag.kind = Kind::section; break;
        case '^': tag.kind = Kind::inverted; break;
        case '/': tag.kind = Kind::close; break;
        case '>': tag.kind = Kind::partial; break;
        case '&': tag.kind = Kind::variable; break;
        case '!': advance(close + end.size()); continue;  // a comment
        case '=': throw InputError(at, "set-delimiter tags ({{=<% %>=}}) are not supported in kiln templates");
        default: has_sigil = false;
      }
      if (has_sigil) tag.name = std::string(trim(std::string_view(contents).substr(1)));
    }
    if (tag.name.empty()) throw InputError(at, "empty tag: a tag names a value, a section or a partial");
    if (!std::all_of(tag.name.begin(), tag.name.end(), name_char))
      throw InputError(at, fmt::format("{} is not a tag name (letters, digits, '_', '-', '.')", grammar::quoted(tag.name)));
    out.tags.push_back(std::move(tag));
    advance(close + end.size());
  }
  return out;
}

std::string describe(const Tag& t) {
  switch (t.kind) {
    case Kind::section: return "{{#" + t.name + "}}";
    case Kind::inverted: return "{{^" + t.name + "}}";
    case Kind::close: return "{{/" + t.name + "}}";
    case Kind::partial: return "{{> " + t.name + "}}";
    default: return "{{" + t.name + "}}";
  }
}

class Walker {
 public:
  Walker(const std::map<std::string, Tokens>& partials, const TemplateLimits& limits, const mus::data* data,
         const mus::data* empty_item)
      : partials_(partials), limits_(limits), empty_item_(empty_item) {
    if (data) context_.push_back(data);
  }

  size_t walk_template(const Tokens& t) {
    size_t i = 0;
    return walk(t, i, nullptr);
  }

  // A partial on its own, as if included: it counts in its own chain.
  size_t walk_partial(const std::string& name, const Tokens& t) {
    chain_.push_back(name);
    size_t size = walk_template(t);
    chain_.pop_back();
    return size;
  }

 private:
  Location at(const Tokens& t, const Tag& tag) const { return {t.file, tag.line, tag.column}; }

  // kainjow's lookup: "." is the innermost context; a plain name is looked
  // up from the innermost context outwards; "a.b" likewise, part by part.
  const mus::data* lookup(const std::string& name) const {
    if (name == ".") return context_.back();
    std::vector<std::string_view> parts = split(name, '.');
    for (auto it = context_.rbegin(); it != context_.rend(); ++it) {
      const mus::data* var = *it;
      for (std::string_view part : parts) {
        var = var->get(std::string(part));
        if (!var) break;
      }
      if (var) return var;
    }
    return nullptr;
  }

  const mus::data* resolve(const Tokens& t, const Tag& tag) const {
    if (context_.empty()) return nullptr;  // structure only
    if (const mus::data* var = lookup(tag.name); var && !var->is_partial()) return var;
    throw InputError(at(t, tag), fmt::format("{} names no template value (templates/README.md lists them)", describe(tag)));
  }

  void add(size_t& total, size_t more, const Tokens& t, const Tag& tag) const {
    total += more;
    if (total > limits_.max_output)
      throw InputError(at(t, tag), fmt::format("{} would render more than {} bytes (nested list sections or partials)",
                                               describe(tag), limits_.max_output));
  }

  // Walks tags from i until the close of `open` (or the end); returns an
  // upper estimate of the bytes rendered. Recursion follows section and
  // partial nesting, both limited before descending.
  size_t walk(const Tokens& t, size_t& i, const Tag* open) {
    size_t total = 0;
    for (; i < t.tags.size(); ++i) {
      const Tag& tag = t.tags[i];
      if (++work_ > limits_.max_work)
        throw InputError(at(t, tag), "the template expands too much (partials and sections multiply); simplify it");
      switch (tag.kind) {
        case Kind::text: add(total, tag.bytes, t, tag); break;
        case Kind::variable: {
          const mus::data* var = resolve(t, tag);
          if (var && var->is_string()) add(total, var->string_value().size(), t, tag);
          break;
        }
        case Kind::close:
          if (!open) throw InputError(at(t, tag), fmt::format("{} closes no open section", describe(tag)));
          if (tag.name != open->name)
            throw InputError(at(t, tag), fmt::format("{} does not match {} opened at {}:{}", describe(tag), describe(*open),
                                                     open->line, open->column));
          return total;
        case Kind::section:
        case Kind::inverted: add(total, section(t, i), t, tag); break;
        case Kind::partial: add(total, partial(t, tag), t, tag); break;
      }
    }
    if (open)
      throw InputError({t.file, open->line, open->column}, fmt::format("{} is never closed", describe(*open)));
    return total;
  }

  // One section: its body walked once, in the context the first item (or
  // the value) gives, its size multiplied by the times it renders.
  size_t section(const Tokens& t, size_t& i) {
    const Tag& tag = t.tags[i];
    if (++depth_ > limits_.max_section_depth)
      throw InputError(at(t, tag), fmt::format("sections nest deeper than {}", limits_.max_section_depth));
    const mus::data* var = resolve(t, tag);
    size_t times = 1;
    const mus::data* pushed = nullptr;
    if (var && tag.kind == Kind::section) {
      if (var->is_list()) {
        times = var->list_value().size();
        pushed = times ? &var->list_value().front() : empty_item_;
      } else if (var->is_false()) {
        times = 0;
      } else {
        pushed = var;
      }
    }
    if (pushed) context_.push_back(pushed);
    size_t body = walk(t, ++i, &tag);
    if (pushed) context_.pop_back();
    --depth_;
    if (times > 1 && body > limits_.max_output / times)
      throw InputError(at(t, tag), fmt::format("{} would render more than {} bytes ({} items)", describe(tag),
                                               limits_.max_output, times));
    return times * body;
  }

  size_t partial(const Tokens& t, const Tag& tag) {
    auto it = partials_.find(tag.name);
    if (it == partials_.end()) {
      std::vector<std::string> names;
      for (const auto& [name, _] : partials_) names.push_back(name);
      throw InputError(at(t, tag), fmt::format("unknown partial '{}' (templates/partials/ has: {})", tag.name,
                                               names.empty() ? "none" : join(names, ", ")));
    }
    if (std::find(chain_.begin(), chain_.end(), tag.name) != chain_.end()) {
      std::vector<std::string> cycle = chain_;
      cycle.push_back(tag.name);
      throw InputError(at(t, tag), fmt::format("partial '{}' includes itself ({})", tag.name, join(cycle, " -> ")));
    }
    if (chain_.size() >= limits_.max_partial_depth)
      throw InputError(at(t, tag), fmt::format("partials nest deeper than {}", limits_.max_partial_depth));
    return walk_partial(tag.name, it->second);
  }

  const std::map<std::string, Tokens>& partials_;
  const TemplateLimits& limits_;
  const mus::data* empty_item_;
  std::vector<const mus::data*> context_;  // innermost last
  std::vector<std::string> chain_;         // partials being walked
  size_t depth_ = 0;
  size_t work_ = 0;
};

void check(const TemplateSource& main, const std::map<std::string, TemplateSource>& partials,
           const mus::data* data, const mus::data* empty_item, const TemplateLimits& limits) {
  std::map<std::string, Tokens> tokens;
  for (const auto& [name, src] : partials) tokens.emplace(name, tokenize(src));
  // Every partial on its own (sections close inside the file that opens
  // them: kainjow parses each partial as a template of its own) ...
  if (!data)
    for (const auto& [name, t] : tokens) Walker(tokens, limits, nullptr, nullptr).walk_partial(name, t);
  // ... and the entry, partials expanded where it includes them.
  Walker w(tokens, limits, data, empty_item);
  w.walk_template(tokenize(main));
}

}  // namespace

void check_template(const TemplateSource& main, const std::map<std::string, TemplateSource>& partials,
                    const TemplateLimits& limits) {
  check(main, partials, nullptr, nullptr, limits);
}

void check_template(const TemplateSource& main, const std::map<std::string, TemplateSource>& partials,
                    const mus::data& data, const mus::data& empty_item, const TemplateLimits& limits) {
  check(main, partials, &data, &empty_item, limits);
}

}  // namespace kiln::render::detail
