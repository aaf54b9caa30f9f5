// cabinet.cpp: cabinet offers from JSON and the synthetic formula, jobs, and the cabinet's answers.
#include "cabinet.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iterator>
#include <stdexcept>
#include <unordered_set>

#include "event_loop.hpp"
#include "offer_book.hpp"

namespace demper_mock {

namespace {

constexpr int64_t kMinPrice = 10;                  // Kaspi's own minimum
constexpr uint64_t kMaxSyntheticOffers = 1000000;  // about 1.3 kB of memory each
constexpr const char* kNoAvailabilityReason = "Не указано наличие в прайс листе";
constexpr const char* kUnknownPickupPointReason = "Не найдена точка продажи из прайс листа: ";
constexpr const char* kUnexpectedStockReason = "Некорректный остаток в прайс листе";
constexpr const char* kSellerArchivedReason = "Снят с продажи продавцом";
constexpr int kAlmatyUtcOffsetSeconds = 5 * 3600;

struct KnownCity {
    const char* id;
    const char* name;
};

constexpr KnownCity kCities[] = {
    {"750000000", "Алматы"}, {"710000000", "Астана"},    {"511010000", "Шымкент"},
    {"151010000", "Актобе"}, {"351010000", "Караганда"}, {"231010000", "Атырау"},
    {"311010000", "Тараз"},  {"551010000", "Павлодар"},
};

constexpr const char* kSyntheticNouns[] = {
    "Смартфон",
    "Беспроводные наушники",
    "Чайник электрический",
    "Пылесос",
    "Утюг",
    "Фен",
    "Кофеварка",
    "Микроволновая печь",
    "Влажные полотенца",
    "Шампунь",
    "Стиральный порошок",
    "Блендер",
};
constexpr const char* kSyntheticBrands[] = {"Samsung",  "Xiaomi",  "Philips", "Tefal", "Bosch",
                                            "Sunlight", "Redmond", "Polaris", "Apple", "LG"};
constexpr const char* kSyntheticColours[] = {"белый", "чёрный", "серый", "синий", "красный"};

template <typename T, size_t N>
const T& pick(const T (&table)[N], uint64_t hash) {
    return table[hash % N];
}

// fnv1a hashes a merchant uid into the synthetic formula's seed.
uint64_t fnv1a(const std::string& text) {
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (char c : text) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

bool nine_digits(const std::string& id) {
    return id.size() == 9 &&
           std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// default_shop_link builds https://kaspi.kz/shop/p/<slug>-<card id>/ with the brand as slug.
std::string default_shop_link(const CabinetOffer& offer) {
    std::string slug;
    for (char c : offer.brand) {
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) slug += c;
        if (c >= 'A' && c <= 'Z') slug += static_cast<char>(c - 'A' + 'a');
    }
    if (slug.empty()) slug = "product";
    return "https://kaspi.kz/shop/p/" + slug + "-" + offer.master_sku + "/";
}

std::string iso_time(double unix_time) {
    time_t local = static_cast<time_t>(unix_time) + kAlmatyUtcOffsetSeconds;
    tm parts{};
    gmtime_r(&local, &parts);
    char text[96];
    std::snprintf(
        text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03d+05:00", parts.tm_year + 1900,
        parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec,
        static_cast<int>((unix_time - static_cast<double>(static_cast<time_t>(unix_time))) * 1000));
    return text;
}

void append_unix_time(std::string& out, double unix_time) {
    char text[32];
    std::snprintf(text, sizeof text, "%.6f", unix_time);
    out += text;
}

void append_string_or_null(std::string& out, const std::string& text) {
    if (text.empty()) {
        out += "null";
    } else {
        append_json_string(out, text);
    }
}

void append_string_array(std::string& out, const std::vector<std::string>& items) {
    out += '[';
    for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ',';
        append_json_string(out, items[i]);
    }
    out += ']';
}

void append_availabilities(std::string& out, const std::vector<CabinetStock>& stocks) {
    out += '[';
    for (size_t i = 0; i < stocks.size(); ++i) {
        const CabinetStock& stock = stocks[i];
        if (i) out += ',';
        out += "{\"storeId\":";
        append_json_string(out, stock.store_id);
        out += ",\"available\":";
        out += stock.available ? "\"yes\"" : "\"no\"";
        out += ",\"stockCount\":" + std::to_string(stock.stock_count);
        out += ",\"preOrder\":" + std::to_string(stock.pre_order) + "}";
    }
    out += ']';
}

void append_cities(std::string& out, const std::vector<CabinetCity>& cities, bool details) {
    out += '[';
    for (size_t i = 0; i < cities.size(); ++i) {
        const CabinetCity& city = cities[i];
        if (i) out += ',';
        out += "{\"id\":";
        append_json_string(out, city.id);
        out += ",\"name\":";
        append_json_string(out, city.name);
        out += ",\"price\":" + std::to_string(city.price);
        if (details) out += ",\"oldPrice\":null";
        out += ",\"pickupPoints\":";
        append_string_array(out, city.pickup_points);
        out += '}';
    }
    out += ']';
}

// A list item, as public clients read it (DOMAIN.md §2c), prices written as floats like the
// cabinet's, plus fields nobody reads.
void append_list_item(std::string& out, const std::string& merchant_uid,
                      const CabinetOffer& offer) {
    int64_t min_price = 0;
    int64_t max_price = 0;
    for (const CabinetCity& city : offer.cities) {
        if (min_price == 0 || city.price < min_price) min_price = city.price;
        max_price = std::max(max_price, city.price);
    }
    out += "{\"offerId\":";
    append_json_string(out, merchant_uid + "-" + offer.sku);
    out += ",\"sku\":";
    append_json_string(out, offer.sku);
    out += ",\"masterSku\":";
    append_json_string(out, offer.master_sku);
    out += ",\"masterTitle\":";
    append_json_string(out, offer.title);
    out += ",\"brand\":";
    append_json_string(out, offer.brand);
    out += ",\"masterCategory\":";
    append_json_string(out, offer.category);
    out += ",\"minPrice\":" + std::to_string(min_price) + ".0";
    out += ",\"maxPrice\":" + std::to_string(max_price) + ".0";
    out += ",\"shopLink\":";
    append_json_string(out, offer.shop_link);
    out += ",\"availabilities\":";
    append_availabilities(out, offer.availabilities);
    out += ",\"images\":[";
    append_json_string(out, "https://resources.cdn-kaspi.kz/img/m/p/" + offer.master_sku + ".jpg");
    out += "],\"cityCount\":" + std::to_string(offer.cities.size());
    out += ",\"promo\":{\"type\":null,\"labels\":[]}";
    out += ",\"updatedAt\":";
    append_json_string(out, iso_time(offer.updated_at));
    if (!offer.live) {
        out += ",\"archiveReason\":";
        append_json_string(out, offer.archive_reason);
    }
    out += '}';
}

bool read_string(const JsonValue& object, std::string_view key, std::string& out) {
    const JsonValue* value = object.find(key);
    if (value == nullptr || value->type == JsonValue::Type::null) return true;
    auto text = value->as_text();
    if (!text) return false;
    out = *text;
    return true;
}

bool read_bool(const JsonValue& object, std::string_view key, bool& out) {
    const JsonValue* value = object.find(key);
    if (value == nullptr || value->type == JsonValue::Type::null) return true;
    if (value->type != JsonValue::Type::boolean) return false;
    out = value->boolean;
    return true;
}

// read_available reads "yes"/"no" (or a boolean) into `out`.
bool read_available(const JsonValue& object, bool& out) {
    const JsonValue* value = object.find("available");
    if (value == nullptr) return true;
    if (value->type == JsonValue::Type::boolean) {
        out = value->boolean;
        return true;
    }
    if (value->type != JsonValue::Type::string || (value->text != "yes" && value->text != "no"))
        return false;
    out = value->text == "yes";
    return true;
}

bool read_stocks(const JsonValue& list, std::vector<CabinetStock>& stocks, std::string& error) {
    if (list.type != JsonValue::Type::array) {
        error = "availabilities must be an array";
        return false;
    }
    stocks.clear();
    std::unordered_set<std::string> seen;
    for (const JsonValue& item : list.items) {
        CabinetStock stock;
        uint64_t count = 0;
        uint64_t pre_order = 0;
        if (!item.is_object() || !read_string(item, "storeId", stock.store_id) ||
            stock.store_id.empty() || !read_available(item, stock.available) ||
            !read_unsigned_member(item, "stockCount", count) ||
            !read_unsigned_member(item, "preOrder", pre_order)) {
            error =
                "an availability needs storeId (string), available (\"yes\" or \"no\"), "
                "stockCount and preOrder (non-negative integers)";
            return false;
        }
        if (!seen.insert(stock.store_id).second) {
            error = "duplicate availability " + stock.store_id;
            return false;
        }
        stock.stock_count = static_cast<int64_t>(count);
        stock.pre_order = static_cast<int64_t>(pre_order);
        stocks.push_back(std::move(stock));
    }
    return true;
}

bool read_cities(const JsonValue& list, std::vector<CabinetCity>& cities, std::string& error) {
    if (list.type != JsonValue::Type::array || list.items.empty()) {
        error = "cities must be a non-empty array";
        return false;
    }
    cities.clear();
    std::unordered_set<std::string> seen;
    for (const JsonValue& item : list.items) {
        CabinetCity city;
        const JsonValue* price = item.find("price");
        if (!item.is_object() || !read_string(item, "id", city.id) || !nine_digits(city.id) ||
            price == nullptr || !price->as_int() || *price->as_int() < kMinPrice ||
            !read_string(item, "name", city.name)) {
            error = "a city needs id (9 digits) and price (an integer of at least 10)";
            return false;
        }
        if (!seen.insert(city.id).second) {
            error = "duplicate city " + city.id;
            return false;
        }
        city.price = *price->as_int();
        if (city.name.empty()) city.name = city_name(city.id);
        if (const JsonValue* points = item.find("pickupPoints")) {
            if (points->type != JsonValue::Type::array) {
                error = "pickupPoints must be an array of storeIds";
                return false;
            }
            for (const JsonValue& point : points->items) {
                auto id = point.as_text();
                if (!id || id->empty() || point.type != JsonValue::Type::string) {
                    error = "pickupPoints must be an array of storeIds";
                    return false;
                }
                city.pickup_points.push_back(*id);
            }
        } else {
            city.pickup_points.push_back("");  // placeholder: every availability, filled later
        }
        cities.push_back(std::move(city));
    }
    return true;
}

// link_pickup_points fills the defaults that tie cities and availabilities together.
void link_pickup_points(CabinetOffer& offer, bool availabilities_given) {
    std::vector<std::string> every_store;
    for (const CabinetStock& stock : offer.availabilities) every_store.push_back(stock.store_id);
    for (CabinetCity& city : offer.cities) {
        if (city.pickup_points.size() == 1 && city.pickup_points[0].empty())
            city.pickup_points = every_store;
    }
    if (availabilities_given) return;
    std::unordered_set<std::string> seen;
    for (const CabinetCity& city : offer.cities) {
        for (const std::string& point : city.pickup_points) {
            if (seen.insert(point).second) offer.availabilities.push_back(CabinetStock{point});
        }
    }
}

struct Outcome {
    const char* result;
    std::string reason;
};

Outcome archive(CabinetOffer& offer, std::string reason) {
    offer.live = false;
    offer.archive_reason = reason;
    return {"archived", std::move(reason)};
}

// valid_city_prices checks a pushed item's cityPrices without applying them.
bool valid_city_prices(const JsonValue& item, std::string& reason) {
    const JsonValue* prices = item.find("cityPrices");
    if (prices == nullptr || prices->type != JsonValue::Type::array || prices->items.empty()) {
        reason = "cityPrices is missing or empty";
        return false;
    }
    for (const JsonValue& entry : prices->items) {
        const JsonValue* city = entry.find("cityId");
        const JsonValue* value = entry.find("value");
        if (city == nullptr || city->type != JsonValue::Type::string || !nine_digits(city->text) ||
            value == nullptr || !value->as_int() || *value->as_int() < kMinPrice) {
            reason =
                "a cityPrices entry needs cityId (9 digits) and value (an integer of at least 10)";
            return false;
        }
    }
    return true;
}

// apply_push is what a finished job does to its offer (the rules are in cabinet.hpp).
Outcome apply_push(CabinetOffer* offer, const JsonValue& item, PushEndpoint endpoint) {
    if (offer == nullptr) return {"unknown_sku", "the cabinet has no offer with this sku"};
    if (endpoint == PushEndpoint::single && !offer->live)
        return {"not_live", "the offer is archived: /process does not re-activate it"};
    std::string reason;
    if (!valid_city_prices(item, reason)) return {"rejected", reason};
    const JsonValue* pushed = item.find("availabilities");
    if (pushed != nullptr && pushed->type != JsonValue::Type::null &&
        pushed->type != JsonValue::Type::array)
        return {"rejected", "availabilities is not an array"};
    std::unordered_set<std::string> yes;
    std::unordered_set<std::string> named;
    if (pushed != nullptr && pushed->type == JsonValue::Type::array) {
        for (const JsonValue& entry : pushed->items) {
            const JsonValue* store = entry.find("storeId");
            const JsonValue* available = entry.find("available");
            if (store == nullptr || store->type != JsonValue::Type::string || store->text.empty() ||
                available == nullptr || available->type != JsonValue::Type::string ||
                (available->text != "yes" && available->text != "no")) {
                return {"rejected",
                        "an availability needs storeId and available \"yes\" or \"no\""};
            }
            named.insert(store->text);
            if (available->text == "yes") yes.insert(store->text);
        }
    }
    if (named.empty()) return archive(*offer, kNoAvailabilityReason);
    for (const JsonValue& entry : pushed->items) {
        if (entry.find("stockCount") != nullptr) return archive(*offer, kUnexpectedStockReason);
        const std::string& store = entry.find("storeId")->text;
        bool known =
            std::any_of(offer->availabilities.begin(), offer->availabilities.end(),
                        [&](const CabinetStock& stock) { return stock.store_id == store; });
        if (!known) return archive(*offer, kUnknownPickupPointReason + store);
    }
    for (const JsonValue& entry : item.find("cityPrices")->items) {
        for (CabinetCity& city : offer->cities) {
            if (city.id == entry.find("cityId")->text) city.price = *entry.find("value")->as_int();
        }
    }
    bool any_available = false;
    for (CabinetStock& stock : offer->availabilities) {
        stock.available = yes.count(stock.store_id) != 0;
        any_available |= stock.available;
    }
    if (!any_available) return archive(*offer, kNoAvailabilityReason);
    offer->live = true;
    offer->archive_reason.clear();
    return {"updated", ""};
}

// The synthetic formula (GET /_mock/cabinet/{uid} shows the result, so tests need not recompute):
//   seed = FNV-1a(merchant uid);  for the i-th offer (0-based), code = first_code + i,
//   h = splitmix64(code ^ seed):
//     sku          = code + "_" + (100000000 + h % 900000000);   masterSku = code
//     masterTitle  = noun[(h >> 8) % 12] + " " + brand + " " + (100 + (h >> 32) % 900) + " " +
//                    colour[(h >> 24) % 5]   (the tables are in cabinet.cpp)
//     brand        = brand[(h >> 16) % 10];  masterCategory "Synthetic"
//     base price   = 1000 + (h >> 40) % 499001; city k (0-based, in `cities` order) costs
//                    base + 10 * k and has the pickup point "<uid>_PP<k+1>"
//     availability = one per pickup point: available yes, stockCount (h >> (4 * k)) % 20,
//                    preOrder 0
//     archived     = archived_every > 0 and (i + 1) % archived_every == 0, reason
//                    «Снят с продажи продавцом»
CabinetOffer synthetic_offer(const std::string& merchant_uid, uint64_t seed, uint64_t index,
                             const SyntheticCabinet& spec, double now) {
    uint64_t code = spec.first_code + index;
    uint64_t h = splitmix64(code ^ seed);
    CabinetOffer offer;
    offer.master_sku = std::to_string(code);
    offer.sku = offer.master_sku + "_" + std::to_string(100000000 + h % 900000000);
    offer.brand = pick(kSyntheticBrands, h >> 16);
    offer.title = std::string(pick(kSyntheticNouns, h >> 8)) + " " + offer.brand + " " +
                  std::to_string(100 + (h >> 32) % 900) + " " + pick(kSyntheticColours, h >> 24);
    offer.category = "Synthetic";
    offer.shop_link = default_shop_link(offer);
    int64_t base = 1000 + static_cast<int64_t>((h >> 40) % 499001);
    for (size_t k = 0; k < spec.cities.size(); ++k) {
        std::string point = merchant_uid + "_PP" + std::to_string(k + 1);
        offer.cities.push_back(CabinetCity{spec.cities[k],
                                           city_name(spec.cities[k]),
                                           base + 10 * static_cast<int64_t>(k),
                                           {point}});
        offer.availabilities.push_back(
            CabinetStock{point, true, static_cast<int64_t>((h >> (4 * k)) % 20), 0});
    }
    if (spec.archived_every > 0 && (index + 1) % spec.archived_every == 0) {
        offer.live = false;
        offer.archive_reason = kSellerArchivedReason;
    }
    offer.updated_at = now;
    return offer;
}

}  // namespace

const char* city_name(const std::string& city_id) {
    for (const KnownCity& city : kCities) {
        if (city_id == city.id) return city.name;
    }
    return "";
}

std::optional<CabinetOffer> offer_from_json(const JsonValue& item, std::string& error) {
    if (!item.is_object()) {
        error = "an offer must be a JSON object";
        return std::nullopt;
    }
    CabinetOffer offer;
    if (!read_string(item, "sku", offer.sku) || offer.sku.empty() ||
        !read_string(item, "masterSku", offer.master_sku) || offer.master_sku.empty()) {
        error = "an offer needs sku and masterSku (strings)";
        return std::nullopt;
    }
    bool archived = false;
    if (!read_string(item, "masterTitle", offer.title) ||
        !read_string(item, "brand", offer.brand) ||
        !read_string(item, "masterCategory", offer.category) ||
        !read_string(item, "shopLink", offer.shop_link) ||
        !read_string(item, "archiveReason", offer.archive_reason) ||
        !read_bool(item, "archived", archived)) {
        error = "offer " + offer.sku +
                ": masterTitle, brand, masterCategory, shopLink, archiveReason must be strings, "
                "archived a boolean";
        return std::nullopt;
    }
    const JsonValue* cities = item.find("cities");
    if (cities == nullptr) {
        error = "offer " + offer.sku + ": cities is required";
        return std::nullopt;
    }
    if (!read_cities(*cities, offer.cities, error)) {
        error = "offer " + offer.sku + ": " + error;
        return std::nullopt;
    }
    const JsonValue* stocks = item.find("availabilities");
    if (stocks != nullptr && !read_stocks(*stocks, offer.availabilities, error)) {
        error = "offer " + offer.sku + ": " + error;
        return std::nullopt;
    }
    link_pickup_points(offer, stocks != nullptr);
    offer.live = !archived;
    if (archived && offer.archive_reason.empty()) offer.archive_reason = kSellerArchivedReason;
    if (!archived) offer.archive_reason.clear();
    if (offer.shop_link.empty()) offer.shop_link = default_shop_link(offer);
    offer.updated_at = unix_now();
    return offer;
}

bool apply_hand_edit(CabinetOffer& offer, const JsonValue& edit, std::string& error) {
    if (!edit.is_object()) {
        error = "body must be a JSON object";
        return false;
    }
    CabinetOffer edited = offer;
    bool archived = !offer.live;
    if (!read_string(edit, "masterTitle", edited.title) ||
        !read_string(edit, "brand", edited.brand) ||
        !read_string(edit, "archiveReason", edited.archive_reason) ||
        !read_bool(edit, "archived", archived)) {
        error = "masterTitle, brand, archiveReason must be strings, archived a boolean";
        return false;
    }
    if (const JsonValue* prices = edit.find("cityPrices")) {
        if (!valid_city_prices(edit, error)) return false;
        for (const JsonValue& entry : prices->items) {
            auto city = std::find_if(
                edited.cities.begin(), edited.cities.end(),
                [&](const CabinetCity& c) { return c.id == entry.find("cityId")->text; });
            if (city == edited.cities.end()) {
                error = "the offer is not sold in city " + entry.find("cityId")->text;
                return false;
            }
            city->price = *entry.find("value")->as_int();
        }
    }
    if (const JsonValue* stocks = edit.find("availabilities")) {
        if (!read_stocks(*stocks, edited.availabilities, error)) return false;
    }
    edited.live = !archived;
    if (!archived) edited.archive_reason.clear();
    if (archived && edited.archive_reason.empty()) edited.archive_reason = kSellerArchivedReason;
    edited.updated_at = unix_now();
    offer = std::move(edited);
    return true;
}

void MerchantCabinet::upsert(CabinetOffer offer) {
    index_valid_ = false;
    auto [it, inserted] = by_sku_.emplace(offer.sku, offers_.size());
    if (inserted) {
        offers_.push_back(std::move(offer));
    } else {
        offers_[it->second] = std::move(offer);
    }
}

void MerchantCabinet::clear() {
    offers_.clear();
    by_sku_.clear();
    index_valid_ = false;
}

CabinetOffer* MerchantCabinet::find(const std::string& sku) {
    auto it = by_sku_.find(sku);
    return it == by_sku_.end() ? nullptr : &offers_[it->second];
}

const std::vector<size_t>& MerchantCabinet::listed(bool live) {
    if (!index_valid_) {
        live_.clear();
        archived_.clear();
        for (size_t i = 0; i < offers_.size(); ++i)
            (offers_[i].live ? live_ : archived_).push_back(i);
        index_valid_ = true;
    }
    return live ? live_ : archived_;
}

MerchantCabinet* CabinetStore::find(const std::string& merchant_uid) {
    auto it = cabinets_.find(merchant_uid);
    return it == cabinets_.end() ? nullptr : &it->second;
}

size_t CabinetStore::load_jsonl(const std::string& file_name) {
    std::string content = read_whole_file(file_name);
    std::string_view rest(content);
    size_t line_number = 0;
    size_t offers = 0;
    while (!rest.empty()) {
        size_t newline = rest.find('\n');
        std::string_view line = rest.substr(0, newline);
        rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
        ++line_number;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty() || line.front() == '#') continue;
        std::string error = "not a JSON object";
        auto item = parse_json(line);
        const JsonValue* uid = item ? item->find("merchantUid") : nullptr;
        auto merchant = uid ? uid->as_text() : std::nullopt;
        std::optional<CabinetOffer> offer;
        if (merchant && !merchant->empty()) {
            offer = offer_from_json(*item, error);
        } else if (item) {
            error = "merchantUid is required";
        }
        if (!offer) {
            throw std::runtime_error(file_name + ":" + std::to_string(line_number) + ": " + error);
        }
        cabinet(*merchant).upsert(std::move(*offer));
        ++offers;
    }
    return offers;
}

