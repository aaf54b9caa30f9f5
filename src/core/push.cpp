// push: see push.hpp for the body, the headers and the answer classes.
#include "core/push.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

namespace demper::core {

namespace {

constexpr std::int64_t kMinPrice = 10;  // Kaspi's own minimum
constexpr std::size_t kMaxJobIdBytes = 200;
constexpr std::size_t kMaxDetailMessage = 200;

using Writer = rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                                 rapidjson::CrtAllocator, rapidjson::kWriteValidateEncodingFlag>;

void write_string(Writer& w, const std::string& value, const char* field) {
    if (value.size() > 0xFFFFFFFFu) throw std::invalid_argument(std::string(field) + " is too long");
    if (!w.String(value.data(), static_cast<rapidjson::SizeType>(value.size())))
        throw std::invalid_argument(std::string("push: ") + field + " is not valid UTF-8");
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
    return PushResult{outcome, std::move(job_id), std::move(detail)};
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

PushResult classify_success(long status, std::string_view body) {
    const std::string where = status_text(status) + ": ";
    std::size_t first = 0;
    while (first < body.size() &&
           (body[first] == ' ' || body[first] == '\t' || body[first] == '\n' || body[first] == '\r'))
        ++first;
    if (first == body.size()) return result(PushOutcome::retry, where + "empty answer, no job id");
    if (body[first] == '<')
        return result(PushOutcome::retry, where + "answer is not JSON (HTML page), no job id");
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(body.data(),
                                                                                        body.size());
    if (doc.HasParseError()) return result(PushOutcome::retry, where + "answer is not JSON, no job id");
    if (!doc.IsObject())
        return result(PushOutcome::retry, where + "answer is not a JSON object, no job id");
    const auto it = doc.FindMember("id");
    if (it == doc.MemberEnd() || it->value.IsNull())
        return result(PushOutcome::retry, where + "answer has no job id");
    const rapidjson::Value& id = it->value;
    if (id.IsString()) {
        const std::string_view s(id.GetString(), id.GetStringLength());
        if (s.empty()) return result(PushOutcome::retry, where + "job id is empty");
        if (s.size() > kMaxJobIdBytes) return result(PushOutcome::retry, where + "job id is too long");
        for (const char c : s) {
            const auto u = static_cast<unsigned char>(c);
            if (u < 0x20 || u == 0x7F)
                return result(PushOutcome::retry, where + "job id contains a control character");
        }
        std::string job(s);
        return result(PushOutcome::accepted, "accepted, job " + printable(job, 64), job);
    }
    if (id.IsUint64()) {
        std::string job = std::to_string(id.GetUint64());
        return result(PushOutcome::accepted, "accepted, job " + job, job);
    }
    if (id.IsInt64() || id.IsNumber())
        return result(PushOutcome::retry, where + "job id is not a non-negative integer");
    return result(PushOutcome::retry, where + "job id is neither a string nor a number");
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
        if (!valid_city_id(city))
            throw std::invalid_argument("push: a cityId is not 9 digits");
        if (!cities.insert(city).second)
            throw std::invalid_argument("push: duplicate cityId " + city);
        if (value < kMinPrice)
            throw std::invalid_argument("push: price " + std::to_string(value) + " for city " + city +
                                        " is below Kaspi's minimum of 10");
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

std::vector<std::string> push_headers(std::string_view session_cookie, std::string_view sid_cookie) {
    check_cookie(session_cookie, "mc-session");
    check_cookie(sid_cookie, "mc-sid");
    std::string cookie = "Cookie: mc-session=";
    cookie.append(session_cookie);
    cookie += "; mc-sid=";
    cookie.append(sid_cookie);
    return {"Content-Type: application/json",
            "Accept: application/json, text/*",
            "x-auth-version: 3",
            "Origin: https://kaspi.kz",
            "Referer: https://kaspi.kz/",
            std::move(cookie)};
}

const char* push_outcome_name(PushOutcome outcome) {
    switch (outcome) {
        case PushOutcome::accepted: return "accepted";
        case PushOutcome::retry: return "retry";
        case PushOutcome::merchant_banned: return "merchant_banned";
        case PushOutcome::needs_login: return "needs_login";
        case PushOutcome::rejected: return "rejected";
    }
    return "unknown";
}

PushResult classify_push_answer(long http_status, std::string_view body, bool transport_error) {
    if (transport_error)
        return result(PushOutcome::retry, "transport error (timeout or connection failure)");
    if (http_status >= 200 && http_status <= 299) return classify_success(http_status, body);
    const std::string status = status_text(http_status);
    if (http_status == 401 || http_status == 403)
        return result(PushOutcome::needs_login,
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
