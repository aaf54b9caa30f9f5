// catalogue_import.cpp: the seller's catalogue read from the cabinet (see catalogue_import.hpp).
#include "pg/catalogue_import.hpp"

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include "pg/guard.hpp"
#include "pg/shared_state.hpp"

namespace demper::pg {

namespace {

constexpr double kLookSeconds = 5.0;      // how often to look for an import that is due
constexpr int kDetailsInFlight = 4;       // details requests of one import at once
constexpr std::size_t kWriteRows = 200;   // rows per upsert transaction
constexpr std::int64_t kMaxPages = 100000;  // a list that never ends is a broken one

double now_seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}


}  // namespace

void CatalogueImport::step(double now) {
    if (!sync_) {
        if (now < next_look_at_) return;
        next_look_at_ = now + kLookSeconds;
        if (!credentials_.usable()) return;
        std::optional<StoreToSync> store = catalog_.claim_sync(settings_.catalogue_sync_interval_s);
        if (!store) return;
        start(std::move(*store), now);
    }
    switch (sync_->phase) {
        case Phase::live_list:
        case Phase::archived_list:
            send_list_page(now);
            break;
        case Phase::details:
            send_details(now);
            break;
    }
    if (sync_ && sync_->rows.size() >= kWriteRows) write_rows(false);
}

void CatalogueImport::start(StoreToSync&& store, double now) {
    Sync sync;
    sync.started_at = now;
    for (auto& [sku, updated_at] : catalog_.known_listings(store.id)) sync.known.emplace(std::move(sku), std::move(updated_at));
    sync.store = std::move(store);
    sync_ = std::move(sync);
    counter_add(kCatalogueSyncs);
    const long long id = sync_->store.id;
    pg_guard([id] { ereport(LOG, (errmsg("demper worker is importing the catalogue of store %lld from its cabinet", id))); });
}

std::optional<std::vector<std::string>> CatalogueImport::headers() const {
    return credentials_.cabinet_headers(sync_->store.sealed_credentials, sync_->store.id);
}

void CatalogueImport::send_list_page(double now) {
    if (sync_->page_in_flight || !reads_.try_take(sync_->store.merchant_id, now)) return;
    std::optional<std::vector<std::string>> h = headers();
    if (!h) {
        finish("the store's credentials cannot be opened with the current key");
        return;
    }
    core::HttpRequest request;
    request.method = "GET";
    request.url = core::cabinet_list_url(settings_.catalogue_list_url, sync_->store.merchant_id, sync_->page,
                                         settings_.catalogue_page_size, sync_->phase == Phase::live_list);
    request.headers = std::move(*h);
    router_.send(*this, std::move(request));
    sync_->page_in_flight = true;
}

void CatalogueImport::send_details(double now) {
    while (sync_ && !sync_->details_to_read.empty() && sync_->details_in_flight < kDetailsInFlight &&
           reads_.try_take(sync_->store.merchant_id, now)) {
        std::optional<std::vector<std::string>> h = headers();
        if (!h) {
            finish("the store's credentials cannot be opened with the current key");
            return;
        }
        const std::string sku = sync_->details_to_read.front();
        sync_->details_to_read.pop_front();
        core::HttpRequest request;
        request.method = "GET";
        request.url = core::cabinet_details_url(settings_.catalogue_details_url, sync_->store.merchant_id, sku);
        request.headers = std::move(*h);
        details_requests_.emplace(router_.send(*this, std::move(request)), sku);
        sync_->details_in_flight++;
    }
    if (sync_ && sync_->details_to_read.empty() && sync_->details_in_flight == 0) {
        sync_->result.complete = true;
        std::string error;
        if (sync_->unreadable > 0)
            error = std::to_string(sync_->unreadable) + " listings could not be read (" + sync_->first_problem + ")";
        finish(error);
    }
}

void CatalogueImport::on_response(core::HttpResponse&& response) {
    auto detail = details_requests_.find(response.id);
    if (detail != details_requests_.end()) {
        const std::string sku = std::move(detail->second);
        details_requests_.erase(detail);
        if (sync_) on_details(sku, response);
        return;
    }
    if (sync_ && sync_->page_in_flight) on_list_page(response);
}

// on_list_page takes one page of the offer list: a failed or unreadable page ends the import
// (nothing is archived); an empty page ends its list.
void CatalogueImport::on_list_page(const core::HttpResponse& response) {
    sync_->page_in_flight = false;
    const bool live = sync_->phase == Phase::live_list;
    const std::string which = live ? "on sale" : "archived";
    if (response.error != core::ErrorClass::none) {
        finish("page " + std::to_string(sync_->page) + " of the " + which + " offers: " + failure_text(response));
        return;
    }
    core::CabinetPageParse parsed = core::parse_cabinet_page(response.body);
    if (!parsed.ok) {
        finish("page " + std::to_string(sync_->page) + " of the " + which + " offers: " + parsed.error);
        return;
    }
    const std::size_t n = parsed.page.listings.size();
    for (core::CabinetListing& l : parsed.page.listings) {
        if (live) {
            std::string sku = l.sku;
            sync_->live[sku] = std::move(l);
        } else if (sync_->live.count(l.sku) == 0) {
            add_archived(l);
        }
    }
    sync_->result.seen += static_cast<std::int64_t>(n);
    sync_->page++;
    const bool last = n == 0 || (parsed.page.total &&
                                 sync_->page * settings_.catalogue_page_size >= *parsed.page.total);
    if (!last && sync_->page < kMaxPages) return;
    sync_->page = 0;
    if (live) {
        sync_->phase = Phase::archived_list;
        return;
    }
    // Both lists are read: the details of each listing on sale that is new or changed.
    sync_->phase = Phase::details;
    for (const auto& [sku, listing] : sync_->live) {
        auto known = sync_->known.find(sku);
        if (known == sync_->known.end() || listing.updated_at.empty() || known->second != listing.updated_at)
            sync_->details_to_read.push_back(sku);
    }
}

