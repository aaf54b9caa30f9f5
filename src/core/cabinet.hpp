// cabinet: the pure parts of reading the seller's own catalogue from the merchant cabinet
// (DOMAIN.md §2c): the request URLs and headers, and the parsers of the offer list page and of one
// offer's details.
//
//   GET https://mc.shop.kaspi.kz/bff/offer-view/list?m={merchantUid}&p={page}&l={size}&a=true|false
//     -> {"total": N, "data": [{"sku": .., "masterSku": .., "masterTitle": .., "brand": ..,
//                               "shopLink": .., "availabilities": [..], ...}, ...]}
//   GET https://mc.shop.kaspi.kz/bff/offer-view/details?m={merchantUid}&s={sku}
//     -> {"masterSku": .., "cityInfo": [{"id": .., "name": .., "price": .., "pickupPoints": [..]}]}
//
// Vocabulary: a *listing* is one of the seller's offers as the cabinet lists it (one sku; the
// importer turns it into one demper.product row per city). Its *availabilities* are its pickup
// points (storeIds like "30067228_PP2") with available yes/no, stock and pre-order; a push must
// carry exactly these (push.hpp).
//
// The field names come from public clients' code, not from a contract, so the parsers are tolerant
// where a wrong guess costs nothing and strict where it would cost a listing:
//   - tolerant: unknown fields are ignored whatever their type; an optional field that is absent,
//     null, or of another type than expected reads as absent (title, brand, category, shopLink,
//     offerId, stockCount, preOrder, total, a city's name; a text holding a NUL character or
//     invalid UTF-8, such as an escaped lone surrogate, too);
//     numbers may be written as floats (361788.0); strings are UTF-8 (Cyrillic titles);
//   - strict (the whole answer fails, never a partial page): a body that is empty, HTML, not JSON
//     or not a JSON object; no `data` array (`items` is accepted as its other name) in a list page
//     or no `cityInfo` array in the details; an identifier (sku, masterSku, offerId, storeId, city
//     id, pickup point) holding a NUL character or invalid UTF-8; a listing that is not an object
//     or has no sku; an
//     availability without storeId, or whose `available` is not "yes"/"no" (or a boolean), or a
//     storeId listed twice; a city without a 9-digit id, listed twice, or whose price is present
//     but not a whole number of tenge in [1, kMaxOfferPrice]; a price (minPrice, maxPrice) present
//     but not such a number. A failed page must fail the import ("never an empty catalogue"):
//     the caller must not take a failed parse for an empty page.
// Errors are short lower-case texts for logs and the sync's error column, e.g.
// "data[3]: availability 1 has no storeId".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace demper::core {

// Availability is one pickup point of a listing as the cabinet has it.
struct Availability {
    std::string store_id;                     // "30067228_PP2"
    bool available = true;                    // "yes" / "no"
    std::optional<std::int64_t> stock_count;  // absent when the cabinet did not say
    std::optional<std::int64_t> pre_order;    // days of pre-order; absent when not said
};

// CityPrice is one city a listing is sold in (details' cityInfo).
struct CityPrice {
    std::string city_id;  // 9-digit KATO code
    std::string city_name;
    std::optional<std::int64_t> price;       // whole tenge; absent when the cabinet gave none
    std::vector<std::string> pickup_points;  // storeIds
};

struct CabinetListing {
    std::string sku;
    std::string product_code;  // the product card id (product_code_of); empty when none is known
    std::string master_sku;    // as sent (empty when absent)
    std::string offer_id;
    std::string model;  // masterTitle (or title)
    std::string brand;
    std::string category;  // masterCategory
    std::string shop_link;
    std::optional<std::int64_t> min_price;
    std::optional<std::int64_t> max_price;
    std::vector<Availability> availabilities;  // in the order sent
    std::string archive_reason;                // archiveReason, when the cabinet gives one
    std::string updated_at;                    // updatedAt as sent: a changed value means the
                                               // importer reads the listing's details again
};

struct CabinetPage {
    std::optional<std::int64_t> total;     // "total", when it is a non-negative integer
    std::vector<CabinetListing> listings;  // empty: the last page was passed
};

struct CabinetPageParse {
    bool ok = false;
    CabinetPage page;   // empty unless ok
    std::string error;  // empty when ok
};

// parse_cabinet_page parses one page of the offer list. Never throws (except std::bad_alloc).
CabinetPageParse parse_cabinet_page(std::string_view body);

struct CabinetDetails {
    std::string sku;           // as sent (empty when absent)
    std::string master_sku;    // as sent
    std::string product_code;  // product_code_of("", masterSku, sku)
    std::string model;         // title (or masterTitle)
    std::string brand;         // brand (or masterProduct.card.promoConditions.brand)
    std::optional<bool> archived;
    std::vector<CityPrice> cities;             // in the order sent
    std::vector<Availability> availabilities;  // when the details carry them
};

struct CabinetDetailsParse {
    bool ok = false;
    CabinetDetails details;
    std::string error;
};

// parse_cabinet_details parses one offer's details. Never throws (except std::bad_alloc).
CabinetDetailsParse parse_cabinet_details(std::string_view body);

// product_code_from_shop_link returns the number that ends the last path segment of a product
// page link ("https://kaspi.kz/shop/p/vlazhnye-polotentsa-sunlight-133206576/?c=750000000" gives
// "133206576"), or "" when there is none (1 to 18 digits, not starting with 0).
std::string product_code_from_shop_link(std::string_view shop_link);

// product_code_of picks a listing's product card id: from shopLink, else masterSku when it is all
// digits, else the digits before the first '_' of the sku ("133206576_392235481"); "" when none.
std::string product_code_of(std::string_view shop_link, std::string_view master_sku,
                            std::string_view sku);

// availabilities_json writes availabilities as the importer stores them (a JSON array in the
// cabinet's own shape: [{"storeId":..,"available":"yes"|"no","stockCount":..,"preOrder":..}],
// stockCount and preOrder only when known), and availabilities_from_json reads that back with
// the same strictness as a list page; nullopt when the text is not such an array.
std::string availabilities_json(const std::vector<Availability>& availabilities);
std::optional<std::vector<Availability>> availabilities_from_json(std::string_view json);

// Default URL templates (settings hold them; placeholders are replaced percent-encoded).
constexpr const char* kDefaultCabinetListUrl =
    "https://mc.shop.kaspi.kz/bff/offer-view/list?m={merchant_uid}&p={page}&l={limit}&a={active}";
constexpr const char* kDefaultCabinetDetailsUrl =
    "https://mc.shop.kaspi.kz/bff/offer-view/details?m={merchant_uid}&s={sku}";

// cabinet_list_url expands {merchant_uid}, {page}, {limit} and {active} ("true" for the live
// offers, "false" for the archived ones).
std::string cabinet_list_url(std::string_view tmpl, std::string_view merchant_uid,
                             std::int64_t page, std::int64_t limit, bool live);
// cabinet_details_url expands {merchant_uid} and {sku}.
std::string cabinet_details_url(std::string_view tmpl, std::string_view merchant_uid,
                                std::string_view sku);

// cabinet_headers returns the headers of a cabinet read, in this order:
//   "Accept: application/json, text/*", "x-auth-version: 3", "Origin: https://kaspi.kz",
//   "Referer: https://kaspi.kz/", "Cookie: mc-session=<session>; mc-sid=<sid>"
// Cookie values are checked as push_headers checks them (std::invalid_argument naming the cookie,
// never showing its value).
std::vector<std::string> cabinet_headers(std::string_view session_cookie,
                                         std::string_view sid_cookie);

}  // namespace demper::core
