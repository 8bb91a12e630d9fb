/* A reactor whose constructor reads stdin, the request body, before there is
 * a request: the module must not load. */
#include "wedge.h"

static int first;

__attribute__((constructor)) static void read_early(void) {
    first = getchar();
}

static void handle(void) {
    printf("Content-Type: text/plain\r\n\r\nfirst %d\n", first);
}

WEDGE_HANDLER(handle)