// add_archived keeps an archived listing as one inactive row in the store's city (its city prices
// are not read: it is not repriced while archived).
void CatalogueImport::add_archived(const core::CabinetListing& l) {
    if (l.product_code.empty() || !l.min_price) {
        sync_->skipped++;
        return;
    }
    ImportedListing row;
    row.sku = l.sku;
    row.city_id = sync_->store.city_id;
    row.product_code = l.product_code;
    row.model = l.model;
    row.brand = l.brand;
    row.price = *l.min_price;
    row.availabilities = core::availabilities_json(l.availabilities);
    row.updated_at = l.updated_at;
    row.archived = true;
    sync_->rows.push_back(std::move(row));
}

// on_details turns one listing's details into one row per city it is sold in.
void CatalogueImport::on_details(const std::string& sku, const core::HttpResponse& response) {
    sync_->details_in_flight--;
    std::string problem;
    core::CabinetDetailsParse parsed;
    if (response.error != core::ErrorClass::none) {
        problem = sku + ": " + failure_text(response);
    } else {
        parsed = core::parse_cabinet_details(response.body);
        if (!parsed.ok) problem = sku + ": " + parsed.error;
    }
    if (!problem.empty()) {
        if (sync_->first_problem.empty()) sync_->first_problem = problem;
        sync_->unreadable++;
        return;
    }
    const core::CabinetListing& l = sync_->live[sku];
    const core::CabinetDetails& d = parsed.details;
    const std::string product_code = !l.product_code.empty() ? l.product_code : d.product_code;
    if (product_code.empty()) {
        sync_->skipped++;
        return;
    }
    const std::vector<core::Availability>& availabilities = !l.availabilities.empty() ? l.availabilities : d.availabilities;
    const std::string availabilities_json = core::availabilities_json(availabilities);
    for (const core::CityPrice& city : d.cities) {
        if (!city.price) continue;
        ImportedListing row;
        row.sku = sku;
        row.city_id = city.city_id;
        row.product_code = product_code;
        row.model = !l.model.empty() ? l.model : d.model;
        row.brand = !l.brand.empty() ? l.brand : d.brand;
        row.price = *city.price;
        row.availabilities = availabilities_json;
        row.updated_at = l.updated_at;
        row.archived = d.archived.value_or(false);
        sync_->rows.push_back(std::move(row));
    }
}

// write_rows upserts what has been read, in transactions of kWriteRows rows (all: every row).
void CatalogueImport::write_rows(bool all) {
    while (sync_ && !sync_->rows.empty() && (all || sync_->rows.size() >= kWriteRows)) {
        const std::size_t n = std::min(kWriteRows, sync_->rows.size());
        std::vector<ImportedListing> batch(std::make_move_iterator(sync_->rows.begin()),
                                           std::make_move_iterator(sync_->rows.begin() + static_cast<std::ptrdiff_t>(n)));
        sync_->rows.erase(sync_->rows.begin(), sync_->rows.begin() + static_cast<std::ptrdiff_t>(n));
        const ImportCounts c = catalog_.import_listings(sync_->store.id, batch);
        sync_->result.counts.added += c.added;
        sync_->result.counts.updated += c.updated;
        sync_->result.counts.price_edits += c.price_edits;
        sync_->result.counts.deactivated += c.deactivated;
    }
}

// finish writes what was read and records the import's end; an error (a list page that failed)
// leaves every listing the import did not read as it was.
void CatalogueImport::finish(std::string error) {
    Sync& s = *sync_;
    if (!error.empty() && s.phase != Phase::details) s.result.complete = false;
    s.result.error = std::move(error);
    if (s.skipped > 0 && s.result.error.empty())
        s.result.error = std::to_string(s.skipped) + " listings have no product card id (shopLink, masterSku) and were not imported";
    try {
        write_rows(true);
    } catch (const PgError& e) {
        s.result.complete = false;
        s.result.error = std::string("writing the listings failed: ") + e.what();
    }
    std::vector<std::string> live_skus;
    live_skus.reserve(s.live.size());
    for (const auto& entry : s.live) live_skus.push_back(entry.first);
    const std::int64_t archived = catalog_.finish_sync(s.store.id, live_skus, s.result);
    if (!s.result.error.empty()) counter_add(kCatalogueSyncFailures);
    const long long id = s.store.id, seen = s.result.seen, added = s.result.counts.added,
                    updated = s.result.counts.updated, gone = archived + s.result.counts.deactivated,
                    edits = s.result.counts.price_edits;
    const double took = now_seconds() - s.started_at;
    const std::string error_text = s.result.error;
    const char* err = error_text.c_str();
    sync_.reset();
    details_requests_.clear();
    pg_guard([&] {
        if (err[0] == '\0')
            ereport(LOG, (errmsg("demper worker imported the catalogue of store %lld in %.1f s: %lld listings seen, %lld rows added, %lld updated, %lld archived, %lld prices changed in the cabinet",
                                 id, took, seen, added, updated, gone, edits)));
        else
            ereport(WARNING, (errmsg("demper worker could not import the whole catalogue of store %lld: %s", id, err),
                              errdetail("%lld rows added and %lld updated from what was read; no listing was archived unless both lists were read to their end.",
                                        added, updated)));
    });
}

double CatalogueImport::next_wake_at(double now) const {
    if (!sync_) return std::max(now, next_look_at_);
    return reads_.next_at(sync_->store.merchant_id, now);
}

}  // namespace demper::pg
