// catalog_pushes.cpp: the publisher's SQL (publisher.cpp): claim due outbox rows, record what
// became of each push.
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "pg/catalog_statements.hpp"
#include "pg/settings.hpp"

namespace demper::pg {

namespace {

// Claim pushes: lease due outbox rows; the claim records the price it will push, so that a newer
// decision arriving meanwhile (which updates the pending row's price) is pushed afterwards.
constexpr const char* kClaimPushesSql = R"SQL(
WITH due AS (
    SELECT o.id
      FROM demper.outbox o
     WHERE o.status = 'pending' AND o.next_attempt_at <= now()
       AND (o.lease_until IS NULL OR o.lease_until <= now())
       AND NOT EXISTS (SELECT 1 FROM demper.store s
                        WHERE s.id = o.store_id AND s.push_paused_until > now())
     ORDER BY o.next_attempt_at
     LIMIT $limit
       FOR UPDATE OF o SKIP LOCKED
)
UPDATE demper.outbox o
   SET lease_token = $lease_token,
       lease_until = now() + make_interval(secs => $lease_seconds),
       next_attempt_at = now() + make_interval(secs => $lease_seconds),
       pushed_price = o.price,
       attempts = o.attempts + 1
  FROM due, demper.product p, demper.store s
 WHERE o.id = due.id AND p.id = o.product_id AND s.id = o.store_id
RETURNING o.id, o.store_id, o.product_id, s.merchant_id, p.sku, coalesce(p.model, p.sku) AS model,
          coalesce(p.city_id, s.city_id) AS city_id, o.price, s.credentials,
          s.push_mode = 'api' AS pushes_through_api, s.needs_login, o.attempts,
          p.availabilities::text AS availabilities,
          -- Every city the listing is sold in, at its current price: one push carries them all.
          (SELECT string_agg(coalesce(q.city_id, s.city_id) || ':' || q.price, ','
                             ORDER BY coalesce(q.city_id, s.city_id))
             FROM demper.product q
            WHERE q.store_id = p.store_id AND q.sku = p.sku AND NOT q.cabinet_archived) AS city_prices
)SQL";
#define DEMPER_CLAIM_PUSHES_COLUMNS(F)                                                            \
    F(id, INT8OID) F(store_id, INT8OID) F(product_id, INT8OID) F(merchant_id, TEXTOID) F(sku, TEXTOID) \
    F(model, TEXTOID) \
    F(city_id, TEXTOID) F(price, INT8OID) F(credentials, BYTEAOID) F(pushes_through_api, BOOLOID) \
    F(needs_login, BOOLOID) F(attempts, INT4OID) F(availabilities, TEXTOID) F(city_prices, TEXTOID)
DEMPER_DECLARE_FIELDS(ClaimPushesColumn, DEMPER_CLAIM_PUSHES_COLUMNS)

// Apply pushes: done only when the marketplace accepted the latest price; a merchant ban pauses
// every pending push of that store; a login failure parks them until new credentials are set.
constexpr const char* kApplyPushesSql = R"SQL(
WITH r AS (
    SELECT *
      FROM unnest($ids::int8[], $lease_tokens::int8[], $store_ids::int8[], $verdicts::text[], $job_ids::text[],
                  $details::text[], $delays::float8[])
        AS r(id, lease_token, store_id, outcome, job_id, detail, delay)
), banned AS (
    UPDATE demper.store s
       SET push_paused_until = now() + make_interval(secs => $ban_pause_s),
           last_push_error = 'the marketplace throttled this merchant (HTTP 429)'
     WHERE s.id IN (SELECT store_id FROM r WHERE outcome = 'merchant_banned')
    RETURNING s.id, s.push_paused_until
), login AS (
    UPDATE demper.store s
       SET needs_login = true,
           last_push_error = 'the merchant cabinet session expired: set new credentials'
     WHERE s.id IN (SELECT store_id FROM r WHERE outcome = 'needs_login')
    RETURNING s.id
), upd AS (
    UPDATE demper.outbox o
       SET status = CASE
               WHEN r.outcome = 'accepted' AND o.price = o.pushed_price THEN 'done'
               WHEN r.outcome IN ('rejected', 'not_pushable') THEN 'failed'
               ELSE 'pending' END,
           done_at = CASE
               WHEN r.outcome = 'accepted' AND o.price = o.pushed_price THEN now()
               WHEN r.outcome IN ('rejected', 'not_pushable') THEN now()
               ELSE NULL END,
           job_id = CASE WHEN r.outcome = 'accepted' THEN r.job_id ELSE o.job_id END,
           last_error = CASE WHEN r.outcome = 'accepted' THEN NULL ELSE r.detail END,
           next_attempt_at = CASE
               WHEN r.outcome = 'accepted' THEN now()
               WHEN r.outcome = 'retry' THEN now() + make_interval(secs => r.delay)
               WHEN r.outcome = 'merchant_banned' THEN now() + make_interval(secs => $ban_pause_s)
               WHEN r.outcome IN ('needs_login', 'waiting') THEN 'infinity'::timestamptz
               ELSE o.next_attempt_at END,
           -- A listing whose pickup points are unknown waits for a catalogue sync (which makes
           -- it due again); an accepted push of the latest price is verified in the cabinet.
           waiting_for = CASE WHEN r.outcome = 'waiting' THEN 'pickup_points' END,
           verify_status = CASE WHEN r.outcome = 'accepted' AND o.price = o.pushed_price THEN 'verifying' END,
           verify_after = CASE WHEN r.outcome = 'accepted' AND o.price = o.pushed_price
                               THEN now() + make_interval(secs => $verify_delay_s) END,
           lease_token = NULL,
           lease_until = NULL
      FROM r
     WHERE o.id = r.id AND o.lease_token = r.lease_token
    RETURNING o.status, r.outcome
), parked AS (
    UPDATE demper.outbox o
       SET next_attempt_at = CASE WHEN o.store_id IN (SELECT id FROM login) THEN 'infinity'::timestamptz
                                  ELSE now() + make_interval(secs => $ban_pause_s) END
     WHERE o.status = 'pending' AND o.lease_token IS NULL
       AND o.store_id IN (SELECT id FROM banned UNION SELECT id FROM login)
       AND o.id NOT IN (SELECT id FROM r)
    RETURNING 1
)
SELECT (SELECT count(*) FROM upd WHERE status = 'done') AS done,
       (SELECT count(*) FROM upd WHERE outcome = 'accepted' AND status = 'pending') AS superseded,
       (SELECT count(*) FROM upd WHERE outcome NOT IN ('accepted', 'waiting') AND status = 'pending') AS retried,
       (SELECT count(*) FROM upd WHERE status = 'failed') AS failed,
       (SELECT count(*) FROM parked) AS parked
)SQL";
#define DEMPER_APPLY_PUSHES_PARAMS(F)                                                          \
    F(ids, INT8ARRAYOID) F(lease_tokens, INT8ARRAYOID) F(store_ids, INT8ARRAYOID)              \
    F(verdicts, TEXTARRAYOID) F(job_ids, TEXTARRAYOID) F(details, TEXTARRAYOID)                \
    F(delays, FLOAT8ARRAYOID) F(ban_pause_s, FLOAT8OID) F(verify_delay_s, FLOAT8OID)
