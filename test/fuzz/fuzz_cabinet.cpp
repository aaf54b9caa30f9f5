// libFuzzer target: bytes → the merchant cabinet's parsers (offer list page, details, push job)
// and the push answer classifier; a parsed listing is then built back into a push body.
//
// Properties checked with __builtin_trap() for any input:
//   - a failed parse has an error and returns nothing (no partial page, no cities); a successful
//     one has no error, only listings with a sku, storeIds that are non-empty and unique, city ids
//     of 9 digits, prices in [1, kMaxOfferPrice], and no NUL character in what it returns;
//   - an accepted push answer has job ids, the first being job_id; any other outcome has none;
//   - a listing with availabilities and a priced city builds a push body that is valid JSON, holds
//     exactly its availabilities (available and storeId only: never a stockCount), and no
//     top-level price.
#include <rapidjson/document.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>

#include "core/cabinet.hpp"
#include "core/offers.hpp"
#include "core/push.hpp"

namespace {

using namespace demper::core;

void check(bool condition) {
    if (!condition) __builtin_trap();
}

bool no_nul(const std::string& text) { return text.find('\0') == std::string::npos; }

void check_availabilities(const std::vector<Availability>& list) {
    std::unordered_set<std::string> seen;
    for (const Availability& a : list)
        check(!a.store_id.empty() && no_nul(a.store_id) && seen.insert(a.store_id).second);
}

void check_push_body(const CabinetListing& listing, const CabinetDetails& details) {
    ListingPush push;
    push.merchant_uid = "30067228";
    push.sku = listing.sku;
    push.model = listing.model;
    push.availabilities = listing.availabilities;
    for (const CityPrice& city : details.cities) {
        if (city.price && *city.price >= 10)
            push.city_prices.push_back({city.city_id, *city.price});
    }
    std::string body;
    try {
        body = listing_push_body(push);
    } catch (const std::invalid_argument&) {
        check(push.availabilities.empty() || push.city_prices.empty() || push.sku.empty());
        return;
    }
    rapidjson::Document doc;
    doc.Parse(body.data(), body.size());
    check(!doc.HasParseError() && doc.IsObject());
    check(!doc.HasMember("price"));
    const rapidjson::Value& sent = doc["availabilities"];
    check(sent.IsArray() && sent.Size() == push.availabilities.size());
    for (rapidjson::SizeType i = 0; i < sent.Size(); ++i) {
        check(sent[i].MemberCount() == 2 && !sent[i].HasMember("stockCount"));
        const rapidjson::Value& store = sent[i]["storeId"];
        check(std::string_view(store.GetString(), store.GetStringLength()) ==
              push.availabilities[i].store_id);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);

    const CabinetPageParse page = parse_cabinet_page(body);
    check(page.ok == page.error.empty());
    if (!page.ok) check(page.page.listings.empty() && !page.page.total);
    for (const CabinetListing& l : page.page.listings) {
        check(!l.sku.empty() && no_nul(l.sku) && no_nul(l.model) && no_nul(l.product_code));
        check_availabilities(l.availabilities);
        for (const auto& price : {l.min_price, l.max_price})
            check(!price || (*price >= 1 && *price <= kMaxOfferPrice));
    }

    const CabinetDetailsParse details = parse_cabinet_details(body);
    check(details.ok == details.error.empty());
    if (!details.ok) check(details.details.cities.empty());
    std::unordered_set<std::string> cities;
    for (const CityPrice& c : details.details.cities) {
        check(c.city_id.size() == 9 && cities.insert(c.city_id).second);
        check(!c.price || (*c.price >= 1 && *c.price <= kMaxOfferPrice));
    }
    check_availabilities(details.details.availabilities);
    if (page.ok && details.ok) {
        for (const CabinetListing& l : page.page.listings) check_push_body(l, details.details);
    }

    const PushJobParse job = parse_push_job(body);
    check(job.ok == job.error.empty());

    const PushResult answer = classify_push_answer(200, body, false);
    if (answer.outcome == PushOutcome::accepted) {
        check(!answer.job_ids.empty() && answer.job_ids[0] == answer.job_id);
    } else {
        check(answer.job_ids.empty() && answer.job_id.empty());
    }
    return 0;
}
