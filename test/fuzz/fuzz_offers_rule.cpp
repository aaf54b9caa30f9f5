// libFuzzer target: bytes → parse_offers → (when ok) decide_price → decision_to_json.
//
// Input layout: the first kHeader bytes choose the rule and the current price (see make_rule);
// the rest is the response body. Inputs shorter than the header are fed to the parser whole.
// Every property that must hold for any input is checked with __builtin_trap():
//   - a failed parse has an error and no offers; a successful one has no error and prices in range;
//   - the new price is >= max(effective floor, 10), <= max_price unless the floor is above it (then
//     it is exactly the floor); changed == (new != current); the decision is deterministic;
//   - the JSON explanation is valid UTF-8 JSON.
#include <rapidjson/document.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

#include "core/offers.hpp"
#include "core/price_rule.hpp"

namespace {

using namespace demper::core;

constexpr std::size_t kHeader = 24;

class Bytes {
  public:
    Bytes(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    std::uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
    std::int32_t i32() {
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v = (v << 8) | u8();
        std::int32_t out;
        std::memcpy(&out, &v, sizeof out);
        return out;
    }
    // A percentage with a few special values.
    double percent() {
        const std::uint8_t b = u8();
        switch (b) {
            case 255:
                return std::numeric_limits<double>::quiet_NaN();
            case 254:
                return std::numeric_limits<double>::infinity();
            case 253:
                return -std::numeric_limits<double>::infinity();
            case 252:
                return 1e300;
            case 251:
                return -150;
            default:
                return b / 4.0;
        }
    }
    std::int64_t price() {
        const std::uint8_t kind = u8();
        const std::int64_t v = i32();
        switch (kind % 16) {
            case 0:
                return std::numeric_limits<std::int64_t>::max();
            case 1:
                return std::numeric_limits<std::int64_t>::min();
            case 2:
                return v * 1'000'000'000LL;  // far beyond kMaxOfferPrice
            default:
                return v;
        }
    }

  private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

PricingRule make_rule(Bytes& b, const OfferBook& book, std::int64_t* current) {
    PricingRule r;
    const std::uint8_t flags = b.u8();
    r.strategy = static_cast<Strategy>(flags & 3);
    r.floor_action = (flags & 4) ? FloorAction::hold : FloorAction::go_to_floor;
    r.no_competitor_action = (flags & 8) ? NoCompetitorAction::hold : NoCompetitorAction::to_max;
    const std::uint8_t opt = b.u8();
    r.position = static_cast<int>(b.u8() % 10) - 1;
    r.step = static_cast<std::int8_t>(b.u8());
    if (opt & 1) r.step_percent = b.percent();
    r.min_price = b.price();
    if (opt & 2) r.max_price = b.price();
    if (opt & 4) r.cost_price = b.price();
    if (opt & 8) r.min_margin_percent = b.percent();
    if (opt & 16) r.max_change_percent = b.percent();
    if (opt & 32) r.outlier_share = b.percent() / 50.0;
    if (opt & 64) r.max_delivery_rank = static_cast<int>(b.u8() % 10) - 1;
    const std::uint8_t exclude_mask = b.u8();
    for (std::size_t i = 0; i < book.offers.size() && i < 8; ++i) {
        if (exclude_mask & (1u << i)) r.excluded_merchants.push_back(book.offers[i].merchant_id);
    }
    *current = b.price();
    return r;
}

void check(bool ok) {
    if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::size_t header = size >= kHeader ? kHeader : 0;
    const std::string_view body(reinterpret_cast<const char*>(data) + header, size - header);
    const OffersParse parsed = parse_offers(body);
    if (!parsed.ok) {
        check(!parsed.error.empty() && parsed.book.offers.empty());
        return 0;
    }
    check(parsed.error.empty());
    for (const Offer& o : parsed.book.offers) {
        check(o.price >= 1 && o.price <= kMaxOfferPrice);
        check(!o.merchant_id.empty());
    }
    if (header == 0) return 0;

    Bytes bytes(data, header);
    std::int64_t current = 0;
    const PricingRule rule = make_rule(bytes, parsed.book, &current);
    const PriceDecision d = decide_price(current, rule, parsed.book);

    const std::int64_t floor = effective_floor(rule);
    check(d.floor == floor);
    check(d.new_price >= floor && d.new_price >= kMarketplaceMinPrice);
    if (rule.max_price) {
        if (*rule.max_price >= floor) {
            check(d.new_price <= *rule.max_price);
        } else {
            check(d.new_price == floor && d.floor_above_ceiling);
        }
    }
    check(d.changed == (d.new_price != current));
    check(decide_price(current, rule, parsed.book) == d);
    check(static_cast<std::size_t>(d.competitors) + d.excluded.size() == parsed.book.offers.size());

    const std::string json = decision_to_json(d, rule, parsed.book);
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseValidateEncodingFlag>(json.data(), json.size());
    check(!doc.HasParseError() && doc.IsObject());
    check(doc["new_price"].IsInt64() && doc["new_price"].GetInt64() == d.new_price);
    return 0;
}
