/* A reactor whose constructor never returns: the load must give up on it
 * when the compile timeout runs out, not hang. */
#include "wedge.h"

static volatile int spins;

__attribute__((constructor)) static void spin(void) {
    for (;;) {
        spins++;
    }
}

static void handle(void) {
    printf("Content-Type: text/plain\r\n\r\nspins %d\n", spins);
}

WEDGE_HANDLER(handle)
