// catalogue_import.hpp: the import of a seller's catalogue from the merchant cabinet (DOMAIN.md
// 2c), a third kind of HTTP job beside checks and pushes; one worker (slot 0) runs it.
//
// An import ("sync") of one store reads the cabinet's offer list page by page, on sale then
// archived, then the details (city prices, pickup points) of each listing that is new or changed
// since the last import, and upserts one demper.product row per listing and city in short
// transactions, never across a request. Every request goes through the worker's HTTP engine (its
// host budget, breaker and allow-list) and the merchant's budget of cabinet reads. Only an import
// that read both lists to their end deactivates the listings no longer on sale: a page that failed
// never takes a listing off repricing. The seller's own settings (floor, ceiling, strategy) are
// never written; a new listing has no floor, so it waits, inactive, until the seller gives it one
// (or the store's import_floor_percent does).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/cabinet.hpp"
#include "pg/catalog.hpp"
#include "pg/credentials.hpp"
#include "pg/request_router.hpp"
#include "pg/settings.hpp"
#include "pg/worker_status.hpp"

namespace demper::pg {

class CatalogueImport : public HttpClient {
public:
    CatalogueImport(const Settings& settings, Catalog& catalog, RequestRouter& router, StatusReport& report,
                    const Credentials& credentials, CabinetReadBudget& reads)
        : settings_(settings),
          catalog_(catalog),
          router_(router),
          report_(report),
          credentials_(credentials),
          reads_(reads) {}

    // step starts an import when one is due, sends the requests the merchant's budget allows, and
    // writes what has been read.
    void step(double now);
    void on_response(core::HttpResponse&& response) override;
    // look_soon makes the next step look for a requested import at once (sync_catalogue()).
    void look_soon() { next_look_at_ = 0; }
    double next_wake_at(double now) const;

private:
    enum class Phase { live_list, archived_list, details };
    struct Sync {
        StoreToSync store;
        Phase phase = Phase::live_list;
        std::int64_t page = 0;
        bool page_in_flight = false;
        std::map<std::string, core::CabinetListing> live;       // by sku
        std::unordered_map<std::string, std::string> known;     // sku -> updatedAt last imported
        std::deque<std::string> details_to_read;                // skus
        int details_in_flight = 0;
        std::vector<ImportedListing> rows;                      // read, not yet written
        SyncResult result;
        int unreadable = 0;                                     // listings whose details failed
        int skipped = 0;                                        // listings without a product card id
        std::string first_problem;
        double started_at = 0;
    };

    void start(StoreToSync&& store, double now);
    void send_list_page(double now);
    void send_details(double now);
    void on_list_page(const core::HttpResponse& response);
    void on_details(const std::string& sku, const core::HttpResponse& response);
    void add_archived(const core::CabinetListing& listing);
    void write_rows(bool all);
    void finish(std::string error);
    std::optional<std::vector<std::string>> headers() const;

    const Settings& settings_;
    Catalog& catalog_;
    RequestRouter& router_;
    StatusReport& report_;
    const Credentials& credentials_;
    CabinetReadBudget& reads_;
    std::optional<Sync> sync_;
    std::unordered_map<std::uint64_t, std::string> details_requests_;  // request id -> sku
    double next_look_at_ = 0;
};

}  // namespace demper::pg