void CabinetStore::add_synthetic(const std::string& merchant_uid, const SyntheticCabinet& spec) {
    if (spec.count > kMaxSyntheticOffers)
        throw std::invalid_argument("count is at most " + std::to_string(kMaxSyntheticOffers));
    MerchantCabinet& target = cabinet(merchant_uid);
    uint64_t seed = fnv1a(merchant_uid);
    double now = unix_now();
    for (uint64_t i = 0; i < spec.count; ++i)
        target.upsert(synthetic_offer(merchant_uid, seed, i, spec, now));
}

std::string CabinetStore::submit(const std::string& merchant_uid, PushEndpoint endpoint,
                                 JsonValue item, uint64_t now_ms) {
    uint64_t number = next_job_++;
    CabinetJob job;
    job.id = "job-" + std::to_string(number);
    job.merchant_uid = merchant_uid;
    job.endpoint = endpoint;
    job.due_ms = now_ms + job_delay_ms_;
    if (const JsonValue* sku = item.find("sku"); sku && sku->as_text()) job.sku = *sku->as_text();
    job.item = std::move(item);
    job.created_at = unix_now();
    due_.emplace(std::make_pair(job.due_ms, number), job.id);
    std::string id = job.id;
    jobs_.emplace(id, std::move(job));
    return id;
}

