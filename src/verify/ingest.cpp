// kiln verify --ingest: smoke-unit results produced elsewhere (a Kubernetes
// pod's log, a CI job, a plain `podman run`) taken into the ledger, only for
// the image ids and the suite hash kiln expects.
#include <algorithm>
#include <fstream>

#include <fmt/format.h>

#include "state/ledger.h"
#include "util/select.h"
#include "util/text.h"
#include "verify/internal.h"
#include "verify/smoke_unit.h"

namespace kiln::verify {

namespace {

// combination id -> the image id its last build made: the ledger first (an
// ingest may run where the images were never pulled), else the engine.
std::map<std::string, std::string> expected_images(const plan::Plan& p, const Options& o) {
  std::map<std::string, std::string> out;
  state::Ledger ledger(o.state_dir + "/state.db");
  for (const auto& cs : ledger.combos(p.matrix_name))
    if (cs.final_build && cs.final_build->status == state::BuildStatus::built && !cs.final_build->image_id.empty())
      out[cs.combo_id] = cs.final_build->image_id;
  for (const auto& c : p.combos) {
    if (c.status != plan::Status::valid || out.count(c.id) || o.runners.empty()) continue;
    try {
      if (auto info = engine::Client(o.runners.front().endpoint).inspect_image(render::local_image(p, c.id)))
        out[c.id] = info->id;
    } catch (const std::exception&) {  // no engine here: the ledger is all there is
    }
  }
  return out;
}

IngestResult ingest_one(const std::string& file, const plan::Plan& p, const std::map<std::string, std::string>& images,
                        const Options& o) {
  IngestResult res;
  res.file = file;
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(read_file(file));
  } catch (const std::exception& e) {
    res.unreadable = true;
    res.reason = fmt::format("not a JSON document: {}", e.what());
    return res;
  }
  UnitResult r;
  try {
    r = read_unit_result(doc);
  } catch (const std::invalid_argument& e) {
    res.reason = e.what();
    return res;
  }
  res.image_id = r.image_id;
  auto it = std::find_if(images.begin(), images.end(), [&](const auto& kv) { return kv.second == r.image_id; });
  std::string expected = it == images.end() ? "" : it->second;
  if (it != images.end()) res.combo = it->first;
  if (!r.image_id.empty() && it == images.end()) {
    res.reason = fmt::format("it names image {}, which is no built combination of {} (a rebuilt image needs a new run)",
                             r.image_id, p.matrix_name);
    return res;
  }
  detail::AcceptedUnit a = detail::accept_unit(doc, r, expected, o.suite_hash);
  if (!a.refused.empty()) {
    res.reason = a.refused;
    return res;
  }
  if (!o.only.empty() && !selected(res.combo, o.only)) {
    res.reason = fmt::format("combination {} is not selected (--only)", res.combo);
    return res;
  }
  Placement where = r.placement;
  if (where.scheduler.empty()) where.scheduler = "ingest";
  // A result that does not name its runner is filed under what it ran on.
  if (where.runner.empty())
    where.runner = fmt::format("ingest-{}x{}", where.gpu_class.empty() ? "nogpu" : where.gpu_class, where.gpu_count);
  res.accepted = true;
  res.status = a.status;
  res.placement = where;
  a.detail["ingested_from"] = file;
  if (r.exit_code == 3)
    a.problems.push_back(fmt::format("the unit ran on {} ({}) without a usable GPU: never a pass", where.node, where.scheduler));
  record_gpu_verdict(o.state_dir, r.image_id, res.status, where, r.suite_hash, a.detail, a.problems);
  return res;
}

}  // namespace

namespace detail {

AcceptedUnit accept_unit(const nlohmann::json& doc, const UnitResult& r, const std::string& expected_image_id,
                         const std::string& suite_hash) {
  AcceptedUnit a;
  a.result = r;
  if (auto why = unit_result_problem(r, expected_image_id, suite_hash); !why.empty()) {
    a.refused = why;
    return a;
  }
  a.status = unit_status_word(r.exit_code);
  a.detail["unit"] = doc;
  // The kiln-smoke report at the top level, as an engine runner's check has it.
  if (doc.contains("programs") && doc["programs"].contains("kiln-smoke") && doc["programs"]["kiln-smoke"].is_object() &&
      doc["programs"]["kiln-smoke"].contains("report") && doc["programs"]["kiln-smoke"]["report"].is_object())
    for (const auto& [k, v] : doc["programs"]["kiln-smoke"]["report"].items()) a.detail[k] = v;
  a.detail["summary"] = smoke_summary(a.detail);
  a.problems = r.problems;
  return a;
}

}  // namespace detail

std::vector<IngestResult> ingest_results(const plan::Plan& p, const render::Renderer& renderer, const Options& options,
                                         const std::vector<std::string>& files) {
  Options o = options;
  o.suite_hash = current_suite_hash(o, renderer);
  auto images = expected_images(p, o);
  std::vector<IngestResult> out;
  for (const auto& f : files) out.push_back(ingest_one(f, p, images, o));
  return out;
}

nlohmann::json to_json(const std::vector<IngestResult>& results) {
  nlohmann::json arr = nlohmann::json::array();
  size_t accepted = 0;
  for (const auto& r : results) {
    accepted += r.accepted;
    nlohmann::json j{{"file", r.file}, {"accepted", r.accepted}};
    j["combination"] = r.combo.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.combo);
    j["image_id"] = r.image_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.image_id);
    if (r.accepted) {
      j["status"] = r.status;
      j["placement"] = placement_json(r.placement);
    } else {
      j["reason"] = r.reason;
    }
    arr.push_back(j);
  }
  return {{"schema", "kiln.ingest/v1"}, {"accepted", accepted}, {"rejected", results.size() - accepted}, {"results", arr}};
}

}  // namespace kiln::verify
