// Unit tests of the strict offers parser (src/core/offers.hpp).
#include "core/offers.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using demper::core::delivery_rank;
using demper::core::kMaxOfferPrice;
using demper::core::OffersParse;
using demper::core::parse_offers;

// The DOMAIN.md §1 example.
const char* const kDomainExample =
    R"({"offers": [{"merchantId": "30012345", "merchantName": "Shop A", "merchantSku": "A-1",
             "merchantRating": 4.9, "merchantReviewsQuantity": 120, "price": 151990,
             "kaspiDelivery": true, "deliveryType": "PICKUP", "deliveryDuration": "TOMORROW"}],
 "total": 7, "offersCount": 7})";

std::string one_offer(const std::string& fields) { return R"({"offers":[{)" + fields + "}]}"; }

void expect_fail(const std::string& body, const std::string& error_part = "") {
    const OffersParse p = parse_offers(body);
    EXPECT_FALSE(p.ok) << body;
    EXPECT_FALSE(p.error.empty()) << body;
    EXPECT_TRUE(p.book.offers.empty()) << "a failed parse must not return a partial book: " << body;
    if (!error_part.empty()) {
        EXPECT_NE(p.error.find(error_part), std::string::npos) << p.error;
    }
}

TEST(OffersParse, DomainExample) {
    const OffersParse p = parse_offers(kDomainExample);
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_TRUE(p.error.empty());
    ASSERT_EQ(p.book.offers.size(), 1u);
    EXPECT_EQ(p.book.offers[0].merchant_id, "30012345");
    EXPECT_EQ(p.book.offers[0].merchant_name, "Shop A");
    EXPECT_EQ(p.book.offers[0].price, 151990);
    EXPECT_EQ(p.book.offers[0].delivery_duration, "TOMORROW");
    EXPECT_EQ(p.book.total, 7);
}

TEST(OffersParse, SeveralOffersKeepOrder) {
    const OffersParse p = parse_offers(
        R"({"offers":[{"merchantId":"b","price":300},{"merchantId":"a","price":100},{"merchantId":"c","price":200}]})");
    ASSERT_TRUE(p.ok) << p.error;
    ASSERT_EQ(p.book.offers.size(), 3u);
    EXPECT_EQ(p.book.offers[0].merchant_id, "b");
    EXPECT_EQ(p.book.offers[1].merchant_id, "a");
    EXPECT_EQ(p.book.offers[2].merchant_id, "c");
    EXPECT_EQ(p.book.total, 3) << "total defaults to the number of offers";
}

TEST(OffersParse, ExtraFieldsOfAnyTypeAreIgnored) {
    const OffersParse p = parse_offers(
        R"({"x":{"y":[1,2,{"z":null}]},"offers":[{"merchantId":"1","price":5,"extra":[true,false],)"
        R"("merchantRating":null,"nested":{"price":"not me"}}],"offersCount":"whatever","more":1e308})");
    ASSERT_TRUE(p.ok) << p.error;
    ASSERT_EQ(p.book.offers.size(), 1u);
    EXPECT_EQ(p.book.offers[0].price, 5);
}

TEST(OffersParse, MerchantIdAsIntegerBecomesDecimalString) {
    const OffersParse p = parse_offers(one_offer(R"("merchantId":30012345,"price":10)"));
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_EQ(p.book.offers[0].merchant_id, "30012345");
    const OffersParse big =
        parse_offers(one_offer(R"("merchantId":18446744073709551615,"price":10)"));
    ASSERT_TRUE(big.ok) << big.error;
    EXPECT_EQ(big.book.offers[0].merchant_id, "18446744073709551615");
}

TEST(OffersParse, MerchantIdWrongTypesFail) {
    expect_fail(one_offer(R"("merchantId":-5,"price":10)"), "merchantId");
    expect_fail(one_offer(R"("merchantId":1.5,"price":10)"), "merchantId");
    expect_fail(one_offer(R"("merchantId":3e7,"price":10)"), "merchantId");
    expect_fail(one_offer(R"("merchantId":null,"price":10)"), "merchantId");
    expect_fail(one_offer(R"("merchantId":true,"price":10)"), "merchantId");
    expect_fail(one_offer(R"("merchantId":["1"],"price":10)"), "merchantId");
    expect_fail(one_offer(R"("merchantId":"","price":10)"), "merchantId");
    expect_fail(one_offer(R"("price":10)"), "missing merchantId");
}

