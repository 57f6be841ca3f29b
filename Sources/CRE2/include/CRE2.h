#ifndef MESHGATE_CRE2_H
#define MESHGATE_CRE2_H
// A small C face over RE2 (Debian/Ubuntu: libre2-dev), for Swift. RE2 matches in time linear in the
// subject, with no backtracking: the engine Istio's `regex:` matches run on in Envoy.
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A compiled RE2 program. Immutable once compiled: any number of threads may match with it at once.
typedef struct meshgate_re2 meshgate_re2;

/// Compiles `pattern` (`length` bytes of UTF-8) with RE2's default options and its logging off.
/// On failure returns NULL and, when `error` is not NULL, stores RE2's message there as a
/// NUL-terminated string the caller releases with `meshgate_re2_free_error`.
meshgate_re2 *_Nullable meshgate_re2_compile(const char *_Nonnull pattern, size_t length,
                                             char *_Nullable *_Nullable error);

/// RE2's program size: a rough measure of the compiled program's cost (what Envoy limits).
int meshgate_re2_program_size(const meshgate_re2 *_Nonnull re);

/// 1 when the pattern matches all `length` bytes of `subject`, else 0.
int meshgate_re2_full_match(const meshgate_re2 *_Nonnull re, const char *_Nullable subject, size_t length);

/// 1 when `rewrite` (`length` bytes, `\\1`-style references) suits the pattern's capture groups; else 0,
/// with RE2's message stored in `error` as for `meshgate_re2_compile`.
int meshgate_re2_check_rewrite(const meshgate_re2 *_Nonnull re, const char *_Nonnull rewrite, size_t length,
                               char *_Nullable *_Nullable error);

/// `subject` with every non-overlapping match replaced by `rewrite` (RE2's GlobalReplace), as a
/// malloc'd NUL-terminated string of `*result_length` bytes the caller releases with
/// `meshgate_re2_free_error`; NULL when out of memory.
char *_Nullable meshgate_re2_global_replace(const meshgate_re2 *_Nonnull re, const char *_Nullable subject, size_t length,
                                            const char *_Nonnull rewrite, size_t rewrite_length,
                                            size_t *_Nonnull result_length);

void meshgate_re2_free(meshgate_re2 *_Nullable re);
void meshgate_re2_free_error(char *_Nullable error);

#ifdef __cplusplus
}
#endif
#endif
