// faults.hpp: the ways the mock misbehaves on purpose, set through POST /_mock/fault.
//
// A *fault* replaces or distorts the answer to an offers request: an error status, an anti-bot HTML
// page, a truncated, huge, dripped, stalled or garbage body, a redirect, or any exact body a test
// wants to send. A fault is set for one product or globally; a product's own fault wins over the
// global one. With `count` it applies to that many matching requests and then clears itself (retry
// tests).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "http_message.hpp"
#include "json.hpp"

namespace demper_mock {

enum class FaultMode {
    none,
    latency,
    status,
    html,
    truncated,
    stall_after_headers,
    huge,
    slow_body,
    redirect,
    garbage,
    body,
};

struct Fault {
    FaultMode mode = FaultMode::none;
    uint64_t latency_ms = 0;  // combines with every mode
    int status = 503;
    std::optional<std::string> retry_after;
    size_t size_bytes = 1 << 20;
    uint64_t bytes_per_sec = 100;
    std::string location = "https://kaspi.kz/";
    std::string body;
    int64_t remaining = -1;  // requests left before the fault clears itself; -1 = until cleared
};

// FaultRequest is a parsed POST /_mock/fault: which product (none = global) and what fault.
struct FaultRequest {
    std::optional<std::string> product;
    Fault fault;
};

// fault_from_json parses a POST /_mock/fault body; nullopt and `error` if it is invalid.
std::optional<FaultRequest> fault_from_json(const JsonValue& document, std::string& error);

// apply_fault turns the answer the product would normally get into the faulted answer.
Reply apply_fault(const Fault& fault, Reply normal);

class FaultTable {
  public:
    // set installs a fault (mode none clears it) for a product, or globally.
    void set(const FaultRequest& request);
    void clear();
    // take returns the fault that applies to this product's request, counting it against `count`.
    std::optional<Fault> take(const std::string& product);
    // describe returns the active faults as JSON, for GET /_mock/faults.
    std::string describe() const;

  private:
    std::optional<Fault> global_;
    std::unordered_map<std::string, Fault> by_product_;
};

}  // namespace demper_mock
