#!/usr/bin/env python3
"""HR@10 and NDCG@10 of recommending by popularity (the number of training
interactions of an item), with the leave-one-out protocol of the split:
the held-out item ranked among its 99 sampled negatives. Ties are broken
against the held-out item (its rank counts every item at least as popular).

    popularity.py DIR      DIR/loo_train.tsv and DIR/loo_test.tsv
"""
import collections
import math
import sys


def main(d):
    count = collections.Counter()
    with open(d + "/loo_train.tsv") as f:
        for line in f:
            count[int(line.split("\t")[1])] += 1
    hits = ndcg = users = 0
    with open(d + "/loo_test.tsv") as f:
        for line in f:
            ids = [int(x) for x in line.split("\t")[1:]]
            target, negatives = ids[0], ids[1:]
            rank = sum(1 for n in negatives if count[n] >= count[target])
            users += 1
            if rank < 10:
                hits += 1
                ndcg += 1.0 / math.log2(rank + 2)
    print('{"users": %d, "hr10": %.4f, "ndcg10": %.4f}' % (users, hits / users, ndcg / users))


if __name__ == "__main__":
    main(sys.argv[1])