#define DEMPER_APPLY_PUSHES_COLUMNS(F) \
    F(done, INT8OID) F(superseded, INT8OID) F(retried, INT8OID) F(failed, INT8OID) F(parked, INT8OID)
DEMPER_DECLARE_FIELDS(ApplyPushesParam, DEMPER_APPLY_PUSHES_PARAMS)
DEMPER_DECLARE_FIELDS(ApplyPushesColumn, DEMPER_APPLY_PUSHES_COLUMNS)

// The name PostgreSQL stores for a push's verdict.
const char* push_verdict_name(PushVerdict v) {
    switch (v) {
        case PushVerdict::accepted:
            return "accepted";
        case PushVerdict::retry:
            return "retry";
        case PushVerdict::merchant_banned:
            return "merchant_banned";
        case PushVerdict::needs_login:
            return "needs_login";
        case PushVerdict::rejected:
            return "rejected";
        case PushVerdict::not_pushable:
            return "not_pushable";
        case PushVerdict::waiting:
            return "waiting";
    }
    return "retry";
}

}  // namespace

struct PushStatements {
    Statement<ClaimParam, ClaimPushesColumn> claim_pushes{"claim_pushes", kClaimPushesSql, kClaimParamFields,
                                                          kClaimPushesColumnFields, true};
    Statement<ApplyPushesParam, ApplyPushesColumn> apply_pushes{"apply_pushes", kApplyPushesSql,
                                                                kApplyPushesParamFields,
                                                                kApplyPushesColumnFields};
};

