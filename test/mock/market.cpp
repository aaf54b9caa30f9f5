// market.cpp: the simulated market on the mock's clock (see market.hpp).
#include "market.hpp"

#include <cmath>
#include <cstdio>
#include <utility>
#include <vector>

namespace demper_mock {

namespace {

constexpr uint64_t kMaxMarketProducts = 1'000'000;

bool read_number(const JsonValue& object, std::string_view key, double& out) {
    const JsonValue* value = object.find(key);
    if (value == nullptr) return true;
    if (value->type != JsonValue::Type::number || !std::isfinite(value->number)) return false;
    out = value->number;
    return true;
}

// leading_code is the product card id at the start of a sku ("123_456", "123-A", "123").
std::string leading_code(std::string_view sku) {
    std::size_t digits = 0;
    while (digits < sku.size() && sku[digits] >= '0' && sku[digits] <= '9') ++digits;
    return std::string(sku.substr(0, digits));
}

}  // namespace

std::optional<MarketStart> market_start_from_json(const JsonValue& body, std::string& error) {
    MarketStart start;
    demper_market::MarketMix& mix = start.mix;
    uint64_t products = mix.products;
    const JsonValue* seller = body.find("seller");
    const JsonValue* timeline = body.find("timeline");
    struct Field {
        const char* name;
        double* value;
        double low;
        double high;
    };
    const Field fields[] = {
        {"time_scale", &start.time_scale, 1e-3, 1e4},
        {"publish_delay_s", &start.publish_delay_s, 0, 86400},
        {"bot_share", &mix.bot_share, 0, 1},
        {"active_share", &mix.active_share, 0, 1},
        {"mean_competitors", &mix.mean_competitors, 1, 12},
        {"other_active_share", &mix.other_active_share, 0, 1},
        {"quiet_gap_min_s", &mix.quiet_gap_min_s, 1, 1e9},
        {"quiet_gap_max_s", &mix.quiet_gap_max_s, 1, 1e9},
        {"active_gap_min_s", &mix.active_gap_min_s, 1, 1e9},
        {"active_gap_max_s", &mix.active_gap_max_s, 1, 1e9},
        {"active_undercut_share", &mix.active_undercut_share, 0, 1},
        {"bot_reaction_min_s", &mix.bot_reaction_min_s, 0.01, 1e6},
        {"bot_reaction_max_s", &mix.bot_reaction_max_s, 0.01, 1e6},
        {"seller_floor_min", &mix.seller_floor_min, 0.01, 1},
        {"seller_floor_max", &mix.seller_floor_max, 0.01, 1},
        {"seller_ceiling", &mix.seller_ceiling, 1, 100},
    };
    for (const Field& f : fields) {
        if (!read_number(body, f.name, *f.value) || *f.value < f.low || *f.value > f.high) {
            char message[160];
            std::snprintf(message, sizeof message, "%s must be a number in [%g, %g]", f.name, f.low,
                          f.high);
            error = message;
            return std::nullopt;
        }
    }
    if (!read_unsigned_member(body, "seed", mix.seed) ||
        !read_unsigned_member(body, "products", products) ||
        !read_unsigned_member(body, "first_code", mix.first_code) || products == 0 ||
        products > kMaxMarketProducts || mix.first_code == 0) {
        error = "seed, products (1..1000000) and first_code (positive) must be integers";
        return std::nullopt;
    }
    mix.products = static_cast<std::size_t>(products);
    if (seller != nullptr) {
        if (seller->type != JsonValue::Type::string || seller->text.empty()) {
            error = "seller must be a non-empty string (the seller's merchant id)";
            return std::nullopt;
        }
        mix.seller = seller->text;
    }
    if (timeline != nullptr) {
        if (timeline->type != JsonValue::Type::boolean) {
            error = "timeline must be a boolean";
            return std::nullopt;
        }
        start.timeline = timeline->boolean;
    }
    if (mix.quiet_gap_min_s > mix.quiet_gap_max_s || mix.active_gap_min_s > mix.active_gap_max_s ||
        mix.bot_reaction_min_s > mix.bot_reaction_max_s ||
        mix.seller_floor_min > mix.seller_floor_max || mix.bot_share + mix.active_share > 1) {
        error =
            "each *_min must not exceed its *_max, and bot_share + active_share must not exceed 1";
        return std::nullopt;
    }
    return start;
}

void SimulatedMarket::start(const MarketStart& start, uint64_t now_ms) {
    settings_ = start;
    model_ = std::make_unique<demper_market::MarketModel>(start.mix);
    model_->keep_timeline(start.timeline);
    started_ms_ = now_ms;
    pushes_applied_ = 0;
}

double SimulatedMarket::market_time(uint64_t now_ms) const {
    const double wall = now_ms > started_ms_ ? static_cast<double>(now_ms - started_ms_) / 1000 : 0;
    return wall * settings_.time_scale;
}

std::optional<std::size_t> SimulatedMarket::product_of(std::string_view code) const {
    if (!model_) return std::nullopt;
    return model_->product_of(code);
}

std::optional<OfferBook> SimulatedMarket::book_for(const std::string& code, uint64_t now_ms) {
    auto product = product_of(code);
    if (!product) return std::nullopt;
    model_->advance(market_time(now_ms));
    std::vector<demper_market::Quote> quotes;
    model_->quotes(*product, quotes);
    OfferBook book;
    book.reserve(quotes.size());
    for (const demper_market::Quote& quote : quotes) {
        Offer offer;
        offer.merchant_id = quote.merchant;
        const bool own = quote.merchant == settings_.mix.seller;
        offer.merchant_name = own ? "Own Store" : "Shop " + quote.merchant;
        offer.merchant_sku = quote.merchant + "-" + code;
        offer.price = quote.price;
        book.push_back(std::move(offer));
    }
    return book;  // quotes come cheapest first, ties by merchant id: the answer order
}

void SimulatedMarket::checked(const std::string& code, uint64_t now_ms) {
    auto product = product_of(code);
    if (!product) return;
    const double t = market_time(now_ms);
    model_->advance(t);
    model_->record_check(*product, t);
}

void SimulatedMarket::pushed(const std::string& merchant_uid, const JsonValue& item,
                             uint64_t now_ms) {
    if (!model_ || merchant_uid != settings_.mix.seller) return;
    const JsonValue* sku = item.find("sku");
    if (sku == nullptr || sku->type != JsonValue::Type::string) return;
    auto product = product_of(leading_code(sku->text));
    if (!product) return;
    std::optional<int64_t> price;
    if (const JsonValue* cities = item.find("cityPrices");
        cities && cities->type == JsonValue::Type::array && !cities->items.empty()) {
        if (const JsonValue* value = cities->items.front().find("value")) price = value->as_int();
    }
    if (!price) {
        if (const JsonValue* top = item.find("price")) price = top->as_int();
    }
    if (!price || *price < 10) return;
    const double t = market_time(now_ms);
    model_->advance(t);
    model_->set_seller_price(*product, *price, t + settings_.publish_delay_s);
    ++pushes_applied_;
}

bool SimulatedMarket::set_seller_prices(const JsonValue& body, uint64_t now_ms,
                                        std::string& error) {
    if (!model_) {
        error = "no market runs (POST /_mock/market first)";
        return false;
    }
    const JsonValue* prices = body.find("prices");
    if (prices == nullptr || prices->type != JsonValue::Type::array) {
        error = "expected {\"prices\":[{\"code\":..,\"price\":..}]}";
        return false;
    }
    std::vector<std::pair<std::size_t, int64_t>> updates;
    for (const JsonValue& entry : prices->items) {
        const JsonValue* code = entry.find("code");
        const JsonValue* price = entry.find("price");
        auto text = code ? code->as_text() : std::nullopt;
        auto value = price ? price->as_int() : std::nullopt;
        auto product = text ? product_of(*text) : std::nullopt;
        if (!product || !value || *value < 10) {
            error =
                "each price needs the code of a market product and an integer price of at least 10";
            return false;
        }
        updates.emplace_back(*product, *value);
    }
    const double t = market_time(now_ms);
    model_->advance(t);
    for (const auto& [product, price] : updates) model_->set_seller_price(product, price, t);
    return true;
}

std::string SimulatedMarket::status_json(uint64_t now_ms) {
    if (!model_) return "{\"running\":false}";
    const double t = market_time(now_ms);
    model_->advance(t);
    char numbers[160];
    std::snprintf(numbers, sizeof numbers,
                  ",\"market_time_s\":%.3f,\"time_scale\":%g,\"publish_delay_s\":%g", t,
                  settings_.time_scale, settings_.publish_delay_s);
    std::string out = "{\"running\":true,\"seed\":" + std::to_string(settings_.mix.seed) +
                      ",\"products\":" + std::to_string(model_->size()) +
                      ",\"first_code\":" + std::to_string(settings_.mix.first_code) +
                      ",\"seller\":";
    append_json_string(out, settings_.mix.seller);
    out += numbers;
    out += ",\"pushes_applied\":" + std::to_string(pushes_applied_) + "}";
    return out;
}

std::string SimulatedMarket::catalogue_json() const {
    return model_ ? model_->catalogue_json() : "{\"seller\":null,\"products\":[]}";
}

std::string SimulatedMarket::summary_json(uint64_t now_ms) {
    if (!model_) return "{}";
    return demper_market::MarketModel::summary_json(model_->summary(market_time(now_ms)));
}

std::string SimulatedMarket::reactions_json(uint64_t now_ms) {
    if (!model_) return "{}";
    model_->advance(market_time(now_ms));
    return model_->reactions_json();
}

void SimulatedMarket::start_measuring(uint64_t now_ms) {
    if (model_) model_->start_measuring(market_time(now_ms));
}

std::optional<std::string> SimulatedMarket::timeline_json(const std::string& code,
                                                          uint64_t now_ms) {
    auto product = product_of(code);
    if (!product) return std::nullopt;
    model_->advance(market_time(now_ms));
    return model_->timeline_json(*product);
}

}  // namespace demper_mock
