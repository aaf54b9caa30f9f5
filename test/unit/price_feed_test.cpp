// Unit tests of the Kaspi XML price feed writer (src/core/price_feed.hpp).
#include "core/price_feed.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <stdexcept>
#include <string>

namespace {

using demper::core::FeedCatalog;
using demper::core::FeedCityPrice;
using demper::core::FeedOffer;
using demper::core::FeedProblem;
using demper::core::validate_feed;
using demper::core::write_feed;

FeedOffer domain_offer() {
    FeedOffer o;
    o.sku = "A-1";
    o.model = "Phone X 128GB";
    o.brand = "Acme";
    o.available = true;
    o.store_ids = {"PP1"};
    o.city_prices = {{"750000000", 151989}};
    return o;
}

FeedCatalog domain_catalog() {
    FeedCatalog c;
    c.company = "Shop A";
    c.merchant_id = "30012345";
    c.generated_at = "2026-11-22 10:00";
    c.offers = {domain_offer()};
    return c;
}

// DOMAIN.md §2b, verbatim.
const char* const kDomainFeed =
    R"(<?xml version="1.0" encoding="utf-8"?>
<kaspi_catalog date="2026-11-22 10:00" xmlns="kaspiShopping"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:schemaLocation="kaspiShopping http://kaspi.kz/kaspishopping.xsd">
  <company>Shop A</company>
  <merchantid>30012345</merchantid>
  <offers>
    <offer sku="A-1">
      <model>Phone X 128GB</model>
      <brand>Acme</brand>
      <availabilities><availability available="yes" storeId="PP1"/></availabilities>
      <cityprices><cityprice cityId="750000000">151989</cityprice></cityprices>
    </offer>
  </offers>
</kaspi_catalog>
)";

std::size_t count(const std::string& hay, const std::string& needle) {
    std::size_t n = 0;
    for (std::size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1))
        ++n;
    return n;
}

// problems_of returns the problems joined, one per line, for EXPECT messages and searching.
std::string problems_of(const FeedCatalog& c) {
    std::string all;
    for (const FeedProblem& p : validate_feed(c)) all += "[" + p.sku + "] " + p.problem + "\n";
    return all;
}

void expect_problem(const FeedCatalog& c, const std::string& part) {
    const std::string all = problems_of(c);
    EXPECT_NE(all.find(part), std::string::npos) << "expected \"" << part << "\" in:\n" << all;
    EXPECT_THROW((void)write_feed(c), std::invalid_argument) << part;
}

TEST(PriceFeedWrite, DomainExampleExact) {
    const FeedCatalog c = domain_catalog();
    EXPECT_TRUE(validate_feed(c).empty()) << problems_of(c);
    EXPECT_EQ(write_feed(c), kDomainFeed);
}

TEST(PriceFeedWrite, EscapesEverySpecialCharacter) {
    FeedCatalog c = domain_catalog();
    c.company = "A&B <\"Q'>";
    c.merchant_id = "30&1";
    c.offers[0].sku = "a&<>\"'z";
    c.offers[0].model = "M&M's <\"x\">";
    c.offers[0].brand = "B>&<";
    c.offers[0].store_ids = {"P\"1"};
    const std::string xml = write_feed(c);
    EXPECT_NE(xml.find("<company>A&amp;B &lt;&quot;Q&apos;&gt;</company>"), std::string::npos) << xml;
    EXPECT_NE(xml.find("<merchantid>30&amp;1</merchantid>"), std::string::npos);
    EXPECT_NE(xml.find("<offer sku=\"a&amp;&lt;&gt;&quot;&apos;z\">"), std::string::npos) << xml;
    EXPECT_NE(xml.find("<model>M&amp;M&apos;s &lt;&quot;x&quot;&gt;</model>"), std::string::npos);
    EXPECT_NE(xml.find("<brand>B&gt;&amp;&lt;</brand>"), std::string::npos);
    EXPECT_NE(xml.find("storeId=\"P&quot;1\""), std::string::npos);
    // Nothing unescaped leaks: every '&' starts an entity.
    for (std::size_t at = xml.find('&'); at != std::string::npos; at = xml.find('&', at + 1)) {
        const std::string rest = xml.substr(at, 6);
        EXPECT_TRUE(rest.rfind("&amp;", 0) == 0 || rest.rfind("&lt;", 0) == 0 ||
                    rest.rfind("&gt;", 0) == 0 || rest.rfind("&quot;", 0) == 0 ||
                    rest.rfind("&apos;", 0) == 0)
            << rest;
    }
}

