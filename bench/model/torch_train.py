"""PyTorch CPU baseline for bench/model: the same NCF model, loss, optimizer,
batch size and per-epoch negative sampling as the C trainer, timed the same
way (sampling + shuffling + forward + backward + Adam per epoch).

Usage: torch_train.py [--data DIR] [--epochs E] [--batch B] [--seed S]
Prints one JSON line with samples per second. One thread
(torch.set_num_threads(1)); the driver also sets OPENBLAS_NUM_THREADS=1.
"""

import argparse
import json
import os
import time

import numpy as np
import torch


class NCF(torch.nn.Module):
    """He et al. 2017 MLP tower with a user embedding table (centralized training)."""

    def __init__(self, num_users, num_items):
        super().__init__()
        self.user = torch.nn.Embedding(num_users, 64)
        self.item = torch.nn.Embedding(num_items, 64)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(128, 128), torch.nn.ReLU(),
            torch.nn.Linear(128, 64), torch.nn.ReLU(),
            torch.nn.Linear(64, 32), torch.nn.ReLU(),
            torch.nn.Linear(32, 1))
        torch.nn.init.normal_(self.user.weight, std=0.01)
        torch.nn.init.normal_(self.item.weight, std=0.01)
        for m in self.mlp:
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.xavier_uniform_(m.weight)
                torch.nn.init.zeros_(m.bias)

    def forward(self, users, items):
        x = torch.cat([self.user(users), self.item(items)], dim=1)
        return self.mlp(x).squeeze(1)


def load(data, rng):
    if data:
        raw = np.loadtxt(os.path.join(data, "loo_train.tsv"), dtype=np.int64, delimiter="\t")
        users, items = raw[:, 0] - 1, raw[:, 1] - 1
        return users, items, int(users.max()) + 1, int(items.max()) + 1
    # The C side's synthetic set has 943 users x 105 positives over 1682 items.
    num_users, num_items, per_user = 943, 1682, 105
    users = np.repeat(np.arange(num_users), per_user)
    items = np.concatenate([rng.choice(num_items, per_user, replace=False) for _ in range(num_users)])
    return users, items, num_users, num_items


def epoch_samples(users, items, num_items, seen, k, rng):
    """Positives plus k uniform negatives each, redrawn where they hit the user's items."""
    neg_u = np.repeat(users, k)
    neg_i = rng.integers(0, num_items, neg_u.shape[0])
    bad = np.fromiter((i in seen[u] for u, i in zip(neg_u, neg_i)), bool, neg_u.shape[0])
    while bad.any():
        idx = np.nonzero(bad)[0]
        neg_i[idx] = rng.integers(0, num_items, idx.shape[0])
        bad[idx] = np.fromiter((neg_i[j] in seen[neg_u[j]] for j in idx), bool, idx.shape[0])
    u = np.concatenate([users, neg_u])
    i = np.concatenate([items, neg_i])
    y = np.concatenate([np.ones(users.shape[0], np.float32), np.zeros(neg_u.shape[0], np.float32)])
    perm = rng.permutation(u.shape[0])
    return torch.from_numpy(u[perm]), torch.from_numpy(i[perm]), torch.from_numpy(y[perm])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    users, items, num_users, num_items = load(args.data, rng)
    seen = [set() for _ in range(num_users)]
    for u, i in zip(users.tolist(), items.tolist()):
        seen[u].add(i)
    model = NCF(num_users, num_items)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    total, seconds = 0, 0.0
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        su, si, sy = epoch_samples(users, items, num_items, seen, 4, rng)
        for b in range(0, su.shape[0], args.batch):
            opt.zero_grad()
            loss = loss_fn(model(su[b:b + args.batch], si[b:b + args.batch]), sy[b:b + args.batch])
            loss.backward()
            opt.step()
        seconds += time.perf_counter() - t0
        total += su.shape[0]
    print(json.dumps({
        "impl": "torch",
        "torch": torch.__version__,
        "samples": total,
        "seconds": round(seconds, 3),
        "samples_per_s": round(total / seconds, 1),
        "batch": args.batch,
        "epochs": args.epochs,
        "threads": torch.get_num_threads(),
        "data": "loo_train.tsv" if args.data else "synthetic",
    }))


if __name__ == "__main__":
    main()
