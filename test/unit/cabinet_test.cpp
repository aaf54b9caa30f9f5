// Unit tests of the merchant cabinet's list and details parsers and request helpers
// (src/core/cabinet.hpp).
#include "core/cabinet.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "core/json_read.hpp"

namespace {

using demper::core::Availability;
using demper::core::cabinet_details_url;
using demper::core::cabinet_headers;
using demper::core::cabinet_list_url;
using demper::core::CabinetDetailsParse;
using demper::core::CabinetPageParse;
using demper::core::kDefaultCabinetDetailsUrl;
using demper::core::kDefaultCabinetListUrl;
using demper::core::parse_cabinet_details;
using demper::core::parse_cabinet_page;
using demper::core::product_code_from_shop_link;
using demper::core::product_code_of;

// The DOMAIN.md §2c item, inside a page.
const char* const kDomainPage =
    R"({"total": 1, "data": [{"offerId": "...", "sku": "133206576_392235481", "masterSku": "133206576",
 "masterTitle": "Влажные полотенца Sunlight 70 шт", "brand": "Sunlight", "masterCategory": "...",
 "minPrice": 1120, "shopLink": "https://kaspi.kz/shop/p/vlazhnye-polotentsa-sunlight-133206576/",
 "availabilities": [{"storeId": "30067228_PP2", "available": "yes", "stockCount": 0, "preOrder": 0}],
 "images": ["..."], "updatedAt": "..."}]})";

// A page exactly as test/mock answers it (GET /bff/offer-view/list): the mock and this parser must
// agree, since the TAP tests import through both.
const char* const kMockPage =
    R"({"total":1,"data":[{"offerId":"30067228-133206576_392235481","sku":"133206576_392235481",)"
    R"("masterSku":"133206576","masterTitle":"Влажные полотенца Sunlight 70 шт","brand":"Sunlight",)"
    R"("masterCategory":"Влажные салфетки","minPrice":1120.0,"maxPrice":1190.0,)"
    R"("shopLink":"https://kaspi.kz/shop/p/vlazhnye-polotentsa-sunlight-133206576/",)"
    R"("availabilities":[{"storeId":"30067228_PP1","available":"yes","stockCount":7,"preOrder":0},)"
    R"({"storeId":"30067228_PP2","available":"no","stockCount":0,"preOrder":3}],)"
    R"("images":["https://resources.cdn-kaspi.kz/img/m/p/133206576.jpg"],"cityCount":2,)"
    R"("promo":{"type":null,"labels":[]},"updatedAt":"2026-12-03T17:53:30.403+05:00"}]})";

// The details of the same offer, as test/mock answers them (GET /bff/offer-view/details).
const char* const kMockDetails =
    R"({"sku":"133206576_392235481","masterSku":"133206576","title":"Влажные полотенца Sunlight 70 шт",)"
    R"("brand":"Sunlight","archived":false,"cityInfo":[{"id":"511010000","name":"Шымкент","price":1120,)"
    R"("oldPrice":null,"pickupPoints":["30067228_PP2"]},{"id":"750000000","name":"Алматы","price":1190,)"
    R"("oldPrice":null,"pickupPoints":["30067228_PP1"]}],"availabilities":[{"storeId":"30067228_PP1",)"
    R"("available":"yes","stockCount":7,"preOrder":0},{"storeId":"30067228_PP2","available":"no",)"
    R"("stockCount":0,"preOrder":3}],"masterProduct":{"card":{"promoConditions":{"brand":"Sunlight"}},)"
    R"("galleryImages":[]}})";

std::string page_with_item(const std::string& fields) {
    return R"({"total":1,"data":[{"sku":"1_2",)" + fields + "}]}";
}

std::string details_with_city(const std::string& fields) {
    return R"({"masterSku":"101","cityInfo":[{"id":"750000000",)" + fields + "}]}";
}

void expect_page_fails(const std::string& body, const std::string& error_part) {
    const CabinetPageParse p = parse_cabinet_page(body);
    EXPECT_FALSE(p.ok) << body;
    EXPECT_TRUE(p.page.listings.empty()) << "a failed page must not return listings: " << body;
    EXPECT_NE(p.error.find(error_part), std::string::npos) << body << " -> " << p.error;
}

