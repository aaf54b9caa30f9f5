// statement.hpp: the worker's transactions and prepared SPI statements, each statement's
// parameters and result columns declared once, by name.
//
// A statement's SQL names its parameters ($lease_token, $ids); its declaration lists every
// parameter once with its type, and every result column once with its type:
//
//   #define DEMPER_RELEASE_PARAMS(F) F(ids, INT8ARRAYOID) F(lease_tokens, INT8ARRAYOID)
//   DEMPER_DECLARE_FIELDS(ReleaseParam, DEMPER_RELEASE_PARAMS)
//
// declares `enum class ReleaseParam { ids, lease_tokens, count_ }` and the table of names and types
// the Statement is built from. The SQL is rewritten to positional parameters once, when the
// Statement is constructed (a name used but not declared, or declared but not used, is an error
// then); the result's column names and types are compared with the declaration at the first run
// of each prepared plan. So the SQL, the types and the Datums cannot drift apart silently: a
// mismatch is an error that names the statement and the field.
//
// The C++ / PostgreSQL boundary (DESIGN.md): every PostgreSQL call in this layer runs inside
// pg_guard, whose body holds no object with a destructor, so an ERROR's longjmp never skips a
// C++ destructor; it surfaces as a PgError thrown once the longjmp has landed. Code above this
// layer (catalog_*.cpp) holds C++ objects freely and calls PostgreSQL only through it.
// scripts/lint-boundary.sh checks that rule on every pg_guard body.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "pg/guard.hpp"

namespace demper::pg {

// Field is one declared parameter or result column: its name in the SQL and its type.
struct Field {
    const char* name;
    Oid type;
};

#define DEMPER_FIELD_ENUMERATOR(name, type) name,
#define DEMPER_FIELD_ENTRY(name, type) {#name, type},
// DEMPER_DECLARE_FIELDS(Enum, LIST) declares enum class Enum (one enumerator per field of LIST,
// then count_) and kEnumFields, the fields' names and types in the same order.
#define DEMPER_DECLARE_FIELDS(Enum, LIST)                          \
    enum class Enum : int { LIST(DEMPER_FIELD_ENUMERATOR) count_ }; \
    constexpr Field k##Enum##Fields[] = {LIST(DEMPER_FIELD_ENTRY)};

// The role the worker's transactions run as (created by the extension, with exactly the rights
// the worker's statements need). The worker connects as the bootstrap superuser only because it
// must start before the extension (and this role) exists.
constexpr const char* kWorkerRole = "demper_worker";

// RunAs says whose privileges a transaction runs with: the worker role's (every statement on
// demper's tables), or the session's own (only to read pg_catalog before the extension exists).
enum class RunAs { worker_role, session_user };

// in_transaction runs fn in a short transaction of its own with SPI connected and a snapshot
// set, as kWorkerRole in a security-restricted operation (unless run_as says otherwise); on any
// error it rolls back and rethrows. fn may hold C++ objects: it calls PostgreSQL only through
// this layer. A cancel (pg_cancel_backend) ends the statement it interrupts; SIGTERM never does
// (the worker's handler only asks the loop to stop cleanly between transactions).
template <typename Fn>
void in_transaction(const char* activity, Fn&& fn, RunAs run_as = RunAs::worker_role);

// RawResult holds one run's rows as Datums into the SPI result (valid until the transaction
// ends), varlena values already detoasted.
struct RawResult {
    std::uint64_t rows = 0;
    std::vector<Datum> values;  // rows x columns
    std::vector<bool> nulls;
};

// PreparedStatement is one prepared, kept SPI plan built from a declaration (use Statement).
class PreparedStatement {
public:
    PreparedStatement(const char* name, const char* sql, const Field* params, int param_count,
                      const Field* columns, int column_count, bool custom_plan);
    ~PreparedStatement();
    PreparedStatement(const PreparedStatement&) = delete;
    PreparedStatement& operator=(const PreparedStatement&) = delete;

    const char* name() const { return name_; }
    // sql is the statement as prepared (positional parameters), for tests and benchmarks.
    const std::string& sql() const { return sql_; }
    // forget frees the plan; the next run prepares it again (after an error, or a new schema).
    void forget();

protected:
    // run executes the plan with one Datum and null flag per declared parameter.
    void run(const Datum* args, const char* nulls, long row_limit, RawResult* out);

private:
    void prepare();
    void check_columns(TupleDesc desc);

