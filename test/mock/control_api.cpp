// control_api.cpp: routing and handling of /_mock/ requests.
#include "control_api.hpp"

#include <stdexcept>

#include "event_loop.hpp"

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
    if (starts_with(what, "cabinet/") && what.size() > 8) return cabinet(request, what.substr(8));
    if (what == "market" || starts_with(what, "market/")) return market(request, what.substr(6));
    if (method == "GET") {
        if (what == "stats") return json_reply(200, marketplace_.stats_json());
        if (what == "pushes") return json_reply(200, marketplace_.pushes_json());
        if (what == "last_offers_request") {
            std::string out = "{\"head\":";
            append_json_string(out, marketplace_.last_offers_head());
            out += "}";
            return json_reply(200, out);
        }
        if (what == "faults") return json_reply(200, marketplace_.faults_json());
    } else if (method == "POST") {
        if (what == "reset") {
            marketplace_.reset();
            switches_ = ProtocolSwitches{};
            return ok();
        }
        if (what == "log/flush") {
            log_.flush();
            return ok();
        }
        if (what == "fault") return set_fault(request);
        if (what == "ban") return set_ban(request);
        if (what == "push_limits") return set_push_limits(request);
        if (what == "jobs") return set_jobs(request);
        if (what == "http2") return set_http2(request);
        if (what == "hold") return hold_offers(request);
        if (what == "release") return release_offers(request);
    } else if (method == "PUT" && starts_with(what, "merchant/") && what.size() > 9) {
        return set_merchant(request, std::string(what.substr(9)));
    }
    return error_reply(404, "unknown control endpoint or method (see test/mock/README.md)");
}

