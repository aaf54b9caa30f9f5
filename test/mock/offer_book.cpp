// offer_book.cpp: offer books from TSV, JSON and the synthetic formula; the offers answer body.
#include "offer_book.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>

namespace demper_mock {

namespace {

constexpr const char* kDeliveryDurations[] = {
    "EXPRESS", "TODAY", "TOMORROW", "TILL_2_DAYS", "TILL_3_DAYS", "TILL_5_DAYS", "TILL_7_DAYS"};
constexpr uint64_t kSyntheticMerchants = 10000;
constexpr uint64_t kMerchantStride =
    1237;  // distinct offsets mod 10000 for k < 6: ids never collide
constexpr int64_t kMinSyntheticPrice = 1000;
constexpr int64_t kMaxSyntheticPrice = 500000;

int64_t synthetic_price(uint64_t hash) {
    return kMinSyntheticPrice +
           static_cast<int64_t>(hash %
                                static_cast<uint64_t>(kMaxSyntheticPrice - kMinSyntheticPrice + 1));
}

std::optional<uint64_t> numeric_code(const std::string& code) {
    if (code.empty() || code[0] == '0') return std::nullopt;  // only the canonical spelling
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(code.data(), code.data() + code.size(), value);
    if (ec != std::errc() || end != code.data() + code.size()) return std::nullopt;
    return value;
}

void append_offer(std::string& out, const Offer& offer) {
    char number[32];
    out += "{\"merchantId\":";
    append_json_string(out, offer.merchant_id);
    out += ",\"merchantName\":";
    append_json_string(out, offer.merchant_name);
    out += ",\"merchantSku\":";
    append_json_string(out, offer.merchant_sku);
    std::snprintf(number, sizeof number, "%.10g", offer.merchant_rating);
    out += ",\"merchantRating\":";
    out += number;
    out += ",\"merchantReviewsQuantity\":";
    out += std::to_string(offer.merchant_reviews);
    out += ",\"price\":";
    out += std::to_string(offer.price);
    out += ",\"kaspiDelivery\":";
    out += offer.kaspi_delivery ? "true" : "false";
    out += ",\"deliveryType\":";
    append_json_string(out, offer.delivery_type);
    out += ",\"deliveryDuration\":";
    append_json_string(out, offer.delivery_duration);
    out += '}';
}

// split_tabs splits one TSV line into its tab-separated fields.
std::vector<std::string_view> split_tabs(std::string_view line) {
    std::vector<std::string_view> fields;
    for (;;) {
        size_t tab = line.find('\t');
        fields.push_back(line.substr(0, tab));
        if (tab == std::string_view::npos) return fields;
        line.remove_prefix(tab + 1);
    }
}

bool text_field(const JsonValue& offer, std::string_view key, std::string& out) {
    const JsonValue* value = offer.find(key);
    if (value == nullptr) return true;  // keep the default
    auto text = value->as_text();
    if (!text) return false;
    out = *text;
    return true;
}

bool offer_from_json(const JsonValue& item, const std::string& code, Offer& offer) {
    if (!item.is_object()) return false;
    const JsonValue* price = item.find("price");
    if (price == nullptr || !price->as_int()) return false;
    offer.price = *price->as_int();
    if (!text_field(item, "merchantId", offer.merchant_id) || offer.merchant_id.empty())
        return false;
    offer.merchant_name = offer.merchant_id;
    offer.merchant_sku = offer.merchant_id + "-" + code;
    if (!text_field(item, "merchantName", offer.merchant_name) ||
        !text_field(item, "merchantSku", offer.merchant_sku) ||
        !text_field(item, "deliveryType", offer.delivery_type) ||
        !text_field(item, "deliveryDuration", offer.delivery_duration)) {
        return false;
    }
    if (const JsonValue* rating = item.find("merchantRating")) {
        if (rating->type != JsonValue::Type::number || !std::isfinite(rating->number)) return false;
        offer.merchant_rating = rating->number;
    }
    if (const JsonValue* reviews = item.find("merchantReviewsQuantity")) {
        if (!reviews->as_int()) return false;
        offer.merchant_reviews = *reviews->as_int();
    }
    if (const JsonValue* kaspi = item.find("kaspiDelivery")) {
        if (kaspi->type != JsonValue::Type::boolean) return false;
        offer.kaspi_delivery = kaspi->boolean;
    }
    return true;
}

}  // namespace

std::string read_whole_file(const std::string& file_name) {
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(file_name.c_str(), "rb"), &std::fclose);
    if (!file) throw std::runtime_error("cannot open " + file_name);
    std::string content;
    char buffer[1 << 16];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) content.append(buffer, n);
    return content;
}

