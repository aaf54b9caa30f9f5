# demper: PGXS build. `make && make install`, then see README.md for the tests.
EXTENSION  = demper
MODULE_big = demper

# The version is written once, as demper.control's default_version; the library gets it as
# DEMPER_VERSION (src/pg/version.hpp).
EXTVERSION := $(shell sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" demper.control)
ifeq ($(EXTVERSION),)
$(error no default_version in demper.control)
endif

CORE_SRCS := $(sort $(wildcard src/core/*.cpp))
PG_SRCS   := $(sort $(wildcard src/pg/*.cpp))
CORE_OBJS := $(CORE_SRCS:.cpp=.o)
OBJS       = $(PG_SRCS:.cpp=.o) $(CORE_OBJS)

DATA       = $(wildcard sql/demper--*.sql)
PGFILEDESC = "demper - marketplace repricing engine"

# pg_regress inputs are sql/*.sql other than the extension scripts; outputs in expected/. They
# run on a temporary instance with demper preloaded; the Debian package's install check runs them
# on pg_virtualenv's cluster instead (REGRESS_INSTANCE= on the command line, debian/rules).
REGRESS          = $(sort $(basename $(notdir $(filter-out sql/demper--%,$(wildcard sql/*.sql)))))
REGRESS_INSTANCE = --temp-instance=$(TEST_OUTPUT)/tmp_check --temp-config=$(srcdir)/test/regress.conf
REGRESS_OPTS     = $(REGRESS_INSTANCE) --outputdir=$(TEST_OUTPUT)

# Debian's server is built with LLVM; without this PGXS compiles .cpp to bitcode with clang.
override with_llvm = no

PG_CONFIG ?= pg_config
PG_CPPFLAGS += -DDEMPER_VERSION='"$(EXTVERSION)"'
PG_CXXFLAGS += -std=c++17 -fPIC -Wall -Wextra -Werror -Wno-missing-field-initializers -Wno-register \
               -Wno-unused-parameter -Isrc
SHLIB_LINK  += -lcurl -lssl -lcrypto -lstdc++

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# src/core is pure C++: it is compiled without the server's include directory, so a
# PostgreSQL header included there fails the build.
$(CORE_OBJS): override CPPFLAGS = -Isrc -D_GNU_SOURCE
$(CORE_OBJS): override CXXFLAGS = -O2 -g -std=c++17 -fPIC -Wall -Wextra -Werror

.PHONY: check-core-purity
check-core-purity:
	@! grep -nE '#\s*include\s*[<"](postgres|fmgr|utils/|access/|executor/|storage/|catalog/|miscadmin)' src/core/*.hpp src/core/*.cpp \
	  || (echo "src/core must not include PostgreSQL headers" >&2; exit 1)

all: check-core-purity

# PGXS does not track header dependencies: rebuild every object when any header changes, and
# the library's objects when the version changes.
$(OBJS): $(wildcard src/core/*.hpp src/pg/*.hpp)
$(PG_SRCS:.cpp=.o): demper.control

# --- the developer's loop (README.md, "Developing") ---
# The server-side tests write their clusters, logs and diffs under TEST_OUTPUT. PostgreSQL refuses
# to run as root: for root, pg_regress and prove run as postgres, and TEST_OUTPUT is a directory
# outside the tree that postgres owns (postgres only reads the tree).
ifeq ($(shell id -u),0)
TEST_OUTPUT ?= /tmp/demper-tests$(subst /,-,$(CURDIR))
AS_SERVER_USER = runuser -u postgres --
# PGXS's pg_regress_installcheck (Makefile.global), run as postgres.
pg_regress_installcheck = $(AS_SERVER_USER) $(top_builddir)/src/test/regress/pg_regress \
  --inputdir=$(srcdir) --bindir='$(bindir)' $(pg_regress_locale_flags) $(EXTRA_REGRESS_OPTS)
else
TEST_OUTPUT ?= $(CURDIR)
AS_SERVER_USER =
endif
CMAKE_JOBS ?= 2
# CMake's build runs on its own, not as a sub-make of this one: CMAKE_JOBS is its parallelism.
CMAKE_BUILD = env -u MAKELEVEL -u MAKEFLAGS cmake --build build --parallel $(CMAKE_JOBS)

.PHONY: test-output unit mock prove_installcheck
test-output:
	@install -d $(if $(AS_SERVER_USER),-o postgres -g postgres) '$(TEST_OUTPUT)' '$(TEST_OUTPUT)/test'

installcheck: test-output
# The regress files share one database, in which 001_extension creates the extension: a run of
# chosen files (REGRESS=004_pricing) starts with it.
override REGRESS := 001_extension $(filter-out 001_extension,$(REGRESS))

build/CMakeCache.txt:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPG_CONFIG=$(PG_CONFIG)

# unit: the GoogleTest units of src/core (no server); GTEST_FILTER=Suite.*:Other.* selects some.
unit: build/CMakeCache.txt
	$(CMAKE_BUILD) --target demper_unit_tests
	build/demper_unit_tests $(if $(GTEST_FILTER),--gtest_filter='$(GTEST_FILTER)')

mock: build/CMakeCache.txt
	$(CMAKE_BUILD) --target demper_mock

# prove_installcheck: the TAP tests against the installed demper, as in pgvector; one or some with
# PROVE_TESTS=test/t/007_pricing.pl, prove's options in PROVE_FLAGS (e.g. -v).
prove_installcheck: test-output mock
	rm -rf '$(TEST_OUTPUT)/test/tmp_check'
	$(AS_SERVER_USER) env PATH="$(bindir):$$PATH" \
	  PERL5LIB='$(top_builddir)/src/test/perl:$(CURDIR)/test/t' TESTDIR='$(TEST_OUTPUT)/test' \
	  PG_REGRESS='$(top_builddir)/src/test/regress/pg_regress' DEMPER_MOCK='$(CURDIR)/build/demper_mock' \
	  $(PROVE) $(PROVE_FLAGS) $(if $(PROVE_TESTS),$(PROVE_TESTS),test/t/*.pl)
