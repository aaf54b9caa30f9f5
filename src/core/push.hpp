// push: the pure parts of publishing a price through the merchant cabinet API (DOMAIN.md §2a):
// the request body, the request headers, the classification of the answer, and coalescing.
//
//   POST {demper.push_url}  (default https://mc.shop.kaspi.kz/pricefeed/upload/merchant/process)
//   Cookie: mc-session=...; mc-sid=...   x-auth-version: 3   Origin/Referer: https://kaspi.kz
//   {"merchantUid":"30012345","sku":"A-1","model":"Phone X 128GB","price":151989,
//    "cityPrices":[{"cityId":"750000000","value":151989}]}
//   -> 200 {"id":"<jobId>"}  (an asynchronous job)
//
// Nothing here sends a request, reads a clock or logs: the publish step owns the HTTP engine, the
// per-merchant budget (a TokenBucket from rate_limit.hpp, 2 req/s by default), the merchant's ban
// pause and the store's needs_login flag; it asks classify_push_answer what an answer means.
//
// Secrets: cookie values go only into the Cookie header returned by push_headers. No message this
// file produces (exceptions, PushResult::detail) contains a cookie value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace demper::core {

struct PushRequestInput {
    std::string merchant_uid;
    std::string sku;
    std::string model;
    std::int64_t price;
    std::vector<std::pair<std::string, std::int64_t>> city_prices;  // (cityId, value)
};

// push_body returns the compact JSON body, keys in DOMAIN.md's order:
//   {"merchantUid":..,"sku":..,"model":..,"price":..,"cityPrices":[{"cityId":..,"value":..},..]}
// Strings are escaped by RapidJSON's Writer ("\"", "\\", control characters as \uXXXX; other
// characters are written as UTF-8). Throws std::invalid_argument, naming the field, when a string
// is not valid UTF-8, merchant_uid or sku is empty, a price is below 10 (Kaspi's minimum), a city
// id is not 9 ASCII digits or appears twice. An empty city_prices is allowed (price only).
std::string push_body(const PushRequestInput& input);

// push_headers returns, in this order:
//   "Content-Type: application/json", "Accept: application/json, text/*", "x-auth-version: 3",
//   "Origin: https://kaspi.kz", "Referer: https://kaspi.kz/",
//   "Cookie: mc-session=<session_cookie>; mc-sid=<sid_cookie>"
// A cookie value must be non-empty and consist of RFC 6265 cookie-octets (printable ASCII except
// space, '"', ',', ';' and '\\'); anything else (notably ; , CR LF space, which would inject
// cookies or headers) throws std::invalid_argument whose message names the cookie but never shows
// its value.
std::vector<std::string> push_headers(std::string_view session_cookie, std::string_view sid_cookie);

enum class PushOutcome {
    accepted,         // the marketplace took the price; job_id is set
    retry,            // try again later with backoff (5xx, 526, 408, timeouts, odd 2xx/3xx answers)
    merchant_banned,  // 429: pause this merchant (and only it) for demper.push_ban_pause
    needs_login,      // 401/403: the cabinet session expired; mark the store needs_login
    rejected,         // other 4xx: the request itself is wrong; retrying will not help
};
const char* push_outcome_name(PushOutcome);  // "accepted", "retry", "merchant_banned", ...

struct PushResult {
    PushOutcome outcome;
    std::string job_id;  // set only when accepted: the id as a string (a JSON number in decimal)
    std::string detail;  // one short line for logs and last_error; never contains cookies
};

// classify_push_answer maps an HTTP answer (or a transport failure) to what to do:
//   transport_error (timeout, connection refused, TLS error...) -> retry, whatever the status;
//   2xx with a JSON object whose "id" is a non-empty string (at most 200 bytes, no control
//       characters) or a non-negative integer            -> accepted, job_id set;
//   2xx otherwise (HTML anti-bot page, not JSON, no/unusable id) -> retry, detail says why;
//   401, 403 -> needs_login;   429 -> merchant_banned;
//   408, 5xx (including Cloudflare's 52x) -> retry;
//   other 4xx -> rejected (detail adds the answer's "message"/"error" string, if any, cut to 200
//       bytes and with non-printable bytes replaced by '?');
//   anything else (0 without transport error, 1xx, 3xx: e.g. a redirect to a login page) -> retry.
// Never throws on any body.
PushResult classify_push_answer(long http_status, std::string_view body, bool transport_error);

// Coalescing: between a decision and its push, newer decisions for the same product and city
// supersede older ones; only the newest is worth sending (sending an older one after it would
// publish a stale price). The SQL outbox does exactly the same: it keeps one row per
// (product, city), and a newer decision replaces the pending row instead of adding one, so the
// drain sends only the latest price. coalesce_pushes is that rule for in-memory batches.
struct PendingPush {
    std::string product_key;  // identifies product AND city, e.g. "<product_id>:<city_id>"
    std::int64_t sequence;    // decided_at order: larger is newer
    std::int64_t price;
};

// coalesce_pushes keeps, for every product_key, the entry with the largest sequence (on a tie,
// the one that comes later in the input), and returns the survivors ordered by sequence, oldest
// first (ties keep input order), so that draining them is first-in, first-out.
std::vector<PendingPush> coalesce_pushes(std::vector<PendingPush> pending);

}  // namespace demper::core
