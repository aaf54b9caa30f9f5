/*
 * sanitizer_preload: what scripts/sanitize-ext.sh preloads into postgres right after the ASan
 * runtime (LD_PRELOAD="libasan.so.8 sanitizer_preload.so"), so that the sanitized demper.so can
 * run in Debian's unmodified postgres binary. Two things, each a workaround for a fact of that
 * binary; neither changes what the sanitizers check.
 *
 * 1. swift_demangle: without it, `LD_PRELOAD=libasan.so.8 postgres --version` hangs forever in
 *    main -> set_pglocale_pgservice -> bindtextdomain -> pthread_rwlock_wrlock(_nl_state_lock).
 *    The lock is already broken before main():
 *
 *    a. postgres links libgpg-error (through libldap, gnutls, libgcrypt). Its constructor runs
 *       before libasan's (a preloaded library is initialized after the libraries that do not
 *       depend on it) and calls bindtextdomain(), which takes glibc's _nl_state_lock for writing
 *       and then calls malloc().
 *    b. That malloc is ASan's first interceptor call, so ASan initializes right there, inside the
 *       write lock. Its initialization looks up an optional Swift demangler with
 *       dlsym(RTLD_DEFAULT, "swift_demangle") and clears the failure with dlerror().
 *    c. glibc's dlerror() translates its message: dcgettext() takes _nl_state_lock for reading,
 *       which fails (EDEADLK) in the thread that holds it for writing; dcigettext does not check
 *       and unlocks anyway, which releases the *write* lock. When bindtextdomain() unlocks in turn,
 *       the lock's reader count drops to -1, and every later writer waits forever: the first is
 *       postgres's own bindtextdomain() in main().
 *
 *    Seen with a watchpoint on _nl_state_lock: taken for writing in bindtextdomain ("libgpg-error"),
 *    released by pthread_rwlock_unlock in __dcigettext("undefined symbol: swift_demangle") called
 *    from dlerror() called from __asan::AsanInitInternal, released again by bindtextdomain: readers
 *    -1 at main(). A small program calling bindtextdomain() does not hang: it takes a library
 *    constructor that calls bindtextdomain() before anything else calls malloc(). LC_ALL=C does
 *    not help (dcgettext takes the lock anyway); clang's runtime initializes the same way.
 *
 *    This definition makes that lookup succeed, so dlerror() has no message to translate and
 *    gettext is never entered under the lock. ASan calls the demangler only for Swift symbol names
 *    ("_T..." or "$s..."), which no process here has; NULL means "not demangled".
 *
 * 2. __ubsan_default_options: UBSan initializes lazily, at its first report, and then reads
 *    UBSAN_OPTIONS from /proc/self/environ; in a postgres child (a backend, the demper worker) that
 *    area has been overwritten by the process title (ps_status.c), so UBSAN_OPTIONS is lost and
 *    UBSan would report without a stack trace and exit(1). These defaults apply wherever the
 *    environment is gone. (log_path is not honoured by this UBSan next to ASan: its reports go to
 *    stderr, which is the server log; the tests read both.)
 */
#include <stddef.h>

char *swift_demangle(const char *mangled, size_t mangled_length, char *output,
                     size_t *output_length, unsigned flags);
const char *__ubsan_default_options(void);

char *
swift_demangle(const char *mangled, size_t mangled_length, char *output, size_t *output_length,
               unsigned flags)
{
	(void) mangled;
	(void) mangled_length;
	(void) output;
	(void) output_length;
	(void) flags;
	return NULL;
}

const char *
__ubsan_default_options(void)
{
	return "print_stacktrace=1:halt_on_error=1:abort_on_error=1";
}
