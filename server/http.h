/* http.h - the HTTP front end: libmicrohttpd routes, request bodies, suspended waits.
 *
 * Routes: POST /classify, GET /healthz, GET /readyz, GET /metrics, GET / (the demo page,
 * server/demo_page.h) and the KServe v2 routes under /v2 (api/kserve_v2.h; v2 infer goes
 * through the same batcher as /classify); every route is in api/openapi.yaml. Image decoding
 * and preprocessing run on the HTTP threads; a request waiting for inference does not hold
 * one: its connection is suspended and resumed by the worker that finished it (batcher.h).
 *
 * The server starts before the models exist so /healthz and /readyz answer during loading;
 * http_server_serve() hands it the model repository (server/repository.h), once, and
 * http_server_set_state() moves the one service state (loading -> warming -> ready ->
 * draining). All functions are thread-safe. */
#ifndef HTTP_H
#define HTTP_H

#include "arrivals.h"
#include "batcher.h"
#include "config.h"
#include "metrics.h"
#include "repository.h"
#include "served_model.h"
#include "service_state.h"

typedef struct http_server http_server;

/* Binds and starts serving. cfg and m are borrowed for the server's lifetime. */
http_server *http_server_start(const vggserve_config *cfg, metrics *m, char *err, size_t errlen);

/* The port actually bound (useful with port 0); the admin listener's, or -1 without one. */
int http_server_port(const http_server *s);
int http_server_admin_port(const http_server *s);

/* The models being served (borrowed; it must outlive the server), handed over once, before
 * the state turns ready; the server looks each request's model up in it. */
void http_server_serve(http_server *s, repository *repo);
void http_server_set_state(http_server *s, service_state st);
service_state http_server_state(const http_server *s);

/* The inference uploads being received or decoded: the batcher's waits and the drain read it. */
const arrivals *http_server_arrivals(const http_server *s);

/* Requests accepted and not yet answered (for shutdown). */
int http_server_pending(http_server *s);

/* Stops the daemon; call after the batcher has drained, so no connection is suspended. */
void http_server_stop(http_server *s);

#endif