std::shared_ptr<PushStatements> make_push_statements(std::vector<PreparedStatement*>* all) {
    auto s = std::make_shared<PushStatements>();
    all->insert(all->end(), {&s->claim_pushes, &s->apply_pushes});
    return s;
}

std::vector<PushJob> Catalog::claim_pushes(int limit, std::int64_t lease_token, int lease_time_s) {
    std::vector<PushJob> jobs;
    in_transaction("demper: claiming pushes", [&] {
        Args<ClaimParam> args;
        args.set(ClaimParam::limit, Int32GetDatum(limit));
        args.set(ClaimParam::lease_token, Int64GetDatum(lease_token));
        args.set(ClaimParam::lease_seconds, Float8GetDatum(static_cast<double>(lease_time_s)));
        Rows<ClaimPushesColumn> rows = statements_->pushes->claim_pushes.run(args);
        for (std::size_t i = 0; i < rows.size(); i++) {
            using C = ClaimPushesColumn;
            PushJob j;
            j.lease_token = lease_token;
            j.outbox_id = rows.int8(i, C::id);
            j.store_id = rows.int8(i, C::store_id);
            j.product_id = rows.int8(i, C::product_id);
            j.merchant_id = rows.text(i, C::merchant_id);
            j.sku = rows.text(i, C::sku);
            j.model = rows.text(i, C::model);
            j.city_id = rows.text(i, C::city_id);
            j.price = rows.int8(i, C::price);
            j.sealed_credentials = rows.text(i, C::credentials);
            j.pushes_through_api = rows.boolean(i, C::pushes_through_api);
            j.needs_login = rows.boolean(i, C::needs_login);
            j.attempts = rows.int4(i, C::attempts);
            if (!rows.is_null(i, C::availabilities)) j.availabilities = rows.text(i, C::availabilities);
            // "750000000:1999,710000000:2050" (city ids are digits, prices whole numbers)
            for (const std::string& entry : split_list(rows.text(i, C::city_prices))) {
                const std::size_t colon = entry.find(':');
                if (colon == std::string::npos) continue;
                j.city_prices.emplace_back(entry.substr(0, colon), std::stoll(entry.substr(colon + 1)));
            }
            jobs.push_back(std::move(j));
        }
    });
    return jobs;
}

PushApplyResult Catalog::apply_pushes(const std::vector<PushResultRow>& results, int ban_pause_s,
                                      int verify_delay_s) {
    PushApplyResult result;
    if (results.empty()) return result;
    std::vector<std::int64_t> ids, tokens, stores;
    std::vector<std::string> verdicts, job_ids, details;
    std::vector<double> delays;
    for (const PushResultRow& r : results) {
        ids.push_back(r.outbox_id);
        tokens.push_back(r.lease_token);
        stores.push_back(r.store_id);
        verdicts.push_back(push_verdict_name(r.verdict));
        job_ids.push_back(r.job_id);
        details.push_back(r.detail);
        delays.push_back(r.delay_s);
    }
    in_transaction("demper: recording pushes", [&] {
        using P = ApplyPushesParam;
        Args<P> args;
        args.set(P::ids, int8_array(ids));
        args.set(P::lease_tokens, int8_array(tokens));
        args.set(P::store_ids, int8_array(stores));
        args.set(P::verdicts, text_array(verdicts));
        args.set(P::job_ids, text_array(job_ids));
        args.set(P::details, text_array(details));
        args.set(P::delays, float8_array(delays));
        args.set(P::ban_pause_s, Float8GetDatum(static_cast<double>(ban_pause_s)));
        args.set(P::verify_delay_s, Float8GetDatum(static_cast<double>(verify_delay_s)));
        Rows<ApplyPushesColumn> rows = statements_->pushes->apply_pushes.run(args, 1);
        if (rows.size() != 1) throw std::runtime_error("recording pushes returned no row");
        using C = ApplyPushesColumn;
        result.done = rows.int8(0, C::done);
        result.superseded = rows.int8(0, C::superseded);
        result.retried = rows.int8(0, C::retried);
        result.failed = rows.int8(0, C::failed);
    });
    return result;
}

}  // namespace demper::pg
