// control_api.hpp: the /_mock/ endpoints tests use to arrange the marketplace and observe it.
//
// Control requests are never faulted, banned, counted in the stats or written to the request log
// (their replies carry recorded = false). See README.md for the full list.
#pragma once

#include "cabinet.hpp"
#include "http_message.hpp"
#include "http_server.hpp"
#include "marketplace.hpp"
#include "offer_book.hpp"
#include "request_log.hpp"

namespace demper_mock {

constexpr std::string_view kControlPrefix = "/_mock/";

class ControlApi {
  public:
    ControlApi(Marketplace& marketplace, OfferCatalogue& catalogue, CabinetStore& cabinets,
               ProtocolSwitches& switches, RequestLog& log)
        : marketplace_(marketplace),
          catalogue_(catalogue),
          cabinets_(cabinets),
          switches_(switches),
          log_(log) {}

    // handle answers a request whose path starts with /_mock/.
    Reply handle(const HttpRequest& request);

  private:
    Marketplace& marketplace_;
    OfferCatalogue& catalogue_;
    CabinetStore& cabinets_;
    ProtocolSwitches& switches_;
    RequestLog& log_;

    Reply route(const HttpRequest& request, std::string_view what);
    Reply offers(const HttpRequest& request, const std::string& code);
    Reply set_fault(const HttpRequest& request);
    Reply set_ban(const HttpRequest& request);
    Reply hold_offers(const HttpRequest& request);
    Reply release_offers(const HttpRequest& request);
    Reply set_push_limits(const HttpRequest& request);
    Reply set_merchant(const HttpRequest& request, const std::string& merchant_uid);
    bool update_session(const JsonValue& body, const std::string& merchant_uid);
    Reply cabinet(const HttpRequest& request, std::string_view what);
    Reply replace_cabinet(const HttpRequest& request, const std::string& merchant_uid);
    Reply add_offers(const HttpRequest& request, const std::string& merchant_uid);
    Reply edit_offer(const HttpRequest& request, const std::string& merchant_uid,
                     const std::string& sku);
    Reply add_synthetic(const HttpRequest& request, const std::string& merchant_uid);
    Reply set_cabinet_fault(const HttpRequest& request, const std::string& merchant_uid);
    Reply set_jobs(const HttpRequest& request);
    Reply set_http2(const HttpRequest& request);
    Reply market(const HttpRequest& request, std::string_view what);
};

}  // namespace demper_mock
