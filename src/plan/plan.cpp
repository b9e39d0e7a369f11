// Expansion of a matrix into combinations: the cartesian product of its
// axes, plus [[include]] entries, minus [[exclude]] entries. Each one is
// then resolved against the catalog (resolve.cpp, targets.cpp).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <set>

#include <fmt/format.h>

#include "plan/internal.h"
#include "util/text.h"

namespace kiln::plan {

const char* to_string(Status s) { return s == Status::valid ? "valid" : "excluded"; }

size_t Plan::count(Status s) const {
  return static_cast<size_t>(std::count_if(combos.begin(), combos.end(), [&](const Combo& c) { return c.status == s; }));
}

const Combo* Plan::sibling(const Combo& c, std::string_view flavor) const {
  if (c.versions.flavor == flavor) return &c;
  auto axes = c.axes;
  axes["flavor"] = std::string(flavor);
  for (const auto& x : combos)
    if (x.axes == axes && x.status == Status::valid) return &x;
  return nullptr;
}

namespace {

using Axes = std::map<std::string, std::string>;

// Every value a user wrote must mean something to the catalog; report all
// unknown ones at their own positions before planning anything.
void check_value(const std::string& axis, const matrix::Value& v, const catalog::Catalog& c,
                 std::vector<Diagnostic>& diags) {
  auto fail = [&](std::string msg) { diags.push_back({v.where, std::move(msg)}); };
  if ((axis == "pytorch" || axis == "cuda") && v.text == "latest") return;
  if (axis == "pytorch") {
    auto ver = Version::parse(v.text);
    if (!ver) fail(fmt::format("pytorch \"{}\" is not a version", v.text));
    else if (!c.find_pytorch(*ver)) fail(fmt::format("unknown PyTorch version {} (the catalog knows {})", v.text, c.known_pytorch()));
  } else if (axis == "cuda") {
    auto ver = Version::parse(v.text);
    if (!ver) fail(fmt::format("cuda \"{}\" is not a version", v.text));
    else if (!c.find_cuda(*ver)) fail(fmt::format("unknown CUDA version {} (the catalog knows {})", v.text, c.known_cuda()));
  } else if (axis == "cudnn") {
    if (v.text == "none") return;
    auto ver = Version::parse(v.text);
    if (!ver) fail(fmt::format("cudnn \"{}\" is not a version (or \"none\")", v.text));
    else if (!c.find_cudnn(*ver) && !std::any_of(c.pytorch.begin(), c.pytorch.end(), [&](const auto& r) {
               return std::any_of(r.builds.begin(), r.builds.end(), [&](const auto& b) { return b.cudnn.matches(*ver); });
             }))
      fail(fmt::format("unknown cuDNN version {}", v.text));
  } else if (axis == "os") {
    if (!c.find_os(v.text)) fail(fmt::format("unknown os \"{}\" (known: {})", v.text, c.known_os()));
  } else if (axis == "python") {
    auto ver = Version::parse(v.text);
    if (!ver || ver->parts().size() != 2) fail(fmt::format("python \"{}\" must be MAJOR.MINOR, e.g. \"3.11\"", v.text));
  }
}

void check_values(const matrix::Matrix& m, const catalog::Catalog& c) {
  std::vector<Diagnostic> diags;
  for (const auto& axis : m.axes)
    for (const auto& v : axis.values) check_value(axis.name, v, c, diags);
  for (const auto& rule : m.include)
    for (const auto& [name, v] : rule.values) check_value(name, v, c, diags);
  for (const auto& t : m.targets)
    if (!c.resolve_gpu(t.text))
      diags.push_back({t.where, fmt::format("unknown GPU \"{}\": give a name the catalog knows (T4, A100, H100, ...) or a capability such as sm_90", t.text)});
  if (!diags.empty()) throw InputError(std::move(diags));
}

// Policy classes are matched against runner classes as written; a class
// no catalogued GPU has is a typo that would keep images from ever being
// verified (or a runner from ever serving).
void check_gpu_classes(const matrix::Matrix& m, const catalog::Catalog& c) {
  std::vector<Diagnostic> diags;
  for (const auto& v : m.gpu_classes_named) {
    auto cc = ComputeCapability::parse(v.text);
    if (cc && c.gpu_name(*cc).empty())
      diags.push_back({v.where, fmt::format("unknown GPU class \"{}\": no GPU in the catalog has compute capability {}",
                                            v.text, cc->str())});
  }
  if (!diags.empty()) throw InputError(std::move(diags));
}

// Each [[policy.override]] must decide the checks of some combination; one
// that matches none (or only ones an earlier override already took) is dead.
void check_overrides_used(const matrix::Matrix& m, const std::vector<Axes>& all) {
  std::vector<size_t> used(m.policy.overrides.size(), 0);
  for (const auto& a : all)
    for (size_t i = 0; i < m.policy.overrides.size(); ++i) {
      const auto& match = m.policy.overrides[i].match;
      bool hit = std::all_of(match.begin(), match.end(), [&](const auto& kv) {
        auto it = a.find(kv.first);
        return it != a.end() && it->second == kv.second.text;
      });
      if (hit) {
        ++used[i];
        break;
      }
    }
  std::vector<Diagnostic> diags;
  for (size_t i = 0; i < used.size(); ++i)
    if (!used[i])
      diags.push_back({m.policy.overrides[i].where,
                       fmt::format("[[policy.override]] #{} matches no combination (or only ones an earlier override takes); "
                                   "it would never apply", i + 1)});
  if (!diags.empty()) throw InputError(std::move(diags));
}

std::vector<Axes> cartesian(const matrix::Matrix& m) {
  std::vector<Axes> out{{}};
  for (const auto& axis : m.axes) {
    std::vector<Axes> next;
    for (const auto& partial : out)
      for (const auto& v : axis.values) {
        Axes a = partial;
        a[axis.name] = v.text;
        next.push_back(std::move(a));
      }
    out = std::move(next);
  }
  return out;
}

// An include names a whole combination; an axis it leaves out must have
// exactly one value to fill in.
Axes complete_include(const matrix::Rule& rule, const matrix::Matrix& m, std::vector<Diagnostic>& diags) {
  Axes a;
  for (const auto& [name, v] : rule.values) a[name] = v.text;
  for (const auto& axis : m.axes) {
    if (a.count(axis.name)) continue;
    if (axis.values.size() == 1) a[axis.name] = axis.values[0].text;
    else diags.push_back({rule.where, fmt::format("[[include]] #{} must give '{}' (the axis has several values)", rule.index, axis.name)});
  }
  for (const char* required : {"cuda", "os", "flavor"})
    if (!a.count(required)) diags.push_back({rule.where, fmt::format("[[include]] #{} must give '{}'", rule.index, required)});
  return a;
}

const matrix::Rule* matching_exclude(const Axes& a, const matrix::Matrix& m) {
  for (const auto& rule : m.exclude) {
    bool all = std::all_of(rule.values.begin(), rule.values.end(), [&](const auto& kv) {
      auto it = a.find(kv.first);
      return it != a.end() && it->second == kv.second.text;
    });
    if (all) return &rule;
  }
  return nullptr;
}

// The first [[policy.override]] whose values all match decides the checks.
matrix::Policy policy_for(const Axes& a, const matrix::Policy& base) {
  matrix::Policy p = base;
  p.overrides.clear();
  for (const auto& o : base.overrides) {
    bool all = std::all_of(o.match.begin(), o.match.end(), [&](const auto& kv) {
      auto it = a.find(kv.first);
      return it != a.end() && it->second == kv.second.text;
    });
    if (!all) continue;
    p.verify = o.verify;
    p.gpu_classes = o.gpu_classes;
    break;
  }
  return p;
}

std::string make_id(const Axes& a) {
  std::vector<std::string> parts;
  auto get = [&](const char* k) -> std::string {
    auto it = a.find(k);
    return it == a.end() ? "" : it->second;
  };
  if (!get("pytorch").empty()) parts.push_back("pytorch" + get("pytorch"));
  parts.push_back("cuda" + get("cuda"));
  if (!get("cudnn").empty() && get("cudnn") != "none") parts.push_back("cudnn" + get("cudnn"));
  parts.push_back(get("os"));
  if (!get("python").empty()) parts.push_back("py" + get("python"));
  parts.push_back(get("flavor"));
  // x86_64 ids stay as they were (the ledger keys on them); other platforms
  // of a platform axis are told apart by a suffix.
  if (!get("platform").empty() && get("platform") != "x86_64") parts.push_back(get("platform"));
  return join(parts, "-");
}

std::map<std::string, std::string> tag_vars(const Combo& combo) {
  const Versions& v = combo.versions;
  Version cuda = Version::must(v.cuda);
  std::map<std::string, std::string> vars{
      {"cuda", cuda.prefix(2).str()},   {"cuda_full", v.cuda},
      {"cuda_nodot", std::to_string(cuda.major()) + std::to_string(cuda.minor())},
      {"os", v.os},                     {"flavor", v.flavor},
      {"id", combo.id},                 {"platform", combo.platform}};
  if (!v.pytorch.empty()) {
    vars["pytorch"] = v.pytorch;
    vars["pytorch_short"] = Version::must(v.pytorch).prefix(2).str();
  }
  if (!v.cudnn.empty()) {
    vars["cudnn"] = v.cudnn;
    vars["cudnn_major"] = std::to_string(Version::must(v.cudnn).major());
  }
  if (!v.nccl.empty()) vars["nccl"] = v.nccl;
  if (!v.python.empty()) vars["python"] = v.python;
  return vars;
}

bool valid_tag(const std::string& tag) {
  if (tag.empty() || tag.size() > 128) return false;
  if (!std::isalnum(static_cast<unsigned char>(tag[0])) && tag[0] != '_') return false;
  return std::all_of(tag.begin(), tag.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '-';
  });
}

std::string image_repository(const matrix::Matrix& m) {
  std::string repo = m.registry.repository.empty() ? "kiln/" + m.name : m.registry.repository;
  return m.registry.url.empty() ? repo : m.registry.url + "/" + repo;
}

bool platform_siblings(const Combo& a, const Combo& b) {
  if (a.platform == b.platform) return false;
  auto x = a.axes, y = b.axes;
  x.erase("platform");
  y.erase("platform");
  return x == y;
}

void render_tags(std::vector<Combo>& combos, const matrix::Matrix& m) {
  std::vector<Diagnostic> diags;
  std::map<std::string, const Combo*> owner;  // tag -> the combination it names first
  std::string repo = image_repository(m);
  for (auto& combo : combos) {
    if (combo.status != Status::valid) continue;
    auto vars = tag_vars(combo);
    for (const auto& tmpl : m.tag_templates) {
      std::vector<std::string> unknown;
      std::string tag = expand_braces(tmpl.text, vars, &unknown);
      for (const auto& name : unknown)
        diags.push_back({tmpl.where, fmt::format("tag template \"{}\" uses {{{}}}, which combination {} does not have "
                                                 "(known: pytorch, pytorch_short, cuda, cuda_full, cuda_nodot, cudnn, "
                                                 "cudnn_major, nccl, python, os, flavor, platform, id)", tmpl.text, name, combo.id)});
      if (!unknown.empty()) continue;
      if (!valid_tag(tag)) {
        diags.push_back({tmpl.where, fmt::format("tag template \"{}\" gives \"{}\" for {}, which is not a valid image tag", tmpl.text, tag, combo.id)});
        continue;
      }
      auto [it, fresh] = owner.emplace(tag, &combo);
      // Combinations differing only in platform share their tags: the tag
      // names an OCI index of their images (promote writes it).
      if (!fresh && it->second->id != combo.id && !platform_siblings(*it->second, combo))
        diags.push_back({tmpl.where, fmt::format("tag \"{}\" would name both {} and {}; add an axis that tells them apart "
                                                 "(for example {{os}} or {{python}}) to the tag template", tag, it->second->id, combo.id)});
      combo.tags.push_back(repo + ":" + tag);
    }
    if (diags.size() > 20) break;  // one template error repeats per combination
  }
  if (!diags.empty()) throw InputError(std::move(diags));
}

// "latest" on the pytorch or cuda axis: the newest release the catalog
// knows, as "X.Y" -- rewritten everywhere the matrix names values, so rules
// written with "latest" still match.
bool resolve_latest(matrix::Matrix& m, const catalog::Catalog& c) {
  auto newest = [](const auto& items) {
    Version best;
    for (const auto& i : items)
      if (i.version > best) best = i.version;
    return best.prefix(2).str();
  };
  std::map<std::string, std::string> latest{{"pytorch", newest(c.pytorch)}, {"cuda", newest(c.cuda)}};
  bool asked = false;
  auto rewrite = [&](const std::string& axis, std::string& text) {
    auto it = latest.find(axis);
    if (it == latest.end() || text != "latest") return;
    text = it->second;
    asked = true;
  };
  for (auto& axis : m.axes)
    for (auto& v : axis.values) rewrite(axis.name, v.text);
  for (auto* rules : {&m.include, &m.exclude})
    for (auto& rule : *rules)
      for (auto& [name, v] : rule.values) rewrite(name, v.text);
  for (auto& o : m.policy.overrides)
    for (auto& [name, v] : o.match) rewrite(name, v.text);
  return asked;
}

// Days since 1970-01-01 of "YYYY-MM-DD" (H. Hinnant's days_from_civil);
// nullopt when malformed.
std::optional<long> days_of(const std::string& date) {
  int y = 0;
  unsigned mo = 0, d = 0;
  char rest = 0;
  if (date.size() != 10 || std::sscanf(date.c_str(), "%4d-%2u-%2u%c", &y, &mo, &d, &rest) != 3 || mo < 1 || mo > 12 ||
      d < 1 || d > 31)
    return std::nullopt;
  y -= mo <= 2;
  const long era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long>(doe) - 719468;
}

std::string today_or(std::string today) {
  if (!today.empty()) return today;
  if (const char* env = std::getenv("KILN_TODAY"); env && *env) return env;
  return utc_now("%Y-%m-%d");
}

// A matrix asking for the newest release gets only what the catalog knew
// when its facts were collected: say so once that is old.
void staleness(Plan& plan, const catalog::Catalog& c, bool asked_latest, const std::string& today) {
  if (!asked_latest) return;
  if (c.collected.empty()) {
    plan.warnings.push_back("the matrix asks for \"latest\" but the catalog records no collection date: it may lag the newest releases");
    return;
  }
  auto now = days_of(today);
  if (!now) throw InputError({"KILN_TODAY"}, fmt::format("\"{}\" is not a date YYYY-MM-DD", today));
  auto then = days_of(c.collected);
  if (!then || *now - *then <= kStaleAfterDays) return;
  plan.warnings.push_back(fmt::format("the matrix asks for \"latest\" but the catalog's facts were collected {} ({} days ago, "
                                      "over {}): newer PyTorch or CUDA releases may exist; refresh recipes/catalog",
                                      c.collected, *now - *then, kStaleAfterDays));
}

// eol.toml's dates for the combination: its nvidia/cuda base's tags (when
// CUDA comes from one) and its OS, past or within kEolWarnDays of today.
void end_of_life(Combo& combo, const catalog::Catalog& c, long today) {
  auto note = [&](const catalog::EndOfLife& e, const std::string& what, const std::string& after) {
    auto eol = days_of(e.eol);
    if (!eol || *eol - today > kEolWarnDays) return;
    EolNote n{e.kind, e.name, e.eol, today > *eol ? "past" : "soon", today > *eol ? today - *eol : *eol - today,
              e.provenance.inferred, ""};
    n.text = n.status == "past" ? fmt::format("{} past end of life since {} ({} days)", what, e.eol, n.days)
                                : fmt::format("{} reaches end of life on {} (in {} days)", what, e.eol, n.days);
    if (!e.removal.empty()) {
      auto removal = days_of(e.removal);
      bool gone = removal && today > *removal;
      n.text += fmt::format("; {} {} {}", after, gone ? "since" : "on", e.removal);
    }
    if (n.inferred) n.text += " (date inferred)";
    combo.end_of_life.push_back(std::move(n));
  };
  const std::string& full = combo.versions.cuda;  // "12.4.1" -> "12.4"
  const std::string minor = full.substr(0, full.find('.', full.find('.') + 1));
  if (combo.install.method == "nvidia-base")
    if (const auto* e = c.find_end_of_life("cuda", minor))
      note(*e, fmt::format("nvidia/cuda {} image tags are", minor), "deleted from Docker Hub and NGC");
  if (const auto* e = c.find_end_of_life("os", combo.versions.os))
    note(*e, fmt::format("{}'s regular security support is", combo.versions.os), "extended support ends");
}

}  // namespace