TEST(PriceFeedWrite, WhitespaceControlsAndUnicode) {
    FeedCatalog c = domain_catalog();
    c.offers[0].model = "Line1\nLine2\tTab\rCR";
    c.offers[0].brand = "Сбер «Тест» 😀";
    const std::string xml = write_feed(c);
    EXPECT_NE(xml.find("<model>Line1&#10;Line2&#9;Tab&#13;CR</model>"), std::string::npos) << xml;
    EXPECT_NE(xml.find("<brand>Сбер «Тест» 😀</brand>"), std::string::npos) << xml;
}

TEST(PriceFeedWrite, ElementOrder) {
    FeedCatalog c = domain_catalog();
    c.offers.push_back(domain_offer());
    c.offers[1].sku = "B-2";
    const std::string xml = write_feed(c);
    const char* const order[] = {"<?xml",       "<kaspi_catalog", "xmlns=\"kaspiShopping\"",
                                 "xmlns:xsi=",  "xsi:schemaLocation=", "<company>",
                                 "<merchantid>", "<offers>",       "<offer sku=\"A-1\">",
                                 "<model>",     "<brand>",        "<availabilities>",
                                 "<availability ", "</availabilities>", "<cityprices>",
                                 "<cityprice ", "</cityprices>",  "</offer>",
                                 "<offer sku=\"B-2\">", "<model>", "<brand>",
                                 "<availabilities>", "<cityprices>", "</offer>",
                                 "</offers>",   "</kaspi_catalog>"};
    std::size_t at = 0;
    for (const char* tag : order) {
        const std::size_t found = xml.find(tag, at);
        ASSERT_NE(found, std::string::npos) << tag << " not found after " << at << "\n" << xml;
        at = found + 1;
    }
    EXPECT_EQ(xml.rfind("</kaspi_catalog>\n"), xml.size() - 17);
    EXPECT_EQ(xml.find("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"), 0u);
}

TEST(PriceFeedWrite, MultipleCitiesAndStoresInGivenOrder) {
    FeedCatalog c = domain_catalog();
    c.offers[0].available = false;
    c.offers[0].store_ids = {"PP1", "PP2"};
    c.offers[0].city_prices = {{"750000000", 151989}, {"710000000", 152000}, {"511010000", 10}};
    const std::string xml = write_feed(c);
    EXPECT_NE(xml.find("<availabilities><availability available=\"no\" storeId=\"PP1\"/>"
                       "<availability available=\"no\" storeId=\"PP2\"/></availabilities>"),
              std::string::npos)
        << xml;
    EXPECT_NE(xml.find("<cityprices><cityprice cityId=\"750000000\">151989</cityprice>"
                       "<cityprice cityId=\"710000000\">152000</cityprice>"
                       "<cityprice cityId=\"511010000\">10</cityprice></cityprices>"),
              std::string::npos)
        << xml;
}

TEST(PriceFeedValidate, DomainExampleClean) { EXPECT_EQ(problems_of(domain_catalog()), ""); }

TEST(PriceFeedValidate, EmptyCatalogueRefused) {
    FeedCatalog c = domain_catalog();
    c.offers.clear();
    expect_problem(c, "no offers");
    try {
        (void)write_feed(c);
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("refusing to write a partial or empty price feed"),
                  std::string::npos)
            << e.what();
    }
}

TEST(PriceFeedValidate, CatalogueFields) {
    FeedCatalog c = domain_catalog();
    c.company = "";
    expect_problem(c, "company is empty");
    c = domain_catalog();
    c.company = "  ";
    expect_problem(c, "company is empty");
    c = domain_catalog();
    c.merchant_id = "";
    expect_problem(c, "merchantid is empty");
    for (const char* bad : {"", "2026-11-22", "2026-13-22 10:00", "2026-11-22T10:00",
                            "2026-11-22 24:00", "2026-11-22 10:60", "2026-11-00 10:00",
                            "x026-11-22 10:00"}) {
        c = domain_catalog();
        c.generated_at = bad;
        expect_problem(c, "is not \"YYYY-MM-DD HH:MM\"");
    }
    // Catalogue problems carry no sku.
    c = domain_catalog();
    c.company = "";
    ASSERT_EQ(validate_feed(c).size(), 1u);
    EXPECT_EQ(validate_feed(c)[0].sku, "");
}

