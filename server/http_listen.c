/* http_listen.c - the listeners: address checks, TLS, the main and admin daemons, and the
 * connection guard's notifications. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "http_internal.h"
#include "image_decode.h"
#include "log.h"

/* MHD's connection notifications: every accepted connection is guarded (guard.h) from its
 * accept to its close. A connection the guard cut before it finished any request line is
 * counted here; one with a request line is logged by on_completed. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci ? guard_open(s->guard, ci->connect_fd) : NULL;
        return;
    }
    guard_conn *gc = *socket_context;
    api_status why = guard_conn_expired(s->guard, gc);
    if (why != API_OK && !guard_conn_reported(s->guard, gc)) metrics_add_rejected(s->metrics, why);
    guard_close(s->guard, gc);
    *socket_context = NULL;
}

/* libmicrohttpd's own complaints (bind failures, TLS handshakes, closed connections) as JSON
 * lines on stderr, like the start-up events; a message repeated within a second more than
 * MHD_LOG_BURST times is counted, not written, and the count is logged with the next one
 * (issue 25: "Hit process or system resource limit" at 15-30 MiB/s). */
#define MHD_LOG_BURST 5
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static const char *last_fmt;
    static int64_t window_ns;
    static long repeats, suppressed;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    const int64_t now = clock_monotonic_ns();
    pthread_mutex_lock(&lock);
    if (fmt != last_fmt || now - window_ns > 1000000000LL) {
        last_fmt = fmt;
        window_ns = now;
        repeats = 0;
    }
    bool quiet = ++repeats > MHD_LOG_BURST;
    long before = quiet ? 0 : suppressed;
    if (quiet) suppressed++;
    else suppressed = 0;
    pthread_mutex_unlock(&lock);
    if (quiet) return;
    if (before) {
        size_t k = strlen(msg);
        snprintf(msg + k, sizeof msg - k, " (%ld similar messages suppressed before this one)",
                 before);
    }
    log_event_fields(LOG_WARNING, "libmicrohttpd", -1, NULL, msg);
}

/* Descriptors the process holds now, plus what the server opens besides connections: per
 * HTTP thread an epoll and an eventfd, per daemon a listening socket, the log's pipe ends,
 * and room for the weights and /proc reads. */
static long fds_needed_besides_connections(long threads) {
    long open_now = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        while (readdir(d)) open_now++;
        closedir(d);
    }
    return open_now + 2 * (threads + 1) + 4 + 16;
}

/* max_connections + admin_max_connections + our own descriptors must fit RLIMIT_NOFILE, or
 * accept fails with EMFILE and libmicrohttpd retries it in a loop (issue 25: a core and
 * 15-30 MiB/s of log). Raises the soft limit as far as the hard one allows; if that is not
 * enough, returns the max_connections that fits (with a warning). */
static long long fit_connections_to_fd_limit(const vggserve_config *cfg, long threads) {
    const long long admin = cfg->admin_port >= 0 ? cfg->admin_max_connections : 0;
    const long long need = cfg->max_connections + admin + fds_needed_besides_connections(threads);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        (long long)rl.rlim_cur >= need)
        return cfg->max_connections;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || (long long)rl.rlim_max >= need
                      ? (rlim_t)need : rl.rlim_max;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = want;
    if (want > was && setrlimit(RLIMIT_NOFILE, &rl) == 0 && (long long)want >= need) {
        log_event(LOG_INFO, "raised the open-file limit from %llu to %llu for max_connections "
                  "(%lld) + admin_max_connections (%lld) + the service's own",
                  (unsigned long long)was, (unsigned long long)want, cfg->max_connections, admin);
        return cfg->max_connections;
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    long long fit = (long long)rl.rlim_cur - admin - fds_needed_besides_connections(threads);
    if (fit < 1) fit = 1;
    log_event(LOG_WARNING, "the open-file limit (%llu, hard %llu) cannot hold max_connections "
              "(%lld) + admin_max_connections (%lld) + the service's own descriptors: serving "
              "at most %lld connections on the main port (raise ulimit -n)",
              (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
              cfg->max_connections, admin, fit);
    return fit;
}

/* Tries the address first, so that a port in use is reported as such (errno), not as a
 * generic start failure. */
static int check_bind(const struct sockaddr_in *addr, char *err, size_t errlen) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0; /* let MHD report it */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* as MHD does */
    int rc = bind(fd, (const struct sockaddr *)addr, sizeof *addr);
    int e = errno;
    close(fd);
    if (rc == 0) return 0;
    char host[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &addr->sin_addr, host, sizeof host);
    snprintf(err, errlen, "cannot listen on %s:%d: %s%s", host, ntohs(addr->sin_port),
             strerror(e), e == EADDRINUSE ? " (another process has the port; pick another with "
                                            "--port)" : "");
    return -1;
}

