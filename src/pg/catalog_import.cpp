// catalog_import.cpp: the catalogue import's SQL (catalogue_import.cpp): claim a store due for
// an import, upsert the cabinet's listings, record the import's end.
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pg/catalog_statements.hpp"

namespace demper::pg {

namespace {

// The store whose catalogue is due for an import: asked for (sync_catalogue), or last imported
// longer ago than the interval (0: only when asked); one that has been "running" for an hour
// belonged to a worker that is gone. It needs credentials that a login still holds.
constexpr const char* kClaimSyncSql = R"SQL(
WITH due AS (
    SELECT s.id
      FROM demper.store s LEFT JOIN demper.catalogue_sync_state c ON c.store_id = s.id
     WHERE s.credentials IS NOT NULL AND NOT s.needs_login
       AND (c.requested_at IS NOT NULL
            OR ($sync_interval_s > 0
                AND (c.finished_at IS NULL OR c.finished_at < now() - make_interval(secs => $sync_interval_s))))
       AND (c.status IS DISTINCT FROM 'running' OR c.started_at < now() - interval '1 hour')
     ORDER BY c.requested_at NULLS LAST, c.finished_at NULLS FIRST, s.id
     LIMIT 1
), started AS (
    INSERT INTO demper.catalogue_sync_state (store_id, status, started_at)
    SELECT id, 'running', now() FROM due
    ON CONFLICT (store_id) DO UPDATE SET status = 'running', started_at = now(), requested_at = NULL, error = NULL
    RETURNING store_id
)
SELECT s.id, s.merchant_id, s.city_id, s.credentials
  FROM started JOIN demper.store s ON s.id = started.store_id
)SQL";
#define DEMPER_CLAIM_SYNC_PARAMS(F) F(sync_interval_s, FLOAT8OID)
#define DEMPER_CLAIM_SYNC_COLUMNS(F) F(id, INT8OID) F(merchant_id, TEXTOID) F(city_id, TEXTOID) F(credentials, BYTEAOID)
DEMPER_DECLARE_FIELDS(ClaimSyncParam, DEMPER_CLAIM_SYNC_PARAMS)
DEMPER_DECLARE_FIELDS(ClaimSyncColumn, DEMPER_CLAIM_SYNC_COLUMNS)

constexpr const char* kKnownListingsSql = R"SQL(
SELECT DISTINCT ON (p.sku) p.sku, coalesce(p.cabinet_updated_at, '') AS updated_at
  FROM demper.product p
 WHERE p.store_id = $store_id AND p.cabinet_synced_at IS NOT NULL
 ORDER BY p.sku
)SQL";
#define DEMPER_STORE_PARAMS(F) F(store_id, INT8OID)
#define DEMPER_KNOWN_COLUMNS(F) F(sku, TEXTOID) F(updated_at, TEXTOID)
DEMPER_DECLARE_FIELDS(StoreParam, DEMPER_STORE_PARAMS)
DEMPER_DECLARE_FIELDS(KnownColumn, DEMPER_KNOWN_COLUMNS)

// A listing the seller entered by hand without a city is sold in the store's city: before an
// import it becomes that city's row, so the cabinet's row for the city updates it (one row per
// sku and city) instead of standing beside it.
constexpr const char* kClaimCitiesSql = R"SQL(
UPDATE demper.product p SET city_id = s.city_id
  FROM demper.store s
 WHERE s.id = $store_id AND p.store_id = s.id AND p.city_id IS NULL AND p.sku = ANY ($skus)
   AND NOT EXISTS (SELECT 1 FROM demper.product q
                    WHERE q.store_id = s.id AND q.sku = p.sku AND q.city_id = s.city_id)
)SQL";
#define DEMPER_CLAIM_CITIES_PARAMS(F) F(store_id, INT8OID) F(skus, TEXTARRAYOID)
DEMPER_DECLARE_FIELDS(ClaimCitiesParam, DEMPER_CLAIM_CITIES_PARAMS)

