/*
 * The static pages fedagg serves (the privacy audit page under /privacy/),
 * compiled into the binary at build time by web/embed.py. Immutable; any
 * thread may read.
 */
#ifndef FA_API_WEB_H
#define FA_API_WEB_H

#include <stddef.h>

struct fa_web_file {
    const char *path;          /* URL path, e.g. "/privacy/index.html" */
    const char *content_type;  /* e.g. "text/html; charset=utf-8" */
    const unsigned char *data; /* file bytes, NUL-terminated */
    size_t len;                /* bytes, without the NUL */
    const char *etag;          /* quoted, from the bytes' SHA-256 */
};

extern const struct fa_web_file FA_WEB_FILES[];
extern const int FA_WEB_FILES_COUNT;

/*
 * The file a GET of url serves: "/privacy/" is "/privacy/index.html"; any
 * other path must match exactly. NULL when there is none.
 */
const struct fa_web_file *fa_web_find(const char *url);

#endif
