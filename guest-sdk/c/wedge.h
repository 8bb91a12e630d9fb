/* wedge.h: the wedge host module for C handlers (key-value stores and
 * outbound HTTP), one header, no library. Every function is declared exactly
 * as docs/abi.md gives it; the `static inline` helpers below them are
 * conveniences built only on those.
 *
 * A handler is a WASI command: read the request from the environment
 * (REQUEST_METHOD, PATH_INFO, QUERY_STRING, HTTP_*) and stdin, print a CGI
 * response to stdout. Build it with zig:
 *
 *     python -m ziglang cc --target=wasm32-wasi -O2 -I guest-sdk/c -o v1.wasm main.c
 *
 * A handler may instead be a reactor, which starts faster: name the
 * function that serves a request with WEDGE_HANDLER(fn) and build with
 * -mexec-model=reactor. wedge runs the module's constructors once when it
 * loads it, snapshots the initialized memory, and for each request starts
 * from that snapshot and calls only fn (see docs/abi.md, "Reactor
 * handlers"). fn reads the request and prints the response as main would.
 *
 * Every function returns a status (enum wedge_status); results go to
 * out-pointers, which need no alignment. Pointers and lengths are 32-bit
 * (size_t on wasm32), read by the host as unsigned.
 */
#ifndef WEDGE_H
#define WEDGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEDGE_IMPORT(name) __attribute__((import_module("wedge"), import_name(name)))

enum wedge_status {
    WEDGE_OK = 0,
    WEDGE_NOT_FOUND = 1,     /* the key does not exist; no error to report */
    WEDGE_ACCESS_DENIED = 2, /* store not in `kv`, or URL/address not in `outbound` */
    WEDGE_OUT_OF_RANGE = 3,  /* kv_add would leave [min, max]; nothing changed */
    WEDGE_TOO_LARGE = 4,     /* key > 1 KiB, value > 1 MiB, response > max_response */
    WEDGE_INVALID = 5,       /* bad pointer, handle, key, URL, method or header */
    WEDGE_IO = 6,            /* storage failed, or the connection broke */
    WEDGE_TIMEOUT = 7,       /* an outbound call ran out of time */
    WEDGE_CONNECT = 8,       /* no address, or none took the connection */
    WEDGE_TLS = 9,           /* the TLS handshake failed */
    WEDGE_BUSY = 10          /* too many outbound calls open */
};

/* http_send flags */
#define WEDGE_HTTP_FOLLOW_REDIRECTS 1u

/* ---- The host functions ---- */

WEDGE_IMPORT("abi_version") int32_t wedge_abi_version(void);

WEDGE_IMPORT("kv_open")
int32_t wedge_kv_open(const char *name, size_t name_len, uint32_t *handle_out);
/* On WEDGE_OK writes the value's length to *len_out always, and the value to
 * buf only when it fits in cap: call again with a larger buffer. */
WEDGE_IMPORT("kv_get")
int32_t wedge_kv_get(uint32_t h, const char *key, size_t key_len, void *buf, size_t cap,
                     uint32_t *len_out);
WEDGE_IMPORT("kv_exists")
int32_t wedge_kv_exists(uint32_t h, const char *key, size_t key_len);
/* Writes keys as u32 length + bytes; out[0] bytes, out[1] keys, out[2] 1 if more follow. */
WEDGE_IMPORT("kv_list")
int32_t wedge_kv_list(uint32_t h, const char *prefix, size_t prefix_len, const char *after,
                      size_t after_len, void *buf, size_t cap, uint32_t out[3]);
WEDGE_IMPORT("kv_set")
int32_t wedge_kv_set(uint32_t h, const char *key, size_t key_len, const void *value,
                     size_t value_len);
WEDGE_IMPORT("kv_delete")
int32_t wedge_kv_delete(uint32_t h, const char *key, size_t key_len);
/* Writes the new value, or on WEDGE_OUT_OF_RANGE the current one. */
WEDGE_IMPORT("kv_add")
int32_t wedge_kv_add(uint32_t h, const char *key, size_t key_len, int64_t delta, int64_t min,
                     int64_t max, int64_t *value_out);
/* expected_len = WEDGE_ABSENT: only if the key is absent. */
#define WEDGE_ABSENT ((size_t)0xFFFFFFFFu)
WEDGE_IMPORT("kv_cas")
int32_t wedge_kv_cas(uint32_t h, const char *key, size_t key_len, const void *expected,
                     size_t expected_len, const void *new_value, size_t new_len,
                     uint32_t *swapped_out);

/* headers: "Name: value\n" lines. out[0] the response handle, out[1] the status. */
WEDGE_IMPORT("http_send")
int32_t wedge_http_send(const char *method, size_t method_len, const char *url, size_t url_len,
                        const char *headers, size_t headers_len, const void *body,
                        size_t body_len, uint32_t flags, uint32_t out[2]);
/* "name: value\n" lines; same buffer rule as kv_get. */
WEDGE_IMPORT("http_headers")
int32_t wedge_http_headers(uint32_t handle, char *buf, size_t cap, uint32_t *len_out);
/* *n_out = 0 at the end of the body. A failed read also frees the handle. */
WEDGE_IMPORT("http_read")
int32_t wedge_http_read(uint32_t handle, void *buf, size_t cap, uint32_t *n_out);
WEDGE_IMPORT("http_close") int32_t wedge_http_close(uint32_t handle);
/* The last failed http_* call's message; WEDGE_NOT_FOUND when none failed. */
WEDGE_IMPORT("http_error") int32_t wedge_http_error(char *buf, size_t cap, uint32_t *len_out);