// Import: one row per listing and city. What the cabinet owns is written (card id, title, brand,
// pickup points, archived or not); the seller's settings never are. A new listing has no floor
// (it waits, inactive) unless its store has a floor rule (import_floor_percent). A price that
// differs from ours while no push of ours is pending or unconfirmed is the seller's own edit in the
// cabinet: it becomes the current price, with a history row, and a decision made from the old
// price is dropped (inputs_version). The worker's session fires no trigger: the due queue and the
// pushes waiting for pickup points are written here.
constexpr const char* kImportSql = R"SQL(
WITH l AS (
    SELECT *
      FROM unnest($skus::text[], $city_ids::text[], $product_codes::text[], $models::text[],
                  $brands::text[], $prices::int8[], $availabilities::text[], $updated_ats::text[],
                  $archived::bool[])
        AS l(sku, city_id, product_code, model, brand, price, availabilities, updated_at, archived)
), st AS (
    SELECT s.id, s.import_floor_percent FROM demper.store s WHERE s.id = $store_id
), old AS (
    SELECT p.id, p.price, p.bot_active,
           NOT EXISTS (SELECT 1 FROM demper.outbox o
                        WHERE o.product_id = p.id AND (o.status = 'pending' OR o.verify_status = 'verifying'))
               AS price_is_the_cabinets
      FROM demper.product p JOIN l ON p.store_id = $store_id AND p.sku = l.sku AND p.city_id = l.city_id
), up AS (
    INSERT INTO demper.product AS p (store_id, product_code, sku, model, brand, price, min_price, city_id,
                                     bot_active, next_check_at, availabilities, cabinet_synced_at,
                                     cabinet_updated_at, cabinet_archived)
    SELECT st.id, l.product_code, l.sku, nullif(l.model, ''), nullif(l.brand, ''), l.price,
           CASE WHEN st.import_floor_percent IS NOT NULL
                THEN greatest(10, ceil(l.price * st.import_floor_percent / 100))::int8 END,
           l.city_id, st.import_floor_percent IS NOT NULL AND NOT l.archived,
           -- due from the moment the seller gives it a floor (the rate limit paces a bulk start)
           now(),
           l.availabilities::jsonb, now(), nullif(l.updated_at, ''), l.archived
      FROM l, st
    ON CONFLICT (store_id, sku, (coalesce(city_id, ''))) DO UPDATE
       SET product_code = EXCLUDED.product_code,
           model = coalesce(EXCLUDED.model, p.model),
           brand = coalesce(EXCLUDED.brand, p.brand),
           availabilities = EXCLUDED.availabilities,
           cabinet_synced_at = now(),
           cabinet_updated_at = EXCLUDED.cabinet_updated_at,
           cabinet_archived = EXCLUDED.cabinet_archived,
           -- Archived in the cabinet: not repriced. Back on sale: repriced again if it has a floor.
           bot_active = CASE WHEN EXCLUDED.cabinet_archived THEN false
                             WHEN p.cabinet_archived AND p.min_price IS NOT NULL THEN true
                             ELSE p.bot_active END,
           price = CASE WHEN NOT EXCLUDED.cabinet_archived
                             AND (SELECT o.price_is_the_cabinets FROM old o WHERE o.id = p.id)
                        THEN EXCLUDED.price ELSE p.price END,
           inputs_version = p.inputs_version + 1
    RETURNING p.id, (p.xmax = 0) AS added, p.price, p.bot_active, p.next_check_at, p.cabinet_archived
), hist AS (
    INSERT INTO demper.price_history (product_id, store_id, old_price, new_price, reason)
    SELECT up.id, $store_id, old.price, up.price, 'cabinet_edit'
      FROM up JOIN old ON old.id = up.id
     WHERE NOT up.added AND old.price <> up.price
    RETURNING 1
), queued AS (
    INSERT INTO demper.schedule (product_id, next_check_at)
    SELECT id, next_check_at FROM up WHERE bot_active
    ON CONFLICT (product_id) DO NOTHING
    RETURNING 1
), unqueued AS (
    DELETE FROM demper.schedule s WHERE s.product_id IN (SELECT id FROM up WHERE NOT bot_active)
    RETURNING 1
), woken AS (
    -- Pushes that waited for these listings' pickup points may go now.
    UPDATE demper.outbox o SET next_attempt_at = now(), waiting_for = NULL
     WHERE o.status = 'pending' AND o.waiting_for = 'pickup_points' AND o.product_id IN (SELECT id FROM up)
    RETURNING 1
)
SELECT count(*) FILTER (WHERE up.added) AS added,
       count(*) FILTER (WHERE NOT up.added) AS updated,
       (SELECT count(*) FROM hist) AS price_edits,
       count(*) FILTER (WHERE NOT up.added AND up.cabinet_archived
                          AND (SELECT o.bot_active FROM old o WHERE o.id = up.id)) AS deactivated
  FROM up
)SQL";
#define DEMPER_IMPORT_PARAMS(F)                                                                     \
    F(store_id, INT8OID) F(skus, TEXTARRAYOID) F(city_ids, TEXTARRAYOID) F(product_codes, TEXTARRAYOID) \
    F(models, TEXTARRAYOID) F(brands, TEXTARRAYOID) F(prices, INT8ARRAYOID) F(availabilities, TEXTARRAYOID) \
    F(updated_ats, TEXTARRAYOID) F(archived, BOOLARRAYOID)
