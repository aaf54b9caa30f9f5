// publish_functions.cpp: the SQL functions of publishing: demper.set_credentials(),
// demper.rotate_credentials_key() and demper.price_feed().
//
// Secrets: cookie values and key material never reach a message, a log line or a return value.
// The C++ work (keys, sealed blobs, the feed) lives in helper frames; PostgreSQL calls inside them
// go through pg_guard, and each SQL-callable function converts C++ errors at its boundary.
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <openssl/crypto.h>

#include "core/cabinet.hpp"
#include "core/crypto.hpp"
#include "core/price_feed.hpp"
#include "core/push.hpp"
#include "pg/guard.hpp"
#include "pg/settings.hpp"

extern "C" {
PG_FUNCTION_INFO_V1(demper_set_credentials);
PG_FUNCTION_INFO_V1(demper_rotate_credentials_key);
PG_FUNCTION_INFO_V1(demper_price_feed);
}

namespace demper::pg {

namespace {

// wipe overwrites a string that held a secret before it is freed.
void wipe(std::string& s) {
    if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
    s.clear();
}

std::string associated_data(int64 store_id) { return "store:" + std::to_string(store_id); }

// require_key_file returns demper.credentials_key_file, or raises a clear error when unset.
const char* require_key_file() {
    const char* path = credentials_key_file_setting();
    if (path == nullptr || path[0] == '\0')
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("demper.credentials_key_file is not set"),
                        errhint("Create a key readable only by the server's user, e.g. "
                                "head -c 32 /dev/urandom > /etc/postgresql/demper.key; chmod 600; "
                                "chown postgres; then set demper.credentials_key_file and reload.")));
    return path;
}

bytea* to_bytea(const std::string& bytes) {
    bytea* b = static_cast<bytea*>(palloc(VARHDRSZ + bytes.size()));
    SET_VARSIZE(b, VARHDRSZ + bytes.size());
    memcpy(VARDATA(b), bytes.data(), bytes.size());
    return b;
}

// seal_and_store seals a store's cookies under the current key and stores them; returns the key's
// fingerprint (as text in the caller's memory context).
text* seal_and_store(int64 store_id, const char* session, const char* sid, const char* key_file) {
    core::push_headers(session, sid);  // refuses cookie values that could inject headers
    core::SecretKey key = core::SecretKey::from_file(key_file);
    std::string plaintext = std::string(session) + "\n" + sid;
    const std::string sealed = core::seal(key, plaintext, associated_data(store_id));
    wipe(plaintext);
    const std::string fingerprint = key.fingerprint();
    bool found = false;
    bool allowed = false;
    text* result = nullptr;
    pg_guard([&] {
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
        Oid check_types[1] = {INT8OID};
        Datum check_args[1] = {Int64GetDatum(store_id)};
        SPI_execute_with_args("SELECT demper.caller_may_manage($1)", 1, check_types, check_args, nullptr,
                              true, 1);
        bool isnull = false;
        allowed = SPI_processed == 1 &&
                  DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        if (!allowed) {
            SPI_finish();
            return;
        }
        Oid types[3] = {BYTEAOID, TEXTOID, INT8OID};
        Datum args[3] = {PointerGetDatum(to_bytea(sealed)), CStringGetTextDatum(fingerprint.c_str()),
                         Int64GetDatum(store_id)};
        SPI_execute_with_args(
            "UPDATE demper.store SET credentials = $1, credentials_key = $2, needs_login = false, "
            "push_paused_until = NULL, last_push_error = NULL, "
            "push_mode = CASE WHEN push_mode = 'none' THEN 'api' ELSE push_mode END WHERE id = $3",
            3, types, args, nullptr, false, 0);
        found = SPI_processed == 1;
        if (found) {
            // Pushes that waited for a login may go now.
            SPI_execute_with_args(
                "UPDATE demper.outbox SET next_attempt_at = now() "
                "WHERE store_id = $3 AND status = 'pending' AND next_attempt_at > now()",
                3, types, args, nullptr, false, 0);
        }
        SPI_finish();
        result = cstring_to_text(fingerprint.c_str());
    });
    if (!allowed || !found)
        throw PgError("store " + std::to_string(store_id) + " does not exist", ERRCODE_NO_DATA_FOUND);
    return result;
}

