#!/usr/bin/env python3
"""Embeds the numbered migration files into a C source file.

usage: embed.py OUT.c FILE...
Each file becomes one entry of FA_MIGRATIONS[] (name, bytes, length), in the
order given (meson passes them sorted).
"""
import os
import sys


def c_bytes(data: bytes) -> str:
    lines = []
    for i in range(0, len(data), 16):
        lines.append("    " + ", ".join(str(b) for b in data[i:i + 16]) + ",")
    return "\n".join(lines)


def main() -> int:
    out, files = sys.argv[1], sys.argv[2:]
    parts = ['#include "store/migrations_embedded.h"', ""]
    for i, path in enumerate(files):
        with open(path, "rb") as f:
            data = f.read()
        parts.append(f"static const unsigned char M{i}[] = {{\n{c_bytes(data)}\n    0}};")
    parts.append("")
    parts.append("const struct fa_migration_file FA_MIGRATIONS[] = {")
    for i, path in enumerate(files):
        name = os.path.basename(path)
        size = os.path.getsize(path)
        parts.append(f'    {{"{name}", M{i}, {size}}},')
    parts.append("};")
    parts.append(f"const int FA_MIGRATIONS_COUNT = {len(files)};")
    with open(out, "w") as f:
        f.write("\n".join(parts) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
