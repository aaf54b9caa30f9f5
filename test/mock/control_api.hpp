// control_api.hpp: the /_mock/ endpoints tests use to arrange the marketplace and observe it.
//
// Control requests are never faulted, banned, counted in the stats or written to the request log
// (their replies carry recorded = false). See README.md for the full list.
#pragma once

#include "http_message.hpp"
#include "marketplace.hpp"
#include "offer_book.hpp"
#include "request_log.hpp"

namespace demper_mock {

constexpr std::string_view kControlPrefix = "/_mock/";

class ControlApi {
  public:
    ControlApi(Marketplace& marketplace, OfferCatalogue& catalogue, RequestLog& log)
        : marketplace_(marketplace), catalogue_(catalogue), log_(log) {}

    // handle answers a request whose path starts with /_mock/.
    Reply handle(const HttpRequest& request);

  private:
    Marketplace& marketplace_;
    OfferCatalogue& catalogue_;
    RequestLog& log_;

    Reply route(const HttpRequest& request, std::string_view what);
    Reply offers(const HttpRequest& request, const std::string& code);
    Reply set_fault(const HttpRequest& request);
    Reply set_ban(const HttpRequest& request);
    Reply set_push_limits(const HttpRequest& request);
    Reply set_merchant(const HttpRequest& request, const std::string& merchant_uid);
};

}  // namespace demper_mock
