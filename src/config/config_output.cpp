// `kiln config`: the effective settings for a matrix, each with the place it
// came from, so a user sees which file to edit.
#include <fmt/format.h>

#include "config/config.h"
#include "util/table.h"

namespace kiln::config {

namespace {

std::string origin(const Location& at) { return at.file.empty() ? "default" : at.str(); }

nlohmann::json setting(const Setting& s) { return {{"value", s.value}, {"from", origin(s.from)}}; }

std::string helper_text(const Setting& s) {
  return s.value.empty() ? "none (the Docker config: credHelpers, credsStore, auths)" : "docker-credential-" + s.value;
}

std::string config_line(const Effective& e) {
  if (e.source.path.empty())
    return e.source.how == "--no-config" ? "none (--no-config)" : "none (no kiln.toml upward, no ~/.config/kiln/config.toml)";
  std::string line = fmt::format("{} ({})", e.source.path, e.source.how);
  if (!e.used) line += fmt::format("; not used: use_config = false at {}", e.opted_out.str());
  return line;
}

}  // namespace

std::string to_table(const matrix::Matrix& m, const Effective& e) {
  Table rows({"SETTING", "VALUE", "FROM"});
  rows.add_row({"state_dir", e.state_dir.value, origin(e.state_dir.from)});
  rows.add_row({"registry.url", e.url.value.empty() ? "none (local names; promote refuses)" : e.url.value, origin(e.url.from)});
  rows.add_row({"registry.repository", e.repository.value, origin(e.repository.from)});
  rows.add_row({"registry.insecure", e.insecure.value, origin(e.insecure.from)});
  rows.add_row({"registry.credential_helper", helper_text(e.credential_helper), origin(e.credential_helper.from)});
  for (size_t i = 0; i < m.runners.size() && i < e.runners.size(); ++i) {
    const matrix::Runner& r = m.runners[i];
    std::string what = fmt::format("{} {} gpu={}", r.engine.empty() ? "DOCKER_HOST" : r.engine, matrix::to_string(r.backend), matrix::to_string(r.gpu));
    for (const auto& c : r.gpu_classes) what += " " + c;
    std::string from = origin(e.runners[i].from);
    if (e.runners[i].replaces) from += fmt::format(" (replaces {})", e.runners[i].replaces->str());
    rows.add_row({"runners." + r.name, what, from});
  }
  std::string out = fmt::format("matrix: {}\nconfig: {}\n\n", e.matrix_path, config_line(e)) + rows.str();
  if (m.runners.empty()) out += "(no runners: build and verify use one \"local\" runner on DOCKER_HOST, without GPUs)\n";
  return out;
}

nlohmann::json to_json(const matrix::Matrix& m, const Effective& e) {
  nlohmann::json runners = nlohmann::json::array();
  for (size_t i = 0; i < m.runners.size() && i < e.runners.size(); ++i) {
    const matrix::Runner& r = m.runners[i];
    nlohmann::json j{{"name", r.name}, {"engine", r.engine}, {"backend", matrix::to_string(r.backend)}, {"gpu", matrix::to_string(r.gpu)},
                     {"gpu_classes", r.gpu_classes}, {"from", origin(e.runners[i].from)}};
    if (e.runners[i].replaces) j["replaces"] = e.runners[i].replaces->str();
    runners.push_back(j);
  }
  nlohmann::json config = nullptr;
  if (!e.source.path.empty()) {
    config = {{"path", e.source.path}, {"found_by", e.source.how}, {"used", e.used}};
    if (!e.used) config["opted_out_at"] = e.opted_out.str();
  }
  return {{"schema", "kiln.config/v1"},
          {"matrix", e.matrix_path},
          {"config", config},
          {"state_dir", setting(e.state_dir)},
          {"registry", {{"url", setting(e.url)}, {"repository", setting(e.repository)}, {"insecure", setting(e.insecure)},
                        {"credential_helper", setting(e.credential_helper)}}},
          {"runners", runners}};
}

}  // namespace kiln::config
