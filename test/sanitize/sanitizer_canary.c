/*
 * sanitizer_canary: the positive control of the sanitize-ext layer. A tiny C extension built
 * with the same -fsanitize=address,undefined flags as demper.so and loaded into the same kind of
 * server (test/sanitize/010_sanitized_server.pl, 020_worker_leaks.pl). Each function makes one
 * deliberate error, so the tests can show that such an error inside a server process is caught,
 * written where the layer looks (ASan's report files, the server log for UBSan) and counted by the
 * same code that asserts "no reports" or "no leak" for demper: without this, an empty report
 * directory could also mean that nothing was watching.
 */
#include "postgres.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "fmgr.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(sanitizer_canary_heap_overflow);
PG_FUNCTION_INFO_V1(sanitizer_canary_signed_overflow);
PG_FUNCTION_INFO_V1(sanitizer_canary_leak);

/* sanitizer_canary_heap_overflow writes byte $1 of an 8-byte heap block: 8 is one past its end. */
Datum
sanitizer_canary_heap_overflow(PG_FUNCTION_ARGS)
{
	int32		index = PG_GETARG_INT32(0);
	volatile char *block = malloc(8);

	block[index] = 1;
	free((void *) block);
	PG_RETURN_VOID();
}

/* sanitizer_canary_signed_overflow returns $1 + INT_MAX: undefined for any $1 > 0. */
Datum
sanitizer_canary_signed_overflow(PG_FUNCTION_ARGS)
{
	volatile int32 a = PG_GETARG_INT32(0);

	PG_RETURN_INT32(a + INT_MAX);
}

/* leak_block allocates a block of the given size and forgets it. */
static __attribute__((noinline)) void
leak_block(size_t bytes)
{
	volatile char *block = malloc(bytes);

	block[0] = 1;
	block = NULL;
}

/*
 * scrub_stack overwrites the stack below its caller, where stale copies of the leaked pointer
 * (leak_block's and malloc's frames) could otherwise make LeakSanitizer think it still reachable
 * when it scans the stack at the process's exit.
 */
static __attribute__((noinline)) void
scrub_stack(void)
{
	volatile char area[16384];

	memset((char *) area, 0, sizeof(area));
}

/* sanitizer_canary_leak leaks one block of $1 bytes: LeakSanitizer reports it at the exit. */
Datum
sanitizer_canary_leak(PG_FUNCTION_ARGS)
{
	leak_block((size_t) PG_GETARG_INT32(0));
	scrub_stack();
	PG_RETURN_VOID();
}
