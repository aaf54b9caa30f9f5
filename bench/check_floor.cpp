// check_floor: what one check costs without PostgreSQL. It runs the worker's non-SQL path (the
// HttpEngine with the worker's offers request, then parse_offers, decide_price and
// decision_to_json) against a running mock marketplace, unthrottled, and prints the CPU time of
// this process per check for each stage alone:
//   http     the engine and libcurl: request build, admission, send, receive, completion
//   parse    + parse_offers of every answer
//   decide   + the price rule and the explanation the worker stores
// The worker's CPU per check minus the "decide" figure is what its SQL (claim and apply) costs.
//
//   check_floor --url http://127.0.0.1:PORT/yml/offer-view/offers/{product_code} [--checks N]
//               [--inflight 256] [--products 1000000]
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/http_engine.hpp"
#include "core/offers.hpp"
#include "core/price_rule.hpp"
#include "core/url.hpp"

namespace {

using demper::core::HttpEngine;
using demper::core::HttpRequest;
using demper::core::HttpResponse;

double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double wall_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The worker's offers request (src/pg/worker.cpp, offers_request), for a product in Almaty.
HttpRequest offers_request(std::uint64_t id, const std::string& url_template, const std::string& code) {
    const std::string city = "750000000";
    HttpRequest r;
    r.id = id;
    r.method = "POST";
    r.url = demper::core::expand_url_template(url_template, code);
    r.body = "{\"cityId\":\"" + city + "\",\"id\":\"" + code +
             "\",\"merchantUID\":[],\"limit\":64,\"page\":0,\"sortOption\":\"PRICE\","
             "\"highRating\":null,\"searchText\":null,\"isExcellentMerchant\":false,"
             "\"installationId\":\"-1\"}";
    const std::string origin = "https://kaspi.kz";
    r.headers = {"Content-Type: application/json", "Accept: application/json, text/*",
                 "X-KS-City: " + city, "Origin: " + origin,
                 "Referer: " + origin + "/shop/p/-" + code + "/?c=" + city};
    return r;
}

enum class Stage { http, parse, decide };

struct Result {
    double cpu_us_per_check = 0;
    double checks_per_s = 0;
    long failed = 0;
};

Result run(Stage stage, const std::string& url, long checks, int inflight, long products) {
    demper::core::EngineConfig cfg;
    cfg.requests_per_second = 1e6;
    cfg.burst = 1e6;
    cfg.max_inflight = inflight;
    cfg.max_inflight_per_host = inflight;
    cfg.allowed_hosts = "127.0.0.1";
    cfg.allow_private_addresses = true;  // the mock marketplace runs on 127.0.0.1
    cfg.timeout_ms = 30000;
    HttpEngine engine(cfg);
    demper::core::PricingRule rule;
    rule.min_price = 1000;
    rule.excluded_merchants = {"OWN1"};
    std::size_t explain_bytes = 0;

    const int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event watch{};
    watch.events = EPOLLIN;
    epoll_ctl(ep, EPOLL_CTL_ADD, engine.wait_fd(), &watch);

    Result r;
    long submitted = 0, done = 0;
    const double cpu0 = cpu_seconds(), wall0 = wall_seconds();
    while (done < checks) {
        // Keep the pipeline as full as the worker keeps it: queued work waiting for a slot.
        while (submitted < checks && engine.queued() + engine.in_flight() < static_cast<std::size_t>(2 * inflight)) {
            const long product = 1 + submitted % products;
            engine.submit(offers_request(static_cast<std::uint64_t>(submitted), url, std::to_string(product)));
            submitted++;
        }
        long timeout = engine.next_timeout_ms();
        epoll_event ev{};
        epoll_wait(ep, &ev, 1, timeout < 0 ? 100 : static_cast<int>(std::min(timeout, 100L)));
        engine.perform();
        for (HttpResponse& resp : engine.take_completed()) {
            done++;
            if (resp.error != demper::core::ErrorClass::none) {
                r.failed++;
                continue;
            }
            if (stage == Stage::http) continue;
            demper::core::OffersParse parsed = demper::core::parse_offers(resp.body);
            if (!parsed.ok) {
                r.failed++;
                continue;
            }
            if (stage == Stage::parse) continue;
            demper::core::PriceDecision d = demper::core::decide_price(600000, rule, parsed.book);
            explain_bytes += demper::core::decision_to_json(d, rule, parsed.book).size();
        }
    }
    const double cpu = cpu_seconds() - cpu0, wall = wall_seconds() - wall0;
    r.cpu_us_per_check = cpu / static_cast<double>(checks) * 1e6;
    r.checks_per_s = static_cast<double>(checks) / wall;
    if (stage == Stage::decide && explain_bytes == 0) r.failed = checks;  // nothing was explained
    ::close(ep);
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    std::string url;
    long checks = 100000, products = 1000000;
    int inflight = 256;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--url")) url = argv[i + 1];
        else if (!std::strcmp(argv[i], "--checks")) checks = std::atol(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--inflight")) inflight = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--products")) products = std::atol(argv[i + 1]);
    }
    if (url.empty() || checks < 1 || inflight < 1 || products < 1) {
        std::fprintf(stderr, "usage: check_floor --url URL_TEMPLATE [--checks N] [--inflight N] [--products N]\n");
        return 2;
    }
    int rc = 0;
    const struct { Stage stage; const char* name; } stages[] = {
        {Stage::http, "http"}, {Stage::parse, "parse"}, {Stage::decide, "decide"}};
    for (const auto& s : stages) {
        Result r = run(s.stage, url, checks, inflight, products);
        std::printf("stage=%s checks=%ld cpu_us_per_check=%.2f checks_per_s=%.0f failed=%ld\n", s.name, checks,
                    r.cpu_us_per_check, r.checks_per_s, r.failed);
        if (r.failed > 0) rc = 1;
    }
    return rc;
}
