// kiln completion bash|zsh: shell completion written from the verbs' own
// CLI11 definitions, so it never drifts from the flags (CMake installs both).
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "util/text.h"

namespace kiln::cli {

namespace {

struct Flag {
  std::string name;     // "--format"
  std::string help;
  bool takes_value = false;
  bool repeatable = false;
  std::vector<std::string> choices;  // from an IsMember check: "{table,json}"
};

struct Verb {
  std::string name, help;
  std::vector<Flag> flags;
};

std::vector<std::string> choices_of(const CLI::Option* o) {
  std::string type = o->get_type_name();
  auto open = type.find('{'), close = type.find('}');
  if (open == std::string::npos || close == std::string::npos || close < open) return {};
  std::vector<std::string> out;
  for (auto c : split(std::string_view(type).substr(open + 1, close - open - 1), ',')) out.emplace_back(trim(c));
  return out;
}

std::vector<Flag> flags_of(const CLI::App* app) {
  std::vector<Flag> out;
  for (const CLI::Option* o : app->get_options()) {
    if (!o->nonpositional()) continue;
    for (const auto& l : o->get_lnames())
      out.push_back({"--" + l, o->get_description(), o->get_type_size_max() > 0 && o->get_expected_max() > 0,
                     o->get_expected_max() > 1, choices_of(o)});
    for (const auto& s : o->get_snames())
      out.push_back({"-" + s, o->get_description(), o->get_type_size_max() > 0 && o->get_expected_max() > 0,
                     o->get_expected_max() > 1, choices_of(o)});
  }
  return out;
}

std::vector<Verb> verbs_of(const CLI::App& app) {
  std::vector<Verb> out;
  for (const CLI::App* sub : app.get_subcommands({})) {
    if (sub->get_group().empty()) continue;  // hidden
    Verb v{sub->get_name(), sub->get_description(), flags_of(sub)};
    for (const CLI::App* inner : sub->get_subcommands({}))  // catalog check
      for (auto& f : flags_of(inner)) v.flags.push_back(std::move(f));
    for (const CLI::App* inner : sub->get_subcommands({})) v.flags.push_back({inner->get_name(), inner->get_description()});
    out.push_back(std::move(v));
  }
  return out;
}

std::string bash(const CLI::App& app) {
  const auto verbs = verbs_of(app);
  std::vector<std::string> names;
  for (const auto& v : verbs) names.push_back(v.name);
  std::string cases, values;
  for (const auto& v : verbs) {
    std::vector<std::string> words;
    for (const auto& f : v.flags) {
      words.push_back(f.name);
      if (!f.choices.empty()) values += fmt::format("    {}:{}) COMPREPLY=($(compgen -W \"{}\" -- \"$cur\")); return ;;\n", v.name, f.name, join(f.choices, " "));
    }
    cases += fmt::format("    {}) opts=\"{}\" ;;\n", v.name, join(words, " "));
  }
  return fmt::format(R"(# bash completion for kiln, written by `kiln completion bash` from its flag definitions.
_kiln() {{
  local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}} verb="" i opts=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${{COMP_WORDS[i]}} in
      --data-dir) ((i++)) ;;
      -*) ;;
      *) verb=${{COMP_WORDS[i]}}; break ;;
    esac
  done
  if [[ -z $verb ]]; then
    COMPREPLY=($(compgen -W "{} --data-dir --quiet --version --help" -- "$cur"))
    return
  fi
  case $verb:$prev in
{}  esac
  case $verb in
{}  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}}
complete -o filenames -o bashdefault -F _kiln kiln
)",
                     join(names, " "), values, cases);
}

std::string zsh_text(std::string s) {  // inside '...[...]' of an _arguments spec
  std::string out;
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else if (c == '[' || c == ']' || c == ':') out += ' ';
    else out += c;
  }
  return out;
}

std::string zsh(const CLI::App& app) {
  const auto verbs = verbs_of(app);
  std::string described, cases;
  for (const auto& v : verbs) {
    described += fmt::format("    '{}:{}'\n", v.name, zsh_text(v.help));
    std::string specs;
    for (const auto& f : v.flags) {
      if (!f.name.starts_with("-")) continue;
      std::string value = !f.takes_value ? "" : f.choices.empty() ? ":value:_files" : ":value:(" + join(f.choices, " ") + ")";
      specs += fmt::format(" \\\n        '{}{}[{}]{}'", f.repeatable ? "*" : "", f.name, zsh_text(f.help), value);
    }
    cases += fmt::format("    {})\n      _arguments -s{} \\\n        '*:file:_files' ;;\n", v.name, specs);
  }
  return fmt::format(R"(#compdef kiln
# zsh completion for kiln, written by `kiln completion zsh` from its flag definitions.
_kiln() {{
  local -a verbs
  verbs=(
{}  )
  if (( CURRENT == 2 )); then
    _describe 'kiln verb' verbs
    return
  fi
  local verb=$words[2]
  shift words
  (( CURRENT-- ))
  case $verb in
{}  esac
}}
_kiln "$@"
)",
                     described, cases);
}

}  // namespace

void register_completion(CLI::App& app) {
  auto shell = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand("completion", "Print a bash or zsh completion script (from these flag definitions)");
  sub->add_option("shell", *shell, "bash or zsh")->required()->check(CLI::IsMember({"bash", "zsh"}));
  set_action(sub, [&app, shell] {
    std::cout << (*shell == "bash" ? bash(app) : zsh(app));
    return 0;
  });
}

}  // namespace kiln::cli
