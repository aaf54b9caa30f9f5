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
REGRESS_INSTANCE = --temp-instance=./tmp_check --temp-config=$(srcdir)/test/regress.conf
REGRESS_OPTS     = $(REGRESS_INSTANCE)

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