uint64_t splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void sort_book(OfferBook& book) {
    std::sort(book.begin(), book.end(), [](const Offer& a, const Offer& b) {
        return a.price != b.price ? a.price < b.price : a.merchant_id < b.merchant_id;
    });
}

// The synthetic formula, so tests can recompute any book (or just GET /_mock/offers/{code}):
//   h = splitmix64(code)
//   n = 3 + h % 4                                       (3 to 6 offers)
//   base = (h >> 32) % 10000
//   for k in 0 .. n-1, with hk = splitmix64(h + k + 1):
//     merchantId       = "M" + (1 + (base + 1237 * k) % 10000)
//     merchantName     = "Shop " + merchantId
//     merchantSku      = merchantId + "-" + code
//     price            = 1000 + hk % 499001             (1,000 to 500,000 tenge)
//     merchantRating   = (30 + (hk >> 20) % 21) / 10    (3.0 to 5.0)
//     merchantReviewsQuantity = (hk >> 32) % 1000
//     kaspiDelivery    = bit 44 of hk
//     deliveryType     = bit 45 of hk ? "DELIVERY" : "PICKUP"
//     deliveryDuration = [EXPRESS, TODAY, TOMORROW, TILL_2_DAYS, TILL_3_DAYS, TILL_5_DAYS,
//                         TILL_7_DAYS][(hk >> 48) % 7]
//   with --own-merchant ID, one more offer: merchantId ID, merchantName "Own Store",
//     merchantSku "OWN-" + code, price 1000 + splitmix64(h ^ 0x5EED) % 499001, rating 5,
//     500 reviews, kaspiDelivery true, PICKUP, TOMORROW.
//   The book is then sorted by price, ties by merchantId.
OfferBook synthetic_book(uint64_t code, const std::string& own_merchant) {
    uint64_t h = splitmix64(code);
    uint64_t count = 3 + h % 4;
    uint64_t base = (h >> 32) % kSyntheticMerchants;
    std::string code_text = std::to_string(code);
    OfferBook book;
    book.reserve(count + 1);
    for (uint64_t k = 0; k < count; ++k) {
        uint64_t hk = splitmix64(h + k + 1);
        Offer offer;
        offer.merchant_id =
            "M" + std::to_string(1 + (base + kMerchantStride * k) % kSyntheticMerchants);
        offer.merchant_name = "Shop " + offer.merchant_id;
        offer.merchant_sku = offer.merchant_id + "-" + code_text;
        offer.price = synthetic_price(hk);
        offer.merchant_rating = static_cast<double>(30 + (hk >> 20) % 21) / 10.0;
        offer.merchant_reviews = static_cast<int64_t>((hk >> 32) % 1000);
        offer.kaspi_delivery = ((hk >> 44) & 1) != 0;
        offer.delivery_type = ((hk >> 45) & 1) != 0 ? "DELIVERY" : "PICKUP";
        offer.delivery_duration = kDeliveryDurations[(hk >> 48) % 7];
        book.push_back(std::move(offer));
    }
    if (!own_merchant.empty()) {
        Offer own;
        own.merchant_id = own_merchant;
        own.merchant_name = "Own Store";
        own.merchant_sku = "OWN-" + code_text;
        own.price = synthetic_price(splitmix64(h ^ 0x5EED));
        own.merchant_rating = 5;
        own.merchant_reviews = 500;
        book.push_back(std::move(own));
    }
    sort_book(book);
    return book;
}

