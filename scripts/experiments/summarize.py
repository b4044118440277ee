#!/usr/bin/env python3
"""Markdown tables of docs/results.md from the JSON lines the experiment
scripts write (one file per run).

    summarize.py ml100k DIR     MovieLens-100K runs of ml100k.sh
    summarize.py recipes DIR    the alternatives of ml100k-recipes.sh
    summarize.py scale DIR      privacy-utility runs of scale.sh (also writes DIR/curve.dat)
"""
import json
import math
import os
import sys


def lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.startswith("{")]


def sigma_of(d, name):
    p = os.path.join(d, name + ".sigma")
    if not os.path.exists(p):
        return None
    return float(open(p).read().split()[1])


def fed_row(d, name, label):
    rows = [r for r in lines(os.path.join(d, name + ".jsonl")) if r["hr10"] is not None]
    last = rows[-1]
    best = max(rows, key=lambda r: r["hr10"])
    tail = rows[-10:]
    secs = sum(r["seconds"] for r in lines(os.path.join(d, name + ".jsonl")))
    eps = last["epsilon"]
    eps = "inf" if eps == "inf" else "%.3g" % eps
    sigma = sigma_of(d, name)
    return "| %s | %s | %s | %.4f | %.4f | %.4f (%d) | %.4f | %.0f |" % (
        label, "-" if sigma is None else "%.4g" % sigma, eps, last["hr10"], last["ndcg10"],
        best["hr10"], best["round"], sum(r["hr10"] for r in tail) / len(tail), secs)


def popularity(d):
    p = os.path.join(d, "popularity.json")
    if os.path.exists(p):
        pop = json.load(open(p))
        print("popularity (most trained items first): HR@10 %.4f, NDCG@10 %.4f"
              % (pop["hr10"], pop["ndcg10"]))
        with open(os.path.join(d, "popularity.dat"), "w") as f:
            f.write("%.6f %.6f\n" % (pop["hr10"], pop["ndcg10"]))


