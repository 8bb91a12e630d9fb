/* c-stock: a stock counter written in C with guest-sdk/c/wedge.h, selling
 * from the same `inventory` store as the Rust `inventory` example.
 *
 *   GET  /c-stock/<sku>      {"sku":"..","stock":N}, or 404
 *   POST /c-stock/<sku>/buy  {"sku":"..","remaining":N}, or 409 when sold out
 *
 * Build: python -m ziglang cc --target=wasm32-wasi -O2 -s -I ../../guest-sdk/c -o v1.wasm main.c
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wedge.h"

static void reply(int status, const char *json) {
    printf("Status: %d\nContent-Type: application/json\n\n%s\n", status, json);
}

/* A SKU is 1-64 of A-Z a-z 0-9 - _ */
static int valid_sku(const char *sku, size_t len) {
    if (len == 0 || len > 64) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = sku[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

int main(void) {
    const char *method = getenv("REQUEST_METHOD");
    const char *path = getenv("PATH_INFO");
    char sku[65], json[256], error[64];
    uint32_t store;
    if (!method || !path || path[0] != '/') {
        reply(404, "{\"error\":\"no such endpoint\"}");
        return 0;
    }
    const char *rest = path + 1;
    const char *slash = strchr(rest, '/');
    size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
    if (!valid_sku(rest, len)) {
        reply(400, "{\"error\":\"a sku is 1-64 of A-Z a-z 0-9 - _\"}");
        return 0;
    }
    memcpy(sku, rest, len);
    sku[len] = 0;
    int32_t status = wedge_store_open("inventory", &store);
    if (status != WEDGE_OK) {
        snprintf(error, sizeof error, "{\"error\":\"%s\"}", wedge_status_name(status));
        reply(500, error);
        return 0;
    }
    if (strcmp(method, "GET") == 0 && !slash) {
        char *value = NULL;
        uint32_t value_len = 0;
        status = wedge_store_get(store, sku, &value, &value_len);
        if (status == WEDGE_NOT_FOUND) {
            reply(404, "{\"error\":\"unknown sku\"}");
        } else if (status != WEDGE_OK) {
            snprintf(error, sizeof error, "{\"error\":\"%s\"}", wedge_status_name(status));
            reply(500, error);
        } else {
            snprintf(json, sizeof json, "{\"sku\":\"%s\",\"stock\":%s}", sku, value);
            reply(200, json);
            free(value);
        }
    } else if (strcmp(method, "POST") == 0 && slash && strcmp(slash, "/buy") == 0) {
        int64_t left = 0;
        status = wedge_store_add(store, sku, -1, 0, INT64_MAX, &left);
        if (status == WEDGE_OUT_OF_RANGE) {
            snprintf(json, sizeof json, "{\"error\":\"sold out\",\"remaining\":%" PRId64 "}", left);
            reply(409, json);
        } else if (status != WEDGE_OK) {
            snprintf(error, sizeof error, "{\"error\":\"%s\"}", wedge_status_name(status));
            reply(500, error);
        } else {
            snprintf(json, sizeof json, "{\"sku\":\"%s\",\"remaining\":%" PRId64 "}", sku, left);
            reply(200, json);
        }
    } else {
        reply(404, "{\"error\":\"no such endpoint\"}");
    }
    return 0;
}
