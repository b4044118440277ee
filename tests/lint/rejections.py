#!/usr/bin/env python3
"""The rejection table (src/api/errors.c), the table of docs/api.md
("## Error codes") and the codes the sources answer with must agree.

usage: rejections.py SOURCE_ROOT
"""
import os
import re
import sys

root = sys.argv[1]
CODE = r'"([a-z]+(?:_[a-z]+)*)"'


def read(path):
    with open(f"{root}/{path}", encoding="utf-8") as f:
        return f.read()


c_table = {c: int(s) for c, s in re.findall(r'\{"([a-z_]+)", (\d{3})\}', read("src/api/errors.c"))}
doc = read("docs/api.md")
section = doc.split("\n## Error codes", 1)
if len(section) != 2:
    sys.exit("docs/api.md has no '## Error codes' section")
section = section[1].split("\n## ", 1)[0]
doc_table = {c: int(s) for s, c in re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", section, re.M)}

bad = []
for c in sorted(set(c_table) | set(doc_table)):
    if c not in doc_table:
        bad.append(f"{c} ({c_table[c]}) is in src/api/errors.c but not in docs/api.md 'Error codes'")
    elif c not in c_table:
        bad.append(f"{c} ({doc_table[c]}) is in docs/api.md 'Error codes' but not in src/api/errors.c")
    elif c_table[c] != doc_table[c]:
        bad.append(f"{c}: status {c_table[c]} in src/api/errors.c, {doc_table[c]} in docs/api.md")


def calls(text, name):
    """The argument text of every call of name(...) (balanced parentheses)."""
    for m in re.finditer(r"\b" + name + r"\(", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        yield text[m.end() : i - 1]


used = set()
for path in sorted("src/api/" + n for n in os.listdir(f"{root}/src/api") if n.endswith(".c")):
    text = read(path)
    for fn in ("reply_error", "reply_fail", "fa_api__reply_fail"):
        for args in calls(text, fn):
            used.update(re.findall(CODE, args))
for path in ("src/api/request.c", "src/api/auth.c", "src/aggregator/aggregator.c"):
    for rhs in re.findall(r"\*(?:reason_out|code_out)\s*=\s*([^;]*);", read(path), re.S):
        used.update(re.findall(CODE, rhs))
for c in sorted(used - set(c_table)):
    bad.append(f"the sources answer with {c}, which is not in the rejection table")

if bad:
    print("\n".join(bad))
    sys.exit(1)
print(f"{len(c_table)} error codes; {len(used)} used by name in the sources, all in the table")