TEST(OffersParse, PriceMustBeAPositiveIntegerInRange) {
    expect_fail(one_offer(R"("merchantId":"1","price":"151990")"), "price");
    expect_fail(one_offer(R"("merchantId":"1","price":-1)"), "price");
    expect_fail(one_offer(R"("merchantId":"1","price":0)"), "price");
    expect_fail(one_offer(R"("merchantId":"1","price":-0)"), "price");
    expect_fail(one_offer(R"("merchantId":"1","price":-0.0)"), "price");
    expect_fail(one_offer(R"("merchantId":"1","price":0.5)"), "price");
    expect_fail(one_offer(R"("merchantId":"1","price":151990.5)"), "price");
    expect_fail(one_offer(R"("merchantId":"1","price":1e308)"), "price");
    expect_fail(one_offer(R"("merchantId":"1","price":100000000001)"), "price");
    expect_fail(one_offer(R"("merchantId":"1","price":9223372036854775808)"), "price");
    expect_fail(one_offer(R"("merchantId":"1","price":99999999999999999999999)"), "price");
    expect_fail(one_offer(R"("merchantId":"1","price":null)"), "price");
    expect_fail(one_offer(R"("merchantId":"1","price":true)"), "price");
    expect_fail(one_offer(R"("merchantId":"1","price":{})"), "price");
    expect_fail(one_offer(R"("merchantId":"1")"), "missing price");
}

TEST(OffersParse, NanAndInfinityTokensAreNotJson) {
    for (const char* token :
         {"NaN", "nan", "Infinity", "-Infinity", "inf", "1e99999", "0x10", "+5", "05", ".5"}) {
        expect_fail(one_offer(std::string(R"("merchantId":"1","price":)") + token));
    }
}

TEST(OffersParse, IntegralDoublesInRangeAreAccepted) {
    const OffersParse p = parse_offers(one_offer(R"("merchantId":"1","price":151990.0)"));
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_EQ(p.book.offers[0].price, 151990);
    const OffersParse e = parse_offers(one_offer(R"("merchantId":"1","price":1.5e5)"));
    ASSERT_TRUE(e.ok) << e.error;
    EXPECT_EQ(e.book.offers[0].price, 150000);
    const OffersParse top = parse_offers(one_offer(R"("merchantId":"1","price":1e11)"));
    ASSERT_TRUE(top.ok) << top.error;
    EXPECT_EQ(top.book.offers[0].price, kMaxOfferPrice);
}

TEST(OffersParse, PriceBoundsAreInclusive) {
    const OffersParse lo = parse_offers(one_offer(R"("merchantId":"1","price":1)"));
    ASSERT_TRUE(lo.ok) << lo.error;
    EXPECT_EQ(lo.book.offers[0].price, 1);
    const OffersParse hi = parse_offers(one_offer(R"("merchantId":"1","price":100000000000)"));
    ASSERT_TRUE(hi.ok) << hi.error;
    EXPECT_EQ(hi.book.offers[0].price, kMaxOfferPrice);
}

