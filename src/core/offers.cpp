// offers: see offers.hpp for the accepted format and the failure rules.
#include "core/offers.hpp"

#include <iterator>
#include <memory>
#include <string>
#include <utility>

#include "core/json_read.hpp"

namespace demper::core {

namespace {

using json_read::kParseFlags;

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

std::string where(std::size_t index) { return "offers[" + std::to_string(index) + "]"; }

// optional_string reads an optional string field: null means absent; other types are errors.
bool optional_string(const rapidjson::Value& v, std::string* out) {
    if (v.IsNull()) return true;
    if (!v.IsString()) return false;
    out->assign(v.GetString(), v.GetStringLength());
    return true;
}

}  // namespace

OffersParse parse_offers(std::string_view body) {
    if (auto error = json_read::body_error(body)) return fail(std::move(*error));

    // The DOM lives in a buffer kept per thread: a fresh Document would malloc (and free) a 64 KB
    // pool chunk per response. Nothing of the DOM outlives this call (offers are copied out).
    rapidjson::MemoryPoolAllocator<> pool(parse_buffer(), kParseBufferBytes);
    rapidjson::Document doc(&pool);
    doc.Parse<kParseFlags>(body.data(), body.size());
    if (auto error = json_read::parse_error(doc)) return fail(std::move(*error));
    if (!doc.IsObject()) return fail("response is not a JSON object");

    const rapidjson::Value* offers = nullptr;
    const rapidjson::Value* total = nullptr;
    for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
        if (json_read::key_is(m->name, "offers")) {
            if (offers != nullptr) return fail("duplicate key \"offers\"");
            offers = &m->value;
        } else if (json_read::key_is(m->name, "total")) {
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
            if (json_read::key_is(m->name, "merchantId")) {
                slot = &id;
                key = "merchantId";
            } else if (json_read::key_is(m->name, "price")) {
                slot = &price;
                key = "price";
            } else if (json_read::key_is(m->name, "merchantName")) {
                slot = &name;
                key = "merchantName";
            } else if (json_read::key_is(m->name, "deliveryDuration")) {
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
        if (!json_read::whole_number(*price, 1, kMaxOfferPrice, &offer.price)) {
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
        if (!json_read::whole_number(*total, 0, kMaxOfferPrice, &out.book.total))
            return fail("\"total\" must be a non-negative integer");
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