/* ---- Helpers ---- */

/* The name of a status, for logs. */
/* Hands what the handler printed so far to wedge. stdout is buffered by
 * libc, so a streaming handler (server-sent events, a large download) calls
 * this after each piece: wedge sends the head and what was written once the
 * handler waits on anything (a sleep, a store call, an outbound request),
 * has computed for 10 ms, or has written 64 KiB, and after that each piece
 * as it is flushed. A plain handler never needs it: stdout is flushed at
 * exit. */
static inline int wedge_flush(void) { return fflush(stdout); }

static inline const char *wedge_status_name(int32_t status) {
    static const char *const names[] = {"ok",      "not_found", "access_denied", "out_of_range",
                                        "too_large", "invalid",  "io",            "timeout",
                                        "connect", "tls",       "busy"};
    return status >= 0 && status <= 10 ? names[status] : "unknown";
}

/* Opens the store called `name` (a C string). */
static inline int32_t wedge_store_open(const char *name, uint32_t *handle_out) {
    return wedge_kv_open(name, strlen(name), handle_out);
}

/* The value of `key` in a buffer from malloc (NUL-terminated, for text);
 * *len_out is its length. Free it with free(). */
static inline int32_t wedge_store_get(uint32_t h, const char *key, char **value_out,
                                      uint32_t *len_out) {
    size_t cap = 256;
    for (;;) {
        char *buf = (char *)malloc(cap + 1);
        if (!buf) return WEDGE_IO;
        uint32_t len = 0;
        int32_t status = wedge_kv_get(h, key, strlen(key), buf, cap, &len);
        if (status != WEDGE_OK) {
            free(buf);
            return status;
        }
        if (len <= cap) {
            buf[len] = 0;
            *value_out = buf;
            *len_out = len;
            return WEDGE_OK;
        }
        free(buf);
        cap = len;
    }
}

/* Sets `key` to the C string `value`. */
static inline int32_t wedge_store_set(uint32_t h, const char *key, const char *value) {
    return wedge_kv_set(h, key, strlen(key), value, strlen(value));
}

/* Adds `delta` to the counter at `key` within [min, max]. */
static inline int32_t wedge_store_add(uint32_t h, const char *key, int64_t delta, int64_t min,
                                      int64_t max, int64_t *value_out) {
    return wedge_kv_add(h, key, strlen(key), delta, min, max, value_out);
}

/* Sends a request (`headers` as "Name: value\n" lines, or NULL) and reads the
 * whole body into a buffer from malloc, NUL-terminated; free it with free(). */
static inline int32_t wedge_fetch(const char *method, const char *url, const char *headers,
                                  const void *body, size_t body_len, uint32_t *status_out,
                                  char **body_out, size_t *body_len_out) {
    uint32_t out[2];
    const char *h = headers ? headers : "";
    int32_t status = wedge_http_send(method, strlen(method), url, strlen(url), h, strlen(h),
                                     body, body_len, 0, out);
    if (status != WEDGE_OK) return status;
    size_t len = 0, cap = 4096;
    char *buf = (char *)malloc(cap + 1);
    if (!buf) {
        wedge_http_close(out[0]);
        return WEDGE_IO;
    }
    for (;;) {
        if (len == cap) {
            char *bigger = (char *)realloc(buf, cap * 2 + 1);
            if (!bigger) {
                free(buf);
                wedge_http_close(out[0]);
                return WEDGE_IO;
            }
            buf = bigger;
            cap *= 2;
        }
        uint32_t n = 0;
        status = wedge_http_read(out[0], buf + len, cap - len, &n);
        if (status != WEDGE_OK) {
            free(buf); /* the host already let the handle go */
            return status;
        }
        if (n == 0) break;
        len += n;
    }
    wedge_http_close(out[0]);
    buf[len] = 0;
    *status_out = out[1];
    *body_out = buf;
    *body_len_out = len;
    return WEDGE_OK;
}

/* The last failed http_* call's message in `buf`, NUL-terminated; empty when
 * none failed or it does not fit. */
static inline const char *wedge_last_error(char *buf, size_t cap) {
    uint32_t len = 0;
    if (cap == 0) return "";
    if (wedge_http_error(buf, cap - 1, &len) != WEDGE_OK) {
        buf[0] = 0;
        return buf;
    }
    if (len > cap - 1) {
        /* Too long for buf: the host copied nothing. */
        buf[0] = 0;
        return buf;
    }
    buf[len] = 0;
    return buf;
}

/* ---- Reactor handlers ---- */

/* Exports fn (void fn(void)) as the module's per-request entry point,
 * `wedge_handle`, and flushes stdout after it returns. Build with
 * -mexec-model=reactor:
 *
 *     python -m ziglang cc --target=wasm32-wasi -mexec-model=reactor -O2 -I guest-sdk/c -o v1.wasm main.c
 *
 * Constructors run once, without a request: the environment is empty there,
 * stdin and stdout trap, and so does every wedge_* function. Call getenv in
 * fn, not in a constructor, or every request sees the empty environment. */
#define WEDGE_HANDLER(fn)                                                 \
    __attribute__((export_name("wedge_handle"))) void wedge_handle(void) { \
        fn();                                                             \
        fflush(stdout);                                                   \
    }

#ifdef __cplusplus
}
#endif

#endif /* WEDGE_H */
