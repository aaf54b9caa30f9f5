// worker.hpp: the background worker that checks products (claim, fetch, decide, apply).
#pragma once

namespace demper::pg {

// register_workers registers the worker with the postmaster (called from _PG_init).
void register_workers();

}  // namespace demper::pg