std::string render_offers_page(const OfferBook& book, size_t limit, size_t page) {
    std::string out;
    out.reserve(96 + 260 * std::min(limit, book.size()));
    // An extra top-level field first: clients must skip fields they do not know, wherever they are.
    out += "{\"analytics\":{\"source\":\"demper-mock\",\"experiments\":[]},\"offers\":[";
    size_t first = limit == 0 || page > book.size() / limit ? book.size() : page * limit;
    size_t last = std::min(book.size(), first + limit);
    for (size_t i = first; i < last; ++i) {
        if (i > first) out += ',';
        append_offer(out, book[i]);
    }
    out += "],\"total\":";
    out += std::to_string(book.size());
    out += ",\"offersCount\":";
    out += std::to_string(book.size());
    out += '}';
    return out;
}

std::optional<OfferBook> book_from_json(const JsonValue& document, const std::string& code,
                                        std::string& error) {
    const JsonValue* offers = document.find("offers");
    if (offers == nullptr || offers->type != JsonValue::Type::array) {
        error = "body must be {\"offers\":[...]}";
        return std::nullopt;
    }
    OfferBook book;
    for (size_t i = 0; i < offers->items.size(); ++i) {
        Offer offer;
        if (!offer_from_json(offers->items[i], code, offer)) {
            error = "offer " + std::to_string(i) +
                    " needs merchantId (string) and price (integer); other fields must have their "
                    "types";
            return std::nullopt;
        }
        book.push_back(std::move(offer));
    }
    return book;
}

size_t OfferCatalogue::load_tsv(const std::string& file_name) {
    std::string content = read_whole_file(file_name);
    std::string_view rest(content);
    size_t line_number = 0;
    size_t offers = 0;
    books_.reserve(books_.size() + content.size() / 48);
    while (!rest.empty()) {
        size_t newline = rest.find('\n');
        std::string_view line = rest.substr(0, newline);
        rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
        ++line_number;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty() || line.front() == '#') continue;
        auto fields = split_tabs(line);
        Offer offer;
        bool ok =
            (fields.size() == 4 || fields.size() == 5) && !fields[0].empty() && !fields[1].empty();
        if (ok) {
            auto [end, ec] =
                std::from_chars(fields[3].data(), fields[3].data() + fields[3].size(), offer.price);
            ok = ec == std::errc() && end == fields[3].data() + fields[3].size();
        }
        if (!ok) {
            throw std::runtime_error(file_name + ":" + std::to_string(line_number) +
                                     ": expected product_code, merchant_id, merchant_name, integer "
                                     "price[, deliveryDuration] separated by tabs");
        }
        offer.merchant_id.assign(fields[1]);
        offer.merchant_name.assign(fields[2]);
        offer.merchant_sku = offer.merchant_id + "-" + std::string(fields[0]);
        if (fields.size() == 5 && !fields[4].empty()) offer.delivery_duration.assign(fields[4]);
        books_[std::string(fields[0])].push_back(std::move(offer));
        ++offers;
    }
    for (auto& [code, book] : books_) sort_book(book);
    return offers;
}

void OfferCatalogue::replace(const std::string& code, OfferBook book) {
    sort_book(book);
    books_[code] = std::move(book);
}

const OfferBook& OfferCatalogue::book_of(const std::string& code, OfferBook& scratch) const {
    auto it = books_.find(code);
    if (it != books_.end()) return it->second;
    scratch.clear();
    auto number = numeric_code(code);
    if (number && *number <= synthetic_limit_) scratch = synthetic_book(*number, own_merchant_);
    return scratch;
}

}  // namespace demper_mock
