// An LD_PRELOAD allocation counter for benchmarks/allocations.sh: counts malloc, calloc, realloc,
// posix_memalign and free calls, and the Swift runtime's reference counting and exclusivity checks
// called from the program (swift_retain, swift_release, swift_bridgeObjectRetain/Release,
// swift_beginAccess: calls inside libswiftCore itself are not seen), and writes the totals to
// $MALLOC_COUNT_FILE every 50 ms from a thread of its own. Counts are deterministic where CPU time
// on a shared machine is not.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static atomic_long allocations, frees, retains, releases, accesses;
static void *(*real_swift_retain)(void *);
static void (*real_swift_release)(void *);
static void *(*real_swift_bridgeObjectRetain)(void *);
static void (*real_swift_bridgeObjectRelease)(void *);
static void (*real_swift_beginAccess)(void *, void *, unsigned long, void *);
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

static void resolve_swift(void) {
    real_swift_retain = dlsym(RTLD_NEXT, "swift_retain");
    real_swift_release = dlsym(RTLD_NEXT, "swift_release");
    real_swift_bridgeObjectRetain = dlsym(RTLD_NEXT, "swift_bridgeObjectRetain");
    real_swift_bridgeObjectRelease = dlsym(RTLD_NEXT, "swift_bridgeObjectRelease");
    real_swift_beginAccess = dlsym(RTLD_NEXT, "swift_beginAccess");
}

void *swift_retain(void *object) {
    if (!real_swift_retain) resolve_swift();
    atomic_fetch_add_explicit(&retains, 1, memory_order_relaxed);
    return real_swift_retain(object);
}

void swift_release(void *object) {
    if (!real_swift_release) resolve_swift();
    atomic_fetch_add_explicit(&releases, 1, memory_order_relaxed);
    real_swift_release(object);
}

void *swift_bridgeObjectRetain(void *object) {
    if (!real_swift_bridgeObjectRetain) resolve_swift();
    atomic_fetch_add_explicit(&retains, 1, memory_order_relaxed);
    return real_swift_bridgeObjectRetain(object);
}

void swift_bridgeObjectRelease(void *object) {
    if (!real_swift_bridgeObjectRelease) resolve_swift();
    atomic_fetch_add_explicit(&releases, 1, memory_order_relaxed);
    real_swift_bridgeObjectRelease(object);
}

void swift_beginAccess(void *pointer, void *buffer, unsigned long flags, void *pc) {
    if (!real_swift_beginAccess) resolve_swift();
    atomic_fetch_add_explicit(&accesses, 1, memory_order_relaxed);
    real_swift_beginAccess(pointer, buffer, flags, pc);
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
            fprintf(f, "%ld %ld %ld %ld %ld\n", atomic_load(&allocations), atomic_load(&frees), atomic_load(&retains),
                    atomic_load(&releases), atomic_load(&accesses));
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
