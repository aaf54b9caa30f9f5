// offers: the strict parser of the marketplace's "offers of one product" answer (DOMAIN.md §1).
//
// A malformed marketplace answer must never move a price, so this parser accepts only what it fully
// understands and otherwise fails the whole answer: it never returns a partial book.
//
// Accepted shape (fields not named here are ignored, whatever their type):
//
//   {"offers": [{"merchantId": "30012345", "merchantName": "Shop A", "price": 151990,
//                "deliveryDuration": "TOMORROW", ...}, ...],
//    "total": 7, ...}
//
// Rules, checked in this order:
//   - The body must be non-empty, hold no NUL byte, be valid UTF-8 and be exactly one JSON value
//     (nothing but whitespace after it). NaN/Infinity tokens, comments and trailing commas are
//     rejected. A body starting with '<' is reported as "response is not JSON (HTML page)".
//     Parsing is iterative, so deep nesting cannot overflow the stack.
//   - The value must be an object with an `offers` array (an empty array is a valid, empty book:
//     "nobody sells it").
//   - Every element of `offers` must be an object with
//       merchantId: a non-empty string, or a non-negative JSON integer (converted to its decimal
//                   string, so 30012345 and "30012345" are the same merchant);
//       price:      a JSON integer in [1, kMaxOfferPrice], or a JSON number with a fraction part
//                   or exponent (151990.0, 1.5e5: real answers write prices like 361788.0) only
//                   if it is finite, integral and in that range.
//                   A string ("151990"), zero, a negative number, 1e308 or a fractional price
//                   fails.
//       merchantName, deliveryDuration: optional strings; null counts as absent; any other type
//                   fails the parse (a wrong type is a sign that the format changed).
//   - `total` is optional: absent or null means "the number of offers"; otherwise it must be a
//     whole number in [0, kMaxOfferPrice], possibly written as a float like prices (7.0) (reported
//     as is: paging is the HTTP layer's business).
//   - Duplicate keys: a duplicate of a field this parser reads (`offers`, `total` at the top level;
//     `merchantId`, `price`, `merchantName`, `deliveryDuration` in an offer) fails the parse,
//     because two JSON readers could disagree on which one counts. Duplicates of ignored fields
//     are ignored.
//   - The body size limit is the HTTP layer's business, not this parser's.
//
// Errors are short lower-case texts meant for logs and the product's last_error, e.g.
// "response is not JSON (HTML page)", "offers[2]: price must be an integer in [1, 100000000000]".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace demper::core {

// The largest price the parser accepts (100 billion tenge): far above any real product and far
// below where int64 arithmetic on prices could overflow.
constexpr std::int64_t kMaxOfferPrice = 100'000'000'000;

struct Offer {
    std::string merchant_id;
    std::string merchant_name;
    std::int64_t price = 0;         // whole tenge
    std::string delivery_duration;  // as sent (EXPRESS, TODAY, ...); empty when absent
};

struct OfferBook {
    std::vector<Offer> offers;  // in the order the marketplace sent them
    std::int64_t total = 0;
};

struct OffersParse {
    bool ok = false;
    OfferBook book;     // empty unless ok
    std::string error;  // empty when ok
};

// parse_offers never throws (except std::bad_alloc) and never returns a partial book.
OffersParse parse_offers(std::string_view body);

// delivery_rank orders delivery durations, fastest first: EXPRESS=0, TODAY=1, TOMORROW=2,
// TILL_2_DAYS=3, TILL_3_DAYS=4, TILL_5_DAYS=5, TILL_7_DAYS=6; empty or unknown = 7 (the slowest).
// The match is exact (case-sensitive), as Kaspi sends these names.
constexpr int kUnknownDeliveryRank = 7;
int delivery_rank(std::string_view duration);

}  // namespace demper::core
