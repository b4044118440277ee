#include "api/web.h"

#include <string.h>

const struct fa_web_file *fa_web_find(const char *url)
{
    char path[128];
    size_t n = strlen(url);

    if (n == 0 || n >= sizeof(path) - strlen("index.html"))
        return NULL;
    memcpy(path, url, n + 1);
    if (url[n - 1] == '/')
        memcpy(path + n, "index.html", sizeof("index.html"));
    for (int i = 0; i < FA_WEB_FILES_COUNT; i++)
        if (strcmp(FA_WEB_FILES[i].path, path) == 0)
            return &FA_WEB_FILES[i];
    return NULL;
}
