// cabinet.hpp: the sellers' merchant cabinets the mock emulates (DOMAIN.md §2a and §2c).
//
// Vocabulary: a *cabinet* is one merchant's catalogue as Kaspi keeps it. Each *cabinet offer* (a
// listing) has a sku (like "133206576_392235481"), its product card id (`masterSku`), a Cyrillic
// title, a brand, the cities it is sold in with a price and the pickup points of each, and the
// *availabilities* (one per pickup point such as "30067228_PP2": available yes/no, stock,
// pre-order). An offer is *live* (on sale) or *archived* (off sale, with a reason).
//
// A *push* (one listing's new prices, POSTed to /process or, as an array, to the batch endpoint)
// becomes a *job*: the answer carries its id at once, and the job *finishes* `job_delay_ms`
// later, when the mock applies it to the offer. Jobs finish lazily: every request that reads the
// cabinet first settles the jobs that are due, so what a client reads after a job's due time
// always includes it, and no timer is needed.
//
// What a finished job did to its offer (the rules public clients report, DOMAIN.md §2a):
//   updated      the offer was live (or the batch endpoint re-activated it): every pushed city
//                price of a city the offer is sold in is applied, the availabilities' yes/no
//                follow the push (a pickup point left out becomes "no"), stock is untouched;
//   archived     the item had no availabilities, named a pickup point the offer does not have,
//                or carried a stockCount: the offer goes off sale with the reason;
//   not_live     /process was used on an archived offer: nothing changes (it never re-activates);
//   rejected     cityPrices missing or malformed (a price below 10, not an integer...), or an
//                availability without storeId or with `available` other than "yes"/"no":
//                nothing changes;
//   unknown_sku  the cabinet has no offer with that sku.
// The job is `done` when its item was updated, `failed` otherwise.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "json.hpp"

namespace demper_mock {

struct CabinetCity {
    std::string id;  // KATO code, e.g. "750000000"
    std::string name;
    int64_t price = 0;
    std::vector<std::string> pickup_points;  // storeIds
};

struct CabinetStock {
    std::string store_id;  // "{merchantUid}_PP{n}"
    bool available = true;
    int64_t stock_count = 0;
    int64_t pre_order = 0;
};

struct CabinetOffer {
    std::string sku;
    std::string master_sku;  // the product card id
    std::string title;       // masterTitle
    std::string brand;
    std::string category;
    std::string shop_link;
    std::vector<CabinetCity> cities;
    std::vector<CabinetStock> availabilities;
    bool live = true;
    std::string archive_reason;
    double updated_at = 0;  // unix seconds
};

enum class PushEndpoint { single, batch };

struct CabinetJob {
    std::string id;
    std::string merchant_uid;
    PushEndpoint endpoint = PushEndpoint::single;
    uint64_t due_ms = 0;
    JsonValue item;  // the pushed object, kept until the job finishes
    bool finished = false;
    std::string sku;
    std::string result;  // updated, archived, not_live, rejected, unknown_sku (when finished)
    std::string reason;
    double created_at = 0;
    double finished_at = 0;
};

// One merchant's offers, in the order they were added (the order the offer list pages them in).
class MerchantCabinet {
  public:
    // upsert adds an offer, or replaces the one with the same sku in place.
    void upsert(CabinetOffer offer);
    void clear();
    CabinetOffer* find(const std::string& sku);
    const std::vector<CabinetOffer>& offers() const { return offers_; }
    // listed returns the positions of the live (or archived) offers, in list order.
    const std::vector<size_t>& listed(bool live);
    // changed tells the cabinet an offer's live flag may have changed.
    void changed() { index_valid_ = false; }

