// Private to src/state: the schema and the identity of the running process.
#pragma once
#include <string>
#include <string_view>

#include "state/sqlite.h"

namespace kiln::state::detail {

// Checks the file is a kiln ledger this kiln understands, sets WAL,
// synchronous=NORMAL and foreign keys, and migrates to the current schema.
void open_schema(Connection& conn);

// "host:boot_id:pid:start_time" of this process: unique across reboots and
// pid reuse, so recover() can tell whether the process that started a build
// still runs.
std::string this_process_owner();

enum class OwnerState { alive, dead, elsewhere };
// alive: that process runs on this machine; dead: it does not (or the
// machine rebooted since); elsewhere: another host (or container), unknown.
OwnerState owner_state(std::string_view owner);

}  // namespace kiln::state::detail
