/* auth.h - optional bearer-token auth (RFC 6750) for the inference endpoints.
 *
 * The server holds one shared secret (config auth_token, VGGSERVE_AUTH_TOKEN or
 * auth_token_file); a request must send `Authorization: Bearer <token>`. The comparison
 * takes time that depends only on the length the client sent, never on how many leading
 * bytes are right. An empty expected token means auth is off.
 *
 * Pure functions, thread-safe. Messages never contain the expected token. */
#ifndef API_AUTH_H
#define API_AUTH_H

#include <stddef.h>

#include "errors.h"

#define API_AUTH_TOKEN_MAX 255

/* Checks an Authorization header value (NULL: absent) against token. Returns API_OK, or
 * API_UNAUTHORIZED with msg and *www_authenticate (a static string for the
 * WWW-Authenticate header). */
api_status api_auth_check(const char *authorization, const char *token, char *msg,
                          size_t msglen, const char **www_authenticate);

/* 1 when given[0..given_len) equals want[0..want_len); constant time in given_len. */
int api_auth_token_equal(const char *given, size_t given_len, const char *want, size_t want_len);

/* 1 when token is 1..API_AUTH_TOKEN_MAX characters of RFC 6750's b64token
 * (A-Z a-z 0-9 - . _ ~ + / then optional '='s). */
int api_auth_token_valid(const char *token);

#endif
