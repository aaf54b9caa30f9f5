// boundary_violations.cpp: a fixture for scripts/lint-boundary.py, never compiled. Each line
// marked "finding" must be reported; the rest must not. test/lint/run.sh checks both.
#include "pg/guard.hpp"

void guard_holds_string() {
    pg_guard([&] {
        std::string copy = "x";  // finding: a C++ object inside a guard body
        elog(ERROR, "%s", copy.c_str());
    });
}

void raises_over_a_vector(std::vector<int>& v) {
    std::vector<int> local(3);
    SPI_connect();  // finding: can raise while `local` is alive
    v.push_back(1);
}

void audited_raise() {
    std::string held;
    // boundary-ok: the fixture's audited exception
    elog(ERROR, "audited");
}

void plain_function() {
    int n = 0;
    elog(ERROR, "plain: %d", n);
}

void guarded_properly(std::vector<int>& out) {
    int* p = out.data();
    pg_guard([&] { p[0] = DatumGetInt32(SPI_getbinval(nullptr, nullptr, 1, nullptr)); });
}
