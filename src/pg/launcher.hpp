// launcher.hpp: the demper launcher (launcher.cpp), the background worker that waits for
// demper.database and starts the workers.
#pragma once

namespace demper::pg {

// register_launcher registers the launcher with the postmaster (called from _PG_init).
void register_launcher();

}  // namespace demper::pg
