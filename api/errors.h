/* errors.h - one table from the request path's statuses to HTTP and gRPC, one error JSON shape.
 *
 * Every error the service sends is {"error": {"code": 415, "type": "unsupported_media_type",
 * "message": "..."}}; `type` is also the `reason` label of vggserve_rejected_total.
 * Pure data and functions: thread-safe. */
#ifndef API_ERRORS_H
#define API_ERRORS_H

#include <jansson.h>

#include "image_decode.h" /* preprocess_status */

typedef enum {
    API_OK = 0,
    API_BAD_REQUEST,        /* malformed request, query or multipart body */
    API_NOT_FOUND,          /* unknown path */
    API_METHOD_NOT_ALLOWED, /* known path, wrong method (send Allow) */
    API_BODY_TOO_LARGE,     /* over max_body_bytes */
    API_TOO_MANY_IMAGES,    /* over max_images_per_request */
    API_UNSUPPORTED_MEDIA,  /* not JPEG, PNG or WebP */
    API_UNDECODABLE,        /* JPEG/PNG/WebP that cannot be decoded */
    API_TOO_MANY_PIXELS,    /* over max_pixels */
    API_QUEUE_FULL,         /* overload: send Retry-After */
    API_NOT_READY,          /* loading, warming or draining: send Retry-After */
    API_DEADLINE_EXCEEDED,  /* the deadline passed while queued */
    API_INTERNAL,           /* a bug or an engine failure */
    API_UNAUTHORIZED,       /* missing or wrong bearer token: send WWW-Authenticate */
    API_FORBIDDEN,          /* a CORS preflight from an origin not allowed */
    /* What hostile or broken clients get (and vggserve_rejected_total counts by these names): */
    API_FRAMING,            /* ambiguous framing: two Content-Lengths, Content-Length with
                             * Transfer-Encoding, a NUL or an encoded '/' in the path */
    API_NOT_IMPLEMENTED,    /* a Transfer-Encoding other than chunked */
    API_HEADER_TIMEOUT,     /* the request line and headers took longer than header_timeout_s */
    API_BODY_TIMEOUT,       /* the body took longer than connection_timeout_s */
    API_MEMORY_BUDGET,      /* max_buffered_bytes is in use by other uploads: send Retry-After */
    API_HEADERS_TOO_LARGE,  /* libmicrohttpd's 431: over max_header_bytes */
    API_URI_TOO_LONG,       /* libmicrohttpd's 414 */
    API_SHUTDOWN,           /* the connection was cut by the shutdown */
    API_DECODE_BUSY,        /* every slot for large images is decoding one: send Retry-After */
    API_STATUS_COUNT
} api_status;

int api_status_http(api_status s);
/* The gRPC status code (grpc::StatusCode's number) of the same answer. */
int api_status_grpc(api_status s);
const char *api_status_type(api_status s);
/* The answer to an image that failed to decode (model/image_decode.h): 415, 422 or 500. The
 * one mapping, for /classify and v2 alike. */
api_status api_status_from_preprocess(preprocess_status st);
/* True for statuses answered with Retry-After. */
int api_status_retry_after(api_status s);

/* The error body (new reference, never NULL). message may hold client bytes (a path, a
 * query value, a file name): it is made valid UTF-8 first, since jansson refuses anything
 * else. */
json_t *api_error_json(api_status s, const char *message);

/* Copies s into out (cap > 0 bytes, always terminated), replacing every byte that is not
 * part of a valid UTF-8 sequence, and every control character but tab, with '?'. Returns
 * out. For error messages and log lines that quote what a client sent. */
char *api_utf8_sanitize(const char *s, char *out, size_t cap);

#endif
