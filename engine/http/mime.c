/* corio http: Content-Type by file name extension, corio_http_mime_type(). */
#include "parser.h"

#include <string.h>

/* Extension to type. A linear scan is enough: a server looks a type up once per file it opens. */
static const struct {
    char ext[6];
    const char *type;
} mime_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"xml", "text/xml; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"mp4", "video/mp4"},
};

const char *corio_http_mime_type(const char *path, size_t len)
{
    size_t dot = len;
    while (dot > 0 && path[dot - 1] != '.' && path[dot - 1] != '/')
        dot--;
    if (dot == 0 || path[dot - 1] != '.')
        return "application/octet-stream";
    size_t n = len - dot;
    char ext[6];
    if (n == 0 || n >= sizeof(ext))
        return "application/octet-stream";
    for (size_t i = 0; i < n; i++)
        ext[i] = (char)corio__http_lower[U8(path[dot + i])];
    ext[n] = '\0';
    for (size_t i = 0; i < sizeof(mime_types) / sizeof(mime_types[0]); i++) {
        if (memcmp(ext, mime_types[i].ext, n + 1) == 0)
            return mime_types[i].type;
    }
    return "application/octet-stream";
}
