/* repository.h - the models being served: several models, each with its versions, loaded,
 * swapped and unloaded while the service runs.
 *
 * A model is a name (a folder of the model repository, or the one model of --weights); a
 * served version of it (repository_version) owns its network (vgg_model), labels and batcher:
 * its own workers and queue. The front ends look a version up by name and version number
 * (repository_acquire), hold it for as long as a job of theirs uses it, and release it (the
 * job does, through inference_job.release); a version retired by a swap or an unload is freed
 * only once its last job has been answered.
 *
 * DESIGN
 * One mutex (repo->lock) guards the model table, each model's list of served versions, the
 * pending operations and the retired versions; nothing slow happens under it. One loader
 * thread runs the operations one at a time, in order: a load reads the settings
 * (config.json, or the load's override), picks the versions (version_policy), builds each new
 * one beside those serving (weights, reorders, warm-up of its own workers), and then, under
 * the lock, swaps the model's list in one step: a job that acquired before the swap runs on
 * the old version, one after on the new, never a mix. A version that fails to build leaves
 * the list untouched and its reason in the index. An unload empties the list at once (new
 * requests get 503) and retires the versions. A retired version is freed by the loader thread
 * when its reference count reaches zero: the batcher is drained (empty by then: every job held
 * a reference) and its workers joined, the network and labels freed, and malloc_trim returns
 * the pages. Every operation's completion is called once, from the loader thread.
 * Observability: each version has its metrics series (metrics.h: the model and version labels),
 * added when its build starts and removed when it is freed; the loader observes each load's
 * time (vggserve_model_load_seconds) and logs load, swap, failure and free with their times;
 * vggserve_model_state reads the index at each scrape.
 *
 * Swap policy memory: before building, the load takes the versions it replaces out of the
 * list (new requests: 503, the model is loading) and waits, on the same condition variable,
 * until their last job is answered and they are freed; only then does it build. Peak memory
 * is one version instead of two; a build that fails then leaves the model without them.
 *
 * Control poll: once the start-up loads have ended, the loader thread also wakes every
 * poll_secs (a timed wait on the same condition variable; queued operations and frees come
 * first) and rescans the folder. A version counts when its weights file is complete
 * (repo_weights_complete) and its identity (size, mtime, inode) is the one the previous scan
 * saw, or it is the file a served version was built from. While a version the policy picks
 * among all the folders is not ready, a serving model is left as it is (no fall back to an
 * older version while a file is copied). What the policy picks from the ready ones is
 * compared with what is served; a difference is an ordinary load (the swap above) restricted
 * to those versions, a model folder gone is an unload and its entry leaves the table (404),
 * and a model left with no version folder is unloaded. A load that fails keeps what serves
 * and its reason in the index; its target (versions, their files, config.json) is remembered
 * and not retried until one of them changes.
 *
 * Workers of all models share the cores: each version's workers are oneDNN threads of
 * threads_per_worker each (default: the cores divided among the model's workers), and the OS
 * schedules them; a model's queue is its own, so a busy model fills its own queue (503)
 * without starving another's admission.
 *
 * Thread-safety: every function may be called from any thread, except create and free. */
#ifndef SERVER_REPOSITORY_H
#define SERVER_REPOSITORY_H

#include "repository_types.h"

/* Creates the repository and its loader thread; loads nothing. NULL with err. */
repository *repository_create(const repository_options *o, char *err, size_t errlen);

/* Drains every version's batcher (grace_ms for queued work), then frees everything. */
void repository_drain(repository *r, int64_t grace_ms);
void repository_free(repository *r);

repo_control repository_control_mode(const repository *r);

/* ---------------------------------------------------------------- operations */

/* Queues a load (config: an override of config.json's text, or NULL; copied) or an unload
 * of name. API_OK: done will be called. Otherwise (an invalid name: API_BAD_REQUEST; no such
 * model: API_NOT_FOUND) msg says why and done is not called. */
api_status repository_request(repository *r, repository_op op, const char *name,
                              const char *config, repository_done done, void *ctx, char *msg,
                              size_t msglen);

/* The start-up loads: every model (control none) or those named (explicit; names is a
 * comma-separated list). Blocks until they end or *abort turns true (polled every 100 ms;
 * the warm-ups in progress are stopped). 0; 1 when aborted; -1 with err when a load failed. */
int repository_load_initial(repository *r, const char *names, bool (*aborted)(void *ctx),
                            void *ctx, char *err, size_t errlen);

/* ---------------------------------------------------------------- lookups */

/* Whether name is a model the repository knows (loaded or not). */
bool repository_knows(repository *r, const char *name);

/* The model /classify answers without ?model= into out: default_model, or the only model.
 * false when there is none. */
bool repository_default_model(repository *r, char *out, size_t cap);

/* A served version of name: version (0: the highest served), with a reference the caller
 * gives back with repository_release. NULL with *st API_NOT_FOUND (no such model or version)
 * or API_NOT_READY (not loaded, loading or unloading), and msg. */
repository_version *repository_acquire(repository *r, const char *name, long long version,
                                       api_status *st, char *msg, size_t msglen);
void repository_release(repository_version *v);
/* The same, typed for inference_job.release. */
void repository_release_hold(void *v);

const served_model *repository_version_model(const repository_version *v);
batcher *repository_version_batcher(repository_version *v);
long long repository_version_number(const repository_version *v);
const model_settings *repository_version_settings(const repository_version *v);

/* The index: every model, and each of its versions' state, into out (at most max). The count. */
int repository_index(repository *r, kserve_v2_index_entry *out, int max);

#endif
