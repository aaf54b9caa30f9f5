// marketplace.cpp: offers requests, pushes, ban emulation and the stats they feed.
#include "marketplace.hpp"

#include <cstdio>

namespace demper_mock {

namespace {

constexpr std::string_view kOffersPrefix = "/yml/offer-view/offers/";
constexpr std::string_view kPushPath = "/pricefeed/upload/merchant/process";

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

Reply method_not_allowed() {
    Reply reply = error_reply(405, "Method Not Allowed");
    reply.headers.emplace_back("Allow", "POST");
    return reply;
}

// read_page_field reads `limit` or `page` from an offers body; absent or null keeps `value`.
bool read_page_field(const JsonValue& body, std::string_view key, int64_t& value) {
    const JsonValue* field = body.find(key);
    if (field == nullptr || field->type == JsonValue::Type::null) return true;
    auto number = field->as_int();
    if (!number) return false;
    value = *number;
    return true;
}

// cookie_value finds `name` in a Cookie header ("a=1; b=2").
std::optional<std::string_view> cookie_value(std::string_view cookie, std::string_view name) {
    while (!cookie.empty()) {
        size_t end = cookie.find(';');
        std::string_view pair = cookie.substr(0, end);
        while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
        size_t equals = pair.find('=');
        if (equals != std::string_view::npos && pair.substr(0, equals) == name) {
            return pair.substr(equals + 1);
        }
        if (end == std::string_view::npos) break;
        cookie.remove_prefix(end + 1);
    }
    return std::nullopt;
}

template <typename Key>
void append_counts(std::string& out, const std::map<Key, uint64_t>& counts) {
    out += '{';
    bool first = true;
    for (const auto& [key, count] : counts) {
        if (!first) out += ',';
        first = false;
        out += '"' + std::to_string(key) + "\":" + std::to_string(count);
    }
    out += '}';
}

}  // namespace

Reply Marketplace::handle(const HttpRequest& request, const Arrival& arrival) {
    if (starts_with(request.path, kOffersPrefix)) {
        std::string product = request.path.substr(kOffersPrefix.size());
        if (!product.empty() && product.find('/') == std::string::npos) {
            return handle_offers(request, arrival, product);
        }
    }
    if (request.path == kPushPath) return handle_push(request, arrival);
    return error_reply(404, "Not Found");
}

Reply Marketplace::handle_offers(const HttpRequest& request, const Arrival& arrival,
                                 const std::string& product) {
    ++stats_.offer_requests;
    if (egress_banned(arrival)) return error_reply(egress_ban_.status, "Access denied");
    if (request.method != "POST") return method_not_allowed();
    Reply reply = offers_answer(request, product);
    if (auto fault = faults_.take(product)) return apply_fault(*fault, std::move(reply));
    return reply;
}

// egress_banned counts an offers request against its egress and says whether the egress is banned.
bool Marketplace::egress_banned(const Arrival& arrival) {
    EgressState& egress = egresses_[arrival.egress_port];
    egress.max_per_second =
        std::max(egress.max_per_second, egress.last_second.record(arrival.at_ms, 1000));
    if (!egress_ban_.enabled) return false;
    BanTracker::Verdict verdict = egress.ban.admit(arrival.at_ms, egress_ban_.rule);
    if (verdict == BanTracker::Verdict::ban_started) {
        ++stats_.bans;
        log_.ban(arrival.unix_time, arrival.egress_port, "egress", egress_ban_.status,
                 egress_ban_.rule.ban_ms);
    }
    return verdict != BanTracker::Verdict::allowed;
}

Reply Marketplace::offers_answer(const HttpRequest& request, const std::string& product) const {
    int64_t limit = kDefaultOffersLimit;
    int64_t page = 0;
    if (!request.body.empty()) {  // an empty body means all defaults
        auto body = parse_json(request.body);
        if (!body || !body->is_object())
            return error_reply(400, "request body is not a JSON object");
        if (!read_page_field(*body, "limit", limit) || !read_page_field(*body, "page", page)) {
            return error_reply(400, "limit and page must be integers");
        }
    }
    if (limit < 1 || limit > static_cast<int64_t>(kMaxOffersLimit)) {
        return error_reply(400, "limit must be between 1 and 64");
    }
    if (page < 0) return error_reply(400, "page must not be negative");
    OfferBook scratch;
    const OfferBook& book = catalogue_.book_of(product, scratch);
    return json_reply(
        200, render_offers_page(book, static_cast<size_t>(limit), static_cast<size_t>(page)));
}

Reply Marketplace::handle_push(const HttpRequest& request, const Arrival& arrival) {
    ++stats_.push_requests;
    if (request.method != "POST") return method_not_allowed();
    auto body = parse_json(request.body);
    const JsonValue* uid = body ? body->find("merchantUid") : nullptr;
    auto merchant_uid = uid ? uid->as_text() : std::nullopt;
    if (!merchant_uid || merchant_uid->empty()) return error_reply(400, "merchantUid is required");

    // The limit is bound to the merchant account, whatever the egress: proxies do not help.
    BanRule rule{push_limits_.limit_rps, 1000, push_limits_.ban_ms};
    BanTracker::Verdict verdict = push_bans_[*merchant_uid].admit(arrival.at_ms, rule);
    if (verdict == BanTracker::Verdict::ban_started) {
        ++stats_.push_bans;
        log_.ban(arrival.unix_time, arrival.egress_port, "merchant:" + *merchant_uid, 429,
                 rule.ban_ms);
    }
    if (verdict != BanTracker::Verdict::allowed) return error_reply(429, "Too Many Requests");
    if (!session_matches(*merchant_uid, request.cookie)) return error_reply(401, "session expired");

    const JsonValue* sku = body->find("sku");
    const JsonValue* price = body->find("price");
    if (sku == nullptr || !sku->as_text() || price == nullptr || !price->as_int()) {
        return error_reply(400, "sku (string) and price (integer) are required");
    }
    Push push{arrival.unix_time, *merchant_uid, *sku->as_text(), "", *price->as_int(), "[]"};
    if (const JsonValue* model = body->find("model"); model && model->as_text())
        push.model = *model->as_text();
    if (const JsonValue* cities = body->find("cityPrices")) {
        push.city_prices_json.clear();
        append_json(push.city_prices_json, *cities);
    }
    pushes_.push_back(std::move(push));
    return json_reply(200, "{\"id\":\"job-" + std::to_string(next_job_++) + "\"}");
}

bool Marketplace::session_matches(const std::string& merchant_uid,
                                  const std::string& cookie) const {
    auto it = sessions_.find(merchant_uid);
    if (it == sessions_.end() || it->second.expired) return false;
    auto session = cookie_value(cookie, "mc-session");
    auto sid = cookie_value(cookie, "mc-sid");
    return session && sid && *session == it->second.session && *sid == it->second.sid;
}

void Marketplace::record_reply(std::string_view method, std::string_view path,
                               const Arrival& arrival, int status, size_t wire_bytes) {
    ++stats_.requests;
    ++stats_.by_status[status];
    ++stats_.by_egress[arrival.egress_port];
    log_.request(arrival.unix_time, arrival.egress_port, method, path, status, wire_bytes);
}

void Marketplace::set_egress_ban(const EgressBanRule& rule) {
    egress_ban_ = rule;
    for (auto& [port, egress] : egresses_)
        egress.ban.clear();  // a new rule starts from a clean slate
}

std::string Marketplace::stats_json() const {
    std::string out = "{\"requests\":" + std::to_string(stats_.requests);
    out += ",\"offer_requests\":" + std::to_string(stats_.offer_requests);
    out += ",\"push_requests\":" + std::to_string(stats_.push_requests);
    out += ",\"by_status\":";
    append_counts(out, stats_.by_status);
    out += ",\"by_egress\":";
    append_counts(out, stats_.by_egress);
    out += ",\"bans\":" + std::to_string(stats_.bans);
    out += ",\"push_bans\":" + std::to_string(stats_.push_bans);
    std::map<uint16_t, uint64_t> max_per_second;
    for (const auto& [port, egress] : egresses_) max_per_second[port] = egress.max_per_second;
    out += ",\"max_rps_window\":";
    append_counts(out, max_per_second);
    out += ",\"pushes\":" + std::to_string(pushes_.size()) + "}";
    return out;
}

std::string Marketplace::pushes_json() const {
    std::string out = "{\"pushes\":[";
    char time[32];
    for (size_t i = 0; i < pushes_.size(); ++i) {
        const Push& push = pushes_[i];
        if (i) out += ',';
        std::snprintf(time, sizeof time, "%.6f", push.unix_time);
        out += "{\"t\":";
        out += time;
        out += ",\"merchantUid\":";
        append_json_string(out, push.merchant_uid);
        out += ",\"sku\":";
        append_json_string(out, push.sku);
        out += ",\"model\":";
        append_json_string(out, push.model);
        out += ",\"price\":" + std::to_string(push.price);
        out += ",\"cityPrices\":" + push.city_prices_json + "}";
    }
    out += "]}";
    return out;
}

void Marketplace::reset() {
    faults_.clear();
    egress_ban_ = EgressBanRule{};
    push_limits_ = PushLimits{};
    egresses_.clear();
    push_bans_.clear();
    pushes_.clear();
    next_job_ = 1;
    stats_ = Stats{};
}

}  // namespace demper_mock
