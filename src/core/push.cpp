// push: see push.hpp for the body, the headers and the answer classes.
#include "core/push.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "core/json_read.hpp"
#include "core/offers.hpp"
#include "core/url.hpp"

namespace demper::core {

namespace {

constexpr std::int64_t kMinPrice = 10;  // Kaspi's own minimum
constexpr std::size_t kMaxJobIdBytes = 200;
constexpr std::size_t kMaxDetailMessage = 200;

using Writer = rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                                 rapidjson::CrtAllocator, rapidjson::kWriteValidateEncodingFlag>;

void write_string(Writer& w, const std::string& value, const char* field) {
    if (value.size() > 0xFFFFFFFFu)
        throw std::invalid_argument(std::string(field) + " is too long");
    if (!w.String(value.data(), static_cast<rapidjson::SizeType>(value.size())))
        throw std::invalid_argument(std::string("push: ") + field + " is not valid UTF-8");
}

// write_text writes a string value; `where` and `name` say which one in the error.
void write_text(Writer& w, const std::string& value, const std::string& where, const char* name) {
    if (value.size() > 0xFFFFFFFFu) throw std::invalid_argument(where + name + " is too long");
    if (!w.String(value.data(), static_cast<rapidjson::SizeType>(value.size())))
        throw std::invalid_argument(where + name + " is not valid UTF-8");
}

bool valid_city_id(std::string_view id) {
    if (id.size() != 9) return false;
    for (const char c : id)
        if (c < '0' || c > '9') return false;
    return true;
}

bool cookie_octet(unsigned char c) {
    // RFC 6265: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
    return c >= 0x21 && c <= 0x7E && c != '"' && c != ',' && c != ';' && c != '\\';
}

void check_cookie(std::string_view value, const char* name) {
    if (value.empty()) throw std::invalid_argument(std::string("cookie ") + name + " is empty");
    for (const char c : value)
        if (!cookie_octet(static_cast<unsigned char>(c)))
            throw std::invalid_argument(
                std::string("cookie ") + name +
                " contains a character not allowed in a cookie value (space, control, non-ASCII, "
                "'\"', ',', ';' or '\\')");
}

// printable keeps printable ASCII and replaces everything else by '?', cut to `max` bytes.
std::string printable(std::string_view s, std::size_t max) {
    std::string out;
    for (const char c : s) {
        if (out.size() >= max) {
            out += "...";
            break;
        }
        const auto u = static_cast<unsigned char>(c);
        out += (u >= 0x20 && u < 0x7F) ? c : '?';
    }
    return out;
}

std::string status_text(long status) { return "HTTP " + std::to_string(status); }

PushResult result(PushOutcome outcome, std::string detail, std::string job_id = std::string()) {
    PushResult r{};
    r.outcome = outcome;
    r.job_id = std::move(job_id);
    r.detail = std::move(detail);
    return r;
}

// The marketplace's explanation in an error answer, if it is JSON with a message/error string.
std::string error_message(std::string_view body) {
    if (body.empty()) return std::string();
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(body.data(),
                                                                                      body.size());
    if (doc.HasParseError() || !doc.IsObject()) return std::string();
    for (const char* key : {"message", "error", "detail"}) {
        const auto it = doc.FindMember(key);
        if (it != doc.MemberEnd() && it->value.IsString() && it->value.GetStringLength() > 0)
            return printable(std::string_view(it->value.GetString(), it->value.GetStringLength()),
                             kMaxDetailMessage);
    }
    return std::string();
}

// job_id_of reads a job id: a non-empty string (at most kMaxJobIdBytes, no control characters) or
// a non-negative integer. On failure `why` says what is wrong with it.
bool job_id_of(const rapidjson::Value* id, std::string* job, std::string* why) {
    if (id == nullptr || id->IsNull()) {
        *why = "answer has no job id";
        return false;
    }
    if (id->IsString()) {
        const std::string_view s(id->GetString(), id->GetStringLength());
        if (s.empty()) {
            *why = "job id is empty";
            return false;
        }
        if (s.size() > kMaxJobIdBytes) {
            *why = "job id is too long";
            return false;
        }
        for (const char c : s) {
            const auto u = static_cast<unsigned char>(c);
            if (u < 0x20 || u == 0x7F) {
                *why = "job id contains a control character";
                return false;
            }
        }
        job->assign(s);
        return true;
    }
    if (id->IsUint64()) {
        *job = std::to_string(id->GetUint64());
        return true;
    }
    *why = id->IsNumber() ? "job id is not a non-negative integer"
                          : "job id is neither a string nor a number";
    return false;
}

const rapidjson::Value* id_member(const rapidjson::Value& object) {
    const auto it = object.FindMember("id");
    return it == object.MemberEnd() ? nullptr : &it->value;
}

PushResult classify_success(long status, std::string_view body) {
    const std::string where = status_text(status) + ": ";
    std::size_t first = 0;
    while (first < body.size() && (body[first] == ' ' || body[first] == '\t' ||
                                   body[first] == '\n' || body[first] == '\r'))
        ++first;
    if (first == body.size()) return result(PushOutcome::retry, where + "empty answer, no job id");
    if (body[first] == '<')
        return result(PushOutcome::retry, where + "answer is not JSON (HTML page), no job id");
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(body.data(),
                                                                                      body.size());
    if (doc.HasParseError())
        return result(PushOutcome::retry, where + "answer is not JSON, no job id");
    std::vector<std::string> jobs;
    std::string why;
    if (doc.IsObject()) {
        jobs.emplace_back();
        if (!job_id_of(id_member(doc), &jobs.back(), &why))
            return result(PushOutcome::retry, where + why);
    } else if (doc.IsArray()) {
        if (doc.Empty())
            return result(PushOutcome::retry, where + "answer is an empty array, no job id");
        std::size_t index = 0;
        for (auto it = doc.Begin(); it != doc.End(); ++it, ++index) {
            const std::string at = "answer[" + std::to_string(index) + "] ";
            if (!it->IsObject()) return result(PushOutcome::retry, where + at + "is not an object");
            jobs.emplace_back();
            if (!job_id_of(id_member(*it), &jobs.back(), &why))
                return result(PushOutcome::retry, where + at + why);
        }
    } else {
        return result(PushOutcome::retry,
                      where + "answer is not a JSON object or array, no job id");
    }
    std::string detail = "accepted, job " + printable(jobs[0], 64);
    if (jobs.size() > 1) detail += " and " + std::to_string(jobs.size() - 1) + " more";
    PushResult accepted = result(PushOutcome::accepted, std::move(detail), jobs[0]);
    accepted.job_ids = std::move(jobs);
    return accepted;
}

void write_listing(Writer& w, const ListingPush& listing, const std::string& where) {
    if (listing.merchant_uid.empty()) throw std::invalid_argument(where + "merchantUid is empty");
    if (listing.sku.empty()) throw std::invalid_argument(where + "sku is empty");
    if (listing.availabilities.empty())
        throw std::invalid_argument(where + "no availabilities: the pickup points of sku " +
                                    printable(listing.sku, 64) + " are unknown");
    if (listing.city_prices.empty()) throw std::invalid_argument(where + "no city price");
    std::unordered_set<std::string_view> stores;
    for (const Availability& a : listing.availabilities) {
        if (a.store_id.empty()) throw std::invalid_argument(where + "a storeId is empty");
        if (!stores.insert(a.store_id).second)
            throw std::invalid_argument(where + "storeId " + printable(a.store_id, 64) +
                                        " is listed twice");
    }
    std::unordered_set<std::string_view> cities;
    for (const PushCityPrice& c : listing.city_prices) {
        if (!valid_city_id(c.city_id))
            throw std::invalid_argument(where + "a cityId is not 9 digits");
        if (!cities.insert(c.city_id).second)
            throw std::invalid_argument(where + "duplicate cityId " + c.city_id);
        if (c.price < kMinPrice || c.price > kMaxOfferPrice)
            throw std::invalid_argument(where + "price " + std::to_string(c.price) + " for city " +
                                        c.city_id + " is outside [10, " +
                                        std::to_string(kMaxOfferPrice) + "]");
    }
    w.StartObject();
    w.Key("merchantUid");
    write_text(w, listing.merchant_uid, where, "merchantUid");
    w.Key("sku");
    write_text(w, listing.sku, where, "sku");
    w.Key("model");
    write_text(w, listing.model, where, "model");
    w.Key("availabilities");
    w.StartArray();
    for (const Availability& a : listing.availabilities) {
        w.StartObject();
        w.Key("available");
        w.String(a.available ? "yes" : "no");
        w.Key("storeId");
        write_text(w, a.store_id, where, "storeId");
        w.EndObject();
    }
    w.EndArray();
    w.Key("cityPrices");
    w.StartArray();
    for (const PushCityPrice& c : listing.city_prices) {
        w.StartObject();
        w.Key("cityId");
        write_text(w, c.city_id, where, "cityId");
        w.Key("value");
        w.Int64(c.price);
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i];
        char y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

std::optional<PushJobState> job_state_of(std::string_view status) {
    for (const char* name : {"pending", "queued", "new", "processing", "in_progress", "running"})
        if (iequals(status, name)) return PushJobState::pending;
    for (const char* name : {"done", "success", "succeeded", "completed", "finished", "ok"})
        if (iequals(status, name)) return PushJobState::done;
    for (const char* name : {"failed", "failure", "error", "rejected", "cancelled", "canceled"})
        if (iequals(status, name)) return PushJobState::failed;
    return std::nullopt;
}

// job_text reads a tolerant string (or an integer as its decimal text); "" otherwise, and for a
// string that cannot be stored (json_read::storable_text).
std::string job_text(const rapidjson::Value& object, const char* key) {
    bool duplicate = false;
    const rapidjson::Value* v = json_read::member(object, key, &duplicate);
    if (v == nullptr) return std::string();
    if (v->IsString()) {
        std::string out(v->GetString(), v->GetStringLength());
        return json_read::storable_text(out) ? out : std::string();
    }
    if (v->IsUint64()) return std::to_string(v->GetUint64());
    return std::string();
}

PushJobParse job_failure(std::string error) {
    PushJobParse out;
    out.error = std::move(error);
    return out;
}

}  // namespace

std::string push_body(const PushRequestInput& input) {
    if (input.merchant_uid.empty()) throw std::invalid_argument("push: merchantUid is empty");
    if (input.sku.empty()) throw std::invalid_argument("push: sku is empty");
    if (input.price < kMinPrice)
        throw std::invalid_argument("push: price " + std::to_string(input.price) +
                                    " is below Kaspi's minimum of 10");
    std::unordered_set<std::string_view> cities;
    for (const auto& [city, value] : input.city_prices) {
        if (!valid_city_id(city)) throw std::invalid_argument("push: a cityId is not 9 digits");
        if (!cities.insert(city).second)
            throw std::invalid_argument("push: duplicate cityId " + city);
        if (value < kMinPrice)
            throw std::invalid_argument("push: price " + std::to_string(value) + " for city " +
                                        city + " is below Kaspi's minimum of 10");
    }

    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("merchantUid");
    write_string(w, input.merchant_uid, "merchantUid");
    w.Key("sku");
    write_string(w, input.sku, "sku");
    w.Key("model");
    write_string(w, input.model, "model");
    w.Key("price");
    w.Int64(input.price);
    w.Key("cityPrices");
    w.StartArray();
    for (const auto& [city, value] : input.city_prices) {
        w.StartObject();
        w.Key("cityId");
        write_string(w, city, "cityId");
        w.Key("value");
        w.Int64(value);
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

std::string listing_push_body(const ListingPush& listing) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    write_listing(w, listing, "push: ");
    return std::string(buf.GetString(), buf.GetSize());
}

std::string listing_push_batch_body(const std::vector<ListingPush>& listings) {
    if (listings.empty()) throw std::invalid_argument("push: an empty batch");
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartArray();
    for (std::size_t i = 0; i < listings.size(); ++i) {
        const std::string where = "push: item " + std::to_string(i) + ": ";
        if (listings[i].merchant_uid != listings[0].merchant_uid)
            throw std::invalid_argument(where + "another merchant than item 0's");
        write_listing(w, listings[i], where);
    }
    w.EndArray();
    return std::string(buf.GetString(), buf.GetSize());
}

std::vector<std::string> push_headers(std::string_view session_cookie,
                                      std::string_view sid_cookie) {
    check_cookie(session_cookie, "mc-session");
    check_cookie(sid_cookie, "mc-sid");
    std::string cookie = "Cookie: mc-session=";
    cookie.append(session_cookie);
    cookie += "; mc-sid=";
    cookie.append(sid_cookie);
    return {
        "Content-Type: application/json", "Accept: application/json, text/*", "x-auth-version: 3",
        "Origin: https://kaspi.kz",       "Referer: https://kaspi.kz/",       std::move(cookie)};
}

const char* push_outcome_name(PushOutcome outcome) {
    switch (outcome) {
        case PushOutcome::accepted:
            return "accepted";
        case PushOutcome::retry:
            return "retry";
        case PushOutcome::merchant_banned:
            return "merchant_banned";
        case PushOutcome::needs_login:
            return "needs_login";
        case PushOutcome::rejected:
            return "rejected";
    }
    return "unknown";
}

PushResult classify_push_answer(long http_status, std::string_view body, bool transport_error) {
    if (transport_error)
        return result(PushOutcome::retry, "transport error (timeout or connection failure)");
    if (http_status >= 200 && http_status <= 299) return classify_success(http_status, body);
    const std::string status = status_text(http_status);
    if (http_status == 401 || http_status == 403)
        return result(
            PushOutcome::needs_login,
            status + ": the merchant cabinet session expired; the store needs a new login");
    if (http_status == 429)
        return result(PushOutcome::merchant_banned,
                      status + ": the marketplace rate-limited this merchant's price pushes");
    if (http_status == 408) return result(PushOutcome::retry, status + ": request timeout");
    if (http_status >= 500 && http_status <= 599)
        return result(PushOutcome::retry, status + ": marketplace server error");
    if (http_status >= 400 && http_status <= 499) {
        std::string detail = status + ": the marketplace rejected the price";
        const std::string msg = error_message(body);
        if (!msg.empty()) detail += ": " + msg;
        return result(PushOutcome::rejected, std::move(detail));
    }
    if (http_status >= 300 && http_status <= 399)
        return result(PushOutcome::retry, status + ": unexpected redirect");
    return result(PushOutcome::retry, status + ": unexpected status");
}

const char* push_job_state_name(PushJobState state) {
    switch (state) {
        case PushJobState::pending:
            return "pending";
        case PushJobState::done:
            return "done";
        case PushJobState::failed:
            return "failed";
    }
    return "unknown";
}

PushJobParse parse_push_job(std::string_view body) {
    if (auto error = json_read::body_error(body)) return job_failure(std::move(*error));
    rapidjson::Document doc;
    doc.Parse<json_read::kParseFlags>(body.data(), body.size());
    if (auto error = json_read::parse_error(doc)) return job_failure(std::move(*error));
    if (!doc.IsObject()) return job_failure("response is not a JSON object");
    bool duplicate = false;
    const rapidjson::Value* status = json_read::member(doc, "status", &duplicate);
    if (duplicate) return job_failure("duplicate key \"status\"");
    if (status == nullptr || !status->IsString()) return job_failure("job answer has no status");
    const std::string_view status_text(status->GetString(), status->GetStringLength());
    const std::optional<PushJobState> state = job_state_of(status_text);
    if (!state) return job_failure("unknown job status \"" + printable(status_text, 40) + "\"");
    PushJobParse out;
    out.job.state = *state;
    out.job.id = job_text(doc, "id");
    out.job.message = job_text(doc, "message");
    const rapidjson::Value* items = json_read::member(doc, "items", &duplicate);
    if (items != nullptr && !items->IsNull()) {
        if (!items->IsArray()) return job_failure("\"items\" is not an array");
        for (auto it = items->Begin(); it != items->End(); ++it) {
            if (!it->IsObject()) return job_failure("a job item is not an object");
            out.job.items.push_back(PushJobItem{job_text(*it, "sku"), job_text(*it, "result"),
                                                job_text(*it, "reason")});
        }
    }
    out.ok = true;
    return out;
}

std::string push_job_url(std::string_view tmpl, std::string_view job_id) {
    constexpr std::string_view kPlaceholder = "{job_id}";
    const std::string encoded = percent_encode_component(job_id);
    std::string url(tmpl);
    for (std::size_t at = url.find(kPlaceholder); at != std::string::npos;
         at = url.find(kPlaceholder, at + encoded.size())) {
        url.replace(at, kPlaceholder.size(), encoded);
    }
    return url;
}

std::vector<PendingPush> coalesce_pushes(std::vector<PendingPush> pending) {
    std::unordered_map<std::string_view, std::size_t> newest;  // key -> index in pending
    newest.reserve(pending.size());
    for (std::size_t i = 0; i < pending.size(); ++i) {
        const auto [it, inserted] = newest.emplace(pending[i].product_key, i);
        if (!inserted && pending[i].sequence >= pending[it->second].sequence) it->second = i;
    }
    std::vector<std::size_t> keep;
    keep.reserve(newest.size());
    for (const auto& entry : newest) keep.push_back(entry.second);
    std::sort(keep.begin(), keep.end(), [&](std::size_t a, std::size_t b) {
        if (pending[a].sequence != pending[b].sequence)
            return pending[a].sequence < pending[b].sequence;
        return a < b;
    });
    std::vector<PendingPush> out;
    out.reserve(keep.size());
    for (const std::size_t i : keep) out.push_back(std::move(pending[i]));
    return out;
}

}  // namespace demper::core
