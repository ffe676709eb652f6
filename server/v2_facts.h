/* v2_facts.h - what the v2 metadata, config, index and statistics answers read from the
 * running service, for both front ends (http_v2.c, grpc_service.c).
 *
 * Reads the configuration, the served model and the metrics counters; thread-safe as
 * metrics.h is. */
#ifndef SERVER_V2_FACTS_H
#define SERVER_V2_FACTS_H

#include <stdbool.h>

#include "config.h"
#include "kserve_v2.h"
#include "metrics.h"
#include "model_settings.h"
#include "repository.h"
#include "served_model.h"

/* The facts of served model m (its settings s; NULL: the service's). */
kserve_v2_model_facts v2_model_facts(const vggserve_config *cfg, const served_model *m,
                                     const model_settings *s, bool ready);

/* Triton's statistics of view v (KSERVE_V2_VIEW_COUNT: every view) of model (NULL: every
 * model), version (0: every version loaded), read from the counters /metrics renders: one
 * entry per loaded version and view, each with its own counts (new reference). */
json_t *v2_stats_json(metrics *m, const char *model, long long version, kserve_v2_view v);

/* POST /v2/repository/index's answer (HTTP's and gRPC's RepositoryIndex): every model and
 * version of repo with its state; before the service is ready (ready false) no row says
 * READY. ready_only: the READY rows only. A new reference, or NULL when out of memory. */
json_t *v2_repository_index_json(repository *repo, bool ready, bool ready_only);

#endif
