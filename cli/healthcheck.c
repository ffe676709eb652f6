/* healthcheck.c - `vggserve healthcheck`: exit 0 when a local server answers /readyz with 200
 * (the Docker HEALTHCHECK; no curl in the image). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"

int cmd_healthcheck(int argc, char **argv) {
    /* The admin listener when there is one: a flood on the main port cannot delay it. */
    const char *admin = getenv("VGGSERVE_ADMIN_PORT");
    const char *host = "127.0.0.1", *port_s = getenv("VGGSERVE_PORT"), *path = "/readyz",
               *timeout_s = "3";
    if (admin && atoi(admin) > 0) port_s = admin;
    if (!port_s) port_s = "8080";
    const cli_option opts[] = {
        {"host", "ADDR", "server address (default 127.0.0.1)", &host, NULL},
        {"port", "PORT", "server port (default $VGGSERVE_ADMIN_PORT, else $VGGSERVE_PORT, else 8080)",
         &port_s, NULL},
        {"path", "PATH", "path to request (default /readyz)", &path, NULL},
        {"timeout", "S", "seconds to wait (default 3)", &timeout_s, NULL},
    };
    const char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, 4,
                       "usage: vggserve healthcheck [--host ADDR] [--port PORT] [--path /readyz]\n"
                       "Exits 0 when the server answers 200, 1 otherwise (for Docker HEALTHCHECK).\n"
                       "Plain HTTP only; sends VGGSERVE_AUTH_TOKEN as a bearer token when set.",
                       pos, 0, &n_pos);
    if (rc != 0) return rc < 0 ? 2 : 0;
    long port, timeout;
    if (cli_parse_int("port", port_s, 1, 65535, &port) ||
        cli_parse_int("timeout", timeout_s, 1, 3600, &timeout))
        return 2;
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "error: --host must be an IPv4 address\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {timeout, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        fprintf(stderr, "unhealthy: cannot connect to %s:%ld: %s\n", host, port, strerror(errno));
        close(fd);
        return 1;
    }
    /* With auth_health on, the probe needs the token; it is taken from the environment only
     * (never from argv, which other users can read in ps). */
    const char *token = getenv("VGGSERVE_AUTH_TOKEN");
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n%s%s%s\r\n", path, host,
                     token && *token ? "Authorization: Bearer " : "", token && *token ? token : "",
                     token && *token ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof req) {
        fprintf(stderr, "error: --path or VGGSERVE_AUTH_TOKEN too long\n");
        return 2;
    }
    char resp[256] = "";
    ssize_t got = -1;
    if (write(fd, req, (size_t)n) == n) got = read(fd, resp, sizeof resp - 1);
    close(fd);
    if (got > 0) resp[got] = '\0';
    int code = 0;
    if (got <= 0 || sscanf(resp, "HTTP/%*s %d", &code) != 1) {
        fprintf(stderr, "unhealthy: no HTTP answer from %s:%ld\n", host, port);
        return 1;
    }
    if (code != 200) {
        fprintf(stderr, "unhealthy: %s answered %d\n", path, code);
        return 1;
    }
    return 0;
}
