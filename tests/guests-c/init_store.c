/* A reactor whose constructor opens a store: not allowed, as stores belong
 * to requests, so the module must not load. */
#include "wedge.h"

static uint32_t store;

__attribute__((constructor)) static void open_early(void) {
    wedge_kv_open("inventory", 9, &store);
}

static void handle(void) {
    printf("Content-Type: text/plain\r\n\r\nstore %u\n", store);
}

WEDGE_HANDLER(handle)