TEST(OffersParse, OptionalStringFields) {
    const OffersParse p = parse_offers(
        one_offer(R"("merchantId":"1","price":10,"merchantName":null,"deliveryDuration":null)"));
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_EQ(p.book.offers[0].merchant_name, "");
    EXPECT_EQ(p.book.offers[0].delivery_duration, "");
    const OffersParse absent = parse_offers(one_offer(R"("merchantId":"1","price":10)"));
    ASSERT_TRUE(absent.ok) << absent.error;
    EXPECT_EQ(absent.book.offers[0].delivery_duration, "");
    const OffersParse unicode = parse_offers(
        one_offer(R"("merchantId":"1","price":10,"merchantName":"Магазин \u00e9 \"q\"")"));
    ASSERT_TRUE(unicode.ok) << unicode.error;
    EXPECT_EQ(unicode.book.offers[0].merchant_name, "Магазин \xC3\xA9 \"q\"");
}

TEST(OffersParse, OptionalFieldsOfWrongTypeFail) {
    expect_fail(one_offer(R"("merchantId":"1","price":10,"merchantName":5)"), "merchantName");
    expect_fail(one_offer(R"("merchantId":"1","price":10,"merchantName":{})"), "merchantName");
    expect_fail(one_offer(R"("merchantId":"1","price":10,"deliveryDuration":2)"),
                "deliveryDuration");
    expect_fail(one_offer(R"("merchantId":"1","price":10,"deliveryDuration":["TODAY"])"),
                "deliveryDuration");
}

TEST(OffersParse, OneBadOfferFailsTheWholeBook) {
    expect_fail(
        R"({"offers":[{"merchantId":"1","price":10},{"merchantId":"2","price":"20"},{"merchantId":"3","price":30}]})",
        "offers[1]");
    expect_fail(R"({"offers":[{"merchantId":"1","price":10},null]})",
                "offers[1]: offer is not an object");
    expect_fail(R"({"offers":[{"merchantId":"1","price":10},[]]})", "offers[1]");
    expect_fail(R"({"offers":[5]})", "offers[0]");
}

TEST(OffersParse, DuplicateKeysThatMatterFail) {
    expect_fail(one_offer(R"("merchantId":"1","price":10,"price":20)"), "duplicate key \"price\"");
    expect_fail(one_offer(R"("merchantId":"1","merchantId":"2","price":10)"),
                "duplicate key \"merchantId\"");
    expect_fail(one_offer(R"("merchantId":"1","price":10,"merchantName":"a","merchantName":"b")"),
                "duplicate");
    expect_fail(
        one_offer(
            R"("merchantId":"1","price":10,"deliveryDuration":"TODAY","deliveryDuration":"TODAY")"),
        "duplicate");
    expect_fail(R"({"offers":[],"offers":[{"merchantId":"1","price":10}]})",
                "duplicate key \"offers\"");
    expect_fail(R"({"offers":[],"total":1,"total":2})", "duplicate key \"total\"");
}

TEST(OffersParse, DuplicateIgnoredKeysAreIgnored) {
    const OffersParse p =
        parse_offers(R"({"offers":[{"merchantId":"1","price":10,"x":1,"x":2}],"y":1,"y":[]})");
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_EQ(p.book.offers.size(), 1u);
}

TEST(OffersParse, HtmlAntiBotPage) {
    expect_fail(
        "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body></body></html>",
        "response is not JSON (HTML page)");
    expect_fail("\r\n  <html>", "HTML page");
}

TEST(OffersParse, EmptyAndBlankBodies) {
    expect_fail("", "empty response");
    expect_fail(" \n\t\r ", "empty response");
}

TEST(OffersParse, TruncatedJson) {
    const std::string full = kDomainExample;
    for (std::size_t cut = 1; cut < full.size(); ++cut) {
        const OffersParse p = parse_offers(std::string_view(full).substr(0, cut));
        EXPECT_FALSE(p.ok) << "prefix of length " << cut << " parsed";
        EXPECT_TRUE(p.book.offers.empty());
    }
    expect_fail(R"({"offers":[{"merchantId":"1","price":10})", "not JSON");
}

TEST(OffersParse, InvalidUtf8) {
    expect_fail(one_offer("\"merchantId\":\"1\",\"price\":10,\"merchantName\":\"\xC3\x28\""),
                "not JSON");
    expect_fail(one_offer("\"merchantId\":\"\xFF\xFE\",\"price\":10"), "not JSON");
    expect_fail(one_offer("\"merchantId\":\"1\",\"price\":10,\"ignored\":\"\xED\xA0\x80\""),
                "not JSON");
    expect_fail(one_offer("\"merchantId\":\"1\",\"price\":10,\"ignored\":\"\xE2\x82\""),
                "not JSON");
}

TEST(OffersParse, NulBytesAndTrailingGarbage) {
    std::string with_nul = R"({"offers":[]})";
    with_nul.push_back('\0');
    with_nul += "<html>";
    expect_fail(with_nul, "NUL");
    expect_fail(R"({"offers":[]} {"offers":[]})", "not JSON");
    expect_fail(R"({"offers":[]} x)", "not JSON");
    expect_fail(R"({"offers":[],})", "not JSON");
    expect_fail(R"({"offers":[]}/* c */)", "not JSON");
    const OffersParse trailing_space = parse_offers("{\"offers\":[]}\r\n ");
    EXPECT_TRUE(trailing_space.ok) << trailing_space.error;
}

// The DOM lives in a reused per-thread buffer (128 KB); a larger answer takes more from the heap,
// and a small answer parsed after it must not see anything of it.
TEST(OffersParse, AnswersLargerThanTheReusedBufferAndAfter) {
    std::string big = R"({"offers":[)";
    const int n = 3000;  // ~600 kB of JSON: several times the buffer
    for (int i = 0; i < n; i++) {
        if (i > 0) big += ',';
        big += R"({"merchantId":"M)" + std::to_string(i) + R"(","merchantName":"A rather long merchant name number )" +
               std::to_string(i) + R"(","price":)" + std::to_string(1000 + i) +
               R"(,"deliveryDuration":"TOMORROW","merchantRating":4.5,"merchantReviewsQuantity":10})";
    }
    big += R"(],"total":3000})";
    for (int round = 0; round < 3; round++) {
        const OffersParse p = parse_offers(big);
        ASSERT_TRUE(p.ok) << p.error;
        ASSERT_EQ(p.book.offers.size(), static_cast<std::size_t>(n));
        EXPECT_EQ(p.book.offers[2999].merchant_id, "M2999");
        EXPECT_EQ(p.book.offers[2999].price, 3999);
        EXPECT_EQ(p.book.total, 3000);
        const OffersParse small = parse_offers(kDomainExample);
        ASSERT_TRUE(small.ok) << small.error;
        ASSERT_EQ(small.book.offers.size(), 1u);
        EXPECT_EQ(small.book.offers[0].merchant_id, "30012345");
        EXPECT_EQ(small.book.total, 7);
    }
}