Reply ControlApi::offers(const HttpRequest& request, const std::string& code) {
    if (request.method == "GET") {  // a read, never a check of a market product
        std::optional<OfferBook> market_book = marketplace_.market().book_for(code, now_ms());
        OfferBook scratch;
        const OfferBook& book = market_book ? *market_book : catalogue_.book_of(code, scratch);
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
    std::string endpoint = "offers";
    if (!read_text_member(*body, "endpoint", endpoint) ||
        (endpoint != "offers" && endpoint != "push"))
        return error_reply(400, "endpoint must be offers or push");
    std::string error;
    auto fault = fault_from_json(*body, error);
    if (!fault) return error_reply(400, error);
    if (endpoint == "offers") {
        marketplace_.faults().set(*fault);
        return ok();
    }
    // A push fault is keyed by sku (none: every push); it holds pushes or refuses them.
    std::string sku;
    if (body->find("product") != nullptr || !read_text_member(*body, "sku", sku) ||
        (body->find("sku") != nullptr && sku.empty()))
        return error_reply(400, "a push fault names a non-empty sku (or none), not a product");
    if (fault->fault.mode != FaultMode::none && fault->fault.mode != FaultMode::latency &&
        fault->fault.mode != FaultMode::status)
        return error_reply(400, "a push fault's mode is latency, status or none");
    fault->product.reset();
    if (body->find("sku") != nullptr) fault->product = sku;
    marketplace_.push_faults().set(*fault);
    return ok();
}

// hold_offers holds a product's offers requests until they are released.
Reply ControlApi::hold_offers(const HttpRequest& request) {
    auto body = body_object(request);
    if (!body) return not_an_object();
    std::string product;
    if (!read_text_member(*body, "product", product) || product.empty())
        return error_reply(400, "expected product (a non-empty string)");
    marketplace_.hold_offers(product);
    return ok();
}

// release_offers lets held offers requests go: one product's, or every product's without one.
Reply ControlApi::release_offers(const HttpRequest& request) {
    auto body = body_object(request);
    if (!body) return not_an_object();
    std::string product;
    bool keep_holding = false;
    if (!read_text_member(*body, "product", product) ||
        (body->find("product") != nullptr && product.empty()) ||
        !read_bool_member(*body, "keep_holding", keep_holding))
        return error_reply(400, "expected product (a non-empty string, or none) and keep_holding (bool)");
    std::optional<std::string> which;
    if (body->find("product") != nullptr) which = product;
    int64_t released = marketplace_.release_offers(which, keep_holding);
    return json_reply(200, "{\"ok\":true,\"released\":" + std::to_string(released) + "}");
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
    if (!update_session(*body, merchant_uid)) {
        return error_reply(400,
                           "expected session, sid (strings), expired (bool) and "
                           "expired_status (401 or 403)");
    }
    return ok();
}

// update_session applies session, sid, expired and expired_status from `body`, or nothing if one
// of them is invalid.
bool ControlApi::update_session(const JsonValue& body, const std::string& merchant_uid) {
    MerchantSession updated = marketplace_.merchant_session(merchant_uid);
    uint64_t expired_status = static_cast<uint64_t>(updated.expired_status);
    if (!read_text_member(body, "session", updated.session) ||
        !read_text_member(body, "sid", updated.sid) ||
        !read_bool_member(body, "expired", updated.expired) ||
        !read_unsigned_member(body, "expired_status", expired_status) ||
        (expired_status != 401 && expired_status != 403)) {
        return false;
    }
    updated.expired_status = static_cast<int>(expired_status);
    marketplace_.merchant_session(merchant_uid) = updated;
    return true;
}

// cabinet routes /_mock/cabinet/{uid}[/offers[/{sku}] | /synthetic | /fault].
Reply ControlApi::cabinet(const HttpRequest& request, std::string_view what) {
    size_t slash = what.find('/');
    std::string merchant_uid = percent_decode(what.substr(0, slash));
    std::string_view rest = slash == std::string_view::npos ? "" : what.substr(slash + 1);
    const std::string& method = request.method;
    if (merchant_uid.empty()) return error_reply(404, "no merchant uid in the path");
    if (rest.empty() && method == "GET") {
        cabinets_.settle(now_ms());
        return json_reply(
            200, cabinets_.state_json(merchant_uid, marketplace_.pushes_array(merchant_uid)));
    }
    if (rest.empty() && method == "PUT") return replace_cabinet(request, merchant_uid);
    if (rest == "offers" && method == "POST") return add_offers(request, merchant_uid);
    if (starts_with(rest, "offers/") && rest.size() > 7 && method == "PATCH")
        return edit_offer(request, merchant_uid, percent_decode(rest.substr(7)));
    if (rest == "synthetic" && method == "POST") return add_synthetic(request, merchant_uid);
    if (rest == "fault" && method == "POST") return set_cabinet_fault(request, merchant_uid);
    return error_reply(404, "unknown control endpoint or method (see test/mock/README.md)");
}

namespace {

// offers_from_body reads {"offers":[...]}; nullopt and `error` if any offer is invalid.
std::optional<std::vector<CabinetOffer>> offers_from_body(const JsonValue& body,
                                                          std::string& error) {
    const JsonValue* list = body.find("offers");
    std::vector<CabinetOffer> offers;
    if (list == nullptr) return offers;
    if (list->type != JsonValue::Type::array) {
        error = "offers must be an array";
        return std::nullopt;
    }
    for (const JsonValue& item : list->items) {
        auto offer = offer_from_json(item, error);
        if (!offer) return std::nullopt;
        offers.push_back(std::move(*offer));
    }
    return offers;
}

}  // namespace

// replace_cabinet sets a merchant's whole catalogue and, optionally, its session.
Reply ControlApi::replace_cabinet(const HttpRequest& request, const std::string& merchant_uid) {
    auto body = body_object(request);
    if (!body) return not_an_object();
    std::string error;
    auto offers = offers_from_body(*body, error);
    if (!offers) return error_reply(400, error);
    if (!update_session(*body, merchant_uid)) {
        return error_reply(400,
                           "expected session, sid (strings), expired (bool) and "
                           "expired_status (401 or 403)");
    }
    MerchantCabinet& target = cabinets_.cabinet(merchant_uid);
    target.clear();
    for (CabinetOffer& offer : *offers) target.upsert(std::move(offer));
    return ok();
}

Reply ControlApi::add_offers(const HttpRequest& request, const std::string& merchant_uid) {
    auto body = body_object(request);
    if (!body) return not_an_object();
    std::string error;
    auto offers = offers_from_body(*body, error);
    if (!offers) return error_reply(400, error);
    MerchantCabinet& target = cabinets_.cabinet(merchant_uid);
    for (CabinetOffer& offer : *offers) target.upsert(std::move(offer));
    return ok();
}

// edit_offer is what the seller changes by hand in the cabinet.
Reply ControlApi::edit_offer(const HttpRequest& request, const std::string& merchant_uid,
                             const std::string& sku) {
    auto body = body_object(request);
    if (!body) return not_an_object();
    cabinets_.settle(now_ms());  // a hand edit comes after every job already due
    MerchantCabinet* merchant = cabinets_.find(merchant_uid);
    CabinetOffer* offer = merchant ? merchant->find(sku) : nullptr;
    if (offer == nullptr) return error_reply(404, "no such offer in the cabinet");
    std::string error;
    if (!apply_hand_edit(*offer, *body, error)) return error_reply(400, error);
    merchant->changed();
    return ok();
}

Reply ControlApi::add_synthetic(const HttpRequest& request, const std::string& merchant_uid) {
    auto body = body_object(request);
    if (!body) return not_an_object();
    SyntheticCabinet spec;
    if (!read_unsigned_member(*body, "count", spec.count) ||
        !read_unsigned_member(*body, "first_code", spec.first_code) ||
        !read_unsigned_member(*body, "archived_every", spec.archived_every) ||
        spec.first_code == 0) {
        return error_reply(400, "expected count, first_code (positive), archived_every (integers)");
    }
    if (const JsonValue* cities = body->find("cities")) {
        spec.cities.clear();
        for (const JsonValue& city : cities->items) {
            if (city.type != JsonValue::Type::string || city.text.size() != 9)
                return error_reply(400, "cities must be an array of 9-digit city ids");
            spec.cities.push_back(city.text);
        }
        if (cities->type != JsonValue::Type::array || spec.cities.empty())
            return error_reply(400, "cities must be a non-empty array of 9-digit city ids");
    }
    try {
        cabinets_.add_synthetic(merchant_uid, spec);
    } catch (const std::invalid_argument& error) {
        return error_reply(400, error.what());
    }
    return ok();
}

// set_cabinet_fault distorts one page of the offer list, or one sku's details, with any fault mode.
Reply ControlApi::set_cabinet_fault(const HttpRequest& request, const std::string& merchant_uid) {
    auto body = body_object(request);
    if (!body) return not_an_object();
    std::string endpoint = "list";
    std::string sku;
    bool archived = false;
    uint64_t page = 0;
    if (!read_text_member(*body, "endpoint", endpoint) || !read_text_member(*body, "sku", sku) ||
        !read_bool_member(*body, "archived", archived) ||
        !read_unsigned_member(*body, "page", page) ||
        (endpoint != "list" && endpoint != "details") || (endpoint == "details" && sku.empty())) {
        return error_reply(400,
                           "expected endpoint \"list\" (with page, archived) or \"details\" "
                           "(with sku), and the fault fields of /_mock/fault");
    }
    std::string error;
    auto fault = fault_from_json(*body, error);
    if (!fault) return error_reply(400, error);
    fault->product = endpoint == "list" ? merchant_uid + "/list/" + (archived ? "false" : "true") +
                                              "/" + std::to_string(page)
                                        : merchant_uid + "/details/" + sku;
    marketplace_.cabinet_faults().set(*fault);
    return ok();
}

Reply ControlApi::set_jobs(const HttpRequest& request) {
    auto body = body_object(request);
    if (!body) return not_an_object();
    uint64_t delay_ms = cabinets_.job_delay_ms();
    bool finish_all = false;
    if (!read_unsigned_member(*body, "delay_ms", delay_ms) ||
        !read_bool_member(*body, "finish_all", finish_all)) {
        return error_reply(400, "expected delay_ms (a non-negative integer) and finish_all (bool)");
    }
    cabinets_.set_job_delay_ms(delay_ms);
    if (finish_all) cabinets_.settle(UINT64_MAX);
    return ok();
}

Reply ControlApi::set_http2(const HttpRequest& request) {
    auto body = body_object(request);
    if (!body) return not_an_object();
    bool refuse = true;
    if (!read_bool_member(*body, "refuse", refuse))
        return error_reply(400, "expected refuse (bool)");
    switches_.refuse_http2 = refuse;
    return ok();
}

// market routes /_mock/market[/catalogue | /summary | /reactions | /measure | /stop |
// /seller_prices | /timeline/{code}] (README.md, "Simulated market").
Reply ControlApi::market(const HttpRequest& request, std::string_view what) {
    SimulatedMarket& market = marketplace_.market();
    const std::string& method = request.method;
    const uint64_t now = now_ms();
    if (what.empty() && method == "GET") return json_reply(200, market.status_json(now));
    if (what.empty() && method == "POST") {
        auto body = body_object(request);
        if (!body) return not_an_object();
        std::string error;
        auto start = market_start_from_json(*body, error);
        if (!start) return error_reply(400, error);
        market.start(*start, now);
        return json_reply(200, market.status_json(now));
    }
    if (what == "/stop" && method == "POST") {
        market.stop();
        return ok();
    }
    if (!market.running()) return error_reply(409, "no market runs (POST /_mock/market first)");
    if (what == "/catalogue" && method == "GET") return json_reply(200, market.catalogue_json());
    if (what == "/summary" && method == "GET") return json_reply(200, market.summary_json(now));
    if (what == "/reactions" && method == "GET") return json_reply(200, market.reactions_json(now));
    if (what == "/measure" && method == "POST") {
        market.start_measuring(now);
        return ok();
    }
    if (what == "/seller_prices" && method == "POST") {
        auto body = body_object(request);
        if (!body) return not_an_object();
        std::string error;
        if (!market.set_seller_prices(*body, now, error)) return error_reply(400, error);
        return ok();
    }
    if (starts_with(what, "/timeline/") && method == "GET") {
        auto timeline = market.timeline_json(percent_decode(what.substr(10)), now);
        if (!timeline) return error_reply(404, "not a product of the market");
        return json_reply(200, std::move(*timeline));
    }
    return error_reply(404, "unknown control endpoint or method (see test/mock/README.md)");
}

}  // namespace demper_mock
