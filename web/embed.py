#!/usr/bin/env python3
"""Embeds the static web pages (the privacy audit page) into a C source file.

usage: embed.py OUT.c ROOT FILE...
Each FILE (a path under ROOT) becomes one entry of FA_WEB_FILES[]: its URL
path ("/" + the path under ROOT), content type, bytes, length and an ETag
(the first 16 hex digits of its SHA-256, quoted), in the order given.
"""
import hashlib
import os
import sys

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


def c_bytes(data: bytes) -> str:
    lines = []
    for i in range(0, len(data), 16):
        lines.append("    " + ", ".join(str(b) for b in data[i:i + 16]) + ",")
    return "\n".join(lines)


def main() -> int:
    out, root, files = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3:]
    parts = ['#include "api/web.h"', ""]
    table = []
    for i, path in enumerate(files):
        rel = os.path.relpath(os.path.abspath(path), root).replace(os.sep, "/")
        if rel.startswith("..") or '"' in rel or "\\" in rel:
            print(f"embed.py: {path} is not under {root}", file=sys.stderr)
            return 1
        ext = os.path.splitext(rel)[1]
        if ext not in TYPES:
            print(f"embed.py: {path}: no content type for '{ext}'", file=sys.stderr)
            return 1
        with open(path, "rb") as f:
            data = f.read()
        etag = hashlib.sha256(data).hexdigest()[:16]
        parts.append(f"static const unsigned char W{i}[] = {{\n{c_bytes(data)}\n    0}};")
        table.append(f'    {{"/{rel}", "{TYPES[ext]}", W{i}, {len(data)}, "\\"{etag}\\""}},')
    parts.append("")
    parts.append("const struct fa_web_file FA_WEB_FILES[] = {")
    parts += table
    parts.append("};")
    parts.append(f"const int FA_WEB_FILES_COUNT = {len(files)};")
    with open(out, "w") as f:
        f.write("\n".join(parts) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
