// guard.hpp: the two guards of the C++ / PostgreSQL boundary (DESIGN.md).
//
// - pg_guard(fn) runs code that calls into PostgreSQL from C++: an ereport(ERROR) raised inside
//   fn is caught by PG_TRY, copied, flushed, and rethrown as a C++ PgError once the longjmp has
//   landed. fn itself must hold no object with a destructor (the longjmp skips its frame); put
//   the guard deeper than the RAII objects it protects.
// - DEMPER_CPP_BOUNDARY_BEGIN / END wrap the body of every function PostgreSQL calls: every C++
//   exception is caught there, its message copied to a plain buffer, and ereport(ERROR) is
//   raised only after the catch block has ended, so no C++ frame is ever longjmp'ed over.
#pragma once

#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "pg/pg_includes.hpp"

namespace demper::pg {

// PgError is an ereport(ERROR) turned into a C++ exception by pg_guard.
class PgError : public std::runtime_error {
public:
    PgError(const std::string& message, int sqlerrcode)
        : std::runtime_error(message), sqlerrcode_(sqlerrcode) {}
    int sqlerrcode() const { return sqlerrcode_; }

private:
    int sqlerrcode_;
};

// pg_guard runs fn and converts a PostgreSQL ERROR raised inside it into PgError.
// A C++ exception thrown by fn is caught inside PG_TRY and rethrown after PG_END_TRY, so that
// it never unwinds through PG_TRY and leaves PG_exception_stack pointing at a dead frame.
template <typename Fn>
void pg_guard(Fn&& fn) {
    // The body's own locals are checked by scripts/lint-boundary.py; its captures here.
    static_assert(std::is_trivially_destructible_v<std::remove_reference_t<Fn>>,
                  "a pg_guard body must capture nothing with a destructor: capture by reference");
    MemoryContext caller_context = CurrentMemoryContext;
    std::exception_ptr cpp_error;
    char message[1024];
    volatile int sqlerrcode = 0;
    volatile bool failed = false;
    PG_TRY();
    {
        try {
            fn();
        } catch (...) {
            cpp_error = std::current_exception();
        }
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_context);
        ErrorData* edata = CopyErrorData();
        FlushErrorState();
        strlcpy(message, edata->message ? edata->message : "unknown error", sizeof(message));
        sqlerrcode = edata->sqlerrcode;
        FreeErrorData(edata);
        failed = true;
    }
    PG_END_TRY();
    if (cpp_error) std::rethrow_exception(cpp_error);
    if (failed) throw PgError(message, sqlerrcode);
}

}  // namespace demper::pg

// The body between these macros may throw; the error becomes an ereport(ERROR) after the
// catch block has ended.
#define DEMPER_CPP_BOUNDARY_BEGIN      \
    char demper_boundary_error_[1024]; \
    demper_boundary_error_[0] = '\0';  \
    int demper_boundary_code_ = ERRCODE_INTERNAL_ERROR; \
    try {
#define DEMPER_CPP_BOUNDARY_END                                                           \
    }                                                                                     \
    catch (const demper::pg::PgError& e) {                                                \
        strlcpy(demper_boundary_error_, e.what(), sizeof(demper_boundary_error_));        \
        demper_boundary_code_ = e.sqlerrcode();                                           \
    }                                                                                     \
    catch (const std::exception& e) {                                                     \
        strlcpy(demper_boundary_error_, e.what(), sizeof(demper_boundary_error_));        \
    }                                                                                     \
    catch (...) {                                                                         \
        strlcpy(demper_boundary_error_, "unknown C++ exception", sizeof(demper_boundary_error_)); \
    }                                                                                     \
    if (demper_boundary_error_[0] != '\0')                                                \
        ereport(ERROR, (errcode(demper_boundary_code_), errmsg("%s", demper_boundary_error_)));
