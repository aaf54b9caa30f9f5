// catalog.cpp: the Catalog's statements, built once per worker; the SQL and the methods that run
// it are split by job (catalog_statements.hpp lists the files). Each statement is declared once:
// its named parameters and its result columns with their types (statement.hpp).
#include "pg/catalog.hpp"

#include <memory>

#include "pg/catalog_statements.hpp"
#include "pg/statement.hpp"

namespace demper::pg {

Catalog::Catalog() : statements_(std::make_unique<Statements>()) {}
Catalog::~Catalog() = default;

void Catalog::forget_plans() {
    for (PreparedStatement* s : statements_->all) s->forget();
}

}  // namespace demper::pg