Plan make_plan(const matrix::Matrix& input, const catalog::Catalog& c, const Query& q, std::string today) {
  matrix::Matrix m = input;
  const bool asked_latest = resolve_latest(m, c);
  check_values(m, c);
  check_gpu_classes(m, c);
  Plan plan{m.name, m.path, c.version, c.collected, {}, q, m.policy, m.registry, m.user, m.uid, {}, m.cache, m.budget};
  plan.engine_labels = m.engine_labels;
  const std::string day = today_or(std::move(today));
  staleness(plan, c, asked_latest, day);
  const auto today_days = days_of(day);
  if (!today_days) throw InputError({"KILN_TODAY"}, fmt::format("\"{}\" is not a date YYYY-MM-DD", day));

  std::vector<Axes> all = cartesian(m);
  std::vector<Diagnostic> diags;
  for (const auto& rule : m.include) {
    Axes a = complete_include(rule, m, diags);
    if (std::find(all.begin(), all.end(), a) == all.end()) all.push_back(std::move(a));
  }
  if (!diags.empty()) throw InputError(std::move(diags));
  check_overrides_used(m, all);

  std::set<std::string> ids;
  for (const auto& axes : all) {
    Combo combo;
    combo.axes = axes;
    combo.platform = axes.count("platform") ? axes.at("platform") : m.platform;
    combo.id = make_id(axes);
    if (!ids.insert(combo.id).second) continue;
    combo.policy = policy_for(axes, m.policy);
    if (const matrix::Rule* rule = matching_exclude(axes, m)) {
      combo.status = Status::excluded;
      combo.rule = "matrix-exclude";
      combo.reason = fmt::format("excluded by [[exclude]] #{} at {}{}", rule->index, rule->where.str(),
                                 rule->reason.empty() ? "" : ": " + rule->reason);
    } else {
      detail::resolve(combo, m, c);
      if (combo.status == Status::valid) detail::resolve_targets(combo, m, c);
      if (combo.status == Status::valid) end_of_life(combo, c, *today_days);
    }
    if (!q.driver.empty() || !q.gpus.empty()) detail::answer_query(combo, q, c);
    plan.combos.push_back(std::move(combo));
  }
  render_tags(plan.combos, m);
  return plan;
}

}  // namespace kiln::plan
