/* service_state.h - the one service state (loading -> warming -> ready -> draining), which
 * http.c answers /readyz by and metrics.c renders as vggserve_state; its one name table. */
#ifndef SERVER_SERVICE_STATE_H
#define SERVER_SERVICE_STATE_H

typedef enum {
    SERVICE_LOADING,
    SERVICE_WARMING,
    SERVICE_READY,
    SERVICE_DRAINING,
    SERVICE_STATE_COUNT
} service_state;

/* "loading", "warming", "ready", "draining" ("unknown" otherwise). */
const char *service_state_name(service_state s);

#endif
