/* A test guest written in C with wedge.h: a stock decrement on the key-value
 * store and an outbound call.
 *
 *   /<route>/buy?sku=<sku>   take one unit: 200 "sold, <n> left" or 409 "sold out"
 *   /<route>/fetch?url=<url> call url: 200 "<status> <body bytes>" or "error <what>"
 *   /<route>/events?n=<n>    n server-sent events 200 ms apart ("data: <i> <unix ms>"),
 *                            each flushed with wedge_flush
 *
 * Query values are taken as sent (no percent-decoding), except %3A and %2F in
 * the URL.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wedge.h"

/* The value of `name` in the query string, in `out`. */
static int query_value(const char *name, char *out, size_t cap) {
    const char *q = getenv("QUERY_STRING");
    size_t n = strlen(name);
    while (q && *q) {
        if (strncmp(q, name, n) == 0 && q[n] == '=') {
            q += n + 1;
            size_t len = 0;
            while (*q && *q != '&' && len + 1 < cap) {
                if (q[0] == '%' && q[1] && q[2]) {
                    char hex[3] = {q[1], q[2], 0};
                    out[len++] = (char)strtol(hex, NULL, 16);
                    q += 3;
                } else {
                    out[len++] = *q++;
                }
            }
            out[len] = 0;
            return 1;
        }
        q = strchr(q, '&');
        if (q) q++;
    }
    return 0;
}

static void reply(int status, const char *text) {
    printf("Status: %d\nContent-Type: text/plain\n\n%s\n", status, text);
}

static void buy(void) {
    char sku[256], text[128];
    uint32_t store;
    int64_t left = 0;
    if (!query_value("sku", sku, sizeof sku)) return reply(400, "no sku");
    int32_t status = wedge_store_open("inventory", &store);
    if (status == WEDGE_OK) status = wedge_store_add(store, sku, -1, 0, INT64_MAX, &left);
    if (status == WEDGE_OUT_OF_RANGE) return reply(409, "sold out");
    if (status != WEDGE_OK) return reply(500, wedge_status_name(status));
    snprintf(text, sizeof text, "sold, %" PRId64 " left", left);
    reply(200, text);
}

static void fetch(void) {
    char url[2048], text[1024], message[512];
    uint32_t code = 0;
    char *body = NULL;
    size_t len = 0;
    if (!query_value("url", url, sizeof url)) return reply(400, "no url");
    int32_t status = wedge_fetch("GET", url, "x-from: wedge-c\n", NULL, 0, &code, &body, &len);
    if (status != WEDGE_OK) {
        snprintf(text, sizeof text, "error %s: %s", wedge_status_name(status),
                 wedge_last_error(message, sizeof message));
        return reply(200, text);
    }
    snprintf(text, sizeof text, "%" PRIu32 " %zu", code, len);
    free(body);
    reply(200, text);
}

/* n events 200 ms apart, each flushed as it is written. */
static void events(void) {
    char text[16];
    int n = query_value("n", text, sizeof text) ? atoi(text) : 0;
    printf("Content-Type: text/event-stream\n\n");
    wedge_flush();
    for (int i = 0; i < n; i++) {
        if (i > 0) {
            struct timespec pause = {0, 200 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        printf("data: %d %lld\n\n", i, (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
        wedge_flush();
    }
}

int main(void) {
    const char *path = getenv("PATH_INFO");
    if (path && strcmp(path, "/buy") == 0) {
        buy();
    } else if (path && strcmp(path, "/fetch") == 0) {
        fetch();
    } else if (path && strcmp(path, "/events") == 0) {
        events();
    } else {
        reply(404, "no such endpoint");
    }
    return 0;
}