    const char* name_;
    std::string sql_;
    std::vector<Oid> param_types_;
    const Field* columns_;
    int column_count_;
    bool custom_plan_;
    SPIPlanPtr plan_ = nullptr;
    bool columns_checked_ = false;
};

// Rows reads a run's result by declared column. Valid until the transaction ends.
template <typename Column>
class Rows {
public:
    std::size_t size() const { return static_cast<std::size_t>(raw_.rows); }
    bool is_null(std::size_t row, Column c) const { return raw_.nulls[index(row, c)]; }
    std::int64_t int8(std::size_t row, Column c) const {
        return is_null(row, c) ? 0 : DatumGetInt64(raw_.values[index(row, c)]);
    }
    std::int32_t int4(std::size_t row, Column c) const {
        return is_null(row, c) ? 0 : DatumGetInt32(raw_.values[index(row, c)]);
    }
    double float8(std::size_t row, Column c) const {
        return is_null(row, c) ? 0 : DatumGetFloat8(raw_.values[index(row, c)]);
    }
    bool boolean(std::size_t row, Column c) const {
        return !is_null(row, c) && DatumGetBool(raw_.values[index(row, c)]);
    }
    // text gives a text (or bytea) value's bytes; "" when null.
    // int8_array gives a one-dimensional int8[] without nulls ({} when null).
    std::vector<std::int64_t> int8_array(std::size_t row, Column c) const {
        std::vector<std::int64_t> out;
        if (is_null(row, c)) return out;
        const ArrayType* a = reinterpret_cast<const ArrayType*>(DatumGetPointer(raw_.values[index(row, c)]));
        if (ARR_NDIM(a) != 1 || ARR_HASNULL(a) || ARR_ELEMTYPE(a) != INT8OID) return out;
        const std::int64_t* data = reinterpret_cast<const std::int64_t*>(ARR_DATA_PTR(a));
        out.assign(data, data + ARR_DIMS(a)[0]);
        return out;
    }
    std::string text(std::size_t row, Column c) const {
        if (is_null(row, c)) return std::string();
        const struct varlena* v = reinterpret_cast<const struct varlena*>(DatumGetPointer(raw_.values[index(row, c)]));
        return std::string(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
    }
    std::optional<std::int64_t> maybe_int8(std::size_t row, Column c) const {
        if (is_null(row, c)) return std::nullopt;
        return int8(row, c);
    }
    std::optional<double> maybe_float8(std::size_t row, Column c) const {
        if (is_null(row, c)) return std::nullopt;
        return float8(row, c);
    }

private:
    template <typename P, typename C>
    friend class Statement;
    std::size_t index(std::size_t row, Column c) const {
        return row * static_cast<std::size_t>(Column::count_) + static_cast<std::size_t>(c);
    }
    RawResult raw_;
};

// Args holds one Datum per declared parameter; run refuses to start while one is unset.
template <typename Param>
class Args {
public:
    void set(Param p, Datum value) {
        values_[static_cast<int>(p)] = value;
        nulls_[static_cast<int>(p)] = ' ';
        set_[static_cast<int>(p)] = true;
    }
    void set_null(Param p) {
        values_[static_cast<int>(p)] = 0;
        nulls_[static_cast<int>(p)] = 'n';
        set_[static_cast<int>(p)] = true;
    }

private:
    template <typename P, typename C>
    friend class Statement;
    static constexpr int kCount = static_cast<int>(Param::count_);
    Datum values_[kCount > 0 ? kCount : 1] = {};
    char nulls_[kCount > 0 ? kCount : 1] = {};
    bool set_[kCount > 0 ? kCount : 1] = {};
};

// NoFields is the declaration of a statement without parameters or without result columns.
enum class NoFields : int { count_ };
constexpr Field kNoFieldsFields[1] = {{"", InvalidOid}};

// Statement is a PreparedStatement typed by its declared parameters and columns.
template <typename Param, typename Column>
class Statement : public PreparedStatement {
public:
    Statement(const char* name, const char* sql, const Field* params, const Field* columns,
              bool custom_plan = false)
        : PreparedStatement(name, sql, params, static_cast<int>(Param::count_), columns,
                            static_cast<int>(Column::count_), custom_plan) {}

    // run executes the statement (inside in_transaction) and returns its rows; row_limit 0 = all.
    Rows<Column> run(const Args<Param>& args, long row_limit = 0) {
        for (int i = 0; i < Args<Param>::kCount; i++)
            if (!args.set_[i]) throw std::logic_error(std::string(name()) + ": a parameter was not set");
        Rows<Column> rows;
        PreparedStatement::run(args.values_, args.nulls_, row_limit, &rows.raw_);
        return rows;
    }
};

// Array builders for statement parameters. They palloc in the current (transaction's) memory
// context and never raise an ERROR themselves past pg_guard: call them inside in_transaction.
Datum int8_array(const std::vector<std::int64_t>& values, const std::vector<bool>* nulls = nullptr);
// timestamptz_array: the same 8-byte integers (microseconds since 2000) as a timestamptz[].
Datum timestamptz_array(const std::vector<std::int64_t>& values);
Datum float8_array(const std::vector<double>& values);
Datum bool_array(const std::vector<bool>& values);
Datum text_array(const std::vector<std::string>& values);
// text_datum builds one text value.
Datum text_datum(const std::string& value);
// json_array: JSON the worker wrote itself, as json[] (no second parse on the way in).
Datum json_array(const std::vector<std::string>& values);

// transaction_start_timestamp is the current transaction's now() (microseconds since 2000).
std::int64_t transaction_start_timestamp();

namespace detail {
void begin_transaction(const char* activity, RunAs run_as);
void commit_transaction();
// abort_transaction rolls back whatever transaction an error left open.
void abort_transaction();
}  // namespace detail

template <typename Fn>
void in_transaction(const char* activity, Fn&& fn, RunAs run_as) {
    try {
        detail::begin_transaction(activity, run_as);
        fn();
        detail::commit_transaction();
    } catch (...) {
        detail::abort_transaction();
        throw;
    }
}

}  // namespace demper::pg
