// worker.hpp: the demper background worker (worker.cpp): registered from _PG_init, one per slot
// of demper.workers, each running the loop of claim, fetch, decide, apply and publish over the
// products of demper.database.
#pragma once

namespace demper::pg {

// register_workers registers demper.workers background workers with the postmaster (called from
// _PG_init while shared_preload_libraries is being processed).
void register_workers();

}  // namespace demper::pg
