/* demo_page.h - the one-page demo served at GET / (config demo_page, on by default).
 *
 * HTML, CSS and JavaScript in one document compiled into the binary; it loads nothing from
 * anywhere (its Content-Security-Policy says so). The page posts the chosen or dropped image
 * to POST explain?top_k=5 (relative to the page, so a path prefix in front of the service
 * works) with the file's bytes as the body, shows the top 5 classes with probability bars,
 * the server's timings and the round trip, and the network's crop of the image with the
 * top-1 class's Grad-CAM heat map drawn over it on a canvas (a checkbox hides it; a click on
 * another row asks explain?class_id=C for that class), or the error message of a failed
 * request. A server without explanations (int8: 400) gets classify?top_k=5 instead and the
 * plain image. When the server answers 401 it shows a field for the bearer token.
 *
 * Element ids the browser test relies on: file (the input), results (the table; one row per
 * class, each with data-class-id, data-probability and a td.label; the explained one has
 * class "explained"), view (the canvas; data-class-id: the class drawn, empty when the map
 * is hidden), heat (the checkbox), preview (the plain image), latency, error.
 *
 * Static data: thread-safe. */
#ifndef DEMO_PAGE_H
#define DEMO_PAGE_H

#include <stddef.h>

/* The page's Content-Security-Policy: inline script and style only, images from blob: (the
 * preview), fetches to this origin. */
#define DEMO_PAGE_CSP                                                                        \
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src "   \
    "blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* The document (static, UTF-8 text/html); *len receives its length in bytes. */
const char *demo_page_html(size_t *len);

#endif
