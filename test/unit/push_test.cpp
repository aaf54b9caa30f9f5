// Unit tests of the merchant-API price push helpers (src/core/push.hpp).
#include "core/push.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/cabinet.hpp"

namespace {

using demper::core::Availability;
using demper::core::classify_push_answer;
using demper::core::coalesce_pushes;
using demper::core::listing_push_batch_body;
using demper::core::listing_push_body;
using demper::core::ListingPush;
using demper::core::parse_cabinet_details;
using demper::core::parse_cabinet_page;
using demper::core::parse_push_job;
using demper::core::PendingPush;
using demper::core::push_body;
using demper::core::push_headers;
using demper::core::push_job_state_name;
using demper::core::push_job_url;
using demper::core::push_outcome_name;
using demper::core::PushCityPrice;
using demper::core::PushJobParse;
using demper::core::PushJobState;
using demper::core::PushOutcome;
using demper::core::PushRequestInput;
using demper::core::PushResult;

PushRequestInput domain_input() {
    PushRequestInput in;
    in.merchant_uid = "30012345";
    in.sku = "A-1";
    in.model = "Phone X 128GB";
    in.price = 151989;
    in.city_prices = {{"750000000", 151989}};
    return in;
}

TEST(PushBody, DomainExample) {
    EXPECT_EQ(push_body(domain_input()),
              R"({"merchantUid":"30012345","sku":"A-1","model":"Phone X 128GB","price":151989,)"
              R"("cityPrices":[{"cityId":"750000000","value":151989}]})");
}

TEST(PushBody, SeveralCitiesAndNone) {
    PushRequestInput in = domain_input();
    in.city_prices = {{"750000000", 100}, {"710000000", 200}};
    EXPECT_NE(push_body(in).find(R"("cityPrices":[{"cityId":"750000000","value":100},)"
                                 R"({"cityId":"710000000","value":200}]})"),
              std::string::npos);
    in.city_prices.clear();
    EXPECT_NE(push_body(in).find(R"("cityPrices":[]})"), std::string::npos);
}

TEST(PushBody, Escaping) {
    PushRequestInput in = domain_input();
    in.sku = "a\"b\\c";
    in.model = "Line\n\t\x01 «Ж» </script>";
    const std::string body = push_body(in);
    EXPECT_NE(body.find(R"("sku":"a\"b\\c")"), std::string::npos) << body;
    EXPECT_NE(body.find(R"("model":"Line\n\t\u0001 «Ж» </script>")"), std::string::npos) << body;
}

TEST(PushBody, RejectsBadInput) {
    PushRequestInput in = domain_input();
    in.model = "bad \xff utf8";
    try {
        (void)push_body(in);
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("model is not valid UTF-8"), std::string::npos);
    }
    in = domain_input();
    in.merchant_uid = "";
    EXPECT_THROW((void)push_body(in), std::invalid_argument);
    in = domain_input();
    in.sku = "";
    EXPECT_THROW((void)push_body(in), std::invalid_argument);
    in = domain_input();
    in.price = 9;
    EXPECT_THROW((void)push_body(in), std::invalid_argument);
    in = domain_input();
    in.city_prices = {{"7500", 1000}};
    EXPECT_THROW((void)push_body(in), std::invalid_argument);
    in.city_prices = {{"750000000", 1000}, {"750000000", 1000}};
    EXPECT_THROW((void)push_body(in), std::invalid_argument);
    in.city_prices = {{"750000000", 5}};
    EXPECT_THROW((void)push_body(in), std::invalid_argument);
}

TEST(PushHeaders, Exact) {
    const std::vector<std::string> expected = {"Content-Type: application/json",
                                               "Accept: application/json, text/*",
                                               "x-auth-version: 3",
                                               "Origin: https://kaspi.kz",
                                               "Referer: https://kaspi.kz/",
                                               "Cookie: mc-session=s3ss10n-Value_=; mc-sid=SID.42"};
    EXPECT_EQ(push_headers("s3ss10n-Value_=", "SID.42"), expected);
}

TEST(PushHeaders, CookieInjectionRefused) {
    const std::string secret = "SECRETVALUE";
    for (const std::string& bad :
         {secret + ";evil=1", secret + ",x", secret + "\r\nX-Evil: 1", secret + "\n", secret + " ",
          secret + "\t", secret + "\"", secret + "\\", secret + "\x7f", secret + "\xd0\x96",
          std::string("SECRETVALUE\0x", 13), std::string()}) {
        for (int which = 0; which < 2; ++which) {
            try {
                if (which == 0)
                    (void)push_headers(bad, "okSid");
                else
                    (void)push_headers("okSession", bad);
                FAIL() << "accepted a bad cookie";
            } catch (const std::invalid_argument& e) {
                const std::string msg = e.what();
                EXPECT_EQ(msg.find("SECRET"), std::string::npos) << msg;
                EXPECT_NE(msg.find(which == 0 ? "mc-session" : "mc-sid"), std::string::npos) << msg;
            }
        }
    }
}

void expect_outcome(long status, const std::string& body, bool transport, PushOutcome want,
                    const std::string& detail_part = "") {
    const PushResult r = classify_push_answer(status, body, transport);
    EXPECT_EQ(push_outcome_name(r.outcome), std::string(push_outcome_name(want)))
        << status << " " << body << " -> " << r.detail;
    EXPECT_FALSE(r.detail.empty());
    if (want != PushOutcome::accepted) {
        EXPECT_EQ(r.job_id, "") << status << " " << body;
    }
    if (!detail_part.empty()) {
        EXPECT_NE(r.detail.find(detail_part), std::string::npos) << r.detail;
    }
}

TEST(PushClassify, AcceptedStringAndNumberIds) {
    PushResult r = classify_push_answer(200, R"({"id": "job-7f3a"})", false);
    EXPECT_EQ(r.outcome, PushOutcome::accepted);
    EXPECT_EQ(r.job_id, "job-7f3a");
    r = classify_push_answer(200, R"({"status":"ok","id":123456789012})", false);
    EXPECT_EQ(r.outcome, PushOutcome::accepted);
    EXPECT_EQ(r.job_id, "123456789012");
    r = classify_push_answer(200, " \n{\"id\":0}\n", false);
    EXPECT_EQ(r.outcome, PushOutcome::accepted);
    EXPECT_EQ(r.job_id, "0");
    r = classify_push_answer(202, R"({"id":"x"})", false);
    EXPECT_EQ(r.outcome, PushOutcome::accepted);
}

TEST(PushClassify, SuccessWithoutUsableIdRetries) {
    expect_outcome(200, "", false, PushOutcome::retry, "empty answer");
    expect_outcome(200, "<html><body>Checking your browser</body></html>", false,
                   PushOutcome::retry, "HTML");
    expect_outcome(200, "not json", false, PushOutcome::retry, "not JSON");
    expect_outcome(200, R"({"id":"a"} trailing)", false, PushOutcome::retry, "not JSON");
    expect_outcome(200, "[1,2]", false, PushOutcome::retry, "answer[0] is not an object");
    expect_outcome(200, "true", false, PushOutcome::retry, "not a JSON object or array");
    expect_outcome(200, "{}", false, PushOutcome::retry, "no job id");
    expect_outcome(200, R"({"id":null})", false, PushOutcome::retry, "no job id");
    expect_outcome(200, R"({"id":""})", false, PushOutcome::retry, "empty");
    expect_outcome(200, R"({"id":-1})", false, PushOutcome::retry, "not a non-negative integer");
    expect_outcome(200, R"({"id":1.5})", false, PushOutcome::retry, "not a non-negative integer");
    expect_outcome(200, R"({"id":true})", false, PushOutcome::retry, "neither");
    expect_outcome(200, R"({"id":{"x":1}})", false, PushOutcome::retry, "neither");
    expect_outcome(200, R"({"id":"a\nb"})", false, PushOutcome::retry, "control");
    expect_outcome(200, "{\"id\":\"" + std::string(201, 'x') + "\"}", false, PushOutcome::retry,
                   "too long");
    expect_outcome(200, "{\"id\":\"\xff\"}", false, PushOutcome::retry, "not JSON");
    expect_outcome(200, std::string(100000, '['), false, PushOutcome::retry, "not JSON");
}

TEST(PushClassify, BatchAnswers) {
    PushResult r = classify_push_answer(200, R"([{"id":"job-1"}])", false);
    EXPECT_EQ(r.outcome, PushOutcome::accepted);
    EXPECT_EQ(r.job_id, "job-1");
    EXPECT_EQ(r.job_ids, std::vector<std::string>{"job-1"});
    r = classify_push_answer(200, R"([{"id":"job-1"},{"id":42,"extra":[]}])", false);
    EXPECT_EQ(r.outcome, PushOutcome::accepted);
    EXPECT_EQ(r.job_ids, (std::vector<std::string>{"job-1", "42"}));
    EXPECT_NE(r.detail.find("1 more"), std::string::npos) << r.detail;
    r = classify_push_answer(200, R"({"id":"job-9"})", false);
    EXPECT_EQ(r.job_ids, std::vector<std::string>{"job-9"}) << "an object answer has one id too";
    expect_outcome(200, "[]", false, PushOutcome::retry, "empty array");
    expect_outcome(200, R"([{"id":"a"},{}])", false, PushOutcome::retry,
                   "answer[1] answer has no job id");
    expect_outcome(200, R"([{"id":"a"},{"id":-3}])", false, PushOutcome::retry, "answer[1] job id");
    expect_outcome(200, R"([{"id":"a"},"b"])", false, PushOutcome::retry,
                   "answer[1] is not an object");
    EXPECT_TRUE(classify_push_answer(200, "[]", false).job_ids.empty());
}

TEST(PushClassify, StatusClasses) {
    expect_outcome(401, "", false, PushOutcome::needs_login, "HTTP 401");
    expect_outcome(403, "<html>forbidden</html>", false, PushOutcome::needs_login);
    expect_outcome(429, "", false, PushOutcome::merchant_banned, "HTTP 429");
    for (const long s : {500L, 502L, 503L, 504L, 520L, 526L, 599L})
        expect_outcome(s, "", false, PushOutcome::retry, "HTTP " + std::to_string(s));
    expect_outcome(408, "", false, PushOutcome::retry);
    for (const long s : {400L, 404L, 405L, 409L, 413L, 422L, 499L})
        expect_outcome(s, "{}", false, PushOutcome::rejected, "HTTP " + std::to_string(s));
    expect_outcome(302, "", false, PushOutcome::retry, "redirect");
    expect_outcome(0, "", false, PushOutcome::retry);
    expect_outcome(100, "", false, PushOutcome::retry);
}

TEST(PushClassify, TransportErrorAlwaysRetries) {
    expect_outcome(0, "", true, PushOutcome::retry, "transport");
    expect_outcome(200, R"({"id":"x"})", true, PushOutcome::retry, "transport");
    expect_outcome(401, "", true, PushOutcome::retry, "transport");
}

TEST(PushClassify, RejectedCarriesSanitizedMessage) {
    const PushResult r =
        classify_push_answer(400, R"({"message":"Invalid sku\nformat","code":17})", false);
    EXPECT_EQ(r.outcome, PushOutcome::rejected);
    EXPECT_NE(r.detail.find("Invalid sku?format"), std::string::npos) << r.detail;
    const PushResult longer =
        classify_push_answer(400, "{\"error\":\"" + std::string(1000, 'e') + "\"}", false);
    EXPECT_LT(longer.detail.size(), 300u);
    const PushResult garbage = classify_push_answer(400, "\x01\x02\xff garbage", false);
    EXPECT_EQ(garbage.outcome, PushOutcome::rejected);
}

TEST(PushClassify, OutcomeNames) {
    EXPECT_STREQ(push_outcome_name(PushOutcome::accepted), "accepted");
    EXPECT_STREQ(push_outcome_name(PushOutcome::retry), "retry");
    EXPECT_STREQ(push_outcome_name(PushOutcome::merchant_banned), "merchant_banned");
    EXPECT_STREQ(push_outcome_name(PushOutcome::needs_login), "needs_login");
    EXPECT_STREQ(push_outcome_name(PushOutcome::rejected), "rejected");
}

// The listing of DOMAIN.md §2a's captured body.
ListingPush captured_listing() {
    ListingPush l;
    l.merchant_uid = "30067228";
    l.sku = "133206576_392235481";
    l.model = "Влажные полотенца Sunlight 70 шт";
    l.availabilities = {Availability{"30067228_PP2", true, std::nullopt, std::nullopt}};
    l.city_prices = {PushCityPrice{"511010000", 1120}};
    return l;
}

std::string without_blanks(const std::string& json) {
    std::string out;
    bool in_string = false;
    for (const char c : json) {
        if (c == '"') in_string = !in_string;
        if (!in_string && (c == ' ' || c == '\n')) continue;
        out += c;
    }
    return out;
}

TEST(ListingPushBody, TheCapturedBodyExactly) {
    // DOMAIN.md §2a, as the cabinet's own page sends it.
    const std::string captured = without_blanks(
        R"({"merchantUid": "30067228", "sku": "133206576_392235481", "model": "Влажные полотенца Sunlight 70 шт",
 "availabilities": [{"available": "yes", "storeId": "30067228_PP2"}],
 "cityPrices": [{"cityId": "511010000", "value": 1120}]})");
    EXPECT_EQ(listing_push_body(captured_listing()), captured);
}