/* Reads a PEM file for TLS (start-up: errors name the key and the file). */
static int read_pem(const char *path, const char *key, char **out, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s %s: %s", key, path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 20, n;
    char *buf = malloc(cap + 1);
    n = buf ? fread(buf, 1, cap, f) : 0;
    bool more = buf && fgetc(f) != EOF;
    fclose(f);
    if (!buf || more || n == 0 || !memmem(buf, n, "-----BEGIN ", 11)) {
        snprintf(err, errlen, "%s %s: %s", key, path,
                 !buf ? "out of memory" : more ? "larger than 1 MiB" : "not a PEM file");
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

void http_free_tls(http_server *s) {
    if (s->tls_key) memset(s->tls_key, 0, strlen(s->tls_key));
    free(s->tls_key);
    free(s->tls_cert);
    s->tls_key = s->tls_cert = NULL;
}

/* Reads the certificate and key named by s->cfg into s (both set: HTTPS only). 0, or -1 with
 * err and nothing held. */
static int load_tls(http_server *s, char *err, size_t errlen) {
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(err, errlen, "tls_cert_file is set but this libmicrohttpd has no TLS support");
        return -1;
    }
    if (read_pem(s->cfg->tls_cert_file, "tls_cert_file", &s->tls_cert, err, errlen) != 0 ||
        read_pem(s->cfg->tls_key_file, "tls_key_file", &s->tls_key, err, errlen) != 0) {
        http_free_tls(s);
        return -1;
    }
    return 0;
}

/* Starts one libmicrohttpd daemon on addr for listener l. */
static struct MHD_Daemon *start_daemon(http_server *s, listener *l, struct sockaddr_in *addr,
                                       long long max_connections, long long per_ip, long threads,
                                       bool tls) {
    const vggserve_config *cfg = s->cfg;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | (tls ? MHD_USE_TLS : 0);
    /* Limits: header memory (431 beyond it); connections in all (beyond it MHD stops
     * accepting: new ones wait in the listen backlog) and per address (closed at once); the
     * idle timeout, which ends silent clients (the guard ends slow ones). */
    struct MHD_OptionItem opts[14];
    int n_opts = 0;
#define ADD_OPTION(o, v, p) opts[n_opts++] = (struct MHD_OptionItem){(o), (intptr_t)(v), (p)}
    ADD_OPTION(MHD_OPTION_SOCK_ADDR, 0, addr);
    ADD_OPTION(MHD_OPTION_CONNECTION_TIMEOUT, cfg->connection_timeout_s, NULL);
    ADD_OPTION(MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->max_header_bytes, NULL);
    ADD_OPTION(MHD_OPTION_CONNECTION_LIMIT, max_connections, NULL);
    ADD_OPTION(MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, NULL);
    ADD_OPTION(MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, l);
    ADD_OPTION(MHD_OPTION_NOTIFY_CONNECTION, on_connection, s);
    ADD_OPTION(MHD_OPTION_URI_LOG_CALLBACK, http_on_uri, l);
    /* a pool of one is no pool: libmicrohttpd's own thread serves */
    if (threads > 1) ADD_OPTION(MHD_OPTION_THREAD_POOL_SIZE, threads, NULL);
    if (tls) {
        ADD_OPTION(MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert);
        ADD_OPTION(MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key);
    }
    ADD_OPTION(MHD_OPTION_END, 0, NULL);
#undef ADD_OPTION
    return MHD_start_daemon(flags, ntohs(addr->sin_port), NULL, NULL, http_on_request, l,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, /* first */
                            MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
}

static int bound_port(struct MHD_Daemon *d, int fallback) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : fallback;
}

/* Checks the addresses, then starts the main daemon and, when admin_port >= 0, the admin
 * listener. Returns 0, or -1 with err and no daemon running. */
int http_start_listeners(http_server *s, char *err, size_t errlen) {
    const vggserve_config *cfg = s->cfg;
    struct sockaddr_in addr, admin_addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->port);
    if (inet_pton(AF_INET, cfg->host, &addr.sin_addr) != 1) {
        snprintf(err, errlen, "host: '%s' is not an IPv4 address", cfg->host);
        return -1;
    }
    admin_addr = addr;
    admin_addr.sin_port = htons((uint16_t)(cfg->admin_port > 0 ? cfg->admin_port : 0));
    if (check_bind(&addr, err, errlen) != 0 ||
        (cfg->admin_port > 0 && check_bind(&admin_addr, err, errlen) != 0)) {
        return -1;
    }
    long threads = cfg->http_threads ? cfg->http_threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;
    if (threads > cfg->max_connections) threads = (long)cfg->max_connections;
    /* Large images decode on these threads: one of them is always free of them
     * (model/image_decode.h, DESIGN). */
    image_decode_set_heavy_slots(threads > 1 ? (int)threads - 1 : 1);
    bool tls = cfg->tls_cert_file[0] && cfg->tls_key_file[0];
    if (tls && load_tls(s, err, errlen) != 0) {
        return -1;
    }
    /* -1: one address may take a quarter of the slots, so three others always find room. */
    const long long max_connections = fit_connections_to_fd_limit(cfg, threads);
    if (threads > max_connections) threads = (long)max_connections;
    long long per_ip = cfg->max_connections_per_ip >= 0 ? cfg->max_connections_per_ip
                       : max_connections >= 4 ? max_connections / 4
                                              : 1;
    s->daemon = start_daemon(s, &s->main_listener, &addr, max_connections, per_ip, threads,
                             tls);
    if (!s->daemon) {
        if (tls)
            snprintf(err, errlen, "cannot start HTTPS with tls_cert_file %s and tls_key_file %s: "
                     "not a PEM certificate and key, or the key does not match (see the log "
                     "line above)", cfg->tls_cert_file, cfg->tls_key_file);
        else
            snprintf(err, errlen, "cannot start the HTTP server on %s:%lld (see the log line "
                     "above)", cfg->host, cfg->port);
        return -1;
    }
    s->port = bound_port(s->daemon, (int)cfg->port);
    if (cfg->admin_port >= 0) {
        /* Probes and scrapers: a budget of their own, which a flood on the main port cannot
         * take (per address: half of it). One thread is plenty for them. */
        long long admin_per_ip = cfg->admin_max_connections >= 2 ? cfg->admin_max_connections / 2 : 1;
        s->admin_daemon = start_daemon(s, &s->admin_listener, &admin_addr,
                                       cfg->admin_max_connections, admin_per_ip, 1, tls);
        if (!s->admin_daemon) {
            snprintf(err, errlen, "cannot start the admin listener on %s:%lld (see the log line "
                     "above)", cfg->host, cfg->admin_port);
            MHD_stop_daemon(s->daemon);
            s->daemon = NULL;
            return -1;
        }
        s->admin_port = bound_port(s->admin_daemon, (int)cfg->admin_port);
    }
    return 0;
}