void expect_details_fail(const std::string& body, const std::string& error_part) {
    const CabinetDetailsParse p = parse_cabinet_details(body);
    EXPECT_FALSE(p.ok) << body;
    EXPECT_TRUE(p.details.cities.empty()) << body;
    EXPECT_NE(p.error.find(error_part), std::string::npos) << body << " -> " << p.error;
}

TEST(CabinetPage, DomainExample) {
    const CabinetPageParse p = parse_cabinet_page(kDomainPage);
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_EQ(p.page.total, 1);
    ASSERT_EQ(p.page.listings.size(), 1u);
    const auto& l = p.page.listings[0];
    EXPECT_EQ(l.sku, "133206576_392235481");
    EXPECT_EQ(l.product_code, "133206576");
    EXPECT_EQ(l.master_sku, "133206576");
    EXPECT_EQ(l.model, "Влажные полотенца Sunlight 70 шт");
    EXPECT_EQ(l.brand, "Sunlight");
    EXPECT_EQ(l.min_price, 1120);
    EXPECT_FALSE(l.max_price.has_value());
    ASSERT_EQ(l.availabilities.size(), 1u);
    EXPECT_EQ(l.availabilities[0].store_id, "30067228_PP2");
    EXPECT_TRUE(l.availabilities[0].available);
    EXPECT_EQ(l.availabilities[0].stock_count, 0);
    EXPECT_EQ(l.availabilities[0].pre_order, 0);
}

TEST(CabinetPage, MockAnswer) {
    const CabinetPageParse p = parse_cabinet_page(kMockPage);
    ASSERT_TRUE(p.ok) << p.error;
    ASSERT_EQ(p.page.listings.size(), 1u);
    const auto& l = p.page.listings[0];
    EXPECT_EQ(l.offer_id, "30067228-133206576_392235481");
    EXPECT_EQ(l.category, "Влажные салфетки");
    EXPECT_EQ(l.min_price, 1120) << "float-written price 1120.0";
    EXPECT_EQ(l.max_price, 1190);
    ASSERT_EQ(l.availabilities.size(), 2u);
    EXPECT_EQ(l.availabilities[1].store_id, "30067228_PP2");
    EXPECT_FALSE(l.availabilities[1].available);
    EXPECT_EQ(l.availabilities[1].pre_order, 3);
    EXPECT_EQ(l.availabilities[0].stock_count, 7);
    EXPECT_TRUE(l.archive_reason.empty());
}

TEST(CabinetPage, EmptyPageEndsTheList) {
    const CabinetPageParse p = parse_cabinet_page(R"({"total":4,"data":[]})");
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_TRUE(p.page.listings.empty());
    EXPECT_EQ(p.page.total, 4);
    const CabinetPageParse items = parse_cabinet_page(R"({"items":[{"sku":"5_6"}]})");
    ASSERT_TRUE(items.ok) << items.error;
    EXPECT_EQ(items.page.listings.at(0).product_code, "5") << "sku prefix";
    EXPECT_FALSE(items.page.total.has_value());
}

TEST(CabinetPage, MissingOptionalFieldsAreNotErrors) {
    const CabinetPageParse p = parse_cabinet_page(R"({"data":[{"sku":"ABC-1"}]})");
    ASSERT_TRUE(p.ok) << p.error;
    const auto& l = p.page.listings.at(0);
    EXPECT_EQ(l.sku, "ABC-1");
    EXPECT_EQ(l.product_code, "") << "no shopLink, masterSku or numeric sku prefix";
    EXPECT_TRUE(l.model.empty());
    EXPECT_TRUE(l.availabilities.empty());
    EXPECT_FALSE(l.min_price.has_value());
}