#define DEMPER_IMPORT_COLUMNS(F) \
    F(added, INT8OID) F(updated, INT8OID) F(price_edits, INT8OID) F(deactivated, INT8OID)
DEMPER_DECLARE_FIELDS(ImportParam, DEMPER_IMPORT_PARAMS)
DEMPER_DECLARE_FIELDS(ImportColumn, DEMPER_IMPORT_COLUMNS)

// The end of an import. Only a complete one (both lists read to their end) deactivates what the
// cabinet no longer has on sale: a page that failed must never take a listing off repricing.
constexpr const char* kFinishSyncSql = R"SQL(
WITH gone AS (
    UPDATE demper.product p SET bot_active = false, cabinet_archived = true
     WHERE $complete AND p.store_id = $store_id AND p.cabinet_synced_at IS NOT NULL
       AND NOT p.cabinet_archived AND NOT (p.sku = ANY ($live_skus))
    RETURNING p.id
), unqueued AS (
    DELETE FROM demper.schedule s WHERE s.product_id IN (SELECT id FROM gone)
    RETURNING 1
), recorded AS (
    UPDATE demper.catalogue_sync_state
       SET status = CASE WHEN $error = '' THEN 'done' ELSE 'failed' END, finished_at = now(),
           listings_seen = $seen, added = $added, updated = $updated,
           archived = $deactivated + (SELECT count(*) FROM gone), price_edits = $price_edits,
           error = nullif($error, '')
     WHERE store_id = $store_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS archived
)SQL";
#define DEMPER_FINISH_SYNC_PARAMS(F)                                                            \
    F(store_id, INT8OID) F(live_skus, TEXTARRAYOID) F(complete, BOOLOID) F(seen, INT4OID)       \
    F(added, INT4OID) F(updated, INT4OID) F(deactivated, INT4OID) F(price_edits, INT4OID) F(error, TEXTOID)
#define DEMPER_FINISH_SYNC_COLUMNS(F) F(archived, INT8OID)
DEMPER_DECLARE_FIELDS(FinishSyncParam, DEMPER_FINISH_SYNC_PARAMS)
DEMPER_DECLARE_FIELDS(FinishSyncColumn, DEMPER_FINISH_SYNC_COLUMNS)

}  // namespace

struct ImportStatements {
    Statement<ClaimSyncParam, ClaimSyncColumn> claim_sync{"claim_sync", kClaimSyncSql, kClaimSyncParamFields,
                                                          kClaimSyncColumnFields};
    Statement<StoreParam, KnownColumn> known_listings{"known_listings", kKnownListingsSql, kStoreParamFields,
                                                      kKnownColumnFields};
    Statement<ClaimCitiesParam, NoFields> claim_cities{"claim_cities", kClaimCitiesSql, kClaimCitiesParamFields,
                                                       kNoFieldsFields};
    Statement<ImportParam, ImportColumn> import{"import", kImportSql, kImportParamFields, kImportColumnFields};
    Statement<FinishSyncParam, FinishSyncColumn> finish_sync{"finish_sync", kFinishSyncSql, kFinishSyncParamFields,
                                                             kFinishSyncColumnFields};
};

std::shared_ptr<ImportStatements> make_import_statements(std::vector<PreparedStatement*>* all) {
    auto s = std::make_shared<ImportStatements>();
    all->insert(all->end(), {&s->claim_sync, &s->known_listings, &s->claim_cities, &s->import,
                             &s->finish_sync});
    return s;
}

