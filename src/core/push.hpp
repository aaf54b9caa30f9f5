// push: the pure parts of publishing prices through the merchant cabinet API (DOMAIN.md §2a): the
// request body, the request headers, the classification of the answer, the job's status, and
// coalescing.
//
//   POST {demper.push_url}: https://mc.shop.kaspi.kz/pricefeed/upload/merchant/process (one object)
//                        or .../process/process/batch (a JSON array of them)
//   Cookie: mc-session=...; mc-sid=...   x-auth-version: 3   Origin/Referer: https://kaspi.kz
//   {"merchantUid":"30067228","sku":"133206576_392235481","model":"Влажные полотенца Sunlight 70
//   шт",
//    "availabilities":[{"available":"yes","storeId":"30067228_PP2"}],
//    "cityPrices":[{"cityId":"511010000","value":1120}]}
//   -> 200 {"id":"<jobId>"}  (/process)   or   [{"id":"<jobId>"}, ...]  (batch)
//
// The body is the one the cabinet's own page sends (captured from a browser by a public client):
// one body per listing with every city's price in cityPrices, exactly the availabilities the
// cabinet has for the listing (an item without them takes the offer off sale), no top-level price
// and no stockCount (a stockCount the cabinet did not expect did the same).
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

#include "core/cabinet.hpp"

namespace demper::core {

struct PushCityPrice {
    std::string city_id;  // 9-digit KATO code
    std::int64_t price = 0;
};

// ListingPush is one listing's new prices, with what the cabinet requires alongside them.
struct ListingPush {
    std::string merchant_uid;
    std::string sku;
    std::string model;
    std::vector<Availability> availabilities;  // as last read from the cabinet; stock is not sent
    std::vector<PushCityPrice> city_prices;    // every city the listing is sold in
};

// listing_push_body returns the compact JSON body of one listing, keys in the captured order:
//   {"merchantUid":..,"sku":..,"model":..,
//    "availabilities":[{"available":"yes"|"no","storeId":..},..],
//    "cityPrices":[{"cityId":..,"value":..},..]}
// availabilities and cityPrices keep the input's order. Strings are escaped by RapidJSON's Writer
// (UTF-8 kept as is, so Cyrillic stays readable). Throws std::invalid_argument, naming the field,
// when merchant_uid or sku is empty, a string is not valid UTF-8, there is no availability (the
// cabinet would take the offer off sale: the caller must wait for the pickup points instead), a
// storeId is empty or listed twice, there is no city price, a cityId is not 9 ASCII digits or is
// listed twice, or a price is outside [10, kMaxOfferPrice].
std::string listing_push_body(const ListingPush& listing);

// listing_push_batch_body returns the batch endpoint's body: a JSON array of listing_push_body
// objects, in order. Throws std::invalid_argument as listing_push_body does (the message names the
// item's index), when `listings` is empty, or when the listings belong to different merchants.
std::string listing_push_batch_body(const std::vector<ListingPush>& listings);

// PushRequestInput and push_body are the first, single-city body with a top-level price and no
// availabilities, which public clients report takes offers off sale: superseded by
// listing_push_body, kept until the publish step sends that.
struct PushRequestInput {
    std::string merchant_uid;
    std::string sku;
    std::string model;
    std::int64_t price;
    std::vector<std::pair<std::string, std::int64_t>> city_prices;  // (cityId, value)
};

// push_body returns the compact JSON body, keys in this order:
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
    std::string job_id;  // set only when accepted: the (first) id as a string (a number in decimal)
    std::string detail;  // one short line for logs and last_error; never contains cookies
    // Every job id of an accepted answer, in order: one for {"id"}, one per element of [{"id"},..]
    // (the mock answers one per pushed item; whether the real batch endpoint does is unknown, so a
    // caller that pushed n items must accept 1 id for all of them as well as n ids, one each).
    std::vector<std::string> job_ids;
};

// classify_push_answer maps an HTTP answer (or a transport failure) to what to do:
//   transport_error (timeout, connection refused, TLS error...) -> retry, whatever the status;
//   2xx with a JSON object whose "id" is a non-empty string (at most 200 bytes, no control
//       characters) or a non-negative integer, or a non-empty JSON array of such objects (the
//       batch endpoint's answer)                          -> accepted, job_id and job_ids set;
//   2xx otherwise (HTML anti-bot page, not JSON, no/unusable id, an empty array, an element
//       without a usable id) -> retry, detail says why;
//   401, 403 -> needs_login;   429 -> merchant_banned;
//   408, 5xx (including Cloudflare's 52x) -> retry;
//   other 4xx -> rejected (detail adds the answer's "message"/"error" string, if any, cut to 200
//       bytes and with non-printable bytes replaced by '?');
//   anything else (0 without transport error, 1xx, 3xx: e.g. a redirect to a login page) -> retry.
// Never throws on any body.
PushResult classify_push_answer(long http_status, std::string_view body, bool transport_error);

// The job behind a push id. The real cabinet's read-back is unknown; the mock answers
// GET /pricefeed/upload/merchant/job/{id} with
//   {"id":"job-2","status":"pending"|"done"|"failed","merchantUid":..,
//    "items":[{"sku":..,"result":"updated"|"archived"|"not_live"|"rejected"|"unknown_sku"|null,
//              "reason":..|null}],"message":..|null, ...}
enum class PushJobState { pending, done, failed };
const char* push_job_state_name(PushJobState);  // "pending", "done", "failed"

struct PushJobItem {
    std::string sku;
    std::string result;  // "" while pending or when not given
    std::string reason;
};

struct PushJobStatus {
    std::string id;  // "" when the answer does not repeat it
    PushJobState state = PushJobState::pending;
    std::vector<PushJobItem> items;
    std::string message;  // why it failed, when given
};

struct PushJobParse {
    bool ok = false;
    PushJobStatus job;
    std::string error;
};

// parse_push_job reads a job status answer. `status` is required and read case-insensitively:
// pending, queued, new, processing, in_progress, running -> pending; done, success, succeeded,
// completed, finished, ok -> done; failed, failure, error, rejected, cancelled, canceled ->
// failed; anything else fails the parse (an unknown state is not "done"). Strict about the body
// (not empty, not HTML, JSON, an object) and `items` (an array of objects when present); tolerant
// about everything else (unknown fields ignored; id, sku, result, reason, message read when they
// are strings of valid UTF-8 without a NUL character, ids also when integers). Never throws (except
// std::bad_alloc).
PushJobParse parse_push_job(std::string_view body);

// push_job_url replaces every "{job_id}" in `tmpl` with the percent-encoded job id.
std::string push_job_url(std::string_view tmpl, std::string_view job_id);

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