  private:
    std::vector<CabinetOffer> offers_;
    std::unordered_map<std::string, size_t> by_sku_;
    std::vector<size_t> live_;
    std::vector<size_t> archived_;
    bool index_valid_ = false;
};

// SyntheticCabinet is POST /_mock/cabinet/{uid}/synthetic: `count` generated offers (formula in
// cabinet.cpp, above synthetic_offer) with product card ids first_code, first_code + 1, ...
struct SyntheticCabinet {
    uint64_t count = 0;
    uint64_t first_code = 1;
    std::vector<std::string> cities = {"750000000", "710000000", "511010000"};
    uint64_t archived_every = 0;  // every n-th offer is archived; 0 = none
};

class CabinetStore {
  public:
    MerchantCabinet* find(const std::string& merchant_uid);
    MerchantCabinet& cabinet(const std::string& merchant_uid) { return cabinets_[merchant_uid]; }

    // load_jsonl adds the offers of a JSON Lines file (one offer object with a "merchantUid"
    // member per line; blank lines and lines starting with # are skipped) and returns how many it
    // read. Throws with the file name and line on a bad line.
    size_t load_jsonl(const std::string& file_name);
    void add_synthetic(const std::string& merchant_uid, const SyntheticCabinet& spec);

    // submit queues one pushed item as a job due `job_delay_ms` from `now_ms`; returns its id.
    std::string submit(const std::string& merchant_uid, PushEndpoint endpoint, JsonValue item,
                       uint64_t now_ms);
    // settle finishes, in due order, every job due at `now_ms`.
    void settle(uint64_t now_ms);
    const CabinetJob* job(const std::string& id) const;
    void set_job_delay_ms(uint64_t delay_ms) { job_delay_ms_ = delay_ms; }
    uint64_t job_delay_ms() const { return job_delay_ms_; }
    // reset forgets every job and restores the default delay; the offers stay.
    void reset();

    // The JSON the endpoints answer with.
    std::string list_page_json(const std::string& merchant_uid, bool live, size_t page,
                               size_t limit);
    std::optional<std::string> details_json(const std::string& merchant_uid,
                                            const std::string& sku);
    static std::string job_json(const CabinetJob& job);
    // state_json is GET /_mock/cabinet/{uid}: every offer as the cabinet sees it, its jobs, and
    // `pushes_array` (the merchant's pushes, a JSON array the caller renders).
    std::string state_json(const std::string& merchant_uid, const std::string& pushes_array);

  private:
    std::unordered_map<std::string, MerchantCabinet> cabinets_;
    std::unordered_map<std::string, CabinetJob> jobs_;
    std::multimap<std::pair<uint64_t, uint64_t>, std::string> due_;  // (due, number) -> job id
    uint64_t next_job_ = 1;
    uint64_t job_delay_ms_ = 0;

    void finish(CabinetJob& job);
};

// offer_from_json reads a cabinet offer as the control API and --cabinet files give it:
//   {"sku":"133206576_392235481","masterSku":"133206576","masterTitle":"Влажные полотенца ...",
//    "brand":"Sunlight","masterCategory":"...","shopLink":"...","archived":false,
//    "archiveReason":"...","cities":[{"id":"750000000","name":"Алматы","price":1120,
//    "pickupPoints":["30067228_PP2"]}],
//    "availabilities":[{"storeId":"30067228_PP2","available":"yes","stockCount":5,"preOrder":0}]}
// sku, masterSku and at least one city with an integer price are required. Defaults: the city's
// name from its KATO code; a city without pickupPoints has every availability's storeId;
// availabilities, when absent, are the cities' pickup points (available, no stock); shopLink is
// https://kaspi.kz/shop/p/<slug>-<masterSku>/. nullopt and `error` when invalid.
std::optional<CabinetOffer> offer_from_json(const JsonValue& item, std::string& error);

// apply_hand_edit is PATCH /_mock/cabinet/{uid}/offers/{sku}: what the seller changes by hand in
// the cabinet (cityPrices, archived, archiveReason, availabilities, masterTitle, brand). False and
// `error` when invalid (nothing is changed then).
bool apply_hand_edit(CabinetOffer& offer, const JsonValue& edit, std::string& error);

// city_name returns the Russian name of a KATO city code ("" when unknown).
const char* city_name(const std::string& city_id);

}  // namespace demper_mock
