// offers: see offers.hpp for the accepted format and the failure rules.
#include "core/offers.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <cmath>
#include <cstring>
#include <iterator>
#include <memory>
#include <string>
#include <utility>

namespace demper::core {

namespace {

// Not kParseFullPrecisionFlag: RapidJSON 1.1.0's full-precision strtod has undefined behaviour
// (signed overflow, negative shifts, clz(0)) on numbers with absurd exponents, which the fuzzer
// reaches. The normal-precision path is exact for the integral prices we accept (at most 12
// digits) and at worst 1 ulp off for long fractions, which cannot turn a fraction into an integer
// in a way that matters (e.g. 151990.0000000000001 may be read as 151990).
constexpr unsigned kParseFlags =
    rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag;

// Most answers' DOM fits in this many bytes; larger ones take more from the heap.
constexpr std::size_t kParseBufferBytes = 128 * 1024;

char* parse_buffer() {
    thread_local std::unique_ptr<char[]> buffer(new char[kParseBufferBytes]);
    return buffer.get();
}

OffersParse fail(std::string error) {
    OffersParse out;
    out.ok = false;
    out.error = std::move(error);
    return out;
}

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// RapidJSON's English messages start with a capital and end with '.': make them fit our style.
std::string rapidjson_error_text(rapidjson::ParseErrorCode code) {
    std::string text = rapidjson::GetParseError_En(code);
    if (!text.empty() && text.back() == '.') text.pop_back();
    if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z')
        text[0] = static_cast<char>(text[0] - 'A' + 'a');
    return text;
}

std::string where(std::size_t index) { return "offers[" + std::to_string(index) + "]"; }

// price_of converts a JSON number to a whole price in [1, kMaxOfferPrice]; false if impossible.
bool price_of(const rapidjson::Value& v, std::int64_t* out) {
    if (!v.IsNumber()) return false;
    if (v.IsInt64()) {
        const std::int64_t p = v.GetInt64();
        if (p < 1 || p > kMaxOfferPrice) return false;
        *out = p;
        return true;
    }
    if (v.IsUint64()) return false;  // above INT64_MAX: far out of range
    const double d = v.GetDouble();
    if (!std::isfinite(d) || d < 1.0 || d > static_cast<double>(kMaxOfferPrice)) return false;
    if (std::floor(d) != d) return false;
    *out = static_cast<std::int64_t>(d);  // exact: integral and within range
    return true;
}

bool key_is(const rapidjson::Value& name, const char* key) {
    const std::size_t n = std::strlen(key);
    return name.GetStringLength() == n && std::memcmp(name.GetString(), key, n) == 0;
}

// optional_string reads an optional string field: null means absent; other types are errors.
bool optional_string(const rapidjson::Value& v, std::string* out) {
    if (v.IsNull()) return true;
    if (!v.IsString()) return false;
    out->assign(v.GetString(), v.GetStringLength());
    return true;
}

}  // namespace

OffersParse parse_offers(std::string_view body) {
    std::size_t first = 0;
    while (first < body.size() && is_json_space(body[first])) ++first;
    if (first == body.size()) return fail("empty response");
    if (body[first] == '<') return fail("response is not JSON (HTML page)");
    // RapidJSON treats a NUL as the end of input, which would let "{...}\0<garbage>" through.
    if (body.find('\0') != std::string_view::npos)
        return fail("response is not JSON (contains a NUL byte)");

    // The DOM lives in a buffer kept per thread: a fresh Document would malloc (and free) a 64 KB
    // pool chunk per response. Nothing of the DOM outlives this call (offers are copied out).
    rapidjson::MemoryPoolAllocator<> pool(parse_buffer(), kParseBufferBytes);
    rapidjson::Document doc(&pool);
    doc.Parse<kParseFlags>(body.data(), body.size());
    if (doc.HasParseError()) {
        return fail("response is not JSON: " + rapidjson_error_text(doc.GetParseError()) +
                    " at offset " + std::to_string(doc.GetErrorOffset()));
    }
    if (!doc.IsObject()) return fail("response is not a JSON object");

    const rapidjson::Value* offers = nullptr;
    const rapidjson::Value* total = nullptr;
    for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
        if (key_is(m->name, "offers")) {
            if (offers != nullptr) return fail("duplicate key \"offers\"");
            offers = &m->value;
        } else if (key_is(m->name, "total")) {
            if (total != nullptr) return fail("duplicate key \"total\"");
            total = &m->value;
        }
    }
    if (offers == nullptr) return fail("missing \"offers\" array");
    if (!offers->IsArray()) return fail("\"offers\" is not an array");

