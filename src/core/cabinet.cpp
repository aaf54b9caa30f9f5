// cabinet: see cabinet.hpp for the answers' shapes and what is tolerated.
#include "core/cabinet.hpp"

#include <unordered_set>
#include <utility>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "core/json_read.hpp"
#include "core/offers.hpp"
#include "core/push.hpp"
#include "core/url.hpp"

namespace demper::core {

namespace {

using json_read::member;
using json_read::whole_number;
using Value = rapidjson::Value;

constexpr std::size_t kMaxProductCodeDigits = 18;  // fits an int64, far above real card ids

// Failure carries an error out of the nested readers; the entry points turn it into *Parse.
struct Failure {
    std::string error;
};

[[noreturn]] void fail(std::string error) { throw Failure{std::move(error)}; }

bool all_digits(std::string_view text) {
    if (text.empty()) return false;
    for (const char c : text)
        if (c < '0' || c > '9') return false;
    return true;
}

// card_id accepts 1..18 digits without a leading zero.
bool card_id(std::string_view text) {
    return all_digits(text) && text.size() <= kMaxProductCodeDigits && text[0] != '0';
}

// field finds a member, failing on a duplicate of a field this parser reads.
const Value* field(const Value& object, const char* key, const std::string& where) {
    bool duplicate = false;
    const Value* value = member(object, key, &duplicate);
    if (duplicate) fail(where + "duplicate key \"" + key + "\"");
    return value;
}

// text reads a tolerant string field: absent, null, another type, or a string that cannot be
// stored (json_read::storable_text) reads as "".
std::string text(const Value& object, const char* key) {
    bool duplicate = false;
    const Value* value = member(object, key, &duplicate);
    if (value == nullptr || !value->IsString()) return std::string();
    std::string out(value->GetString(), value->GetStringLength());
    return json_read::storable_text(out) ? out : std::string();
}

// identifier reads a string, or a non-negative integer as its decimal text; "" otherwise. A string
// that cannot be stored (a NUL character, invalid UTF-8) fails the answer: no listing could be
// stored or pushed with it.
std::string identifier(const Value* value, const std::string& where) {
    if (value == nullptr) return std::string();
    if (value->IsString()) {
        std::string out(value->GetString(), value->GetStringLength());
        if (!json_read::storable_text(out))
            fail(where + "an identifier contains a NUL character or invalid UTF-8");
        return out;
    }
    if (value->IsUint64()) return std::to_string(value->GetUint64());
    return std::string();
}

// count reads a tolerant non-negative whole number (stock, pre-order, total).
std::optional<std::int64_t> count(const Value& object, const char* key) {
    bool duplicate = false;
    const Value* value = member(object, key, &duplicate);
    std::int64_t n = 0;
    if (value == nullptr || !whole_number(*value, 0, kMaxOfferPrice, &n)) return std::nullopt;
    return n;
}

// price reads a strict optional price: absent or null is no price; anything else must be a whole
// number of tenge in [1, kMaxOfferPrice].
std::optional<std::int64_t> price(const Value& object, const char* key, const std::string& where) {
    const Value* value = field(object, key, where);
    if (value == nullptr || value->IsNull()) return std::nullopt;
    std::int64_t n = 0;
    if (!whole_number(*value, 1, kMaxOfferPrice, &n))
        fail(where + key + " must be a whole number of tenge in [1, " +
             std::to_string(kMaxOfferPrice) + "]");
    return n;
}

bool available_of(const Value& value, bool* out) {
    if (value.IsBool()) {
        *out = value.GetBool();
        return true;
    }
    if (!value.IsString()) return false;
    const std::string_view v(value.GetString(), value.GetStringLength());
    if (v == "yes" || v == "YES" || v == "Yes") {
        *out = true;
        return true;
    }
    if (v == "no" || v == "NO" || v == "No") {
        *out = false;
        return true;
    }
    return false;
}

std::vector<Availability> availabilities(const Value* list, const std::string& where) {
    std::vector<Availability> out;
    if (list == nullptr || list->IsNull()) return out;
    if (!list->IsArray()) fail(where + "availabilities is not an array");
    std::unordered_set<std::string> seen;
    std::size_t index = 0;
    for (auto it = list->Begin(); it != list->End(); ++it, ++index) {
        const std::string at = where + "availability " + std::to_string(index);
        if (!it->IsObject()) fail(at + " is not an object");
        Availability a;
        a.store_id = identifier(field(*it, "storeId", at + ": "), at + ": ");
        if (a.store_id.empty()) fail(at + " has no storeId");
        const Value* available = field(*it, "available", at + ": ");
        if (available == nullptr || !available_of(*available, &a.available))
            fail(at + ": available must be \"yes\" or \"no\"");
        if (!seen.insert(a.store_id).second)
            fail(at + ": storeId " + a.store_id + " is listed twice");
        a.stock_count = count(*it, "stockCount");
        a.pre_order = count(*it, "preOrder");
        out.push_back(std::move(a));
    }
    return out;
}

// pickup_points reads an array of storeIds, or of objects naming one (id, storeId or code).
std::vector<std::string> pickup_points(const Value* list, const std::string& where) {
    std::vector<std::string> out;
    if (list == nullptr || list->IsNull()) return out;
    if (!list->IsArray()) fail(where + "pickupPoints is not an array");
    for (auto it = list->Begin(); it != list->End(); ++it) {
        std::string id = identifier(&*it, where);
        if (id.empty() && it->IsObject()) {
            bool duplicate = false;
            for (const char* key : {"storeId", "id", "code"}) {
                id = identifier(member(*it, key, &duplicate), where);
                if (!id.empty()) break;
            }
        }
        if (id.empty()) fail(where + "a pickup point names no storeId");
        out.push_back(std::move(id));
    }
    return out;
}

std::vector<CityPrice> cities(const Value& list) {
    std::vector<CityPrice> out;
    std::unordered_set<std::string> seen;
    std::size_t index = 0;
    for (auto it = list.Begin(); it != list.End(); ++it, ++index) {
        const std::string at = "cityInfo[" + std::to_string(index) + "]: ";
        if (!it->IsObject()) fail(at + "city is not an object");
        CityPrice city;
        city.city_id = identifier(field(*it, "id", at), at);
        if (city.city_id.size() != 9 || !all_digits(city.city_id))
            fail(at + "id must be a 9-digit city id");
        if (!seen.insert(city.city_id).second)
            fail(at + "city " + city.city_id + " is listed twice");
        city.city_name = text(*it, "name");
        city.price = price(*it, "price", at);
        city.pickup_points = pickup_points(field(*it, "pickupPoints", at), at);
        out.push_back(std::move(city));
    }
    return out;
}

CabinetListing listing(const Value& item, std::size_t index) {
    const std::string at = "data[" + std::to_string(index) + "]: ";
    if (!item.IsObject()) fail(at + "listing is not an object");
    CabinetListing l;
    l.sku = identifier(field(item, "sku", at), at);
    if (l.sku.empty()) fail(at + "listing has no sku");
    l.master_sku = identifier(field(item, "masterSku", at), at);
    l.offer_id = identifier(field(item, "offerId", at), at);
    l.model = text(item, "masterTitle");
    if (l.model.empty()) l.model = text(item, "title");
    l.brand = text(item, "brand");
    l.category = text(item, "masterCategory");
    l.shop_link = text(item, "shopLink");
    l.product_code = product_code_of(l.shop_link, l.master_sku, l.sku);
    l.min_price = price(item, "minPrice", at);
    l.max_price = price(item, "maxPrice", at);
    l.availabilities = availabilities(field(item, "availabilities", at), at);
    l.archive_reason = text(item, "archiveReason");
    l.updated_at = text(item, "updatedAt");
    return l;
}

// parse_object parses a body that must be a JSON object; the document keeps the DOM alive.
void parse_object(std::string_view body, rapidjson::Document& doc) {
    if (auto error = json_read::body_error(body)) fail(std::move(*error));
    doc.Parse<json_read::kParseFlags>(body.data(), body.size());
    if (auto error = json_read::parse_error(doc)) fail(std::move(*error));
    if (!doc.IsObject()) fail("response is not a JSON object");
}

void replace_all(std::string& text, std::string_view placeholder, std::string_view value) {
    for (std::size_t at = text.find(placeholder); at != std::string::npos;
         at = text.find(placeholder, at + value.size())) {
        text.replace(at, placeholder.size(), value);
    }
}

}  // namespace

CabinetPageParse parse_cabinet_page(std::string_view body) {
    CabinetPageParse out;
    try {
        rapidjson::Document doc;
        parse_object(body, doc);
        const Value* data = field(doc, "data", "");
        if (data == nullptr) data = field(doc, "items", "");
        if (data == nullptr) fail("missing \"data\" array");
        if (!data->IsArray()) fail("\"data\" is not an array");
        CabinetPage page;
        page.total = count(doc, "total");
        page.listings.reserve(data->Size());
        std::unordered_set<std::string> skus;
        std::size_t index = 0;
        for (auto it = data->Begin(); it != data->End(); ++it, ++index) {
            page.listings.push_back(listing(*it, index));
            if (!skus.insert(page.listings.back().sku).second)
                fail("data[" + std::to_string(index) + "]: sku " + page.listings.back().sku +
                     " is listed twice");
        }
        out.page = std::move(page);
        out.ok = true;
    } catch (const Failure& failure) {
        out.error = failure.error;
    }
    return out;
}

CabinetDetailsParse parse_cabinet_details(std::string_view body) {
    CabinetDetailsParse out;
    try {
        rapidjson::Document doc;
        parse_object(body, doc);
        CabinetDetails d;
        d.sku = identifier(field(doc, "sku", ""), "");
        d.master_sku = identifier(field(doc, "masterSku", ""), "");
        d.product_code = product_code_of("", d.master_sku, d.sku);
        d.model = text(doc, "title");
        if (d.model.empty()) d.model = text(doc, "masterTitle");
        d.brand = text(doc, "brand");
        bool duplicate = false;
        if (d.brand.empty()) {
            const Value* product = member(doc, "masterProduct", &duplicate);
            const Value* card =
                product && product->IsObject() ? member(*product, "card", &duplicate) : nullptr;
            const Value* promo =
                card && card->IsObject() ? member(*card, "promoConditions", &duplicate) : nullptr;
            if (promo && promo->IsObject()) d.brand = text(*promo, "brand");
        }
        const Value* archived = member(doc, "archived", &duplicate);
        if (archived != nullptr && archived->IsBool()) d.archived = archived->GetBool();
        const Value* city_info = field(doc, "cityInfo", "");
        if (city_info == nullptr) fail("missing \"cityInfo\" array");
        if (!city_info->IsArray()) fail("\"cityInfo\" is not an array");
        d.cities = cities(*city_info);
        d.availabilities = availabilities(field(doc, "availabilities", ""), "");
        out.details = std::move(d);
        out.ok = true;
    } catch (const Failure& failure) {
        out.error = failure.error;
    }
    return out;
}

std::string product_code_from_shop_link(std::string_view shop_link) {
    std::string_view path = shop_link.substr(0, shop_link.find_first_of("?#"));
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    const std::size_t slash = path.rfind('/');
    std::string_view segment = slash == std::string_view::npos ? path : path.substr(slash + 1);
    const std::size_t dash = segment.rfind('-');
    if (dash != std::string_view::npos) segment.remove_prefix(dash + 1);
    return card_id(segment) ? std::string(segment) : std::string();
}

std::string product_code_of(std::string_view shop_link, std::string_view master_sku,
                            std::string_view sku) {
    std::string code = product_code_from_shop_link(shop_link);
    if (!code.empty()) return code;
    if (card_id(master_sku)) return std::string(master_sku);
    const std::size_t underscore = sku.find('_');
    if (underscore != std::string_view::npos && card_id(sku.substr(0, underscore)))
        return std::string(sku.substr(0, underscore));
    return std::string();
}

std::string cabinet_list_url(std::string_view tmpl, std::string_view merchant_uid,
                             std::int64_t page, std::int64_t limit, bool live) {
    std::string url(tmpl);
    replace_all(url, "{merchant_uid}", percent_encode_component(merchant_uid));
    replace_all(url, "{page}", std::to_string(page));
    replace_all(url, "{limit}", std::to_string(limit));
    replace_all(url, "{active}", live ? "true" : "false");
    return url;
}

std::string cabinet_details_url(std::string_view tmpl, std::string_view merchant_uid,
                                std::string_view sku) {
    std::string url(tmpl);
    replace_all(url, "{merchant_uid}", percent_encode_component(merchant_uid));
    replace_all(url, "{sku}", percent_encode_component(sku));
    return url;
}

std::vector<std::string> cabinet_headers(std::string_view session_cookie,
                                         std::string_view sid_cookie) {
    std::vector<std::string> headers = push_headers(session_cookie, sid_cookie);
    headers.erase(headers.begin());  // a GET has no body, so no Content-Type
    return headers;
}

std::string availabilities_json(const std::vector<Availability>& availabilities) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
    w.StartArray();
    for (const Availability& a : availabilities) {
        w.StartObject();
        w.Key("storeId");
        w.String(a.store_id.data(), static_cast<rapidjson::SizeType>(a.store_id.size()));
        w.Key("available");
        w.String(a.available ? "yes" : "no");
        if (a.stock_count) {
            w.Key("stockCount");
            w.Int64(*a.stock_count);
        }
        if (a.pre_order) {
            w.Key("preOrder");
            w.Int64(*a.pre_order);
        }
        w.EndObject();
    }
    w.EndArray();
    return std::string(buffer.GetString(), buffer.GetSize());
}

std::optional<std::vector<Availability>> availabilities_from_json(std::string_view json) {
    rapidjson::Document doc;
    doc.Parse(json.data(), json.size());
    if (doc.HasParseError() || !doc.IsArray()) return std::nullopt;
    try {
        return availabilities(&doc, "");
    } catch (const Failure&) {
        return std::nullopt;
    }
}

}  // namespace demper::core