void CabinetStore::settle(uint64_t now_ms) {
    while (!due_.empty() && due_.begin()->first.first <= now_ms) {
        auto job = jobs_.find(due_.begin()->second);
        due_.erase(due_.begin());
        if (job != jobs_.end()) finish(job->second);
    }
}

void CabinetStore::finish(CabinetJob& job) {
    MerchantCabinet* merchant = find(job.merchant_uid);
    CabinetOffer* offer = merchant ? merchant->find(job.sku) : nullptr;
    Outcome outcome = apply_push(offer, job.item, job.endpoint);
    if (offer != nullptr) {
        offer->updated_at = unix_now();
        merchant->changed();
    }
    job.finished = true;
    job.finished_at = unix_now();
    job.result = outcome.result;
    job.reason = std::move(outcome.reason);
    job.item = JsonValue{};  // the body is recorded with the push; the job needs it no more
}

const CabinetJob* CabinetStore::job(const std::string& id) const {
    auto it = jobs_.find(id);
    return it == jobs_.end() ? nullptr : &it->second;
}

void CabinetStore::reset() {
    jobs_.clear();
    due_.clear();
    next_job_ = 1;
    job_delay_ms_ = 0;
}

std::string CabinetStore::list_page_json(const std::string& merchant_uid, bool live, size_t page,
                                         size_t limit) {
    MerchantCabinet* merchant = find(merchant_uid);
    std::string out = "{\"total\":";
    if (merchant == nullptr) return out + "0,\"data\":[]}";
    const std::vector<size_t>& listed = merchant->listed(live);
    out += std::to_string(listed.size());
    out += ",\"data\":[";
    size_t first = page > listed.size() / limit ? listed.size() : page * limit;
    size_t last = std::min(listed.size(), first + limit);
    for (size_t i = first; i < last; ++i) {
        if (i > first) out += ',';
        append_list_item(out, merchant_uid, merchant->offers()[listed[i]]);
    }
    out += "]}";
    return out;
}

