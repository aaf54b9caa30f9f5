// catalog_verifier.cpp: the push verifier's SQL (push_verifier.cpp): claim accepted pushes due
// for a look at the seller's cabinet, record what the looks found.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pg/catalog_statements.hpp"

namespace demper::pg {

namespace {

// Accepted pushes due for a look at the cabinet (their next look is pushed a lease ahead).
constexpr const char* kClaimVerificationsSql = R"SQL(
WITH due AS (
    SELECT o.id FROM demper.outbox o
     WHERE o.verify_status = 'verifying' AND o.verify_after <= now()
     ORDER BY o.verify_after
     LIMIT $limit
       FOR UPDATE OF o SKIP LOCKED
)
UPDATE demper.outbox o SET verify_after = now() + make_interval(secs => $lease_seconds)
  FROM due, demper.product p, demper.store s
 WHERE o.id = due.id AND p.id = o.product_id AND s.id = o.store_id
RETURNING o.id, o.store_id, s.merchant_id, s.credentials, p.sku, coalesce(p.city_id, s.city_id) AS city_id,
          o.pushed_price, coalesce(o.job_id, '') AS job_id,
          extract(epoch FROM now() - coalesce(o.done_at, now()))::float8 AS age_s
)SQL";
#define DEMPER_CLAIM_VERIFY_PARAMS(F) F(limit, INT4OID) F(lease_seconds, FLOAT8OID)
#define DEMPER_CLAIM_VERIFY_COLUMNS(F)                                                           \
    F(id, INT8OID) F(store_id, INT8OID) F(merchant_id, TEXTOID) F(credentials, BYTEAOID)         \
    F(sku, TEXTOID) F(city_id, TEXTOID) F(pushed_price, INT8OID) F(job_id, TEXTOID) F(age_s, FLOAT8OID)
DEMPER_DECLARE_FIELDS(ClaimVerifyParam, DEMPER_CLAIM_VERIFY_PARAMS)
DEMPER_DECLARE_FIELDS(ClaimVerifyColumn, DEMPER_CLAIM_VERIFY_COLUMNS)

constexpr const char* kApplyVerificationsSql = R"SQL(
WITH r AS (
    SELECT * FROM unnest($ids::int8[], $results::text[], $details::text[]) AS r(id, result, detail)
), upd AS (
    UPDATE demper.outbox o
       SET verify_status = CASE WHEN r.result = 'again' THEN 'verifying' ELSE r.result END,
           verify_after = CASE WHEN r.result = 'again' THEN now() + make_interval(secs => $again_s) END,
           verified_at = CASE WHEN r.result = 'again' THEN NULL ELSE now() END,
           verify_detail = nullif(r.detail, '')
      FROM r
     WHERE o.id = r.id AND o.verify_status = 'verifying'
    RETURNING r.result
)
SELECT count(*) FILTER (WHERE result = 'verified') AS verified,
       count(*) FILTER (WHERE result = 'rejected') AS rejected,
       count(*) FILTER (WHERE result = 'off_sale') AS off_sale
  FROM upd
)SQL";
#define DEMPER_APPLY_VERIFY_PARAMS(F) \
    F(ids, INT8ARRAYOID) F(results, TEXTARRAYOID) F(details, TEXTARRAYOID) F(again_s, FLOAT8OID)
#define DEMPER_APPLY_VERIFY_COLUMNS(F) F(verified, INT8OID) F(rejected, INT8OID) F(off_sale, INT8OID)
DEMPER_DECLARE_FIELDS(ApplyVerifyParam, DEMPER_APPLY_VERIFY_PARAMS)
DEMPER_DECLARE_FIELDS(ApplyVerifyColumn, DEMPER_APPLY_VERIFY_COLUMNS)

}  // namespace

struct VerifierStatements {
    Statement<ClaimVerifyParam, ClaimVerifyColumn> claim_verifications{
        "claim_verifications", kClaimVerificationsSql, kClaimVerifyParamFields, kClaimVerifyColumnFields, true};
    Statement<ApplyVerifyParam, ApplyVerifyColumn> apply_verifications{
        "apply_verifications", kApplyVerificationsSql, kApplyVerifyParamFields, kApplyVerifyColumnFields};
};

std::shared_ptr<VerifierStatements> make_verifier_statements(std::vector<PreparedStatement*>* all) {
    auto s = std::make_shared<VerifierStatements>();
    all->insert(all->end(), {&s->claim_verifications, &s->apply_verifications});
    return s;
}

std::vector<PushToVerify> Catalog::claim_verifications(int limit, int lease_time_s) {
    std::vector<PushToVerify> out;
    in_transaction("demper: claiming push verifications", [&] {
        Args<ClaimVerifyParam> args;
        args.set(ClaimVerifyParam::limit, Int32GetDatum(limit));
        args.set(ClaimVerifyParam::lease_seconds, Float8GetDatum(static_cast<double>(lease_time_s)));
        Rows<ClaimVerifyColumn> rows = statements_->verifier->claim_verifications.run(args);
        for (std::size_t i = 0; i < rows.size(); i++) {
            using C = ClaimVerifyColumn;
            PushToVerify v;
            v.outbox_id = rows.int8(i, C::id);
            v.store_id = rows.int8(i, C::store_id);
            v.merchant_id = rows.text(i, C::merchant_id);
            v.sealed_credentials = rows.text(i, C::credentials);
            v.sku = rows.text(i, C::sku);
            v.city_id = rows.text(i, C::city_id);
            v.pushed_price = rows.int8(i, C::pushed_price);
            v.job_id = rows.text(i, C::job_id);
            v.age_s = rows.float8(i, C::age_s);
            out.push_back(std::move(v));
        }
    });
    return out;
}

VerifyCounts Catalog::apply_verifications(const std::vector<VerifyRow>& rows_in, int again_s) {
    VerifyCounts counts;
    if (rows_in.empty()) return counts;
    std::vector<std::int64_t> ids;
    std::vector<std::string> results, details;
    for (const VerifyRow& r : rows_in) {
        ids.push_back(r.outbox_id);
        details.push_back(r.detail);
        switch (r.result) {
            case VerifyResult::verified:
                results.emplace_back("verified");
                break;
            case VerifyResult::rejected:
                results.emplace_back("rejected");
                break;
            case VerifyResult::off_sale:
                results.emplace_back("off_sale");
                break;
            case VerifyResult::again:
                results.emplace_back("again");
                break;
        }
    }
    in_transaction("demper: recording push verifications", [&] {
        Args<ApplyVerifyParam> args;
        args.set(ApplyVerifyParam::ids, int8_array(ids));
        args.set(ApplyVerifyParam::results, text_array(results));
        args.set(ApplyVerifyParam::details, text_array(details));
        args.set(ApplyVerifyParam::again_s, Float8GetDatum(static_cast<double>(again_s)));
        Rows<ApplyVerifyColumn> rows = statements_->verifier->apply_verifications.run(args, 1);
        if (rows.size() != 1) return;
        counts.verified = rows.int8(0, ApplyVerifyColumn::verified);
        counts.rejected = rows.int8(0, ApplyVerifyColumn::rejected);
        counts.off_sale = rows.int8(0, ApplyVerifyColumn::off_sale);
    });
    return counts;
}

}  // namespace demper::pg
