/* c-hello: greets the caller, in C, built as a reactor (WEDGE_HANDLER):
 * wedge initializes it once and starts every request from the snapshot.
 * Try /c-hello and /c-hello?name=edge. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wedge.h"

/* The value of `name` in the query string, undecoded, or NULL. */
static const char *name_param(const char *query, size_t *len) {
    for (const char *p = query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t item = end ? (size_t)(end - p) : strlen(p);
        if (item > 5 && strncmp(p, "name=", 5) == 0) {
            *len = item - 5;
            return p + 5;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

static void hello(void) {
    size_t len = 0;
    const char *name = name_param(getenv("QUERY_STRING"), &len);
    fputs("Content-Type: text/plain; charset=utf-8\r\n\r\n", stdout);
    if (name) {
        printf("Hello, %.*s!\n", (int)len, name);
    } else {
        fputs("Hello from wedge!\n", stdout);
    }
}

WEDGE_HANDLER(hello)
