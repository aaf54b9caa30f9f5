// price_feed: the Kaspi XML price list that the marketplace pulls from a URL the seller registers
// (DOMAIN.md §2b).
//
// The feed must hold the WHOLE catalogue: Kaspi takes every offer missing from the feed off sale, so
// an empty or partial feed is worse than no feed. write_feed therefore refuses (throws) instead of
// leaving out an offer it cannot write, and validate_feed lists every reason at once.
//
// Output (byte for byte; two-space indentation, "\n" line ends, a final "\n"):
//
//   <?xml version="1.0" encoding="utf-8"?>
//   <kaspi_catalog date="2026-11-22 10:00" xmlns="kaspiShopping"
//       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
//       xsi:schemaLocation="kaspiShopping http://kaspi.kz/kaspishopping.xsd">
//     <company>Shop A</company>
//     <merchantid>30012345</merchantid>
//     <offers>
//       <offer sku="A-1">
//         <model>Phone X 128GB</model>
//         <brand>Acme</brand>
//         <availabilities><availability available="yes" storeId="PP1"/></availabilities>
//         <cityprices><cityprice cityId="750000000">151989</cityprice></cityprices>
//       </offer>
//     </offers>
//   </kaspi_catalog>
//
// Offers, store ids and city prices are written in the order given (the caller orders them, e.g.
// by sku, so that two feeds of the same catalogue are identical). Every text and attribute value is
// escaped: & < > " ' become &amp; &lt; &gt; &quot; &apos;, and TAB, LF, CR (allowed by XML but
// normalised away by parsers) become &#9; &#10; &#13;.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace demper::core {

constexpr std::size_t kFeedMaxSkuChars = 20;             // Kaspi: "sku at most 20 characters"
constexpr std::int64_t kFeedMinPrice = 10;               // Kaspi's own minimum price
constexpr std::int64_t kFeedMaxPrice = 100'000'000'000;  // same bound as the offers parser

struct FeedCityPrice {
    std::string city_id;  // KATO code, exactly 9 ASCII digits, e.g. "750000000"
    std::int64_t price;   // whole tenge
};

// FeedAvailability is one pickup point of a listing as the cabinet has it (catalogue import):
// written as <availability available="yes|no" storeId=".." stockCount=".." preOrder=".."/>, the
// last two only when known.
struct FeedAvailability {
    std::string store_id;
    bool available = true;
    std::int64_t stock_count = -1;  // -1: unknown
    std::int64_t pre_order = -1;    // days; -1: unknown
};

struct FeedOffer {
    std::string sku;
    std::string model;
    std::string brand;
    // The listing's own pickup points, when the catalogue import read them; otherwise the
    // store's list (store_ids), the same for every offer, each available="yes"/"no" (available).
    std::vector<FeedAvailability> availabilities;
    bool available = true;
    std::vector<std::string> store_ids;
    std::vector<FeedCityPrice> city_prices;  // at least one
};

struct FeedCatalog {
    std::string company;
    std::string merchant_id;
    std::string generated_at;  // "YYYY-MM-DD HH:MM" (store time zone is the caller's business)
    std::vector<FeedOffer> offers;
};

// FeedProblem: one reason the feed cannot be written. `sku` is the offer's sku, empty for problems
// of the catalogue itself (company, merchantid, date, no offers); bytes that are not printable
// UTF-8 are shown as '?' and a sku longer than 40 bytes is cut with "...", so the value is safe in
// a log line or an error message. `problem` starts with "offer[i]: " (0-based index into
// catalog.offers) for offer problems, so an offer with an empty sku can still be found.
struct FeedProblem {
    std::string sku;
    std::string problem;
};

// validate_feed returns every problem (empty when the feed can be written):
//   catalogue: empty company or merchantid; date not "YYYY-MM-DD HH:MM" (month 01-12, day 01-31,
//              hour 00-23, minute 00-59); no offers at all;
//   offer:     sku empty or longer than 20 characters; model or brand missing (empty or only
//              whitespace); no store id; empty or duplicate store id; no city price; city id not
//              exactly 9 ASCII digits; duplicate city id in one offer; price outside
//              [10, 100000000000]; sku equal to an earlier offer's sku (byte comparison);
//   any text:  not valid UTF-8 (overlong forms, surrogates and code points above U+10FFFF are
//              invalid), or holding a character XML 1.0 forbids (controls other than TAB, LF, CR;
//              U+FFFE, U+FFFF).
// "Characters" for the sku limit are Unicode code points (Kaspi counts characters, not bytes:
// "Телефон-1" is 9 characters although it is 17 bytes).
std::vector<FeedProblem> validate_feed(const FeedCatalog& catalog);

// write_feed returns the XML described at the top. Throws std::invalid_argument when
// validate_feed finds any problem; the message gives the number of problems and the first few.
std::string write_feed(const FeedCatalog& catalog);

}  // namespace demper::core