std::optional<std::string> CabinetStore::details_json(const std::string& merchant_uid,
                                                      const std::string& sku) {
    MerchantCabinet* merchant = find(merchant_uid);
    const CabinetOffer* offer = merchant ? merchant->find(sku) : nullptr;
    if (offer == nullptr) return std::nullopt;
    std::string out = "{\"sku\":";
    append_json_string(out, offer->sku);
    out += ",\"masterSku\":";
    append_json_string(out, offer->master_sku);
    out += ",\"title\":";
    append_json_string(out, offer->title);
    out += ",\"brand\":";
    append_json_string(out, offer->brand);
    out += ",\"archived\":";
    out += offer->live ? "false" : "true";
    out += ",\"cityInfo\":";
    append_cities(out, offer->cities, true);
    out += ",\"availabilities\":";
    append_availabilities(out, offer->availabilities);
    out += ",\"masterProduct\":{\"card\":{\"promoConditions\":{\"brand\":";
    append_json_string(out, offer->brand);
    out += "}},\"galleryImages\":[]}}";
    return out;
}

std::string CabinetStore::job_json(const CabinetJob& job) {
    const char* status = !job.finished ? "pending" : job.result == "updated" ? "done" : "failed";
    std::string out = "{\"id\":";
    append_json_string(out, job.id);
    out += ",\"status\":\"";
    out += status;
    out += "\",\"merchantUid\":";
    append_json_string(out, job.merchant_uid);
    out += ",\"endpoint\":";
    out += job.endpoint == PushEndpoint::single ? "\"process\"" : "\"batch\"";
    out += ",\"createdAt\":";
    append_unix_time(out, job.created_at);
    out += ",\"finishedAt\":";
    if (job.finished) {
        append_unix_time(out, job.finished_at);
    } else {
        out += "null";
    }
    out += ",\"items\":[{\"sku\":";
    append_json_string(out, job.sku);
    out += ",\"result\":";
    append_string_or_null(out, job.result);
    out += ",\"reason\":";
    append_string_or_null(out, job.reason);
    out += "}],\"message\":";
    append_string_or_null(out, job.finished && job.result != "updated" ? job.reason : "");
    out += '}';
    return out;
}

