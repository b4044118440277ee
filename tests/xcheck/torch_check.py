"""Cross-check of the C model against PyTorch.

Builds the model from the C-written safetensors snapshot with the serving-tier
loader (clients/python/fedagg_ncf.py), runs the same batch through PyTorch
autograd and compares logits, BCE and MSE losses and the gradients of every
parameter group and of the user vectors with what C computed (case.json).
Usage: torch_check.py WORKDIR LOADER_DIR. Exits 1 on any mismatch.
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

TOL = 1e-4


def close(name, got, want, failures):
    got = torch.as_tensor(got, dtype=torch.float64).flatten()
    want = torch.as_tensor(want, dtype=torch.float64).flatten()
    if got.shape != want.shape:
        failures.append("%s: shape %s vs %s" % (name, tuple(got.shape), tuple(want.shape)))
        return
    if got.numel() == 0:
        return
    # Relative to the largest magnitude of the group, so small gradients are held to 1e-4 too.
    scale = max(want.abs().max().item(), 1e-6)
    err = (got - want).abs().max().item() / scale
    status = "ok" if err <= TOL else "MISMATCH"
    print("%-34s max relative error %.3g  %s" % (name, err, status))
    if not err <= TOL:
        failures.append("%s: max relative error %.3g" % (name, err))


def check_loss(kind, snap_tensors, case, loader, failures):
    model = loader.NCF.from_tensors(snap_tensors).double()
    items = torch.tensor(case["items"], dtype=torch.long)
    users = torch.tensor(case["user_vecs"], dtype=torch.float64).reshape(case["batch"], 64)
    users.requires_grad_(True)
    c = case[kind]
    targets = torch.tensor(c["targets"], dtype=torch.float64)
    logits = model(users, items)
    if kind == "bce":
        loss = F.binary_cross_entropy_with_logits(logits, targets)
    else:
        loss = F.mse_loss(logits, targets)
    loss.backward()
    close(kind + " logits", logits.detach(), c["logits"], failures)
    close(kind + " loss", loss.detach(), c["loss"], failures)
    grads = {"item_embedding/embeddings": model.item_embedding.weight.grad}
    for layer in ("dense_1", "dense_2", "dense_3", "out"):
        lin = getattr(model, layer)
        grads[layer + "/kernel"] = lin.weight.grad.t()  # nn.Linear is [out, in]
        grads[layer + "/bias"] = lin.bias.grad
    for name, g in grads.items():
        close(kind + " d/" + name, g, c["grads"][name], failures)
    close(kind + " d/user_vec", users.grad, c["grads"]["user_vec"], failures)


def main():
    work, loader_dir = sys.argv[1], sys.argv[2]
    sys.path.insert(0, loader_dir)
    import fedagg_ncf as loader

    torch.set_num_threads(1)
    failures = []
    with open(os.path.join(work, "case.json")) as f:
        case = json.load(f)
    with open(os.path.join(work, "model.safetensors"), "rb") as f:
        raw = f.read()

    tensors, meta = loader.parse_safetensors(raw)
    want_meta = case["meta"]
    for key in ("version", "parent_version", "epsilon", "delta"):
        if meta[key] != want_meta[key]:
            failures.append("metadata %s: %r vs %r" % (key, meta[key], want_meta[key]))
    if meta["num_items"] != case["num_items"]:
        failures.append("metadata num_items")
    print("metadata", meta)

    check_loss("bce", tensors, case, loader, failures)
    check_loss("mse", tensors, case, loader, failures)

    # The serving path: float32 predictions of the loaded snapshot match C's logits.
    snap = loader.Snapshot(raw)
    users = torch.tensor(case["user_vecs"], dtype=torch.float32).reshape(case["batch"], 64)
    close("loader predictions", snap.score(users, case["items"]), case["bce"]["logits"], failures)
    rows, _ = snap.recommend(users[0], list(range(case["num_items"])), k=5)
    if len(rows) != 5:
        failures.append("recommend returned %d rows" % len(rows))

    # The loader is as strict as the C reader.
    bad_inputs = {
        "truncated": raw[:-1],
        "trailing byte": raw + b"\0",
        "huge header length": b"\xff" * 8 + raw[8:],
        "bad dtype": raw.replace(b'"F32"', b'"F16"', 1),
        "short": raw[:5],
    }
    for what, data in bad_inputs.items():
        try:
            loader.parse_safetensors(data)
            failures.append("loader accepted a snapshot with a %s" % what)
        except loader.SnapshotError:
            pass

    if failures:
        print("FAILED:", *failures, sep="\n  ")
        return 1
    print("torch cross-check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
