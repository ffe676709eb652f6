/* log_queue.h - log lines handed to a writer thread through a bounded buffer, so that a
 * stdout nobody reads never stops a request (issue 25: with stdout on a full pipe, the
 * access log's lock held every HTTP thread after 255 requests).
 *
 * log_queue_put() copies a line into the buffer under the queue's own mutex, held only for
 * that copy; it never waits for I/O. When the buffer is full the line is dropped and counted
 * (log_queue_dropped: vggserve_log_lines_dropped_total).
 *
 * DESIGN. One writer thread per queue waits on a condition variable, takes everything
 * buffered (swapping it for its own spare buffer under the mutex) and writes it to the fd
 * outside the lock, in pieces of at most PIPE_BUF bytes after poll() says the fd takes them,
 * so a pipe never blocks it mid-piece; a write error (EPIPE, a closed fd) drops what it held
 * and counts it. log_queue_free() wakes the writer and waits up to flush_ms for it to write
 * what is buffered; lines it cannot write by then are counted as dropped, and it returns.
 *
 * Thread-safe: every function but create and free may be called from any thread. */
#ifndef SERVER_LOG_QUEUE_H
#define SERVER_LOG_QUEUE_H

#include <stddef.h>

typedef struct log_queue log_queue;

/* A queue of capacity bytes writing to fd (not closed by the queue). NULL when out of memory
 * or the thread cannot start. */
log_queue *log_queue_create(int fd, size_t capacity);

/* Writes what is buffered (waiting at most flush_ms for the fd), stops the writer, frees q. */
void log_queue_free(log_queue *q, int flush_ms);

/* Queues len bytes (a whole line with its newline), or drops and counts them when the buffer
 * cannot take them now. */
void log_queue_put(log_queue *q, const char *line, size_t len);

/* Lines dropped since create. */
unsigned long long log_queue_dropped(const log_queue *q);

#endif