TEST(CabinetPage, WrongTypesOfOptionalFieldsReadAsAbsent) {
    const CabinetPageParse p = parse_cabinet_page(
        R"({"total":"many","data":[{"sku":"1_2","masterTitle":17,"title":"Утюг","brand":null,)"
        R"("shopLink":["x"],"minPrice":null,"archiveReason":"Снят с продажи",)"
        R"("availabilities":[{"storeId":"PP1","available":true,"stockCount":"5","preOrder":1.5},)"
        R"({"storeId":"PP2","available":"NO"}],"kdPoints":[1,{"a":[]}],"deliveryOptions":{}}]})");
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_FALSE(p.page.total.has_value());
    const auto& l = p.page.listings.at(0);
    EXPECT_EQ(l.model, "Утюг") << "title stands in for a masterTitle that is not a string";
    EXPECT_EQ(l.brand, "");
    EXPECT_EQ(l.product_code, "1");
    EXPECT_EQ(l.archive_reason, "Снят с продажи");
    ASSERT_EQ(l.availabilities.size(), 2u);
    EXPECT_TRUE(l.availabilities[0].available);
    EXPECT_FALSE(l.availabilities[0].stock_count.has_value());
    EXPECT_FALSE(l.availabilities[0].pre_order.has_value());
    EXPECT_FALSE(l.availabilities[1].available);
}

TEST(CabinetPage, NumbersAsIdentifiers) {
    const CabinetPageParse p = parse_cabinet_page(
        R"({"data":[{"sku":133206576,"masterSku":133206576,"availabilities":[{"storeId":7,"available":"yes"}]}]})");
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_EQ(p.page.listings[0].sku, "133206576");
    EXPECT_EQ(p.page.listings[0].product_code, "133206576");
    EXPECT_EQ(p.page.listings[0].availabilities[0].store_id, "7");
}

TEST(CabinetPage, StrictWhereItMatters) {
    expect_page_fails("", "empty response");
    expect_page_fails("<!DOCTYPE html><html>Just a moment...</html>", "HTML");
    expect_page_fails("  \n<html>", "HTML");
    expect_page_fails(std::string("{\"data\":[]}\0x", 13), "NUL");
    expect_page_fails("{\"data\":[", "not JSON");
    expect_page_fails("[]", "not a JSON object");
    expect_page_fails("null", "not a JSON object");
    expect_page_fails(R"({"total":0})", "missing \"data\"");
    expect_page_fails(R"({"error":"unauthorized"})", "missing \"data\"");
    expect_page_fails(R"({"data":{}})", "not an array");
    expect_page_fails(R"({"data":[1]})", "data[0]: listing is not an object");
    expect_page_fails(R"({"data":[{"sku":"1_2"},{"masterSku":"5"}]})",
                      "data[1]: listing has no sku");
    expect_page_fails(R"({"data":[{"sku":""}]})", "no sku");
    expect_page_fails(R"({"data":[{"sku":"1_2"},{"sku":"1_2"}]})", "listed twice");
    expect_page_fails(R"({"data":[{"sku":"1_2","sku":"1_3"}]})", "duplicate key \"sku\"");
    expect_page_fails(R"({"data":[],"data":[{"sku":"1"}]})", "duplicate key \"data\"");
    expect_page_fails(page_with_item(R"("availabilities":[{"available":"yes"}])"),
                      "has no storeId");
    expect_page_fails(page_with_item(R"("availabilities":[{"storeId":"PP1"}])"),
                      "available must be");
    expect_page_fails(page_with_item(R"("availabilities":[{"storeId":"PP1","available":"maybe"}])"),
                      "available must be");
    expect_page_fails(page_with_item(R"("availabilities":[{"storeId":"PP1","available":"yes"},)"
                                     R"({"storeId":"PP1","available":"no"}])"),
                      "listed twice");
    expect_page_fails(page_with_item(R"("availabilities":{"storeId":"PP1"})"), "not an array");
    expect_page_fails(page_with_item(R"("availabilities":["PP1"])"), "is not an object");
    expect_page_fails(page_with_item(R"("minPrice":1120.5)"), "minPrice must be a whole number");
    expect_page_fails(page_with_item(R"("minPrice":"1120")"), "minPrice");
    expect_page_fails(page_with_item(R"("maxPrice":-5)"), "maxPrice");
    expect_page_fails(page_with_item(R"("minPrice":1e308)"), "minPrice");
    expect_page_fails(page_with_item(R"("minPrice":0)"), "minPrice");
    expect_page_fails(R"({"data":[{"sku":"1_2\u0000"}]})", "NUL character");
    expect_page_fails(
        page_with_item(R"("availabilities":[{"storeId":"P\u0000","available":"yes"}])"),
        "NUL character");
    expect_page_fails(R"({"data":[{"sku":"1_\udcbc"}]})", "invalid UTF-8");  // a lone surrogate
    expect_page_fails(R"({"data":[{"sku":"1_\ud800x"}]})", "not JSON");
    const CabinetPageParse title = parse_cabinet_page(page_with_item(
        R"("masterTitle":"a\u0000b","brand":"\udcbcX","masterCategory":"\ud83d\ude00")"));
    ASSERT_TRUE(title.ok) << title.error;
    EXPECT_EQ(title.page.listings[0].model, "") << "a title with a NUL reads as absent";
    EXPECT_EQ(title.page.listings[0].brand, "") << "a lone surrogate reads as absent";
    EXPECT_EQ(title.page.listings[0].category, "\xF0\x9F\x98\x80") << "a surrogate pair is fine";
}

