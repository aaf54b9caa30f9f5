// statement.cpp: transactions, prepared statements and parameter arrays of the worker (see
// statement.hpp). Every PostgreSQL call is inside a pg_guard body that holds no C++ object.
#include "pg/statement.hpp"

#include <cctype>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace demper::pg {

namespace {

// positional_sql rewrites a statement's named parameters ($name) to positional ones ($1, $2, ...
// in declaration order). Quoted literals, quoted identifiers and comments are copied as they are.
std::string positional_sql(const char* statement, const char* sql, const Field* params, int count) {
    std::string out;
    std::vector<bool> used(static_cast<std::size_t>(count), false);
    const std::size_t n = std::strlen(sql);
    auto fail = [statement](const std::string& what) {
        throw std::logic_error(std::string("statement ") + statement + ": " + what);
    };
    for (std::size_t i = 0; i < n;) {
        const char c = sql[i];
        if (c == '\'' || c == '"') {  // a literal or quoted identifier, doubled quotes inside
            std::size_t j = i + 1;
            while (j < n && !(sql[j] == c && (j + 1 >= n || sql[j + 1] != c))) j += (sql[j] == c) ? 2 : 1;
            out.append(sql + i, std::min(n, j + 1) - i);
            i = j + 1;
        } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {  // a comment, to the line's end
            std::size_t j = i;
            while (j < n && sql[j] != '\n') j++;
            out.append(sql + i, j - i);
            i = j;
        } else if (c == '$') {
            std::size_t j = i + 1;
            while (j < n && (std::isalnum(static_cast<unsigned char>(sql[j])) || sql[j] == '_')) j++;
            const std::string name(sql + i + 1, j - i - 1);
            if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0])))
                fail("parameters are named ($name), not numbered: \"$" + name + "\"");
            if (j < n && sql[j] == '$') fail("dollar quoting is not supported: \"$" + name + "$\"");
            int k = 0;
            while (k < count && name != params[k].name) k++;
            if (k == count) fail("parameter $" + name + " is not declared");
            used[static_cast<std::size_t>(k)] = true;
            out += "$" + std::to_string(k + 1);
            i = j;
        } else {
            out += c;
            i++;
        }
    }
    for (int k = 0; k < count; k++)
        if (!used[static_cast<std::size_t>(k)]) fail(std::string("parameter $") + params[k].name + " is declared but not used");
    return out;
}

// How a result column's value is made readable: a varlena read with VARDATA_ANY may keep a
// short (1-byte) header, an array needs its full 4-byte header (the ARR_* macros assume it: a
// small array read with a short header looks empty), and both are decompressed and fetched from
// TOAST when stored so.
enum class Detoast { none, packed, full };

Detoast detoast_of(Oid type) {
    switch (type) {
        case TEXTOID:
        case BYTEAOID:
        case JSONOID:
        case JSONBOID:
        case VARCHAROID:
            return Detoast::packed;
        case TEXTARRAYOID:
        case INT8ARRAYOID:
        case INT4ARRAYOID:
        case BOOLARRAYOID:
        case FLOAT8ARRAYOID:
        case JSONARRAYOID:
        case TIMESTAMPTZARRAYOID:
            return Detoast::full;
        default:
            return Detoast::none;
    }
}

// build_array builds a one-dimensional array of n elements of a fixed-width by-value type.
Datum build_array(const Datum* elems, const bool* nulls, int n, Oid element_type, int width, bool byval,
                  char align) {
    int dims[1] = {n};
    int lbs[1] = {1};
    return PointerGetDatum(construct_md_array(const_cast<Datum*>(elems), const_cast<bool*>(nulls), 1, dims,
                                              lbs, element_type, width, byval, align));
}

// The element arrays are palloc'd, in the transaction's memory.
Datum* datum_buffer(std::size_t n) {
    Datum* d = nullptr;
    pg_guard([&d, n] { d = static_cast<Datum*>(palloc(sizeof(Datum) * (n > 0 ? n : 1))); });
    return d;
}

bool* flag_buffer(std::size_t n) {
    bool* b = nullptr;
    pg_guard([&b, n] { b = static_cast<bool*>(palloc0(sizeof(bool) * (n > 0 ? n : 1))); });
    return b;
}

Datum fixed_array(const std::vector<std::int64_t>& values, const std::vector<bool>* nulls, Oid element_type) {
    const std::size_t n = values.size();
    Datum* elems = datum_buffer(n);
    bool* isnull = flag_buffer(n);
    for (std::size_t i = 0; i < n; i++) {
        elems[i] = Int64GetDatum(values[i]);
        isnull[i] = nulls != nullptr && (*nulls)[i];
    }
    Datum out = 0;
    const int count = static_cast<int>(n);
    pg_guard([&] { out = build_array(elems, isnull, count, element_type, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE); });
    return out;
}

