// marketplace.hpp: the Kaspi.kz endpoints the mock emulates, and what it observed.
//
// Vocabulary (as in DOMAIN.md): an *offers request* reads a product's offer book
// (POST /yml/offer-view/offers/{productId}); a *push* publishes a merchant's new prices through the
// merchant cabinet API (POST /pricefeed/upload/merchant/process, or an array of them to
// .../process/process/batch) and becomes a *job* in the merchant's cabinet (cabinet.hpp); a
// *cabinet request* reads the seller's own catalogue (GET /bff/offer-view/list and
// /bff/offer-view/details) or a job (GET /pricefeed/upload/merchant/job/{id}, mock-only). An
// *egress* is the listening port a request came in on, standing for the client's IP. Kaspi's rate
// limits are emulated per egress for offers requests (ban emulation, off until POST /_mock/ban) and
// per merchant for pushes (always on).
//
// Stats and the request log count *marketplace requests*: everything except the control API
// (/_mock/).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ban_tracker.hpp"
#include "cabinet.hpp"
#include "faults.hpp"
#include "http_server.hpp"
#include "market.hpp"
#include "offer_book.hpp"
#include "request_log.hpp"

namespace demper_mock {

constexpr size_t kMaxOffersLimit = 64;  // Kaspi answers 400 above this
constexpr size_t kDefaultOffersLimit = 64;

// EgressBanRule is POST /_mock/ban: how offers requests get an egress banned, and with what status.
struct EgressBanRule {
    bool enabled = false;
    BanRule rule;  // threshold 15 requests per 1000 ms window, banned for 10000 ms
    int status = 403;
};

// PushLimits is POST /_mock/push_limits: pushes per merchant per second, and the ban for exceeding
// it.
struct PushLimits {
    size_t limit_rps = 3;
    uint64_t ban_ms = 1800000;
};

// MerchantSession is the cabinet login that pushes and cabinet requests must present in their
// mc-session and mc-sid cookies. A missing or wrong login is answered 401, an expired one
// `expired_status` (401 or 403: both mean "log in again").
struct MerchantSession {
    std::string session;
    std::string sid;
    bool expired = false;
    int expired_status = 401;
};

class Marketplace {
  public:
    Marketplace(const OfferCatalogue& catalogue, CabinetStore& cabinets, RequestLog& log)
        : catalogue_(catalogue), cabinets_(cabinets), log_(log) {}

    // handle answers a marketplace request (anything outside /_mock/).
    Reply handle(const HttpRequest& request, const Arrival& arrival);
    // record_reply counts a planned reply in the stats and writes its log line.
    void record_reply(std::string_view method, std::string_view path, const Arrival& arrival,
                      int status, size_t wire_bytes);

    // The control API's handles.
    FaultTable& faults() { return faults_; }
    // cabinet_faults are keyed "<uid>/list/<true|false>/<page>" and "<uid>/details/<sku>".
    FaultTable& cabinet_faults() { return cabinet_faults_; }
    SimulatedMarket& market() { return market_; }
    // push_faults are keyed by sku; a push of a faulted listing is held, or refused (README.md).
    FaultTable& push_faults() { return push_faults_; }
    // hold_offers holds every offers request of `product` from now on until it is released
    // (POST /_mock/hold): a test acts while a check is in flight without racing a timer.
    void hold_offers(const std::string& product);
    // release_offers lets the held offers requests of `product` (every product when none) go,
    // answered from their books as they are now, and stops holding, or with `keep_holding` holds
    // the product's later requests until the next release. Returns how many requests it let go.
    int64_t release_offers(const std::optional<std::string>& product, bool keep_holding);
    // faults_json describes the offers faults, with the push faults under "pushes".
    std::string faults_json() const;
    void set_egress_ban(const EgressBanRule& rule);
    void set_push_limits(const PushLimits& limits) { push_limits_ = limits; }
    MerchantSession& merchant_session(const std::string& merchant_uid) {
        return sessions_[merchant_uid];
    }
    // last_offers_head is the request line and headers of the last offers request (what a
    // browser-like client sends: HTTP version, User-Agent, Accept-Language, Sec-Fetch-*...).
    const std::string& last_offers_head() const { return last_offers_head_; }
    std::string stats_json() const;
    std::string pushes_json() const;
    // pushes_array is the JSON array of the pushes accepted for `merchant_uid` (all when empty).
    std::string pushes_array(const std::string& merchant_uid) const;
    // reset returns everything but offer books, merchant sessions and the simulated market to its
    // startup state.
    void reset();

