// marketplace.cpp: offers requests, pushes, ban emulation and the stats they feed.
#include "marketplace.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace demper_mock {

namespace {

constexpr std::string_view kOffersPrefix = "/yml/offer-view/offers/";
constexpr std::string_view kPushPath = "/pricefeed/upload/merchant/process";
constexpr std::string_view kBatchPushPath = "/pricefeed/upload/merchant/process/process/batch";
constexpr std::string_view kJobPrefix = "/pricefeed/upload/merchant/job/";
constexpr std::string_view kListPath = "/bff/offer-view/list";
constexpr std::string_view kDetailsPath = "/bff/offer-view/details";
constexpr int64_t kDefaultListLimit = 10;
constexpr int64_t kMaxListLimit = 1000;

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

Reply method_not_allowed(const char* allowed = "POST") {
    Reply reply = error_reply(405, "Method Not Allowed");
    reply.headers.emplace_back("Allow", allowed);
    return reply;
}

// read_query_int reads an integer query parameter; absent keeps `value`.
bool read_query_int(const std::string& target, std::string_view name, int64_t& value) {
    auto text = query_param(target, name);
    if (!text) return true;
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    return !text->empty() && ec == std::errc() && end == text->data() + text->size();
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
    if (request.path == kPushPath) return handle_push(request, arrival, PushEndpoint::single);
    if (request.path == kBatchPushPath) return handle_push(request, arrival, PushEndpoint::batch);
    if (request.path == kListPath) return handle_list(request, arrival);
    if (request.path == kDetailsPath) return handle_details(request, arrival);
    if (starts_with(request.path, kJobPrefix) && request.path.size() > kJobPrefix.size())
        return handle_job(request, arrival, request.path.substr(kJobPrefix.size()));
    return error_reply(404, "Not Found");
}

Reply Marketplace::handle_offers(const HttpRequest& request, const Arrival& arrival,
                                 const std::string& product) {
    ++stats_.offer_requests;
    last_offers_head_ = request.head;
    if (egress_banned(arrival)) return error_reply(egress_ban_.status, "Access denied");
    if (request.method != "POST") return method_not_allowed();
    auto gate = offer_gates_.find(product);
    if (gate == offer_gates_.end()) return answer_offers(request, arrival, product);
    // Held until released: answered then, from the book and the faults as they are then.
    ++held_offers_[product];
    auto let_go = [this, product] {
        auto held = held_offers_.find(product);
        if (held != held_offers_.end() && --held->second <= 0) held_offers_.erase(held);
    };
    Reply reply;
    reply.hold = std::make_shared<Hold>();
    reply.hold->gate = gate->second;
    reply.hold->take = [this, request, product, let_go](const Arrival& taken) {
        let_go();
        return answer_offers(request, taken, product);
    };
    reply.hold->abandon = [this, let_go, path = request.path, method = request.method, arrival] {
        let_go();
        record_reply(method, path, arrival, 0, 0);
    };
    return reply;
}

void Marketplace::hold_offers(const std::string& product) {
    std::shared_ptr<Gate>& gate = offer_gates_[product];
    if (!gate) gate = std::make_shared<Gate>();
}

int64_t Marketplace::release_offers(const std::optional<std::string>& product, bool keep_holding) {
    int64_t released = 0;
    std::vector<std::shared_ptr<Gate>> opened;
    for (auto it = offer_gates_.begin(); it != offer_gates_.end();) {
        if (product && it->first != *product) {
            ++it;
            continue;
        }
        auto held = held_offers_.find(it->first);
        if (held != held_offers_.end()) released += held->second;
        opened.push_back(std::move(it->second));
        if (keep_holding) {
            it->second = std::make_shared<Gate>();  // later requests wait for the next release
            ++it;
        } else {
            it = offer_gates_.erase(it);
        }
    }
    for (const std::shared_ptr<Gate>& gate : opened) gate->open();
    return released;
}

// answer_offers answers an offers request as the product's book and faults are now.
Reply Marketplace::answer_offers(const HttpRequest& request, const Arrival& arrival,
                                 const std::string& product) {
    std::optional<OfferBook> market_book = market_.book_for(product, arrival.at_ms);
    OfferBook scratch;
    Reply reply =
        offers_answer(request, market_book ? *market_book : catalogue_.book_of(product, scratch));
    if (auto fault = faults_.take(product)) return apply_fault(*fault, std::move(reply));
    if (market_book && reply.status == 200) market_.checked(product, arrival.at_ms);
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

Reply Marketplace::offers_answer(const HttpRequest& request, const OfferBook& book) const {
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
    return json_reply(
        200, render_offers_page(book, static_cast<size_t>(limit), static_cast<size_t>(page)));
}

namespace {

// push_listings returns the listings ("<merchantUid>/<sku>") a push body names, as far as it
// names them: a body too malformed to name any is answered 400 when it is taken.
std::vector<std::string> push_listings(const std::string& body) {
    std::vector<std::string> listings;
    auto document = parse_json(body);
    if (!document) return listings;
    auto add = [&listings](const JsonValue& item) {
        if (!item.is_object()) return;
        const JsonValue* uid = item.find("merchantUid");
        const JsonValue* sku = item.find("sku");
        auto uid_text = uid ? uid->as_text() : std::nullopt;
        if (uid_text && sku && sku->type == JsonValue::Type::string)
            listings.push_back(*uid_text + "/" + sku->text);
    };
    if (document->type == JsonValue::Type::array) {
        for (const JsonValue& item : document->items) add(item);
    } else {
        add(*document);
    }
    return listings;
}

}  // namespace

// handle_push answers a push request. A push fault of one of its skus (else the global one)
// holds it for the fault's latency_ms before it is taken, or refuses it (mode status) without
// taking it; a push arriving while another push of the same listing is held is an overlap: two
// pushes of one listing in flight at once.
Reply Marketplace::handle_push(const HttpRequest& request, const Arrival& arrival,
                               PushEndpoint endpoint) {
    ++stats_.push_requests;
    if (request.method != "POST") return method_not_allowed();
    std::vector<std::string> listings = push_listings(request.body);
    for (const std::string& listing : listings) {
        auto held = held_pushes_.find(listing);
        if (held != held_pushes_.end() && held->second > 0) ++stats_.push_overlaps;
    }
    std::optional<Fault> fault;
    for (const std::string& listing : listings) {
        fault = push_faults_.take(listing.substr(listing.find('/') + 1));
        if (fault) break;
    }
    if (!fault && listings.empty()) fault = push_faults_.take("");
    if (!fault) return take_push(request, arrival, arrival.unix_time, endpoint);
    auto answer = [this, request, endpoint, refusal = *fault,
                   arrived = arrival.unix_time](const Arrival& taken) {
        if (refusal.mode == FaultMode::status) return apply_fault(refusal, Reply{});
        return take_push(request, taken, arrived, endpoint);
    };
    if (fault->latency_ms == 0) {
        Reply reply = answer(arrival);
        reply.delay_ms = 0;
        return reply;
    }
    for (const std::string& listing : listings) ++held_pushes_[listing];
    auto release = [this, listings] {
        for (const std::string& listing : listings) {
            auto held = held_pushes_.find(listing);
            if (held != held_pushes_.end() && --held->second <= 0) held_pushes_.erase(held);
        }
    };
    Reply reply;
    reply.delay_ms = fault->latency_ms;
    reply.hold = std::make_shared<Hold>();
    reply.hold->take = [answer, release](const Arrival& taken) {
        release();
        Reply taken_reply = answer(taken);
        taken_reply.delay_ms = 0;
        return taken_reply;
    };
    reply.hold->abandon = [this, release, path = request.path, method = request.method, arrival] {
        release();
        ++stats_.holds_abandoned;
        record_reply(method, path, arrival, 0, 0);
    };
    return reply;
}

// take_push takes one item (/process) or an array of them (batch): each becomes a job, answered
// {"id":..} or [{"id":..},...]. The body's shape is checked here; what the items do to the offers
// is decided when their jobs finish (cabinet.hpp).
Reply Marketplace::take_push(const HttpRequest& request, const Arrival& arrival, double arrived,
                             PushEndpoint endpoint) {
    auto body = parse_json(request.body);
    std::vector<const JsonValue*> items;
    if (body && endpoint == PushEndpoint::single && body->is_object()) {
        items.push_back(&*body);
    } else if (body && endpoint == PushEndpoint::batch && body->type == JsonValue::Type::array) {
        for (const JsonValue& item : body->items) items.push_back(&item);
    }
    bool objects = !items.empty() && std::all_of(items.begin(), items.end(),
                                                 [](const JsonValue* v) { return v->is_object(); });
    if (!objects) {
        return error_reply(400, endpoint == PushEndpoint::single
                                    ? "body must be a JSON object"
                                    : "body must be a non-empty JSON array of objects");
    }
    const JsonValue* uid = items[0]->find("merchantUid");
    auto merchant_uid = uid ? uid->as_text() : std::nullopt;
    if (!merchant_uid || merchant_uid->empty()) return error_reply(400, "merchantUid is required");
    for (const JsonValue* item : items) {
        const JsonValue* other = item->find("merchantUid");
        if (other == nullptr || other->as_text() != merchant_uid)
            return error_reply(400, "every item must have the same merchantUid");
    }

    // The limit is bound to the merchant account, whatever the egress: proxies do not help.
    BanRule rule{push_limits_.limit_rps, 1000, push_limits_.ban_ms};
    BanTracker::Verdict verdict = push_bans_[*merchant_uid].admit(arrival.at_ms, rule);
    if (verdict == BanTracker::Verdict::ban_started) {
        ++stats_.push_bans;
        log_.ban(arrival.unix_time, arrival.egress_port, "merchant:" + *merchant_uid, 429,
                 rule.ban_ms);
    }
    if (verdict != BanTracker::Verdict::allowed) return error_reply(429, "Too Many Requests");
    if (int refusal = login_refusal(*merchant_uid, request.cookie))
        return error_reply(refusal, "session expired");

    for (const JsonValue* item : items) {
        const JsonValue* sku = item->find("sku");
        if (sku == nullptr || sku->type != JsonValue::Type::string || sku->text.empty())
            return error_reply(400, "sku (string) is required");
    }
    std::string answer = endpoint == PushEndpoint::batch ? "[" : "";
    for (size_t i = 0; i < items.size(); ++i) {
        std::string job_id = cabinets_.submit(*merchant_uid, endpoint, *items[i], arrival.at_ms);
        record_push(*items[i], *merchant_uid, endpoint, job_id, arrival, arrived);
        market_.pushed(*merchant_uid, *items[i], arrival.at_ms);
        if (i) answer += ',';
        answer += "{\"id\":";
        append_json_string(answer, job_id);
        answer += '}';
    }
    if (endpoint == PushEndpoint::batch) answer += ']';
    return json_reply(200, std::move(answer));
}

void Marketplace::record_push(const JsonValue& item, const std::string& merchant_uid,
                              PushEndpoint endpoint, const std::string& job_id,
                              const Arrival& arrival, double arrived) {
    Push push{arrival.unix_time,
              arrived,
              merchant_uid,
              item.find("sku")->text,
              "",
              std::nullopt,
              "[]",
              endpoint,
              job_id,
              ""};
    if (const JsonValue* model = item.find("model"); model && model->as_text())
        push.model = *model->as_text();
    if (const JsonValue* price = item.find("price")) push.price = price->as_int();
    if (const JsonValue* cities = item.find("cityPrices")) {
        push.city_prices_json.clear();
        append_json(push.city_prices_json, *cities);
    }
    append_json(push.body, item);
    pushes_.push_back(std::move(push));
}

Reply Marketplace::handle_list(const HttpRequest& request, const Arrival& arrival) {
    ++stats_.cabinet_requests;
    if (request.method != "GET") return method_not_allowed("GET");
    auto merchant_uid = query_param(request.target, "m");
    if (!merchant_uid || merchant_uid->empty())
        return error_reply(400, "m (merchant uid) is required");
    if (int refusal = login_refusal(*merchant_uid, request.cookie))
        return error_reply(refusal, "session expired");
    int64_t page = 0;
    int64_t limit = kDefaultListLimit;
    auto live = query_param(request.target, "a").value_or("true");
    if (!read_query_int(request.target, "p", page) || !read_query_int(request.target, "l", limit) ||
        page < 0 || limit < 1 || limit > kMaxListLimit || (live != "true" && live != "false")) {
        return error_reply(400, "p must be a page number, l between 1 and 1000, a true or false");
    }
    cabinets_.settle(arrival.at_ms);
    Reply reply = json_reply(
        200, cabinets_.list_page_json(*merchant_uid, live == "true", static_cast<size_t>(page),
                                      static_cast<size_t>(limit)));
    if (auto fault =
            cabinet_faults_.take(*merchant_uid + "/list/" + live + "/" + std::to_string(page)))
        return apply_fault(*fault, std::move(reply));
    return reply;
}

Reply Marketplace::handle_details(const HttpRequest& request, const Arrival& arrival) {
    ++stats_.cabinet_requests;
    if (request.method != "GET") return method_not_allowed("GET");
    auto merchant_uid = query_param(request.target, "m");
    auto sku = query_param(request.target, "s");
    if (!merchant_uid || merchant_uid->empty() || !sku || sku->empty())
        return error_reply(400, "m (merchant uid) and s (sku) are required");
    if (int refusal = login_refusal(*merchant_uid, request.cookie))
        return error_reply(refusal, "session expired");
    cabinets_.settle(arrival.at_ms);
    auto details = cabinets_.details_json(*merchant_uid, *sku);
    Reply reply =
        details ? json_reply(200, std::move(*details)) : error_reply(404, "offer not found");
    if (auto fault = cabinet_faults_.take(*merchant_uid + "/details/" + *sku))
        return apply_fault(*fault, std::move(reply));
    return reply;
}

Reply Marketplace::handle_job(const HttpRequest& request, const Arrival& arrival,
                              const std::string& id) {
    ++stats_.cabinet_requests;
    if (request.method != "GET") return method_not_allowed("GET");
    cabinets_.settle(arrival.at_ms);
    const CabinetJob* job = cabinets_.job(percent_decode(id));
    if (job == nullptr) return error_reply(404, "job not found");
    if (int refusal = login_refusal(job->merchant_uid, request.cookie))
        return error_reply(refusal, "session expired");
    return json_reply(200, CabinetStore::job_json(*job));
}

int Marketplace::login_refusal(const std::string& merchant_uid, const std::string& cookie) const {
    auto it = sessions_.find(merchant_uid);
    if (it == sessions_.end()) return 401;
    auto session = cookie_value(cookie, "mc-session");
    auto sid = cookie_value(cookie, "mc-sid");
    if (!session || !sid || *session != it->second.session || *sid != it->second.sid) return 401;
    return it->second.expired ? it->second.expired_status : 0;
}

void Marketplace::record_reply(std::string_view method, std::string_view path,
                               const Arrival& arrival, int status, size_t wire_bytes) {
    ++stats_.requests;
    if (method == "H2") ++stats_.http2_refused;
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
    out += ",\"cabinet_requests\":" + std::to_string(stats_.cabinet_requests);
    out += ",\"http2_refused\":" + std::to_string(stats_.http2_refused);
    out += ",\"by_status\":";
    append_counts(out, stats_.by_status);
    out += ",\"by_egress\":";
    append_counts(out, stats_.by_egress);
    out += ",\"bans\":" + std::to_string(stats_.bans);
    out += ",\"push_bans\":" + std::to_string(stats_.push_bans);
    out += ",\"push_overlaps\":" + std::to_string(stats_.push_overlaps);
    out += ",\"holds_abandoned\":" + std::to_string(stats_.holds_abandoned);
    int64_t held = 0;
    for (const auto& entry : held_pushes_) held += entry.second;
    out += ",\"pushes_held\":" + std::to_string(held);
    held = 0;
    for (const auto& entry : held_offers_) held += entry.second;
    out += ",\"offers_held\":" + std::to_string(held);
    std::map<uint16_t, uint64_t> max_per_second;
    for (const auto& [port, egress] : egresses_) max_per_second[port] = egress.max_per_second;
    out += ",\"max_rps_window\":";
    append_counts(out, max_per_second);
    out += ",\"pushes\":" + std::to_string(pushes_.size()) + "}";
    return out;
}

std::string Marketplace::faults_json() const {
    std::string out = faults_.describe();
    out.pop_back();  // the closing brace
    return out + ",\"pushes\":" + push_faults_.describe() + "}";
}

std::string Marketplace::pushes_json() const { return "{\"pushes\":" + pushes_array("") + "}"; }

std::string Marketplace::pushes_array(const std::string& merchant_uid) const {
    std::string out = "[";
    char time[32];
    bool first = true;
    for (const Push& push : pushes_) {
        if (!merchant_uid.empty() && push.merchant_uid != merchant_uid) continue;
        if (!first) out += ',';
        first = false;
        std::snprintf(time, sizeof time, "%.6f", push.unix_time);
        out += "{\"t\":";
        out += time;
        std::snprintf(time, sizeof time, "%.6f", push.arrived);
        out += ",\"arrived\":";
        out += time;
        out += ",\"merchantUid\":";
        append_json_string(out, push.merchant_uid);
        out += ",\"sku\":";
        append_json_string(out, push.sku);
        out += ",\"model\":";
        append_json_string(out, push.model);
        out += ",\"price\":";
        out += push.price ? std::to_string(*push.price) : "null";
        out += ",\"cityPrices\":" + push.city_prices_json;
        out += ",\"endpoint\":";
        out += push.endpoint == PushEndpoint::single ? "\"process\"" : "\"batch\"";
        out += ",\"job\":";
        append_json_string(out, push.job_id);
        out += ",\"body\":" + push.body + "}";
    }
    out += ']';
    return out;
}

void Marketplace::reset() {
    release_offers(std::nullopt, false);
    faults_.clear();
    egress_ban_ = EgressBanRule{};
    push_limits_ = PushLimits{};
    egresses_.clear();
    push_bans_.clear();
    pushes_.clear();
    cabinet_faults_.clear();
    push_faults_.clear();
    cabinets_.reset();
    stats_ = Stats{};
}

}  // namespace demper_mock
