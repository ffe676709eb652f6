/* auth.c - bearer-token check in constant time. */
#include "auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char challenge[] = "Bearer realm=\"vggserve\"";
static const char challenge_invalid[] = "Bearer realm=\"vggserve\", error=\"invalid_token\"";

int api_auth_token_equal(const char *given, size_t given_len, const char *want, size_t want_len) {
    if (want_len == 0) return 0;
    /* Walk the client's bytes, all of them, whatever matches; the length difference joins
     * the accumulated difference instead of returning early. */
    volatile unsigned char diff = given_len != want_len;
    for (size_t i = 0; i < given_len; i++) {
        size_t j = i < want_len ? i : 0;
        diff |= (unsigned char)(given[i] ^ want[j]);
    }
    return diff == 0;
}

static int b64token_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

int api_auth_token_valid(const char *token) {
    size_t n = 0;
    while (b64token_char(token[n])) n++;
    if (n == 0) return 0;
    while (token[n] == '=') n++;
    return token[n] == '\0' && n <= API_AUTH_TOKEN_MAX;
}

api_status api_auth_check(const char *authorization, const char *token, char *msg,
                          size_t msglen, const char **www_authenticate) {
    *www_authenticate = NULL;
    if (!token || !token[0]) return API_OK;
    if (!authorization || !authorization[0]) {
        snprintf(msg, msglen, "this endpoint needs an 'Authorization: Bearer <token>' header");
        *www_authenticate = challenge;
        return API_UNAUTHORIZED;
    }
    const char *p = authorization;
    while (*p == ' ' || *p == '\t') p++;
    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t')) {
        snprintf(msg, msglen, "the Authorization header must use the Bearer scheme");
        *www_authenticate = challenge;
        return API_UNAUTHORIZED;
    }
    p += 6;
    while (*p == ' ' || *p == '\t') p++;
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
    if (!api_auth_token_equal(p, n, token, strlen(token))) {
        snprintf(msg, msglen, "invalid bearer token");
        *www_authenticate = challenge_invalid;
        return API_UNAUTHORIZED;
    }
    return API_OK;
}
