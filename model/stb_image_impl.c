/* stb_image_impl.c - the one translation unit that compiles stb_image, PNG only.
 *
 * JPEG goes through libjpeg-turbo and WebP through libwebp (model/image_decode.c); stb keeps
 * PNG. STBI_MAX_DIMENSIONS caps either side so that a hostile header cannot ask for a huge
 * allocation even before our own pixel limit runs; failure reasons stay on (thread-local in
 * stb when STBI_THREAD_LOCAL is available) so errors can say why a file was refused. */
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_NO_STDIO
#define STBI_MAX_DIMENSIONS (1 << 16)
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
