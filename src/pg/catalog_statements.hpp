// catalog_statements.hpp: internal to the catalog files (catalog.hpp is the interface). The
// worker's SQL is split by job, each job's statements beside the Catalog methods that run them:
//
//   catalog_checks.cpp        claim, apply, release (the check pipeline)
//   catalog_pushes.cpp        claim pushes, record pushes (the publisher)
//   catalog_verifier.cpp      look for accepted pushes in the cabinet (the push verifier)
//   catalog_import.cpp        the cabinet's catalogue import
//   catalog_housekeeping.cpp  the installed version, dead workers' leases, the due queue's repair,
//                             pruning, the adaptive schedule's pressure
//
// Each of them defines one struct of its prepared statements; Catalog::Statements holds one of
// each.
#pragma once

#include <memory>
#include <vector>

#include "pg/catalog.hpp"
#include "pg/statement.hpp"

namespace demper::pg {

// A lease claim's parameters, the same for products (kClaimSql) and pushes (kClaimPushesSql).
#define DEMPER_CLAIM_PARAMS(F) F(limit, INT4OID) F(lease_token, INT8OID) F(lease_seconds, FLOAT8OID)
DEMPER_DECLARE_FIELDS(ClaimParam, DEMPER_CLAIM_PARAMS)

struct CheckStatements;
struct PushStatements;
struct VerifierStatements;
struct ImportStatements;
struct HousekeepingStatements;

// Each builds its job's statements and adds them to all.
std::shared_ptr<CheckStatements> make_check_statements(std::vector<PreparedStatement*>* all);
std::shared_ptr<PushStatements> make_push_statements(std::vector<PreparedStatement*>* all);
std::shared_ptr<VerifierStatements> make_verifier_statements(std::vector<PreparedStatement*>* all);
std::shared_ptr<ImportStatements> make_import_statements(std::vector<PreparedStatement*>* all);
std::shared_ptr<HousekeepingStatements> make_housekeeping_statements(
    std::vector<PreparedStatement*>* all);

struct Catalog::Statements {
    std::vector<PreparedStatement*> all;  // every statement, for forget_plans
    // shared_ptr, not unique_ptr: its deleter is bound where the struct is complete (its job's
    // file), so this struct can be destroyed where the job structs are only declared.
    std::shared_ptr<CheckStatements> checks = make_check_statements(&all);
    std::shared_ptr<PushStatements> pushes = make_push_statements(&all);
    std::shared_ptr<VerifierStatements> verifier = make_verifier_statements(&all);
    std::shared_ptr<ImportStatements> import = make_import_statements(&all);
    std::shared_ptr<HousekeepingStatements> housekeeping = make_housekeeping_statements(&all);
};

}  // namespace demper::pg