TEST(ListingPushBody, EveryCityEveryAvailabilityNoStockNoPrice) {
    ListingPush l = captured_listing();
    l.availabilities = {Availability{"30067228_PP1", true, 7, 0},
                        Availability{"30067228_PP2", false, 0, 3}};
    l.city_prices = {{"750000000", 1190}, {"511010000", 1120}, {"710000000", 1150}};
    const std::string body = listing_push_body(l);
    EXPECT_NE(body.find(R"("availabilities":[{"available":"yes","storeId":"30067228_PP1"},)"
                        R"({"available":"no","storeId":"30067228_PP2"}])"),
              std::string::npos)
        << body;
    EXPECT_NE(
        body.find(R"("cityPrices":[{"cityId":"750000000","value":1190},)"
                  R"({"cityId":"511010000","value":1120},{"cityId":"710000000","value":1150}]})"),
        std::string::npos)
        << body;
    EXPECT_EQ(body.find("stockCount"), std::string::npos) << "stock is never sent";
    EXPECT_EQ(body.find("preOrder"), std::string::npos);
    EXPECT_EQ(body.find("\"price\""), std::string::npos) << "no top-level price";
}

void expect_refused(const ListingPush& l, const std::string& part) {
    try {
        (void)listing_push_body(l);
        FAIL() << "built a body that should be refused (" << part << ")";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
}

TEST(ListingPushBody, RefusesWhatTheCabinetWouldMisread) {
    ListingPush l = captured_listing();
    l.availabilities.clear();
    expect_refused(l, "no availabilities");
    l = captured_listing();
    l.availabilities.push_back(Availability{"30067228_PP2", false, std::nullopt, std::nullopt});
    expect_refused(l, "listed twice");
    l = captured_listing();
    l.availabilities[0].store_id.clear();
    expect_refused(l, "storeId is empty");
    l = captured_listing();
    l.city_prices.clear();
    expect_refused(l, "no city price");
    l = captured_listing();
    l.city_prices = {{"51101000", 1120}};
    expect_refused(l, "not 9 digits");
    l.city_prices = {{"511010000", 1120}, {"511010000", 1130}};
    expect_refused(l, "duplicate cityId");
    l.city_prices = {{"511010000", 9}};
    expect_refused(l, "outside [10,");
    l.city_prices = {{"511010000", 100'000'000'001}};
    expect_refused(l, "outside [10,");
    l = captured_listing();
    l.sku.clear();
    expect_refused(l, "sku is empty");
    l = captured_listing();
    l.merchant_uid.clear();
    expect_refused(l, "merchantUid is empty");
    l = captured_listing();
    l.model = "bad \xff";
    expect_refused(l, "model is not valid UTF-8");
    l = captured_listing();
    l.availabilities[0].store_id = "PP\xc3";
    expect_refused(l, "storeId is not valid UTF-8");
}

TEST(ListingPushBody, Batch) {
    ListingPush second = captured_listing();
    second.sku = "101234567_555000111";
    second.city_prices = {{"750000000", 89990}};
    const std::string batch = listing_push_batch_body({captured_listing(), second});
    EXPECT_EQ(batch,
              "[" + listing_push_body(captured_listing()) + "," + listing_push_body(second) + "]");
    EXPECT_THROW((void)listing_push_batch_body({}), std::invalid_argument);
    ListingPush other = second;
    other.merchant_uid = "30000001";
    EXPECT_THROW((void)listing_push_batch_body({captured_listing(), other}), std::invalid_argument);
    second.availabilities.clear();
    try {
        (void)listing_push_batch_body({captured_listing(), second});
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("item 1: no availabilities"), std::string::npos)
            << e.what();
    }
}

TEST(ListingPushBody, FromWhatTheCabinetListed) {
    // A listing read back from the cabinet is pushed with exactly its availabilities and every
    // city.
    const auto page = parse_cabinet_page(
        R"({"total":1,"data":[{"sku":"133206576_392235481","masterTitle":"Влажные полотенца",)"
        R"("availabilities":[{"storeId":"30067228_PP1","available":"yes","stockCount":7},)"
        R"({"storeId":"30067228_PP2","available":"no","stockCount":0}]}]})");
    const auto details = parse_cabinet_details(
        R"({"masterSku":"133206576","cityInfo":[{"id":"511010000","price":1120.0},{"id":"750000000","price":1190}]})");
    ASSERT_TRUE(page.ok && details.ok) << page.error << details.error;
    ListingPush l;
    l.merchant_uid = "30067228";
    l.sku = page.page.listings[0].sku;
    l.model = page.page.listings[0].model;
    l.availabilities = page.page.listings[0].availabilities;
    for (const auto& city : details.details.cities)
        l.city_prices.push_back({city.city_id, *city.price - 10});
    EXPECT_EQ(
        listing_push_body(l),
        R"({"merchantUid":"30067228","sku":"133206576_392235481","model":"Влажные полотенца",)"
        R"("availabilities":[{"available":"yes","storeId":"30067228_PP1"},)"
        R"({"available":"no","storeId":"30067228_PP2"}],)"
        R"("cityPrices":[{"cityId":"511010000","value":1110},{"cityId":"750000000","value":1180}]})");
}

TEST(PushJob, MockAnswers) {
    PushJobParse p = parse_push_job(
        R"({"id":"job-1","status":"failed","merchantUid":"30067228","endpoint":"batch",)"
        R"("createdAt":1796302410.441784,"finishedAt":1796302410.451168,"items":[{"sku":"133206576_392235481",)"
        R"("result":"archived","reason":"Не указано наличие в прайс листе"}],)"
        R"("message":"Не указано наличие в прайс листе"})");
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_EQ(p.job.id, "job-1");
    EXPECT_EQ(p.job.state, PushJobState::failed);
    ASSERT_EQ(p.job.items.size(), 1u);
    EXPECT_EQ(p.job.items[0].sku, "133206576_392235481");
    EXPECT_EQ(p.job.items[0].result, "archived");
    EXPECT_EQ(p.job.items[0].reason, "Не указано наличие в прайс листе");
    EXPECT_EQ(p.job.message, "Не указано наличие в прайс листе");
    p = parse_push_job(R"({"id":"job-2","status":"pending","finishedAt":null,)"
                       R"("items":[{"sku":"1_2","result":null,"reason":null}],"message":null})");
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_EQ(p.job.state, PushJobState::pending);
    EXPECT_EQ(p.job.items.at(0).result, "");
    EXPECT_EQ(p.job.message, "");
    p = parse_push_job(R"({"id":7,"status":"done","items":[{"sku":"1_2","result":"updated"}]})");
    ASSERT_TRUE(p.ok) << p.error;
    EXPECT_EQ(p.job.id, "7");
    EXPECT_EQ(p.job.state, PushJobState::done);
}

TEST(PushJob, StatusNames) {
    for (const char* s : {"PENDING", "queued", "In_Progress", "processing", "running", "new"})
        EXPECT_EQ(parse_push_job(std::string(R"({"status":")") + s + "\"}").job.state,
                  PushJobState::pending)
            << s;
    for (const char* s : {"DONE", "success", "Succeeded", "completed", "finished", "ok"})
        EXPECT_EQ(parse_push_job(std::string(R"({"status":")") + s + "\"}").job.state,
                  PushJobState::done)
            << s;
    for (const char* s : {"FAILED", "failure", "error", "rejected", "cancelled", "canceled"})
        EXPECT_EQ(parse_push_job(std::string(R"({"status":")") + s + "\"}").job.state,
                  PushJobState::failed)
            << s;
    EXPECT_STREQ(push_job_state_name(PushJobState::pending), "pending");
    EXPECT_STREQ(push_job_state_name(PushJobState::done), "done");
    EXPECT_STREQ(push_job_state_name(PushJobState::failed), "failed");
}

TEST(PushJob, Failures) {
    for (const auto& [body, part] : std::vector<std::pair<std::string, std::string>>{
             {"", "empty"},
             {"<html>login</html>", "HTML"},
             {"{", "not JSON"},
             {"[]", "not a JSON object"},
             {"{}", "no status"},
             {R"({"status":1})", "no status"},
             {R"({"status":"mostly done"})", "unknown job status \"mostly done\""},
             {R"({"status":"done","status":"failed"})", "duplicate key"},
             {R"({"status":"done","items":{}})", "not an array"},
             {R"({"status":"done","items":[1]})", "not an object"}}) {
        const PushJobParse p = parse_push_job(body);
        EXPECT_FALSE(p.ok) << body;
        EXPECT_NE(p.error.find(part), std::string::npos) << body << " -> " << p.error;
    }
}

TEST(PushJob, Url) {
    EXPECT_EQ(
        push_job_url("https://mc.shop.kaspi.kz/pricefeed/upload/merchant/job/{job_id}", "job-7"),
        "https://mc.shop.kaspi.kz/pricefeed/upload/merchant/job/job-7");
    EXPECT_EQ(push_job_url("http://h/{job_id}?again={job_id}", "a/b {job_id}"),
              "http://h/a%2Fb%20%7Bjob_id%7D?again=a%2Fb%20%7Bjob_id%7D");
}

TEST(PushCoalesce, KeepsNewestPerKeyInSequenceOrder) {
    const std::vector<PendingPush> in = {
        {"p1:750000000", 5, 100}, {"p2:750000000", 3, 200},
        {"p1:750000000", 9, 90},  {"p1:710000000", 4, 300},
        {"p1:750000000", 7, 95},  {"p2:750000000", 3, 210}};  // tie: later input wins
    const std::vector<PendingPush> out = coalesce_pushes(in);
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].product_key, "p2:750000000");
    EXPECT_EQ(out[0].price, 210);
    EXPECT_EQ(out[1].product_key, "p1:710000000");
    EXPECT_EQ(out[1].price, 300);
    EXPECT_EQ(out[2].product_key, "p1:750000000");
    EXPECT_EQ(out[2].sequence, 9);
    EXPECT_EQ(out[2].price, 90);
    EXPECT_TRUE(coalesce_pushes({}).empty());
}

}  // namespace