TEST(OffersParse, DeepNestingDoesNotOverflowTheStack) {
    expect_fail(std::string(100000, '['), "not JSON");
    expect_fail(std::string(100000, '{'), "not JSON");
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    expect_fail(deep, "not a JSON object");
    // Valid deep nesting in an ignored field is fine.
    const std::string ignored = R"({"offers":[{"merchantId":"1","price":10}],"deep":)" + deep + "}";
    const OffersParse p = parse_offers(ignored);
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_EQ(p.book.offers.size(), 1u);
    // Deep nesting in place of a field we read fails.
    expect_fail(R"({"offers":)" + deep + "}", "offers[0]");
}

TEST(OffersParse, NotAnObjectOrNoOffersArray) {
    expect_fail("[]", "not a JSON object");
    expect_fail("\"offers\"", "not a JSON object");
    expect_fail("null", "not a JSON object");
    expect_fail("42", "not a JSON object");
    expect_fail("{}", "missing \"offers\" array");
    expect_fail(R"({"Offers":[]})", "missing");
    expect_fail(R"({"offers":null})", "not an array");
    expect_fail(R"({"offers":{}})", "not an array");
    expect_fail(R"({"offers":"[]"})", "not an array");
}

// A trimmed answer in the shape real ones have (DOMAIN.md §1 and public clients' field lists):
// merchantId strings, prices written as floats, no rating fields for a store without reviews, and
// many fields this parser does not read (kdPoints, deliveryOptions, preorder, dates, nulls).
const char* const kRealisticAnswer = R"({
  "offers": [
    {"merchantId": "30244441", "merchantName": "ТехноЛэнд", "merchantSku": "TL-00012",
     "masterSku": "101234567", "merchantRating": 4.8, "merchantReviewsQuantity": 1543,
     "price": 361788.0, "kaspiDelivery": true, "deliveryType": "DELIVERY",
     "deliveryDuration": "TOMORROW", "delivery": "2026-11-23T00:00:00.000+05:00",
     "kdPickupDate": "2026-11-23T00:00:00.000+05:00",
     "deliveryOptions": {"TO_DOOR": {"interCity": false, "deliveryCost": 0.0,
                                     "deliveryThreshold": 10000.0}, "PICKUP": {}},
     "availabilityDate": "2026-11-22T00:00:00.000+05:00", "preorder": 0,
     "locatedInPoint": "PP1", "kdPoints": ["PP1", "PP3"], "hasPartnerDelivery": false,
     "promo": []},
    {"merchantId": "17510123", "merchantName": "Магазин \"Алем\"", "merchantSku": "A-77",
     "price": 362490, "kaspiDelivery": false, "deliveryType": "PICKUP",
     "deliveryDuration": "TILL_2_DAYS", "preorder": 5, "kdPoints": [], "deliveryOptions": null},
    {"merchantId": "30012345", "merchantName": "Own Store", "price": 365000.0,
     "deliveryDuration": null, "merchantRating": null}
  ],
  "total": 3, "offersCount": 3, "merchantsWithPromo": [],
  "analytics": {"dateOfGeneration": "2026-11-22T10:00:00", "ab": {"x": [1, 2.5, null]}}
})";