// reseal_all re-seals, under the current key, every store's credentials that the old key opens.
// Returns how many were re-sealed; *unreadable counts those neither key opens.
int reseal_all(const char* old_key_file, const char* key_file, int* unreadable) {
    core::SecretKey old_key = core::SecretKey::from_file(old_key_file);
    core::SecretKey key = core::SecretKey::from_file(key_file);
    const std::string fingerprint = key.fingerprint();
    uint64 count = 0;
    pg_guard([&count] {
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
        SPI_execute("SELECT id, credentials FROM demper.store WHERE credentials IS NOT NULL ORDER BY id FOR UPDATE",
                    false, 0);
        count = SPI_processed;
    });
    // The sealed blobs stay in SPI's memory until SPI_finish below: copied out after the guard.
    std::vector<int64> ids(count);
    std::vector<const char*> blobs(count);
    std::vector<int> lengths(count);
    int64* id_out = ids.data();
    const char** blob_out = blobs.data();
    int* length_out = lengths.data();
    pg_guard([&] {
        for (uint64 i = 0; i < count; i++) {
            bool isnull = false;
            HeapTuple t = SPI_tuptable->vals[i];
            id_out[i] = DatumGetInt64(SPI_getbinval(t, SPI_tuptable->tupdesc, 1, &isnull));
            bytea* b = DatumGetByteaPP(SPI_getbinval(t, SPI_tuptable->tupdesc, 2, &isnull));
            blob_out[i] = VARDATA_ANY(b);
            length_out[i] = VARSIZE_ANY_EXHDR(b);
        }
    });
    std::vector<std::pair<int64, std::string>> rows;
    for (uint64 i = 0; i < count; i++) rows.emplace_back(ids[i], std::string(blobs[i], static_cast<size_t>(lengths[i])));
    std::vector<std::pair<int64, std::string>> resealed;
    *unreadable = 0;
    for (const auto& [id, sealed] : rows) {
        if (core::open(key, sealed, associated_data(id))) continue;  // already under the new key
        std::optional<std::string> again = core::reseal(old_key, key, sealed, associated_data(id));
        if (again) {
            resealed.emplace_back(id, *again);
        } else {
            (*unreadable)++;
        }
    }
    pg_guard([&] {
        Oid types[3] = {BYTEAOID, TEXTOID, INT8OID};
        for (const auto& row : resealed) {
            Datum args[3] = {PointerGetDatum(to_bytea(row.second)),
                             CStringGetTextDatum(fingerprint.c_str()), Int64GetDatum(row.first)};
            SPI_execute_with_args("UPDATE demper.store SET credentials = $1, credentials_key = $2 WHERE id = $3",
                                  3, types, args, nullptr, false, 0);
        }
        SPI_finish();
    });
    return static_cast<int>(resealed.size());
}

// build_feed reads a store's catalogue and writes its XML price list. When the catalogue would
// make a partial or empty feed, it returns nullptr and fills problem_count and problems.
text* build_feed(int64 store_id, int* problem_count, char* problems, std::size_t problems_size) {
    // The rows are read in three guarded steps, as in reseal_all: the guards hold only C strings in
    // SPI's memory (until SPI_finish), and the C++ containers are sized and filled between them.
    constexpr int kStoreColumns = 4;    // name, merchant_id, feed store ids, generation time
    constexpr int kListingColumns = 6;  // sku, model, brand, city_id, price, availabilities
    constexpr int kPriceColumn = 4;
    const char* store_row[kStoreColumns] = {};
    bool store_found = false;
    uint64 count = 0;
    pg_guard([&] {
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
        Oid types[1] = {INT8OID};
        Datum args[1] = {Int64GetDatum(store_id)};
        SPI_execute_with_args(
            "SELECT name, merchant_id, array_to_string(feed_store_ids, ','), "
            "to_char(now() AT TIME ZONE timezone, 'YYYY-MM-DD HH24:MI') FROM demper.store WHERE id = $1",
            1, types, args, nullptr, true, 1);
        if (SPI_processed != 1) return;
        store_found = true;
        for (int c = 0; c < kStoreColumns; c++)
            store_row[c] = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, c + 1);
        SPI_execute_with_args(
            "SELECT p.sku, coalesce(p.model, ''), coalesce(p.brand, ''), coalesce(p.city_id, s.city_id), "
            "p.price, coalesce(p.availabilities::text, '') "
            "FROM demper.product p JOIN demper.store s ON s.id = p.store_id "
            "WHERE p.store_id = $1 ORDER BY p.sku, 4",
            1, types, args, nullptr, true, 0);
        count = SPI_processed;
    });
    std::vector<const char*> cells(count * kListingColumns);  // the price's cell stays empty
    std::vector<int64> prices(count);
    const char** cell_out = cells.data();
    int64* price_out = prices.data();
    pg_guard([&] {
        for (uint64 i = 0; i < count; i++) {
            HeapTuple row = SPI_tuptable->vals[i];
            for (int c = 0; c < kListingColumns; c++) {
                if (c == kPriceColumn) continue;
                cell_out[i * kListingColumns + c] = SPI_getvalue(row, SPI_tuptable->tupdesc, c + 1);
            }
            bool isnull = false;
            price_out[i] = DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, kPriceColumn + 1, &isnull));
        }
    });
    auto text_of = [](const char* value) { return std::string(value != nullptr ? value : ""); };
    core::FeedCatalog catalog;
    std::vector<std::string> store_ids;
    struct Listing {
        std::string sku, model, brand, city_id, availabilities;
        int64 price;
    };
    std::vector<Listing> listings;
    if (store_found) {
        catalog.company = text_of(store_row[0]);
        catalog.merchant_id = text_of(store_row[1]);
        store_ids = split_list(text_of(store_row[2]));
        catalog.generated_at = text_of(store_row[3]);
        listings.reserve(count);
        for (uint64 i = 0; i < count; i++) {
            const char* const* row = cell_out + i * kListingColumns;
            listings.push_back({text_of(row[0]), text_of(row[1]), text_of(row[2]), text_of(row[3]),
                                text_of(row[5]), prices[i]});
        }
    }
    pg_guard([] { SPI_finish(); });
    if (!store_found) throw PgError("store " + std::to_string(store_id) + " does not exist", ERRCODE_NO_DATA_FOUND);
    // One offer per sku, with a city price per listing.
    for (const Listing& l : listings) {
        if (catalog.offers.empty() || catalog.offers.back().sku != l.sku) {
            core::FeedOffer offer;
            offer.sku = l.sku;
            offer.model = l.model;
            offer.brand = l.brand;
            offer.store_ids = store_ids;
            // The listing's own pickup points, as the catalogue import read them from the cabinet.
            if (auto own = core::availabilities_from_json(l.availabilities)) {
                for (const core::Availability& a : *own)
                    offer.availabilities.push_back({a.store_id, a.available, a.stock_count.value_or(-1),
                                                    a.pre_order.value_or(-1)});
            }
            catalog.offers.push_back(std::move(offer));
        }
        catalog.offers.back().city_prices.push_back({l.city_id, l.price});
    }
    std::vector<core::FeedProblem> found = core::validate_feed(catalog);
    if (!found.empty()) {
        *problem_count = static_cast<int>(found.size());
        std::string list;
        for (std::size_t i = 0; i < found.size() && i < 5; i++) {
            if (!list.empty()) list += "; ";
            list += found[i].problem;
        }
        strlcpy(problems, list.c_str(), problems_size);
        return nullptr;
    }
    const std::string xml = core::write_feed(catalog);
    text* result = nullptr;
    pg_guard([&] { result = cstring_to_text_with_len(xml.data(), static_cast<int>(xml.size())); });
    return result;
}

}  // namespace

}  // namespace demper::pg