std::optional<StoreToSync> Catalog::claim_sync(int sync_interval_s) {
    std::optional<StoreToSync> store;
    in_transaction("demper: starting a catalogue import", [&] {
        Args<ClaimSyncParam> args;
        args.set(ClaimSyncParam::sync_interval_s, Float8GetDatum(static_cast<double>(sync_interval_s)));
        Rows<ClaimSyncColumn> rows = statements_->import->claim_sync.run(args, 1);
        if (rows.size() != 1) return;
        using C = ClaimSyncColumn;
        StoreToSync s;
        s.id = rows.int8(0, C::id);
        s.merchant_id = rows.text(0, C::merchant_id);
        s.city_id = rows.text(0, C::city_id);
        s.sealed_credentials = rows.text(0, C::credentials);
        store = std::move(s);
    });
    return store;
}

std::vector<std::pair<std::string, std::string>> Catalog::known_listings(std::int64_t store_id) {
    std::vector<std::pair<std::string, std::string>> known;
    in_transaction("demper: reading the imported listings", [&] {
        Args<StoreParam> args;
        args.set(StoreParam::store_id, Int64GetDatum(store_id));
        Rows<KnownColumn> rows = statements_->import->known_listings.run(args);
        for (std::size_t i = 0; i < rows.size(); i++)
            known.emplace_back(rows.text(i, KnownColumn::sku), rows.text(i, KnownColumn::updated_at));
    });
    return known;
}

ImportCounts Catalog::import_listings(std::int64_t store_id, const std::vector<ImportedListing>& rows_in) {
    ImportCounts counts;
    if (rows_in.empty()) return counts;
    std::vector<std::string> skus, city_ids, codes, models, brands, availabilities, updated_ats;
    std::vector<std::int64_t> prices;
    std::vector<bool> archived;
    for (const ImportedListing& l : rows_in) {
        skus.push_back(l.sku);
        city_ids.push_back(l.city_id);
        codes.push_back(l.product_code);
        models.push_back(l.model);
        brands.push_back(l.brand);
        prices.push_back(l.price);
        availabilities.push_back(l.availabilities);
        updated_ats.push_back(l.updated_at);
        archived.push_back(l.archived);
    }
    in_transaction("demper: importing listings", [&] {
        Args<ClaimCitiesParam> cities;
        cities.set(ClaimCitiesParam::store_id, Int64GetDatum(store_id));
        cities.set(ClaimCitiesParam::skus, text_array(skus));
        statements_->import->claim_cities.run(cities);
        using P = ImportParam;
        Args<P> args;
        args.set(P::store_id, Int64GetDatum(store_id));
        args.set(P::skus, text_array(skus));
        args.set(P::city_ids, text_array(city_ids));
        args.set(P::product_codes, text_array(codes));
        args.set(P::models, text_array(models));
        args.set(P::brands, text_array(brands));
        args.set(P::prices, int8_array(prices));
        args.set(P::availabilities, text_array(availabilities));
        args.set(P::updated_ats, text_array(updated_ats));
        args.set(P::archived, bool_array(archived));
        Rows<ImportColumn> rows = statements_->import->import.run(args, 1);
        if (rows.size() != 1) return;
        counts.added = rows.int8(0, ImportColumn::added);
        counts.updated = rows.int8(0, ImportColumn::updated);
        counts.price_edits = rows.int8(0, ImportColumn::price_edits);
        counts.deactivated = rows.int8(0, ImportColumn::deactivated);
    });
    return counts;
}

std::int64_t Catalog::finish_sync(std::int64_t store_id, const std::vector<std::string>& live_skus,
                                  const SyncResult& result) {
    std::int64_t archived = 0;
    in_transaction("demper: finishing a catalogue import", [&] {
        using P = FinishSyncParam;
        Args<P> args;
        args.set(P::store_id, Int64GetDatum(store_id));
        args.set(P::live_skus, text_array(live_skus));
        args.set(P::complete, BoolGetDatum(result.complete));
        args.set(P::seen, Int32GetDatum(static_cast<int32>(result.seen)));
        args.set(P::added, Int32GetDatum(static_cast<int32>(result.counts.added)));
        args.set(P::updated, Int32GetDatum(static_cast<int32>(result.counts.updated)));
        args.set(P::deactivated, Int32GetDatum(static_cast<int32>(result.counts.deactivated)));
        args.set(P::price_edits, Int32GetDatum(static_cast<int32>(result.counts.price_edits)));
        args.set(P::error, text_datum(result.error));
        Rows<FinishSyncColumn> rows = statements_->import->finish_sync.run(args, 1);
        if (rows.size() == 1) archived = rows.int8(0, FinishSyncColumn::archived);
    });
    return archived;
}

}  // namespace demper::pg