TEST(OffersParse, RealisticAnswer) {
    const OffersParse p = parse_offers(kRealisticAnswer);
    ASSERT_TRUE(p.ok) << p.error;
    ASSERT_EQ(p.book.offers.size(), 3u);
    EXPECT_EQ(p.book.offers[0].merchant_id, "30244441");
    EXPECT_EQ(p.book.offers[0].merchant_name, "ТехноЛэнд");
    EXPECT_EQ(p.book.offers[0].price, 361788);
    EXPECT_EQ(p.book.offers[0].delivery_duration, "TOMORROW");
    EXPECT_EQ(p.book.offers[1].merchant_id, "17510123") << "no rating fields: a store without reviews";
    EXPECT_EQ(p.book.offers[1].merchant_name, "Магазин \"Алем\"");
    EXPECT_EQ(p.book.offers[1].price, 362490);
    EXPECT_EQ(p.book.offers[1].delivery_duration, "TILL_2_DAYS");
    EXPECT_EQ(p.book.offers[2].price, 365000);
    EXPECT_EQ(p.book.offers[2].delivery_duration, "");
    EXPECT_EQ(p.book.total, 3);
}

TEST(OffersParse, EmptyOffersListIsAValidEmptyBook) {
    const OffersParse p = parse_offers(R"({"offers":[],"total":0})");
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_TRUE(p.book.offers.empty());
    EXPECT_EQ(p.book.total, 0);
    const OffersParse no_total = parse_offers(R"({"offers":[]})");
    ASSERT_TRUE(no_total.ok);
    EXPECT_EQ(no_total.book.total, 0);
}

TEST(OffersParse, Total) {
    const OffersParse paged =
        parse_offers(R"({"offers":[{"merchantId":"1","price":10}],"total":130})");
    ASSERT_TRUE(paged.ok) << paged.error;
    EXPECT_EQ(paged.book.total, 130);
    const OffersParse null_total =
        parse_offers(R"({"offers":[{"merchantId":"1","price":10}],"total":null})");
    ASSERT_TRUE(null_total.ok) << null_total.error;
    EXPECT_EQ(null_total.book.total, 1);
    expect_fail(R"({"offers":[],"total":-1})", "total");
    expect_fail(R"({"offers":[],"total":"7"})", "total");
    expect_fail(R"({"offers":[],"total":7.5})", "total");
    const OffersParse float_total = parse_offers(R"({"offers":[],"total":7.0})");
    ASSERT_TRUE(float_total.ok) << float_total.error;
    EXPECT_EQ(float_total.book.total, 7);
    expect_fail(R"({"offers":[],"total":18446744073709551615})", "total");
}

TEST(OffersParse, ErrorsAreLowerCase) {
    for (const char* body : {"", "<html>", "{", "[]", "{}", R"({"offers":[{"price":1}]})"}) {
        const OffersParse p = parse_offers(body);
        ASSERT_FALSE(p.ok);
        ASSERT_FALSE(p.error.empty());
        EXPECT_FALSE(p.error[0] >= 'A' && p.error[0] <= 'Z') << p.error;
    }
}

TEST(OffersDeliveryRank, KnownValuesInOrder) {
    EXPECT_EQ(delivery_rank("EXPRESS"), 0);
    EXPECT_EQ(delivery_rank("TODAY"), 1);
    EXPECT_EQ(delivery_rank("TOMORROW"), 2);
    EXPECT_EQ(delivery_rank("TILL_2_DAYS"), 3);
    EXPECT_EQ(delivery_rank("TILL_3_DAYS"), 4);
    EXPECT_EQ(delivery_rank("TILL_5_DAYS"), 5);
    EXPECT_EQ(delivery_rank("TILL_7_DAYS"), 6);
}

TEST(OffersDeliveryRank, UnknownAndEmptyAreSlowest) {
    EXPECT_EQ(delivery_rank(""), 7);
    EXPECT_EQ(delivery_rank("today"), 7);
    EXPECT_EQ(delivery_rank("TILL_10_DAYS"), 7);
    EXPECT_EQ(delivery_rank("EXPRESS "), 7);
}

}  // namespace
