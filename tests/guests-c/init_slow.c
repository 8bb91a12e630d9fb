/* A reactor whose constructor takes a second and a half (a sleep, as a big
 * runtime's start-up might take): the node must serve everything else
 * meanwhile, and say this function is still pending. */
#include <time.h>

#include "wedge.h"

static int ready;

__attribute__((constructor)) static void take_time(void) {
    struct timespec pause = {1, 500000000};
    nanosleep(&pause, NULL);
    ready = 1;
}

static void handle(void) {
    printf("Content-Type: text/plain\r\n\r\nready %d\n", ready);
}

WEDGE_HANDLER(handle)
