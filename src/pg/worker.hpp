// worker.hpp: the demper background worker (worker.cpp). The launcher (launcher.cpp) starts one
// per slot of demper.workers, through the entry point demper_worker_main(slot); each runs the loop
// of claim, fetch, decide, apply and publish over the products of demper.database.
#pragma once