TEST(CabinetText, StorableText) {
    using demper::core::json_read::storable_text;
    EXPECT_TRUE(storable_text(""));
    EXPECT_TRUE(storable_text("Влажные полотенца 70 шт «Sunlight» \xF0\x9F\x98\x80"));
    EXPECT_FALSE(storable_text(std::string("a\0b", 3)));
    EXPECT_FALSE(storable_text("\xED\xB2\xBC"));      // an encoded surrogate
    EXPECT_FALSE(storable_text("\xC0\xAF"));          // overlong '/'
    EXPECT_FALSE(storable_text("\xE0\x80\xAF"));      // overlong '/'
    EXPECT_FALSE(storable_text("\xF4\x90\x80\x80"));  // above U+10FFFF
    EXPECT_FALSE(storable_text("\xE2\x82"));          // cut short
    EXPECT_FALSE(storable_text("\x80"));              // a lone continuation byte
    EXPECT_FALSE(storable_text("\xFF"));
}

TEST(CabinetDetails, MockAnswer) {
    const CabinetDetailsParse p = parse_cabinet_details(kMockDetails);
    ASSERT_TRUE(p.ok) << p.error;
    const auto& d = p.details;
    EXPECT_EQ(d.sku, "133206576_392235481");
    EXPECT_EQ(d.master_sku, "133206576");
    EXPECT_EQ(d.product_code, "133206576");
    EXPECT_EQ(d.model, "Влажные полотенца Sunlight 70 шт");
    EXPECT_EQ(d.brand, "Sunlight");
    EXPECT_EQ(d.archived, false);
    ASSERT_EQ(d.cities.size(), 2u);
    EXPECT_EQ(d.cities[0].city_id, "511010000");
    EXPECT_EQ(d.cities[0].city_name, "Шымкент");
    EXPECT_EQ(d.cities[0].price, 1120);
    EXPECT_EQ(d.cities[0].pickup_points, std::vector<std::string>{"30067228_PP2"});
    EXPECT_EQ(d.cities[1].city_id, "750000000");
    EXPECT_EQ(d.cities[1].price, 1190);
    ASSERT_EQ(d.availabilities.size(), 2u);
    EXPECT_FALSE(d.availabilities[1].available);
}

