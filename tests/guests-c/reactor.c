/* A reactor whose constructor does its work once: wedge runs it at load and
 * snapshots the result. Each response shows what the snapshot holds (the
 * table, when it was built, how often the constructor ran) beside what the
 * request brought and what this instance has done, which a fresh instance
 * per request keeps at one. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "wedge.h"

static long long squares[256];
static int constructor_runs;
static long long built_at_ns;
static int handled;

__attribute__((constructor)) static void build(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    built_at_ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
    for (int i = 0; i < 256; i++) {
        squares[i] = (long long)i * i;
    }
    constructor_runs++;
}

static void handle(void) {
    handled++;
    char body[64] = {0};
    size_t n = fread(body, 1, sizeof body - 1, stdin);
    body[n] = 0;
    const char *method = getenv("REQUEST_METHOD");
    const char *query = getenv("QUERY_STRING");
    printf("Content-Type: text/plain\r\n\r\n");
    printf("constructor_runs=%d handled=%d square12=%lld built_at=%lld method=%s query=%s body=%s\n",
           constructor_runs, handled, squares[12], built_at_ns, method ? method : "-",
           query ? query : "-", body);
}

WEDGE_HANDLER(handle)
