// market.hpp: the mock's simulated market (POST /_mock/market): the model of market_model.hpp on
// the mock's clock.
//
// While a market runs, the offers of its products (codes first_code .. first_code + products − 1)
// come from the model at the moment of the request, the seller's own offer included. The model sees
// the seller's price in two ways: every price push of the seller's merchant (/process or the batch
// endpoint: cityPrices[0].value, else a top-level price; the product is the sku's leading digits,
// "123_456" and "123" both mean product 123) becomes visible `publish_delay_s` market seconds after
// it arrives, and POST /_mock/market/seller_prices sets prices at once. An offers answer served
// without a fault is a *check* of that product (the ground truth's reaction times end at it).
// Market time runs `time_scale` times faster than the mock's monotonic clock from the start call.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "json.hpp"
#include "market_model.hpp"
#include "offer_book.hpp"

namespace demper_mock {

struct MarketStart {
    demper_market::MarketMix mix;
    double time_scale = 1;
    double publish_delay_s = 0;  // market seconds from a push to the price competitors see
    bool timeline = false;  // keep every product's timeline (GET /_mock/market/timeline/{code})
};

// market_start_from_json reads the body of POST /_mock/market; nullopt and `error` when invalid.
std::optional<MarketStart> market_start_from_json(const JsonValue& body, std::string& error);

class SimulatedMarket {
  public:
    void start(const MarketStart& start, uint64_t now_ms);
    void stop() { model_.reset(); }
    bool running() const { return model_ != nullptr; }

    // book_for advances the market to `now_ms` and returns the product's book in answer order, or
    // nullopt when the market does not sell `code`.
    std::optional<OfferBook> book_for(const std::string& code, uint64_t now_ms);
    // checked records a check of `code` (an answered offers request) at `now_ms`.
    void checked(const std::string& code, uint64_t now_ms);
    // pushed takes one accepted push item of `merchant_uid`: the seller's new price.
    void pushed(const std::string& merchant_uid, const JsonValue& item, uint64_t now_ms);
    // set_seller_prices is POST /_mock/market/seller_prices {"prices":[{"code","price"}]}; false
    // and `error` when invalid (nothing is applied then).
    bool set_seller_prices(const JsonValue& body, uint64_t now_ms, std::string& error);

    // The control API's reads; each advances the market to `now_ms` first.
    std::string status_json(uint64_t now_ms);
    std::string catalogue_json() const;
    std::string summary_json(uint64_t now_ms);
    std::string reactions_json(uint64_t now_ms);
    void start_measuring(uint64_t now_ms);
    std::optional<std::string> timeline_json(const std::string& code, uint64_t now_ms);

  private:
    double market_time(uint64_t now_ms) const;
    std::optional<std::size_t> product_of(std::string_view code) const;

    std::unique_ptr<demper_market::MarketModel> model_;
    MarketStart settings_;
    uint64_t started_ms_ = 0;
    uint64_t pushes_applied_ = 0;
};

}  // namespace demper_mock