Datum varlena_array(const std::vector<std::string>& values, Oid element_type) {
    const std::size_t n = values.size();
    Datum* elems = datum_buffer(n);
    const int count = static_cast<int>(n);
    const std::string* data = values.data();
    Datum out = 0;
    pg_guard([&] {
        for (int i = 0; i < count; i++)
            elems[i] = PointerGetDatum(cstring_to_text_with_len(data[i].data(), static_cast<int>(data[i].size())));
        out = PointerGetDatum(construct_array(elems, count, element_type, -1, false, TYPALIGN_INT));
    });
    return out;
}

}  // namespace

namespace detail {

// The session's user and security context, saved while a transaction runs as the worker role.
Oid g_session_user = InvalidOid;
int g_session_context = 0;
bool g_switched = false;

void begin_transaction(const char* activity, RunAs run_as) {
    const bool as_worker = run_as == RunAs::worker_role;
    pg_guard([activity, as_worker] {
        SetCurrentStatementStartTimestamp();
        StartTransactionCommand();
        if (as_worker) {
            const Oid role = get_role_oid(kWorkerRole, true);
            if (!OidIsValid(role))
                ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                                errmsg("role \"%s\" does not exist", kWorkerRole),
                                errdetail("The demper worker runs its statements as this role, which CREATE EXTENSION demper creates."),
                                errhint("Run ALTER EXTENSION demper UPDATE, or create the role and grant it demper's privileges again.")));
            // Restored at commit; an abort restores the user the transaction started with.
            GetUserIdAndSecContext(&g_session_user, &g_session_context);
            SetUserIdAndSecContext(role, g_session_context | SECURITY_LOCAL_USERID_CHANGE |
                                             SECURITY_RESTRICTED_OPERATION);
            g_switched = true;
        }
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
        PushActiveSnapshot(GetTransactionSnapshot());
        pgstat_report_activity(STATE_RUNNING, activity);
    });
}

void commit_transaction() {
    pg_guard([] {
        SPI_finish();
        PopActiveSnapshot();
        if (g_switched) {
            SetUserIdAndSecContext(g_session_user, g_session_context);
            g_switched = false;
        }
        CommitTransactionCommand();
        pgstat_report_stat(false);
        pgstat_report_activity(STATE_IDLE, nullptr);
    });
}

void abort_transaction() {
    g_switched = false;  // AbortTransaction restores the user the transaction started with
    pg_guard([] {
        AbortCurrentTransaction();
        pgstat_report_activity(STATE_IDLE, nullptr);
    });
}

}  // namespace detail

PreparedStatement::PreparedStatement(const char* name, const char* sql, const Field* params, int param_count,
                                     const Field* columns, int column_count, bool custom_plan)
    : name_(name),
      sql_(positional_sql(name, sql, params, param_count)),
      columns_(columns),
      column_count_(column_count),
      custom_plan_(custom_plan) {
    for (int i = 0; i < param_count; i++) param_types_.push_back(params[i].type);
}

PreparedStatement::~PreparedStatement() {
    // Kept plans live in the worker's memory until it exits; freeing them here could raise an
    // ERROR in a destructor. forget() frees them while the worker runs.
}

void PreparedStatement::forget() {
    if (plan_ == nullptr) return;
    SPIPlanPtr plan = plan_;
    plan_ = nullptr;
    columns_checked_ = false;
    pg_guard([plan] { SPI_freeplan(plan); });
}

void PreparedStatement::prepare() {
    const char* sql = sql_.c_str();
    const int nargs = static_cast<int>(param_types_.size());
    Oid* types = param_types_.data();
    const int options = custom_plan_ ? CURSOR_OPT_CUSTOM_PLAN : 0;
    const char* name = name_;
    SPIPlanPtr plan = nullptr;
    pg_guard([&] {
        plan = SPI_prepare_cursor(sql, nargs, types, options);
        if (plan == nullptr)
            elog(ERROR, "could not prepare statement %s: %s", name, SPI_result_code_string(SPI_result));
        if (SPI_keepplan(plan) != 0) elog(ERROR, "could not keep the plan of statement %s", name);
    });
    plan_ = plan;
    columns_checked_ = false;
}