TEST(PriceFeedValidate, Sku) {
    FeedCatalog c = domain_catalog();
    c.offers[0].sku = "";
    expect_problem(c, "offer[0]: sku is empty");
    c.offers[0].sku = std::string(21, 'x');
    expect_problem(c, "sku is 21 characters long (at most 20)");
    c.offers[0].sku = std::string(20, 'x');
    EXPECT_EQ(problems_of(c), "");
    // Characters are code points: 20 Cyrillic letters (40 bytes) fit, 21 do not.
    std::string cyr;
    for (int i = 0; i < 20; ++i) cyr += "Ж";
    c.offers[0].sku = cyr;
    EXPECT_EQ(problems_of(c), "");
    c.offers[0].sku = cyr + "Ж";
    expect_problem(c, "sku is 21 characters long");
}

TEST(PriceFeedValidate, ModelBrandMissing) {
    FeedCatalog c = domain_catalog();
    c.offers[0].model = "";
    expect_problem(c, "offer[0] (sku \"A-1\"): model is missing");
    c = domain_catalog();
    c.offers[0].model = " \t";
    expect_problem(c, "model is missing");
    c = domain_catalog();
    c.offers[0].brand = "";
    expect_problem(c, "brand is missing");
    const auto problems = validate_feed(c);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0].sku, "A-1");
}

TEST(PriceFeedValidate, Availability) {
    FeedCatalog c = domain_catalog();
    c.offers[0].store_ids.clear();
    expect_problem(c, "no availability");
    c.offers[0].store_ids = {""};
    expect_problem(c, "a storeId is empty");
    c.offers[0].store_ids = {"PP1", "PP1"};
    expect_problem(c, "duplicate storeId \"PP1\"");
}