  private:
    std::string last_offers_head_;
    struct EgressState {
        BanTracker ban;
        SlidingWindow last_second;
        size_t max_per_second = 0;
    };
    struct Push {
        double unix_time;  // when it was taken
        double arrived;    // when its request arrived (earlier when it was held)
        std::string merchant_uid;
        std::string sku;
        std::string model;
        std::optional<int64_t> price;  // a top-level price, when the client sent one
        std::string city_prices_json;
        PushEndpoint endpoint;
        std::string job_id;
        std::string body;  // the item as received, re-serialised compactly
    };
    struct Stats {
        uint64_t requests = 0;
        uint64_t offer_requests = 0;
        uint64_t push_requests = 0;
        uint64_t cabinet_requests = 0;
        uint64_t http2_refused = 0;
        uint64_t bans = 0;
        uint64_t push_bans = 0;
        uint64_t push_overlaps = 0;    // pushes that arrived while one of the same listing was held
        uint64_t holds_abandoned = 0;  // held pushes whose client left before they were taken
        std::map<int, uint64_t> by_status;
        std::map<uint16_t, uint64_t> by_egress;
    };

    const OfferCatalogue& catalogue_;
    CabinetStore& cabinets_;
    RequestLog& log_;
    FaultTable faults_;
    FaultTable cabinet_faults_;
    FaultTable push_faults_;
    // Pushes held and not yet taken or abandoned, per listing ("<merchantUid>/<sku>"). Not
    // cleared by reset: they belong to connections that are still open.
    std::unordered_map<std::string, int64_t> held_pushes_;
    // Products whose offers requests are held, each with the gate its held requests wait at, and
    // how many requests of each are held now (not yet taken or abandoned).
    std::unordered_map<std::string, std::shared_ptr<Gate>> offer_gates_;
    std::unordered_map<std::string, int64_t> held_offers_;
    EgressBanRule egress_ban_;
    PushLimits push_limits_;
    std::unordered_map<uint16_t, EgressState> egresses_;
    std::unordered_map<std::string, MerchantSession> sessions_;
    std::unordered_map<std::string, BanTracker> push_bans_;
    std::vector<Push> pushes_;
    Stats stats_;
    SimulatedMarket market_;

    Reply handle_offers(const HttpRequest& request, const Arrival& arrival,
                        const std::string& product);
    Reply answer_offers(const HttpRequest& request, const Arrival& arrival,
                        const std::string& product);
    Reply offers_answer(const HttpRequest& request, const OfferBook& book) const;
    bool egress_banned(const Arrival& arrival);
    Reply handle_push(const HttpRequest& request, const Arrival& arrival, PushEndpoint endpoint);
    Reply take_push(const HttpRequest& request, const Arrival& arrival, double arrived,
                    PushEndpoint endpoint);
    void record_push(const JsonValue& item, const std::string& merchant_uid, PushEndpoint endpoint,
                     const std::string& job_id, const Arrival& arrival, double arrived);
    Reply handle_list(const HttpRequest& request, const Arrival& arrival);
    Reply handle_details(const HttpRequest& request, const Arrival& arrival);
    Reply handle_job(const HttpRequest& request, const Arrival& arrival, const std::string& id);
    // login_refusal is 0 when the cookies carry the merchant's live session, else the status to
    // answer (401, or the session's expired_status).
    int login_refusal(const std::string& merchant_uid, const std::string& cookie) const;
};

}  // namespace demper_mock
