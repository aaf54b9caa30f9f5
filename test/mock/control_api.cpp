// control_api.cpp: routing and handling of /_mock/ requests.
#include "control_api.hpp"

namespace demper_mock {

namespace {

constexpr std::string_view kOk = "{\"ok\":true}";
constexpr uint64_t kMaxStatus = 999;

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

Reply ok() { return json_reply(200, std::string(kOk)); }

Reply not_an_object() { return error_reply(400, "body must be a JSON object"); }

// body_object parses a control request body; an empty body counts as {}.
std::optional<JsonValue> body_object(const HttpRequest& request) {
    if (request.body.empty()) {
        JsonValue empty;
        empty.type = JsonValue::Type::object;
        return empty;
    }
    auto body = parse_json(request.body);
    if (!body || !body->is_object()) return std::nullopt;
    return body;
}

bool read_bool_member(const JsonValue& object, std::string_view key, bool& out) {
    const JsonValue* value = object.find(key);
    if (value == nullptr) return true;
    if (value->type != JsonValue::Type::boolean) return false;
    out = value->boolean;
    return true;
}

bool read_text_member(const JsonValue& object, std::string_view key, std::string& out) {
    const JsonValue* value = object.find(key);
    if (value == nullptr) return true;
    if (value->type != JsonValue::Type::string) return false;
    out = value->text;
    return true;
}

}  // namespace

Reply ControlApi::handle(const HttpRequest& request) {
    Reply reply = route(request, std::string_view(request.path).substr(kControlPrefix.size()));
    reply.recorded = false;
    return reply;
}

Reply ControlApi::route(const HttpRequest& request, std::string_view what) {
    const std::string& method = request.method;
    if (starts_with(what, "offers/") && what.size() > 7)
        return offers(request, std::string(what.substr(7)));
    if (method == "GET") {
        if (what == "stats") return json_reply(200, marketplace_.stats_json());
        if (what == "pushes") return json_reply(200, marketplace_.pushes_json());
        if (what == "faults") return json_reply(200, marketplace_.faults().describe());
    } else if (method == "POST") {
        if (what == "reset") {
            marketplace_.reset();
            return ok();
        }
        if (what == "log/flush") {
            log_.flush();
            return ok();
        }
        if (what == "fault") return set_fault(request);
        if (what == "ban") return set_ban(request);
        if (what == "push_limits") return set_push_limits(request);
    } else if (method == "PUT" && starts_with(what, "merchant/") && what.size() > 9) {
        return set_merchant(request, std::string(what.substr(9)));
    }
    return error_reply(404, "unknown control endpoint or method (see test/mock/README.md)");
}

Reply ControlApi::offers(const HttpRequest& request, const std::string& code) {
    if (request.method == "GET") {
        OfferBook scratch;
        const OfferBook& book = catalogue_.book_of(code, scratch);
        return json_reply(200, render_offers_page(book, std::max<size_t>(book.size(), 1), 0));
    }
    if (request.method != "PUT") return error_reply(405, "use GET or PUT");
    auto body = parse_json(request.body);
    if (!body || !body->is_object()) return not_an_object();
    std::string error;
    auto book = book_from_json(*body, code, error);
    if (!book) return error_reply(400, error);
    catalogue_.replace(code, std::move(*book));
    return ok();
}

Reply ControlApi::set_fault(const HttpRequest& request) {
    auto body = body_object(request);
    if (!body) return not_an_object();
    std::string error;
    auto fault = fault_from_json(*body, error);
    if (!fault) return error_reply(400, error);
    marketplace_.faults().set(*fault);
    return ok();
}

// set_ban configures ban emulation; fields left out take their defaults, and "enabled" defaults to
// true.
Reply ControlApi::set_ban(const HttpRequest& request) {
    auto body = body_object(request);
    if (!body) return not_an_object();
    EgressBanRule rule;
    rule.enabled = true;
    uint64_t threshold = rule.rule.threshold;
    uint64_t status = static_cast<uint64_t>(rule.status);
    if (!read_bool_member(*body, "enabled", rule.enabled) ||
        !read_unsigned_member(*body, "threshold", threshold) ||
        !read_unsigned_member(*body, "window_ms", rule.rule.window_ms) ||
        !read_unsigned_member(*body, "ban_ms", rule.rule.ban_ms) ||
        !read_unsigned_member(*body, "status", status) || status < 100 || status > kMaxStatus) {
        return error_reply(
            400, "expected enabled (bool), threshold, window_ms, ban_ms, status (integers)");
    }
    rule.rule.threshold = static_cast<size_t>(threshold);
    rule.status = static_cast<int>(status);
    marketplace_.set_egress_ban(rule);
    return ok();
}

// set_push_limits configures the push limit; fields left out take their defaults.
Reply ControlApi::set_push_limits(const HttpRequest& request) {
    auto body = body_object(request);
    if (!body) return not_an_object();
    PushLimits limits;
    uint64_t limit_rps = limits.limit_rps;
    if (!read_unsigned_member(*body, "push_limit_rps", limit_rps) ||
        !read_unsigned_member(*body, "push_ban_ms", limits.ban_ms)) {
        return error_reply(400, "expected push_limit_rps and push_ban_ms (non-negative integers)");
    }
    limits.limit_rps = static_cast<size_t>(limit_rps);
    marketplace_.set_push_limits(limits);
    return ok();
}

// set_merchant updates a merchant's cabinet session; fields left out keep their current values.
Reply ControlApi::set_merchant(const HttpRequest& request, const std::string& merchant_uid) {
    auto body = body_object(request);
    if (!body) return not_an_object();
    MerchantSession updated = marketplace_.merchant_session(merchant_uid);
    if (!read_text_member(*body, "session", updated.session) ||
        !read_text_member(*body, "sid", updated.sid) ||
        !read_bool_member(*body, "expired", updated.expired)) {
        return error_reply(400, "expected session, sid (strings) and expired (bool)");
    }
    marketplace_.merchant_session(merchant_uid) = updated;
    return ok();
}

}  // namespace demper_mock
