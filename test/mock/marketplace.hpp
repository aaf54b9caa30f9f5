// marketplace.hpp: the Kaspi.kz endpoints the mock emulates, and what it observed.
//
// Vocabulary (as in DOMAIN.md): an *offers request* reads a product's offer book
// (POST /yml/offer-view/offers/{productId}); a *push* publishes a merchant's new price through the
// merchant cabinet API (POST /pricefeed/upload/merchant/process). An *egress* is the listening port
// a request came in on, standing for the client's IP. Kaspi's rate limits are emulated per egress
// for offers requests (ban emulation, off until POST /_mock/ban) and per merchant for pushes
// (always on).
//
// Stats and the request log count *marketplace requests*: everything except the control API
// (/_mock/).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "ban_tracker.hpp"
#include "faults.hpp"
#include "http_server.hpp"
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

// MerchantSession is the cabinet login a push must present in its mc-session and mc-sid cookies.
struct MerchantSession {
    std::string session;
    std::string sid;
    bool expired = false;
};

class Marketplace {
  public:
    Marketplace(const OfferCatalogue& catalogue, RequestLog& log)
        : catalogue_(catalogue), log_(log) {}

    // handle answers a marketplace request (anything outside /_mock/).
    Reply handle(const HttpRequest& request, const Arrival& arrival);
    // record_reply counts a planned reply in the stats and writes its log line.
    void record_reply(std::string_view method, std::string_view path, const Arrival& arrival,
                      int status, size_t wire_bytes);

    // The control API's handles.
    FaultTable& faults() { return faults_; }
    void set_egress_ban(const EgressBanRule& rule);
    void set_push_limits(const PushLimits& limits) { push_limits_ = limits; }
    MerchantSession& merchant_session(const std::string& merchant_uid) {
        return sessions_[merchant_uid];
    }
    std::string stats_json() const;
    std::string pushes_json() const;
    // reset returns everything but offer books and merchant sessions to its startup state.
    void reset();

  private:
    struct EgressState {
        BanTracker ban;
        SlidingWindow last_second;
        size_t max_per_second = 0;
    };
    struct Push {
        double unix_time;
        std::string merchant_uid;
        std::string sku;
        std::string model;
        int64_t price;
        std::string city_prices_json;
    };
    struct Stats {
        uint64_t requests = 0;
        uint64_t offer_requests = 0;
        uint64_t push_requests = 0;
        uint64_t bans = 0;
        uint64_t push_bans = 0;
        std::map<int, uint64_t> by_status;
        std::map<uint16_t, uint64_t> by_egress;
    };

    const OfferCatalogue& catalogue_;
    RequestLog& log_;
    FaultTable faults_;
    EgressBanRule egress_ban_;
    PushLimits push_limits_;
    std::unordered_map<uint16_t, EgressState> egresses_;
    std::unordered_map<std::string, MerchantSession> sessions_;
    std::unordered_map<std::string, BanTracker> push_bans_;
    std::vector<Push> pushes_;
    uint64_t next_job_ = 1;
    Stats stats_;

    Reply handle_offers(const HttpRequest& request, const Arrival& arrival,
                        const std::string& product);
    Reply offers_answer(const HttpRequest& request, const std::string& product) const;
    bool egress_banned(const Arrival& arrival);
    Reply handle_push(const HttpRequest& request, const Arrival& arrival);
    bool session_matches(const std::string& merchant_uid, const std::string& cookie) const;
};

}  // namespace demper_mock
