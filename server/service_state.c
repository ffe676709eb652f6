/* service_state.c - the state names. */
#include "service_state.h"

const char *service_state_name(service_state s) {
    switch (s) {
    case SERVICE_LOADING: return "loading";
    case SERVICE_WARMING: return "warming";
    case SERVICE_READY: return "ready";
    case SERVICE_DRAINING: return "draining";
    default: return "unknown";
    }
}