def ml100k(d):
    c = os.path.join(d, "central.jsonl")
    if os.path.exists(c):
        rows = lines(c)
        best = max(rows, key=lambda r: r["hr10"])
        print("centralized: best HR@10 %.4f (NDCG@10 %.4f) at epoch %d, %.4f at epoch %d"
              % (best["hr10"], best["ndcg10"], best["epoch"], rows[-1]["hr10"], rows[-1]["epoch"]))
    init = lines(os.path.join(d, "fed-nonoise.jsonl"))[0]
    print("untrained (version 0, initial user vectors): HR@10 %.4f" % init["hr10"])
    popularity(d)
    print()
    print("| run | sigma | epsilon | HR@10 | NDCG@10 | best HR@10 (round) "
          "| mean HR@10, last 10 evaluations | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print(fed_row(d, "fed-nonoise", "no noise"))
    if os.path.exists(os.path.join(d, "fed-nonoise-cosine.jsonl")):
        print(fed_row(d, "fed-nonoise-cosine", "no noise, cosine trust"))
    for eps in (8, 4, 1):
        if os.path.exists(os.path.join(d, "fed-eps%d.jsonl" % eps)):
            print(fed_row(d, "fed-eps%d" % eps, "epsilon %d" % eps))
    print()
    print("HR@10 by round:")
    names = ["fed-nonoise"] + ["fed-eps%d" % e for e in (8, 4, 1)
                               if os.path.exists(os.path.join(d, "fed-eps%d.jsonl" % e))]
    table = {n: {r["round"]: r["hr10"] for r in lines(os.path.join(d, n + ".jsonl"))
                 if r["hr10"] is not None} for n in names}
    rounds = sorted(table["fed-nonoise"])
    print("| round | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for r in rounds:
        if r % 40 == 0 or r == rounds[-1]:
            print("| %d | " % r + " | ".join(
                "%.4f" % table[n][r] if r in table[n] else "" for n in names) + " |")


def recipes(d):
    print("| run | HR@10 at the end | best HR@10 (round) | mean HR@10, last 5 evaluations | seconds |")
    print("| --- | --- | --- | --- | --- |")
    order = [l.split(":")[0] for l in open(os.path.join(d, "wall.txt"))]
    for name in order:
        rows = lines(os.path.join(d, name + ".jsonl"))
        ev = [r for r in rows if r["hr10"] is not None]
        best = max(ev, key=lambda r: r["hr10"])
        tail = ev[-5:]
        print("| %s | %.4f | %.4f (%d) | %.4f | %.0f |" % (
            name, ev[-1]["hr10"], best["hr10"], best["round"],
            sum(r["hr10"] for r in tail) / len(tail), sum(r["seconds"] for r in rows)))


def hr_at(rows, rnd):
    for r in rows:
        if r["round"] == rnd and r["hr10"] is not None:
            return r["hr10"]
    return float("nan")


def scale(d):
    print("| target epsilon | sigma | epsilon spent | HR@10 at round 20 | HR@10 at round 40 "
          "| HR@10 at the end | NDCG@10 at the end | mean cohort | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    runs = []
    for f in sorted(os.listdir(d)):
        if f.endswith(".jsonl"):
            rows = lines(os.path.join(d, f))
            name = f[:-6]
            last = [r for r in rows if r["hr10"] is not None][-1]
            cohorts = [r["cohort"] for r in rows if r["round"] > 0]
            target = math.inf if name == "nonoise" else float(name[3:])
            runs.append((target, name, last, rows, cohorts))
    runs.sort(key=lambda x: x[0])
    with open(os.path.join(d, "curve.dat"), "w") as dat:
        dat.write("# target_epsilon hr10_end ndcg10_end hr10_round20 hr10_round40\n")
        for eps, name, last, rows, cohorts in runs:
            sigma = sigma_of(d, name)
            secs = sum(r["seconds"] for r in rows)
            spent = last["epsilon"]
            print("| %s | %s | %s | %.4f | %.4f | %.4f | %.4f | %.0f | %.0f |" % (
                "none (no noise)" if math.isinf(eps) else "%g" % eps,
                "-" if sigma is None else "%.4g" % sigma,
                spent if spent == "inf" else "%.4f" % spent, hr_at(rows, 20), hr_at(rows, 40),
                last["hr10"], last["ndcg10"], sum(cohorts) / len(cohorts), secs))
            if not math.isinf(eps):
                dat.write("%.6g %.6f %.6f %.6f %.6f\n" % (eps, last["hr10"], last["ndcg10"],
                                                          hr_at(rows, 20), hr_at(rows, 40)))
    for eps, name, last, rows, cohorts in runs:
        if math.isinf(eps):
            with open(os.path.join(d, "nonoise.dat"), "w") as f:
                f.write("%.6f %.6f %.6f %.6f\n" % (last["hr10"], last["ndcg10"], hr_at(rows, 20),
                                                   hr_at(rows, 40)))
            init = rows[0]
            if init["round"] == 0:
                with open(os.path.join(d, "untrained.dat"), "w") as f:
                    f.write("%.6f %.6f\n" % (init["hr10"], init["ndcg10"]))
                print("untrained (version 0): HR@10 %.4f" % init["hr10"])
    popularity(d)
    names = [n for _, n, _, _, _ in runs]
    table = {n: {r["round"]: r["hr10"] for r in rows if r["hr10"] is not None}
             for _, n, _, rows, _ in runs}
    print()
    print("HR@10 by round:")
    print("| round | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for r in sorted(table[names[0]]):
        print("| %d | " % r + " | ".join("%.4f" % table[n].get(r, float("nan")) for n in names)
              + " |")


if __name__ == "__main__":
    {"ml100k": ml100k, "recipes": recipes, "scale": scale}[sys.argv[1]](sys.argv[2])
