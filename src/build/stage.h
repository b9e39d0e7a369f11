// What one worker needs to run one stage (run_build.cpp).
#pragma once
#include <functional>

#include "build/internal.h"
#include "state/ledger.h"

namespace kiln::build::detail {

struct StageContext {
  const Node& node;
  const StageResult* parent_result;  // set when node.parent >= 0
  const EngineSpec& engine;
  const Options& options;
  std::string matrix;
  std::string catalog_version;
  std::function<void(const Event&)> emit;
  int attempt = 1;           // of this stage in this run (ledger builds.attempt)
  std::string retry_reason;  // why it runs again ("" the first time)
};

// Never throws for a build problem: those are the stage's failure. Ledger
// errors propagate (the ledger is kiln's own state; losing it is fatal).
StageResult run_stage(const StageContext& ctx, state::Ledger& ledger);

}  // namespace kiln::build::detail
