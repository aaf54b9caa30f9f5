// Unit tests of the merchant-API price push helpers (src/core/push.hpp).
#include "core/push.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace {

using demper::core::classify_push_answer;
using demper::core::coalesce_pushes;
using demper::core::PendingPush;
using demper::core::push_body;
using demper::core::push_headers;
using demper::core::push_outcome_name;
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
    expect_outcome(200, "[1,2]", false, PushOutcome::retry, "not a JSON object");
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

TEST(PushCoalesce, KeepsNewestPerKeyInSequenceOrder) {
    const std::vector<PendingPush> in = {{"p1:750000000", 5, 100},
                                         {"p2:750000000", 3, 200},
                                         {"p1:750000000", 9, 90},
                                         {"p1:710000000", 4, 300},
                                         {"p1:750000000", 7, 95},
                                         {"p2:750000000", 3, 210}};  // tie: later input wins
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