TEST(PriceFeedValidate, CityPrices) {
    FeedCatalog c = domain_catalog();
    c.offers[0].city_prices.clear();
    expect_problem(c, "no city price");
    c.offers[0].city_prices = {{"75000000", 1000}};
    expect_problem(c, "cityId \"75000000\" is not 9 digits");
    c.offers[0].city_prices = {{"75000000a", 1000}};
    expect_problem(c, "is not 9 digits");
    c.offers[0].city_prices = {{"", 1000}};
    expect_problem(c, "is not 9 digits");
    c.offers[0].city_prices = {{"750000000", 1000}, {"750000000", 1001}};
    expect_problem(c, "duplicate cityId 750000000");
    c.offers[0].city_prices = {{"750000000", 9}};
    expect_problem(c, "price 9 for city 750000000 is outside [10, 100000000000]");
    c.offers[0].city_prices = {{"750000000", -5}};
    expect_problem(c, "price -5");
    c.offers[0].city_prices = {{"750000000", 100'000'000'001}};
    expect_problem(c, "is outside");
    c.offers[0].city_prices = {{"750000000", 10}};
    EXPECT_EQ(problems_of(c), "");
}

TEST(PriceFeedValidate, DuplicateSku) {
    FeedCatalog c = domain_catalog();
    c.offers.push_back(domain_offer());
    c.offers.push_back(domain_offer());
    c.offers[1].sku = "B";
    expect_problem(c, "offer[2] (sku \"A-1\"): duplicate sku (also offer[0])");
    EXPECT_EQ(validate_feed(c).size(), 1u);
}

TEST(PriceFeedValidate, InvalidUtf8AndControlCharacters) {
    const char* const bad_utf8[] = {"\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                    "\xe0\x80\xaf"};
    for (const char* bad : bad_utf8) {
        FeedCatalog c = domain_catalog();
        c.offers[0].model = std::string("M") + bad;
        expect_problem(c, "model is not valid UTF-8");
        c = domain_catalog();
        c.company = bad;
        expect_problem(c, "company is not valid UTF-8");
    }
    FeedCatalog c = domain_catalog();
    c.offers[0].brand = std::string("B\x01", 2);
    expect_problem(c, "brand contains a character XML does not allow (U+0001)");
    c = domain_catalog();
    c.offers[0].sku = std::string("A\0B", 3);
    expect_problem(c, "sku contains a character XML does not allow (U+0000)");
    // The problem's sku is safe to print.
    EXPECT_EQ(validate_feed(c)[0].sku, "A?B");
    c = domain_catalog();
    c.offers[0].store_ids = {"P\x1f"};
    expect_problem(c, "storeId contains a character XML does not allow (U+001F)");
    c = domain_catalog();
    c.merchant_id = "\xef\xbf\xbe";  // U+FFFE
    expect_problem(c, "merchantid contains a character XML does not allow (U+FFFE)");
    c = domain_catalog();
    c.offers[0].sku = "\xff\xfe";
    EXPECT_EQ(validate_feed(c)[0].sku, "??");
}

TEST(PriceFeedValidate, AllProblemsReportedAtOnce) {
    FeedCatalog c = domain_catalog();
    c.company = "";
    c.offers.push_back(domain_offer());
    c.offers[1].sku = "B";
    c.offers[1].model = "";
    c.offers[1].brand = "";
    c.offers[1].city_prices.clear();
    EXPECT_EQ(validate_feed(c).size(), 4u) << problems_of(c);
}

TEST(PriceFeedValidate, PartialFeedRefusedWithClearMessage) {
    FeedCatalog c = domain_catalog();
    for (int i = 0; i < 10; ++i) {
        FeedOffer o = domain_offer();
        o.sku = "S" + std::to_string(i);
        o.model = "";
        c.offers.push_back(o);
    }
    try {
        (void)write_feed(c);
        FAIL() << "expected a refusal";
    } catch (const std::invalid_argument& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("(10 problems)"), std::string::npos) << msg;
        EXPECT_NE(msg.find("offer[1] (sku \"S0\"): model is missing"), std::string::npos) << msg;
        EXPECT_NE(msg.find("and 5 more"), std::string::npos) << msg;
    }
}

TEST(PriceFeedPerf, HundredThousandOffers) {
    FeedCatalog c = domain_catalog();
    c.offers.clear();
    c.offers.reserve(100'000);
    for (int i = 0; i < 100'000; ++i) {
        FeedOffer o;
        o.sku = "SKU-" + std::to_string(i);
        o.model = "Model & Co <" + std::to_string(i) + ">";
        o.brand = "Brand";
        o.store_ids = {"PP1", "PP2"};
        o.city_prices = {{"750000000", 1000 + i}, {"710000000", 2000 + i}};
        c.offers.push_back(std::move(o));
    }
    const auto t0 = std::chrono::steady_clock::now();
    const std::string xml = write_feed(c);
    const auto t1 = std::chrono::steady_clock::now();
    std::cout << "[ perf     ] 100000 offers, " << xml.size() << " bytes in "
              << std::chrono::duration<double, std::milli>(t1 - t0).count() << " ms\n";
    EXPECT_EQ(count(xml, "<offer sku="), 100'000u);
    EXPECT_EQ(count(xml, "</offer>"), 100'000u);
    EXPECT_EQ(count(xml, "<cityprice "), 200'000u);
    EXPECT_EQ(count(xml, "<availability "), 200'000u);
    EXPECT_NE(xml.find("<offer sku=\"SKU-99999\">\n      <model>Model &amp; Co &lt;99999&gt;</model>"),
              std::string::npos);
    EXPECT_EQ(xml.rfind("</kaspi_catalog>\n"), xml.size() - 17);
    EXPECT_GT(xml.size(), 100'000u * 300);
}

}  // namespace

// A listing imported from the cabinet is written with its own pickup points, stock and pre-order
// where known, instead of the store's list.
TEST(PriceFeed, WritesEachListingsOwnPickupPoints) {
    demper::core::FeedCatalog catalog;
    catalog.company = "Shop";
    catalog.merchant_id = "30067228";
    catalog.generated_at = "2026-12-03 10:00";
    demper::core::FeedOffer offer;
    offer.sku = "133206576_392235481";
    offer.model = "Влажные полотенца";
    offer.brand = "Sunlight";
    offer.store_ids = {"PP1"};  // the store's list: not used when the listing has its own
    offer.availabilities = {{"30067228_PP2", true, 5, -1}, {"30067228_PP3", false, -1, 3}};
    offer.city_prices = {{"511010000", 1120}};
    catalog.offers.push_back(offer);
    ASSERT_TRUE(demper::core::validate_feed(catalog).empty());
    const std::string xml = demper::core::write_feed(catalog);
    EXPECT_NE(xml.find(R"(<availabilities><availability available="yes" storeId="30067228_PP2" stockCount="5"/>)"
                       R"(<availability available="no" storeId="30067228_PP3" preOrder="3"/></availabilities>)"),
              std::string::npos)
        << xml;
    EXPECT_EQ(xml.find("storeId=\"PP1\""), std::string::npos);
    catalog.offers[0].availabilities.push_back({"30067228_PP2", true, -1, -1});
    EXPECT_FALSE(demper::core::validate_feed(catalog).empty()) << "a storeId listed twice is refused";
}