TEST(CabinetDetails, DomainMinimum) {
    const CabinetDetailsParse p = parse_cabinet_details(
        R"({"masterSku":"133206576","cityInfo":[{"id":"511010000","name":"Шымкент","price":361788.0,)"
        R"("pickupPoints":[{"id":"30067228_PP2","name":"Склад 2"},{"storeId":"30067228_PP3"}]}],)"
        R"("masterProduct":{"card":{"promoConditions":{"brand":"Sunlight"}}},"unknown":[{}]})");
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_EQ(p.details.product_code, "133206576");
    EXPECT_EQ(p.details.brand, "Sunlight") << "from masterProduct.card.promoConditions";
    EXPECT_FALSE(p.details.archived.has_value());
    EXPECT_TRUE(p.details.availabilities.empty());
    ASSERT_EQ(p.details.cities.size(), 1u);
    EXPECT_EQ(p.details.cities[0].price, 361788);
    EXPECT_EQ(p.details.cities[0].pickup_points,
              (std::vector<std::string>{"30067228_PP2", "30067228_PP3"}));
}

TEST(CabinetDetails, CityVariants) {
    CabinetDetailsParse p = parse_cabinet_details(details_with_city(R"("price":null)"));
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_FALSE(p.details.cities[0].price.has_value()) << "a city without a price";
    EXPECT_TRUE(p.details.cities[0].pickup_points.empty());
    EXPECT_TRUE(p.details.cities[0].city_name.empty());
    p = parse_cabinet_details(R"({"cityInfo":[{"id":750000000,"price":100}]})");
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_EQ(p.details.cities[0].city_id, "750000000") << "an id written as a number";
    EXPECT_EQ(p.details.product_code, "");
    p = parse_cabinet_details(R"({"cityInfo":[]})");
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_TRUE(p.details.cities.empty());
}

TEST(CabinetDetails, StrictWhereItMatters) {
    expect_details_fail("<html><body>Вход в кабинет</body></html>", "HTML");
    expect_details_fail("", "empty");
    expect_details_fail("[]", "not a JSON object");
    expect_details_fail(R"({"masterSku":"1"})", "missing \"cityInfo\"");
    expect_details_fail(R"({"cityInfo":{}})", "not an array");
    expect_details_fail(R"({"cityInfo":[7]})", "cityInfo[0]: city is not an object");
    expect_details_fail(R"({"cityInfo":[{"price":5}]})", "9-digit city id");
    expect_details_fail(R"({"cityInfo":[{"id":"7500","price":5}]})", "9-digit city id");
    expect_details_fail(R"({"cityInfo":[{"id":"75000000x","price":5}]})", "9-digit city id");
    expect_details_fail(R"({"cityInfo":[{"id":"750000000"},{"id":"750000000"}]})", "listed twice");
    expect_details_fail(details_with_city(R"("price":1120.5)"), "price must be a whole number");
    expect_details_fail(details_with_city(R"("price":"1120")"), "price");
    expect_details_fail(details_with_city(R"("price":1,"price":2)"), "duplicate key \"price\"");
    expect_details_fail(details_with_city(R"("pickupPoints":"PP1")"),
                        "pickupPoints is not an array");
    expect_details_fail(details_with_city(R"("pickupPoints":[{"name":"x"}])"), "names no storeId");
    expect_details_fail(R"({"cityInfo":[],"availabilities":[{"storeId":"A"}]})",
                        "available must be");
}

TEST(CabinetProductCode, FromShopLinkThenMasterSkuThenSkuPrefix) {
    EXPECT_EQ(product_code_from_shop_link(
                  "https://kaspi.kz/shop/p/vlazhnye-polotentsa-sunlight-133206576/"),
              "133206576");
    EXPECT_EQ(product_code_from_shop_link("https://kaspi.kz/shop/p/x-133206576/?c=750000000#r"),
              "133206576");
    EXPECT_EQ(product_code_from_shop_link("https://kaspi.kz/shop/p/133206576"), "133206576");
    EXPECT_EQ(product_code_from_shop_link("/shop/p/-101234567/"), "101234567");
    EXPECT_EQ(product_code_from_shop_link("https://kaspi.kz/shop/p/no-digits/"), "");
    EXPECT_EQ(product_code_from_shop_link("https://kaspi.kz/shop/p/x-0123/"), "");
    EXPECT_EQ(product_code_from_shop_link("https://kaspi.kz/shop/p/x-1234567890123456789/"), "");
    EXPECT_EQ(product_code_from_shop_link(""), "");
    EXPECT_EQ(product_code_of("https://kaspi.kz/shop/p/a-111/", "222", "333_4"), "111");
    EXPECT_EQ(product_code_of("", "222", "333_4"), "222");
    EXPECT_EQ(product_code_of("", "MS-222", "333_4"), "333");
    EXPECT_EQ(product_code_of("", "", "A-1"), "");
    EXPECT_EQ(product_code_of("", "", "12a_4"), "");
}

