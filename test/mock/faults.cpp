// faults.cpp: parsing fault requests and distorting answers.
#include "faults.hpp"

#include <algorithm>

namespace demper_mock {

namespace {

struct ModeName {
    FaultMode mode;
    const char* name;
};

constexpr ModeName kModeNames[] = {
    {FaultMode::none, "none"},           {FaultMode::latency, "latency"},
    {FaultMode::status, "status"},       {FaultMode::html, "html"},
    {FaultMode::truncated, "truncated"}, {FaultMode::stall_after_headers, "stall_after_headers"},
    {FaultMode::huge, "huge"},           {FaultMode::slow_body, "slow_body"},
    {FaultMode::redirect, "redirect"},   {FaultMode::garbage, "garbage"},
    {FaultMode::body, "body"},
};

const char* mode_name(FaultMode mode) {
    for (const auto& entry : kModeNames) {
        if (entry.mode == mode) return entry.name;
    }
    return "none";
}

// What a bot-protection page looks like to a client that expected JSON: status 200, HTML.
constexpr const char* kAntiBotPage =
    "<!DOCTYPE html><html lang=\"ru\"><head><meta charset=\"utf-8\"><title>Just a moment...</title>"
    "</head><body><h1>Checking your browser before accessing kaspi.kz</h1>"
    "<noscript>Enable JavaScript and cookies to continue</noscript></body></html>";

// Not JSON, and not UTF-8 either: a stray BOM-like pair, a NUL, a lone continuation byte, an
// overlong sequence and an encoded surrogate.
constexpr char kGarbage[] =
    "\xff\xfe\x00{\"offers\":[\x80 garbage \xc0\xaf\xed\xa0\x80 <<<\x01\x02";

bool read_unsigned(const JsonValue& document, std::string_view key, uint64_t& out,
                   std::string& error) {
    if (read_unsigned_member(document, key, out)) return true;
    error = std::string(key) + " must be a non-negative integer";
    return false;
}

bool read_text(const JsonValue& document, std::string_view key, std::string& out,
               std::string& error) {
    const JsonValue* value = document.find(key);
    if (value == nullptr) return true;
    if (value->type != JsonValue::Type::string) {
        error = std::string(key) + " must be a string";
        return false;
    }
    out = value->text;
    return true;
}

// header_safe drops CR and LF so a test's header value cannot split the response head.
std::string header_safe(std::string value) {
    value.erase(
        std::remove_if(value.begin(), value.end(), [](char c) { return c == '\r' || c == '\n'; }),
        value.end());
    return value;
}

bool read_mode(const JsonValue& document, FaultMode& mode, std::string& error) {
    const JsonValue* value = document.find("mode");
    if (value == nullptr || value->type != JsonValue::Type::string) {
        error =
            "mode is required (none, latency, status, html, truncated, stall_after_headers, huge, "
            "slow_body, redirect, garbage, body)";
        return false;
    }
    for (const auto& entry : kModeNames) {
        if (value->text == entry.name) {
            mode = entry.mode;
            return true;
        }
    }
    error = "unknown mode: " + value->text;
    return false;
}

bool read_fault_fields(const JsonValue& document, Fault& fault, std::string& error) {
    uint64_t status = static_cast<uint64_t>(fault.status);
    uint64_t size_bytes = fault.size_bytes;
    uint64_t count = 0;
    std::string retry_after;
    if (!read_mode(document, fault.mode, error) ||
        !read_unsigned(document, "latency_ms", fault.latency_ms, error) ||
        !read_unsigned(document, "status", status, error) ||
        !read_unsigned(document, "size_bytes", size_bytes, error) ||
        !read_unsigned(document, "bytes_per_sec", fault.bytes_per_sec, error) ||
        !read_unsigned(document, "count", count, error) ||
        !read_text(document, "location", fault.location, error) ||
        !read_text(document, "body", fault.body, error) ||
        !read_text(document, "retry_after", retry_after, error)) {
        return false;
    }
    if (status < 100 || status > 999) {
        error = "status must be between 100 and 999";
        return false;
    }
    if (document.find("count") != nullptr && count == 0) {
        error = "count must be positive (omit it for a fault that lasts until cleared)";
        return false;
    }
    if (size_bytes > kMaxBodyBytes) {
        error = "size_bytes is at most " + std::to_string(kMaxBodyBytes);
        return false;
    }
    fault.status = static_cast<int>(status);
    fault.size_bytes = static_cast<size_t>(size_bytes);
    fault.location = header_safe(fault.location);
    if (document.find("retry_after") != nullptr) fault.retry_after = header_safe(retry_after);
    if (document.find("count") != nullptr) fault.remaining = static_cast<int64_t>(count);
    return true;
}

// pad_json grows a JSON object body to `size_bytes` with an extra string field at its front.
std::string pad_json(const std::string& body, size_t size_bytes) {
    constexpr std::string_view kField = "{\"padding\":\"\",";
    if (body.size() < 2 || body.front() != '{' || body.size() + kField.size() - 1 >= size_bytes) {
        return body;
    }
    size_t padding = size_bytes - body.size() - (kField.size() - 1);
    std::string out;
    out.reserve(size_bytes);
    out += "{\"padding\":\"";
    out.append(padding, 'x');
    out += "\",";
    out.append(body, 1, std::string::npos);
    return out;
}

}  // namespace

std::optional<FaultRequest> fault_from_json(const JsonValue& document, std::string& error) {
    if (!document.is_object()) {
        error = "body must be a JSON object";
        return std::nullopt;
    }
    FaultRequest request;
    if (const JsonValue* product = document.find("product")) {
        auto code = product->as_text();
        if (!code || code->empty()) {
            error = "product must be a non-empty string";
            return std::nullopt;
        }
        request.product = *code;
    }
    if (!read_fault_fields(document, request.fault, error)) return std::nullopt;
    return request;
}

Reply apply_fault(const Fault& fault, Reply normal) {
    Reply reply;
    switch (fault.mode) {
        case FaultMode::none:
        case FaultMode::latency:
            reply = std::move(normal);
            break;
        case FaultMode::status:
            reply = error_reply(fault.status, "mock fault: status " + std::to_string(fault.status));
            if (fault.retry_after) reply.headers.emplace_back("Retry-After", *fault.retry_after);
            break;
        case FaultMode::html:
            reply.content_type = "text/html; charset=utf-8";
            reply.body = kAntiBotPage;
            break;
        case FaultMode::truncated:
            reply = std::move(normal);
            reply.body.resize(reply.body.size() / 2);
            break;
        case FaultMode::stall_after_headers:
            reply = std::move(normal);
            reply.delivery = Delivery::stall_after_headers;  // announces 1000 bytes, sends none
            break;
        case FaultMode::huge:
            reply = std::move(normal);
            reply.body = pad_json(reply.body, fault.size_bytes);
            break;
        case FaultMode::slow_body:
            reply = std::move(normal);
            reply.delivery = Delivery::drip;
            reply.drip_bytes_per_sec = std::max<uint64_t>(fault.bytes_per_sec, 1);
            break;
        case FaultMode::redirect:
            reply.status = 302;
            reply.content_type = "text/plain";
            reply.headers.emplace_back("Location", fault.location);
            break;
        case FaultMode::garbage:
            reply.body.assign(kGarbage, sizeof kGarbage - 1);  // sizeof: the NUL inside counts
            break;
        case FaultMode::body:
            reply.body = fault.body;
            break;
    }
    reply.delay_ms = fault.latency_ms;
    return reply;
}

void FaultTable::set(const FaultRequest& request) {
    bool clears = request.fault.mode == FaultMode::none;
    if (request.product) {
        if (clears) {
            by_product_.erase(*request.product);
        } else {
            by_product_[*request.product] = request.fault;
        }
    } else if (clears) {
        global_.reset();
    } else {
        global_ = request.fault;
    }
}

void FaultTable::clear() {
    global_.reset();
    by_product_.clear();
}

std::optional<Fault> FaultTable::take(const std::string& product) {
    if (!global_ && by_product_.empty()) return std::nullopt;  // the common case, kept cheap
    auto it = by_product_.find(product);
    bool own = it != by_product_.end();
    if (!own && !global_) return std::nullopt;
    Fault& active = own ? it->second : *global_;
    Fault taken = active;
    if (active.remaining > 0 && --active.remaining == 0) {  // the last of its `count` requests
        if (own) {
            by_product_.erase(it);
        } else {
            global_.reset();
        }
    }
    return taken;
}

std::string FaultTable::describe() const {
    auto append_fault = [](std::string& out, const Fault& fault) {
        out += "{\"mode\":\"";
        out += mode_name(fault.mode);
        out += "\",\"latency_ms\":" + std::to_string(fault.latency_ms);
        out += ",\"remaining\":" + std::to_string(fault.remaining) + "}";
    };
    std::string out = "{\"global\":";
    if (global_) {
        append_fault(out, *global_);
    } else {
        out += "null";
    }
    out += ",\"products\":{";
    bool first = true;
    for (const auto& [product, fault] : by_product_) {
        if (!first) out += ',';
        first = false;
        append_json_string(out, product);
        out += ':';
        append_fault(out, fault);
    }
    out += "}}";
    return out;
}

}  // namespace demper_mock
