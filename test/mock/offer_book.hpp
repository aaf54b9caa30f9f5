// offer_book.hpp: what the mock marketplace sells.
//
// Vocabulary: a *product* is identified by its product code (the {productId} of the offers URL);
// its *offer book* is the list of every merchant's offer for it, kept sorted cheapest first (ties
// by merchantId), exactly the order Kaspi answers with sortOption PRICE. Books come from a TSV file
// (--books), from PUT /_mock/offers/{code}, or are synthesised from the code (--synthetic N).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "json.hpp"

namespace demper_mock {

struct Offer {
    std::string merchant_id;
    std::string merchant_name;
    std::string merchant_sku;
    double merchant_rating = 4.5;
    int64_t merchant_reviews = 100;
    int64_t price = 0;
    bool kaspi_delivery = true;
    std::string delivery_type = "PICKUP";
    std::string delivery_duration = "TOMORROW";
};

using OfferBook = std::vector<Offer>;

// splitmix64 is Steele, Lea and Flood's SplitMix64 finaliser: a cheap, well-mixed 64-bit hash
// (the synthetic books' and cabinets' formulas are built on it).
uint64_t splitmix64(uint64_t x);

// read_whole_file returns a file's content; throws when it cannot be read.
std::string read_whole_file(const std::string& file_name);

// sort_book puts a book in answer order: price ascending, ties by merchantId.
void sort_book(OfferBook& book);

// synthetic_book derives a deterministic book from a numeric product code (formula in
// offer_book.cpp). `own_merchant` (may be empty) adds the seller's own offer, as Kaspi lists it
// among the others.
OfferBook synthetic_book(uint64_t code, const std::string& own_merchant);

// render_offers_page is the body of an offers answer: one page of the book plus the full count.
std::string render_offers_page(const OfferBook& book, size_t limit, size_t page);

// book_from_json reads {"offers":[...]} as PUT to /_mock/offers/{code}; nullopt and `error` if
// invalid.
std::optional<OfferBook> book_from_json(const JsonValue& document, const std::string& code,
                                        std::string& error);

class OfferCatalogue {
  public:
    void set_synthetic_limit(uint64_t limit) { synthetic_limit_ = limit; }
    void set_own_merchant(std::string merchant_id) { own_merchant_ = std::move(merchant_id); }

    // load_tsv adds the books of a TSV file and returns the number of offers read; throws on bad
    // lines.
    size_t load_tsv(const std::string& file_name);

    // replace sets a product's book (sorting it), overriding any file or synthetic book.
    void replace(const std::string& code, OfferBook book);

    // book_of returns the product's book: explicit, else synthetic (built in `scratch`), else empty
    // (unknown product). The reference is valid until the catalogue or `scratch` changes.
    const OfferBook& book_of(const std::string& code, OfferBook& scratch) const;

  private:
    std::unordered_map<std::string, OfferBook> books_;
    uint64_t synthetic_limit_ = 0;
    std::string own_merchant_;
};

}  // namespace demper_mock
