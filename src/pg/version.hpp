// version.hpp: the extension version this library belongs to. It is written once, as
// demper.control's default_version; both builds (Makefile, CMakeLists.txt) read it from there and
// pass it as DEMPER_VERSION, so the library and the SQL scripts it is installed with cannot
// disagree.
#pragma once

#ifndef DEMPER_VERSION
#error "DEMPER_VERSION is not defined: build with the Makefile or CMakeLists.txt, which pass demper.control's default_version"
#endif

namespace demper::pg {

// The extension version whose schema this library's SQL uses.
constexpr const char* kExtensionVersion = DEMPER_VERSION;

}  // namespace demper::pg