    OffersParse out;
    out.book.offers.reserve(offers->Size());
    std::size_t index = 0;
    for (auto it = offers->Begin(); it != offers->End(); ++it, ++index) {
        const rapidjson::Value& o = *it;
        if (!o.IsObject()) return fail(where(index) + ": offer is not an object");
        const rapidjson::Value* id = nullptr;
        const rapidjson::Value* price = nullptr;
        const rapidjson::Value* name = nullptr;
        const rapidjson::Value* delivery = nullptr;
        for (auto m = o.MemberBegin(); m != o.MemberEnd(); ++m) {
            const rapidjson::Value** slot = nullptr;
            const char* key = nullptr;
            if (key_is(m->name, "merchantId")) {
                slot = &id;
                key = "merchantId";
            } else if (key_is(m->name, "price")) {
                slot = &price;
                key = "price";
            } else if (key_is(m->name, "merchantName")) {
                slot = &name;
                key = "merchantName";
            } else if (key_is(m->name, "deliveryDuration")) {
                slot = &delivery;
                key = "deliveryDuration";
            } else {
                continue;
            }
            if (*slot != nullptr) return fail(where(index) + ": duplicate key \"" + key + "\"");
            *slot = &m->value;
        }

        Offer offer;
        if (id == nullptr) return fail(where(index) + ": missing merchantId");
        if (id->IsString()) {
            if (id->GetStringLength() == 0) return fail(where(index) + ": empty merchantId");
            offer.merchant_id.assign(id->GetString(), id->GetStringLength());
        } else if (id->IsUint64()) {
            offer.merchant_id = std::to_string(id->GetUint64());
        } else {
            return fail(where(index) + ": merchantId must be a string or a non-negative integer");
        }

        if (price == nullptr) return fail(where(index) + ": missing price");
        if (!price_of(*price, &offer.price)) {
            return fail(where(index) + ": price must be an integer in [1, " +
                        std::to_string(kMaxOfferPrice) + "]");
        }
        if (name != nullptr && !optional_string(*name, &offer.merchant_name)) {
            return fail(where(index) + ": merchantName is not a string");
        }
        if (delivery != nullptr && !optional_string(*delivery, &offer.delivery_duration)) {
            return fail(where(index) + ": deliveryDuration is not a string");
        }
        out.book.offers.push_back(std::move(offer));
    }

    out.book.total = static_cast<std::int64_t>(out.book.offers.size());
    if (total != nullptr && !total->IsNull()) {
        if (!total->IsInt64() || total->GetInt64() < 0)
            return fail("\"total\" must be a non-negative integer");
        out.book.total = total->GetInt64();
    }
    out.ok = true;
    return out;
}

int delivery_rank(std::string_view duration) {
    static constexpr std::string_view kOrder[] = {
        "EXPRESS", "TODAY", "TOMORROW", "TILL_2_DAYS", "TILL_3_DAYS", "TILL_5_DAYS", "TILL_7_DAYS"};
    for (int i = 0; i < static_cast<int>(std::size(kOrder)); ++i) {
        if (duration == kOrder[i]) return i;
    }
    return kUnknownDeliveryRank;
}

}  // namespace demper::core