std::string CabinetStore::state_json(const std::string& merchant_uid,
                                     const std::string& pushes_array) {
    std::string out = "{\"merchantUid\":";
    append_json_string(out, merchant_uid);
    out += ",\"offers\":[";
    if (MerchantCabinet* merchant = find(merchant_uid)) {
        bool first = true;
        for (const CabinetOffer& offer : merchant->offers()) {
            if (!first) out += ',';
            first = false;
            out += "{\"sku\":";
            append_json_string(out, offer.sku);
            out += ",\"masterSku\":";
            append_json_string(out, offer.master_sku);
            out += ",\"masterTitle\":";
            append_json_string(out, offer.title);
            out += ",\"brand\":";
            append_json_string(out, offer.brand);
            out += ",\"shopLink\":";
            append_json_string(out, offer.shop_link);
            out += ",\"live\":";
            out += offer.live ? "true" : "false";
            out += ",\"archiveReason\":";
            append_string_or_null(out, offer.archive_reason);
            out += ",\"updatedAt\":";
            append_unix_time(out, offer.updated_at);
            out += ",\"cities\":";
            append_cities(out, offer.cities, false);
            out += ",\"availabilities\":";
            append_availabilities(out, offer.availabilities);
            out += '}';
        }
    }
    out += "],\"jobs\":[";
    std::vector<const CabinetJob*> own;
    for (const auto& [id, job] : jobs_) {
        if (job.merchant_uid == merchant_uid) own.push_back(&job);
    }
    std::sort(own.begin(), own.end(), [](const CabinetJob* a, const CabinetJob* b) {
        return a->id.size() != b->id.size() ? a->id.size() < b->id.size() : a->id < b->id;
    });
    for (size_t i = 0; i < own.size(); ++i) {
        if (i) out += ',';
        out += job_json(*own[i]);
    }
    out += "],\"pushes\":";
    out += pushes_array;
    out += '}';
    return out;
}

}  // namespace demper_mock