// check_columns compares a result's columns with the declaration, once per prepared plan.
void PreparedStatement::check_columns(TupleDesc desc) {
    const int natts = desc == nullptr ? 0 : desc->natts;
    int mismatch = -1;
    char found_name[NAMEDATALEN];
    found_name[0] = '\0';
    Oid found_type = InvalidOid;
    for (int i = 0; i < column_count_ && i < natts && mismatch < 0; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (std::strcmp(NameStr(att->attname), columns_[i].name) != 0 || att->atttypid != columns_[i].type) {
            mismatch = i;
            strlcpy(found_name, NameStr(att->attname), sizeof(found_name));
            found_type = att->atttypid;
        }
    }
    if (mismatch >= 0)
        throw std::logic_error(std::string("statement ") + name_ + ": result column " + std::to_string(mismatch + 1) +
                               " is \"" + found_name + "\" of type " + std::to_string(found_type) +
                               ", declared \"" + columns_[mismatch].name + "\" of type " +
                               std::to_string(columns_[mismatch].type));
    if (natts != column_count_)
        throw std::logic_error(std::string("statement ") + name_ + " returns " + std::to_string(natts) +
                               " columns, declared " + std::to_string(column_count_));
    columns_checked_ = true;
}

void PreparedStatement::run(const Datum* args, const char* nulls, long row_limit, RawResult* out) {
    if (plan_ == nullptr) prepare();
    SPIPlanPtr plan = plan_;
    const char* name = name_;
    std::uint64_t rows = 0;
    TupleDesc desc = nullptr;
    pg_guard([&] {
        int rc = SPI_execute_plan(plan, const_cast<Datum*>(args), nulls, false, row_limit);
        if (rc < 0) elog(ERROR, "statement %s failed: %s", name, SPI_result_code_string(rc));
        rows = SPI_tuptable != nullptr ? SPI_processed : 0;
        desc = SPI_tuptable != nullptr ? SPI_tuptable->tupdesc : nullptr;
    });
    if (!columns_checked_) check_columns(desc);
    out->rows = rows;
    if (column_count_ == 0 || rows == 0) return;
    const int ncols = column_count_;
    out->values.assign(static_cast<std::size_t>(rows) * static_cast<std::size_t>(ncols), 0);
    out->nulls.assign(out->values.size(), true);
    Datum* values = out->values.data();
    // std::vector<bool> has no data(): the null flags go through a plain array.
    bool* isnull = flag_buffer(out->values.size());
    const Field* columns = columns_;
    pg_guard([&] {
        for (uint64 r = 0; r < rows; r++) {
            HeapTuple tuple = SPI_tuptable->vals[r];
            for (int c = 0; c < ncols; c++) {
                const size_t k = static_cast<size_t>(r) * static_cast<size_t>(ncols) + static_cast<size_t>(c);
                values[k] = SPI_getbinval(tuple, desc, c + 1, &isnull[k]);
                if (isnull[k]) continue;
                struct varlena* v = reinterpret_cast<struct varlena*>(DatumGetPointer(values[k]));
                switch (detoast_of(columns[c].type)) {
                    case Detoast::packed:
                        values[k] = PointerGetDatum(pg_detoast_datum_packed(v));
                        break;
                    case Detoast::full:
                        values[k] = PointerGetDatum(pg_detoast_datum(v));
                        break;
                    case Detoast::none:
                        break;
                }
            }
        }
    });
    for (std::size_t k = 0; k < out->values.size(); k++) out->nulls[k] = isnull[k];
}

Datum int8_array(const std::vector<std::int64_t>& values, const std::vector<bool>* nulls) {
    return fixed_array(values, nulls, INT8OID);
}

Datum timestamptz_array(const std::vector<std::int64_t>& values) {
    return fixed_array(values, nullptr, TIMESTAMPTZOID);
}

Datum float8_array(const std::vector<double>& values) {
    const std::size_t n = values.size();
    Datum* elems = datum_buffer(n);
    bool* isnull = flag_buffer(n);
    for (std::size_t i = 0; i < n; i++) elems[i] = Float8GetDatum(values[i]);
    Datum out = 0;
    const int count = static_cast<int>(n);
    pg_guard([&] { out = build_array(elems, isnull, count, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE); });
    return out;
}

Datum bool_array(const std::vector<bool>& values) {
    const std::size_t n = values.size();
    Datum* elems = datum_buffer(n);
    bool* isnull = flag_buffer(n);
    for (std::size_t i = 0; i < n; i++) elems[i] = BoolGetDatum(values[i]);
    Datum out = 0;
    const int count = static_cast<int>(n);
    pg_guard([&] { out = build_array(elems, isnull, count, BOOLOID, 1, true, TYPALIGN_CHAR); });
    return out;
}

Datum text_array(const std::vector<std::string>& values) { return varlena_array(values, TEXTOID); }

Datum text_datum(const std::string& value) {
    Datum out = 0;
    const char* data = value.data();
    const int size = static_cast<int>(value.size());
    pg_guard([&] { out = PointerGetDatum(cstring_to_text_with_len(data, size)); });
    return out;
}

Datum json_array(const std::vector<std::string>& values) { return varlena_array(values, JSONOID); }

std::int64_t transaction_start_timestamp() { return GetCurrentTransactionStartTimestamp(); }

}  // namespace demper::pg
