// version.hpp: the extension version this library's SQL is written for (demper.control's
// default_version, passed in by the build as DEMPER_VERSION).
#pragma once

#ifndef DEMPER_VERSION
#define DEMPER_VERSION "0.6.0"
#endif

namespace demper::pg {
constexpr const char* kExtensionVersion = DEMPER_VERSION;
}  // namespace demper::pg