TEST(CabinetUrls, DefaultTemplates) {
    EXPECT_EQ(cabinet_list_url(kDefaultCabinetListUrl, "30067228", 2, 100, true),
              "https://mc.shop.kaspi.kz/bff/offer-view/list?m=30067228&p=2&l=100&a=true");
    EXPECT_EQ(cabinet_list_url(kDefaultCabinetListUrl, "30067228", 0, 10, false),
              "https://mc.shop.kaspi.kz/bff/offer-view/list?m=30067228&p=0&l=10&a=false");
    EXPECT_EQ(
        cabinet_details_url(kDefaultCabinetDetailsUrl, "30067228", "A 1/б&x=1"),
        "https://mc.shop.kaspi.kz/bff/offer-view/details?m=30067228&s=A%201%2F%D0%B1%26x%3D1");
    EXPECT_EQ(cabinet_details_url("http://127.0.0.1:5/d/{sku}/{sku}", "1", "{sku}"),
              "http://127.0.0.1:5/d/%7Bsku%7D/%7Bsku%7D");
}

TEST(CabinetHeaders, NoBodyHeaderAndSafeCookies) {
    const std::vector<std::string> expected = {
        "Accept: application/json, text/*", "x-auth-version: 3", "Origin: https://kaspi.kz",
        "Referer: https://kaspi.kz/", "Cookie: mc-session=abc; mc-sid=def"};
    EXPECT_EQ(cabinet_headers("abc", "def"), expected);
    try {
        (void)cabinet_headers("SECRET;x=1", "def");
        FAIL() << "accepted a cookie that injects another";
    } catch (const std::invalid_argument& e) {
        EXPECT_EQ(std::string(e.what()).find("SECRET"), std::string::npos) << e.what();
    }
}

}  // namespace

TEST(CabinetAvailabilitiesJson, RoundTripsWhatTheImporterStores) {
    std::vector<demper::core::Availability> in(2);
    in[0].store_id = "30067228_PP2";
    in[0].available = true;
    in[0].stock_count = 5;
    in[1].store_id = "30067228_PP3";
    in[1].available = false;
    in[1].pre_order = 3;
    const std::string json = demper::core::availabilities_json(in);
    EXPECT_EQ(json, R"([{"storeId":"30067228_PP2","available":"yes","stockCount":5},)"
                    R"({"storeId":"30067228_PP3","available":"no","preOrder":3}])");
    auto back = demper::core::availabilities_from_json(json);
    ASSERT_TRUE(back.has_value());
    ASSERT_EQ(back->size(), 2u);
    EXPECT_EQ((*back)[0].store_id, "30067228_PP2");
    EXPECT_TRUE((*back)[0].available);
    EXPECT_EQ((*back)[0].stock_count, 5);
    EXPECT_FALSE((*back)[1].available);
    EXPECT_EQ((*back)[1].pre_order, 3);
    EXPECT_FALSE(demper::core::availabilities_from_json("{}").has_value());
    EXPECT_FALSE(demper::core::availabilities_from_json(R"([{"available":"yes"}])").has_value());
    EXPECT_FALSE(demper::core::availabilities_from_json("not json").has_value());
    auto empty = demper::core::availabilities_from_json("[]");
    ASSERT_TRUE(empty.has_value());
    EXPECT_TRUE(empty->empty());
}

TEST(CabinetPage, ReadsUpdatedAt) {
    auto p = demper::core::parse_cabinet_page(
        R"({"total":1,"data":[{"sku":"1_2","updatedAt":"2026-11-30T10:00:00"}]})");
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_EQ(p.page.listings[0].updated_at, "2026-11-30T10:00:00");
}
