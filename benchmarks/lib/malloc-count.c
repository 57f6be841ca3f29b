// An LD_PRELOAD allocation counter for benchmarks/allocations.sh: counts malloc, calloc, realloc,
// posix_memalign and free calls, and writes the two totals to $MALLOC_COUNT_FILE every 50 ms from a
// thread of its own. Counts are deterministic where CPU time on a shared machine is not.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static atomic_long allocations, frees;
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void (*real_free)(void *);
// dlsym itself may calloc before the real one is known: served from here, never freed.
static char early[8192];
static size_t early_used;

static void resolve(void) {
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_free = dlsym(RTLD_NEXT, "free");
}

void *malloc(size_t size) {
    if (!real_malloc) resolve();
    atomic_fetch_add(&allocations, 1);
    return real_malloc(size);
}

void *calloc(size_t count, size_t size) {
    if (!real_calloc) {
        void *p = early + early_used;
        early_used += (count * size + 15) & ~(size_t)15;
        return early_used <= sizeof early ? p : NULL;
    }
    atomic_fetch_add(&allocations, 1);
    return real_calloc(count, size);
}

void *realloc(void *p, size_t size) {
    if (!real_realloc) resolve();
    atomic_fetch_add(&allocations, 1);
    return real_realloc(p, size);
}

int posix_memalign(void **p, size_t alignment, size_t size) {
    if (!real_posix_memalign) resolve();
    atomic_fetch_add(&allocations, 1);
    return real_posix_memalign(p, alignment, size);
}

void free(void *p) {
    if ((char *)p >= early && (char *)p < early + sizeof early) return;
    if (!real_free) resolve();
    if (p) atomic_fetch_add(&frees, 1);
    real_free(p);
}

static void *report(void *unused) {
    (void)unused;
    const char *path = getenv("MALLOC_COUNT_FILE");
    for (;;) {
        usleep(50000);
        FILE *f = fopen(path, "w");
        if (f) {
            fprintf(f, "%ld %ld\n", atomic_load(&allocations), atomic_load(&frees));
            fclose(f);
        }
    }
    return NULL;
}

__attribute__((constructor)) static void start(void) {
    resolve();
    if (getenv("MALLOC_COUNT_FILE")) {
        pthread_t thread;
        pthread_create(&thread, NULL, report, NULL);
    }
}