Datum demper_set_credentials(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("store id, session and sid must not be null")));
    int64 store_id = PG_GETARG_INT64(0);
    char* session = text_to_cstring(PG_GETARG_TEXT_PP(1));
    char* sid = text_to_cstring(PG_GETARG_TEXT_PP(2));
    text* volatile result = nullptr;
    // The cookies' copies are wiped whether sealing succeeds or raises an error.
    PG_TRY();
    {
        const char* key_file = demper::pg::require_key_file();
        text* sealed_fingerprint = nullptr;
        DEMPER_CPP_BOUNDARY_BEGIN
        sealed_fingerprint = demper::pg::seal_and_store(store_id, session, sid, key_file);
        DEMPER_CPP_BOUNDARY_END
        result = sealed_fingerprint;
    }
    PG_FINALLY();
    {
        OPENSSL_cleanse(session, strlen(session));
        OPENSSL_cleanse(sid, strlen(sid));
    }
    PG_END_TRY();
    PG_RETURN_TEXT_P(result);
}

Datum demper_rotate_credentials_key(PG_FUNCTION_ARGS) {
    char* old_key_file = text_to_cstring(PG_GETARG_TEXT_PP(0));
    const char* key_file = demper::pg::require_key_file();
    int resealed = 0;
    int unreadable = 0;
    DEMPER_CPP_BOUNDARY_BEGIN
    resealed = demper::pg::reseal_all(old_key_file, key_file, &unreadable);
    DEMPER_CPP_BOUNDARY_END
    if (unreadable > 0)
        ereport(WARNING, (errmsg("%d stores have credentials that neither key opens", unreadable),
                          errhint("Set their credentials again with demper.set_credentials().")));
    PG_RETURN_INT32(resealed);
}

Datum demper_price_feed(PG_FUNCTION_ARGS) {
    int64 store_id = PG_GETARG_INT64(0);
    int problem_count = 0;
    char problems[1024];
    problems[0] = '\0';
    text* result = nullptr;
    DEMPER_CPP_BOUNDARY_BEGIN
    result = demper::pg::build_feed(store_id, &problem_count, problems, sizeof(problems));
    DEMPER_CPP_BOUNDARY_END
    if (result == nullptr)
        ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                        errmsg("refusing to produce a partial price feed for store %lld",
                               static_cast<long long>(store_id)),
                        errdetail_plural("%d problem: %s%s", "%d problems: %s%s", problem_count,
                                         problem_count, problems, problem_count > 5 ? "; ..." : "."),
                        errhint("An empty or partial feed takes offers off sale; fix the listed products first.")));
    PG_RETURN_TEXT_P(result);
}
