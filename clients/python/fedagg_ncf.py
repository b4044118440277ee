"""Serving-tier loader for fedagg NCF model snapshots.

Reads the safetensors snapshots that the fedagg server publishes (and that
``fedagg model init`` writes), checks them as strictly as the server's own
reader, builds the NCF model (He et al. 2017, MLP tower) as a PyTorch module,
and can poll the server for new versions and hot-swap them.

The parse is plain on purpose: u64 little-endian header length, a JSON
header, ``__metadata__`` popped, then ``torch.frombuffer`` over the data
section. No safetensors package is needed.

Layout (shared with the server, TensorFlow.js and device updates; kernels are
[in, out] row-major, as in Keras)::

    item_embedding/embeddings [num_items, 64]  row r = item id r + 1
    dense_1/kernel [128, 128]  dense_1/bias [128]
    dense_2/kernel [128, 64]   dense_2/bias [64]
    dense_3/kernel [64, 32]    dense_3/bias [32]
    out/kernel [32, 1]         out/bias [1]

The input of dense_1 is concat(user_vec[64], item_embedding[row]); the output
is a logit (apply a sigmoid for a probability). User vectors live with the
user (device or serving-side profile), never in the snapshot.

Thread rules: a ``Snapshot`` is immutable after construction and its model
is in eval mode, so any number of threads may score with it under
``torch.no_grad()``. ``SnapshotPoller.current`` is replaced by a single
reference assignment; readers take it once per request.
"""

import array
import hashlib
import json
import struct
import sys
import threading
import urllib.error
import urllib.request

import torch

EMBED_DIM = 64
ALS_MAX_FACTORS = 64
MAX_HEADER_BYTES = 1 << 20
MAX_ITEMS = 1_000_000
FORMAT_NAME = "fedagg-ncf"
FORMAT_VERSION = 1

__all__ = [
    "SnapshotError",
    "layout",
    "parse_safetensors",
    "load_safetensors",
    "NCF",
    "ALS",
    "Snapshot",
    "SnapshotPoller",
]


class SnapshotError(ValueError):
    """The bytes are not a valid fedagg NCF snapshot."""


def layout(num_items, model="ncf", factors=0):
    """The (name, shape) pairs of the global vector, in order (ALS: item factors, Gram)."""
    if model == "als":
        return [
            ("item_factors/embeddings", (num_items, factors)),
            ("user_gram/embeddings", (factors, factors)),
        ]
    return [
        ("item_embedding/embeddings", (num_items, EMBED_DIM)),
        ("dense_1/kernel", (128, 128)),
        ("dense_1/bias", (128,)),
        ("dense_2/kernel", (128, 64)),
        ("dense_2/bias", (64,)),
        ("dense_3/kernel", (64, 32)),
        ("dense_3/bias", (32,)),
        ("out/kernel", (32, 1)),
        ("out/bias", (1,)),
    ]


def _count(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise SnapshotError("duplicate key in the safetensors header")
        out[k] = v
    return out


def _is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _parse_metadata(meta, num_items, model):
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise SnapshotError("__metadata__ must be an object of strings")
    if meta.get("format") != FORMAT_NAME:
        raise SnapshotError("metadata format is not %s" % FORMAT_NAME)
    try:
        if int(meta["format_version"]) != FORMAT_VERSION:
            raise SnapshotError("format_version is not %d" % FORMAT_VERSION)
        version = int(meta["model_version"])
        parent = -1 if meta["parent_version"] == "none" else int(meta["parent_version"])
        epsilon = float(meta["epsilon"])
        delta = float(meta["delta"])
        items = int(meta["num_items"])
    except (KeyError, ValueError) as e:
        raise SnapshotError("snapshot metadata is incomplete or malformed") from e
    if version < 0 or parent < -1 or (parent >= 0 and parent >= version):
        raise SnapshotError("snapshot versions are inconsistent")
    if not (epsilon >= 0.0 and epsilon != float("inf")) or not (0.0 <= delta < 1.0):
        raise SnapshotError("snapshot epsilon or delta is out of range")
    if items != num_items:
        raise SnapshotError("num_items does not match the embedding")
    if meta.get("model", "ncf") != model:
        raise SnapshotError("metadata model does not match the tensors (%s)" % model)
    return {
        "model": model,
        "version": version,
        "parent_version": parent,
        "epsilon": epsilon,
        "delta": delta,
        "num_items": items,
    }


def parse_safetensors(data, max_items=MAX_ITEMS):
    """Parses snapshot bytes; returns (tensors, metadata).

    tensors maps each layout name to a float32 tensor of its shape, in layout
    order; metadata holds version, parent_version (-1 for none), epsilon,
    delta and num_items. Raises SnapshotError on anything unexpected: the
    header length is bounded, keys may not repeat, every tensor must be F32
    with the layout's shape, and the offsets must tile the data exactly.
    """
    data = bytes(data)
    if len(data) < 8:
        raise SnapshotError("shorter than the 8-byte header length")
    (n,) = struct.unpack_from("<Q", data, 0)
    if n > MAX_HEADER_BYTES:
        raise SnapshotError("header of %d bytes is over the limit" % n)
    if n > len(data) - 8 or n < 2 or data[8:9] != b"{":
        raise SnapshotError("header length is out of range or the header is not an object")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SnapshotError("header is not valid JSON") from e
    if not isinstance(header, dict):
        raise SnapshotError("header is not a JSON object")
    meta = header.pop("__metadata__", None)

    model = "ncf"
    emb = header.get("item_embedding/embeddings")
    if emb is None and "item_factors/embeddings" in header:
        model, emb = "als", header["item_factors/embeddings"]
    shape = emb.get("shape") if isinstance(emb, dict) else None
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(_is_uint(d) for d in shape)
        or (model == "ncf" and shape[1] != EMBED_DIM)
        or not 1 <= shape[1] <= ALS_MAX_FACTORS
        or not 1 <= shape[0] <= max_items
    ):
        raise SnapshotError(
            "item_embedding/embeddings must be [n, 64] (or item_factors/embeddings [n, F], "
            "1 <= F <= 64) with 1 <= n <= %d" % max_items
        )
    num_items = shape[0]
    specs = layout(num_items, model, shape[1])
    names = [name for name, _ in specs]
    if set(header) != set(names):
        raise SnapshotError("header tensors are not exactly the model layout")

    spans = []
    for name, shp in specs:
        t = header[name]
        if not isinstance(t, dict) or set(t) != {"dtype", "shape", "data_offsets"}:
            raise SnapshotError("%s must have exactly dtype, shape and data_offsets" % name)
        if t["dtype"] != "F32":
            raise SnapshotError("%s has dtype other than F32" % name)
        if t["shape"] != list(shp):
            raise SnapshotError("%s has the wrong shape" % name)
        offs = t["data_offsets"]
        if (
            not isinstance(offs, list)
            or len(offs) != 2
            or not all(_is_uint(o) for o in offs)
            or offs[1] - offs[0] != 4 * _count(shp)
        ):
            raise SnapshotError("%s has bad data_offsets" % name)
        spans.append((offs[0], offs[1], name, shp))
    pos = 0
    for begin, end, name, _ in sorted(spans):
        if begin != pos:
            raise SnapshotError("data_offsets are not contiguous at %s" % name)
        pos = end
    body = data[8 + n :]
    if pos != len(body):
        raise SnapshotError("data section is %d bytes, the tensors need %d" % (len(body), pos))
    metadata = _parse_metadata(meta, num_items, model)

    buf = bytearray(body)  # torch.frombuffer wants a writable buffer it can share
    tensors = {}
    for begin, end, name, shp in sorted(spans, key=lambda s: names.index(s[2])):
        if sys.byteorder == "little":
            t = torch.frombuffer(buf, dtype=torch.float32, count=_count(shp), offset=begin)
        else:
            arr = array.array("f", bytes(buf[begin:end]))
            arr.byteswap()  # the file is little-endian
            t = torch.tensor(arr, dtype=torch.float32)
        t = t.reshape(shp)
        if not bool(torch.isfinite(t).all()):
            raise SnapshotError("%s holds a non-finite value" % name)
        tensors[name] = t
    return tensors, metadata


def load_safetensors(path, max_items=MAX_ITEMS):
    """parse_safetensors() of the file at path."""
    with open(path, "rb") as f:
        return parse_safetensors(f.read(), max_items)


class NCF(torch.nn.Module):
    """The NCF MLP tower; forward(user_vec [B, 64], item_rows [B]) -> logits [B]."""

    def __init__(self, num_items):
        super().__init__()
        self.num_items = num_items
        self.item_embedding = torch.nn.Embedding(num_items, EMBED_DIM)
        self.dense_1 = torch.nn.Linear(2 * EMBED_DIM, 128)
        self.dense_2 = torch.nn.Linear(128, 64)
        self.dense_3 = torch.nn.Linear(64, 32)
        self.out = torch.nn.Linear(32, 1)

    @classmethod
    def from_tensors(cls, tensors):
        """A model holding copies of the snapshot tensors (kernels transposed for nn.Linear)."""
        num_items = tensors["item_embedding/embeddings"].shape[0]
        m = cls(num_items)
        with torch.no_grad():
            m.item_embedding.weight.copy_(tensors["item_embedding/embeddings"])
            for layer in ("dense_1", "dense_2", "dense_3", "out"):
                lin = getattr(m, layer)
                lin.weight.copy_(tensors[layer + "/kernel"].t())
                lin.bias.copy_(tensors[layer + "/bias"])
        return m

    def to_tensors(self):
        """The inverse of from_tensors: layout name -> tensor."""
        out = {"item_embedding/embeddings": self.item_embedding.weight.detach().clone()}
        for layer in ("dense_1", "dense_2", "dense_3", "out"):
            lin = getattr(self, layer)
            out[layer + "/kernel"] = lin.weight.detach().t().contiguous()
            out[layer + "/bias"] = lin.bias.detach().clone()
        return out

    def forward(self, user_vec, item_rows):
        x = torch.cat([user_vec, self.item_embedding(item_rows)], dim=-1)
        x = torch.relu(self.dense_1(x))
        x = torch.relu(self.dense_2(x))
        x = torch.relu(self.dense_3(x))
        return self.out(x).squeeze(-1)


class ALS:
    """Private ALS item factors (docs/model.md, "ALS"): a user's vector is the
    normalised sum of the factor rows of their history; scores are dot
    products."""

    def __init__(self, tensors):
        self.factors = tensors["item_factors/embeddings"].clone()

    def user_vector(self, history_rows):
        """The user vector of a history (item rows), as the device computes it."""
        rows = torch.as_tensor(history_rows, dtype=torch.long)
        s = self.factors[rows].to(torch.float64).sum(dim=0)
        n = torch.linalg.vector_norm(s)
        return (s / n if n > 0 else s).to(torch.float32)

    def __call__(self, user_vec, item_rows):
        return (self.factors[item_rows] * user_vec).sum(dim=-1)


class Snapshot:
    """One published model version: metadata, sha256 and an eval-mode model
    (NCF, or ALS when kind is "als")."""

    def __init__(self, data, max_items=MAX_ITEMS):
        tensors, meta = parse_safetensors(data, max_items)
        self.kind = meta["model"]
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.etag = '"%s"' % self.sha256  # the server's ETag for these bytes
        self.version = meta["version"]
        self.parent_version = meta["parent_version"]
        self.epsilon = meta["epsilon"]
        self.delta = meta["delta"]
        self.num_items = meta["num_items"]
        if self.kind == "als":
            self.model = ALS(tensors)
            return
        self.model = NCF.from_tensors(tensors).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @classmethod
    def from_file(cls, path, max_items=MAX_ITEMS):
        with open(path, "rb") as f:
            return cls(f.read(), max_items)

    def user_vector(self, history_rows):
        """ALS: the user vector of a history of item rows (NCF users keep their own)."""
        if self.kind != "als":
            raise ValueError("an NCF user vector belongs to the device")
        return self.model.user_vector(history_rows)

    def score(self, user_vec, item_rows):
        """Logits (ALS: dot products) of the given item rows (item id - 1) for one
        user vector [64] (ALS: [F], see user_vector) or a batch [B, 64]."""
        user_vec = torch.as_tensor(user_vec, dtype=torch.float32)
        item_rows = torch.as_tensor(item_rows, dtype=torch.long)
        if user_vec.dim() == 1:
            user_vec = user_vec.expand(item_rows.shape[0], user_vec.shape[0])
        with torch.no_grad():
            return self.model(user_vec, item_rows)

    def recommend(self, user_vec, candidate_rows, k=10):
        """The k best candidate rows for one user, best first, with their logits."""
        scores = self.score(user_vec, candidate_rows)
        top = torch.topk(scores, min(k, scores.shape[0]))
        rows = torch.as_tensor(candidate_rows, dtype=torch.long)[top.indices]
        return rows.tolist(), top.values.tolist()


class SnapshotPoller:
    """Polls the fedagg server and hot-swaps to newer snapshots.

    Each poll reads ``latest_path`` (JSON with at least ``version`` and
    ``sha256``, the hex SHA-256 of the safetensors snapshot; the server's
    ``formats.safetensors`` names the download path) and then asks for that
    version's safetensors with ``If-None-Match`` set to the ETag of the
    snapshot already held (the quoted sha256 hex). ``304 Not Modified``
    means nothing is new. A downloaded snapshot must match the announced
    digest (and the answer's ETag), parse strictly and carry the announced
    version before it replaces ``current``; anything else raises and the
    current snapshot stays in place. The poller never goes back to an older
    version.

    ``stats`` counts polls, swaps and 304 answers.
    """

    def __init__(
        self,
        base_url,
        latest_path="/api/federated/model/latest",
        model_path="/api/federated/model/{version}.safetensors",
        timeout_s=10.0,
        max_bytes=1 << 30,
        max_items=MAX_ITEMS,
    ):
        self.base_url = base_url.rstrip("/")
        self.latest_path = latest_path
        self.model_path = model_path
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.current = None
        self.stats = {"polls": 0, "swaps": 0, "not_modified": 0}
        self._lock = threading.Lock()  # one poll at a time; readers never take it

    def _get(self, path, accept, if_none_match=None):
        """GET base_url + path; returns (status, body or None for 304, ETag header or None)."""
        headers = {"Accept": accept}
        if if_none_match is not None:
            headers["If-None-Match"] = if_none_match
        req = urllib.request.Request(self.base_url + path, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                body = resp.read(self.max_bytes + 1)
                status, etag = resp.status, resp.headers.get("ETag")
        except urllib.error.HTTPError as e:
            if e.code == 304:
                return 304, None, e.headers.get("ETag")
            raise
        if len(body) > self.max_bytes:
            raise SnapshotError("response is larger than %d bytes" % self.max_bytes)
        return status, body, etag

    def _model_path(self, latest, version):
        formats = latest.get("formats")
        path = formats.get("safetensors") if isinstance(formats, dict) else None
        if isinstance(path, str) and path.startswith("/") and not path.startswith("//"):
            return path
        return self.model_path.format(version=version)

    def poll_once(self):
        """Fetches the latest version if it is new; returns True when it swapped."""
        with self._lock:
            self.stats["polls"] += 1
            _, body, _ = self._get(self.latest_path, "application/json")
            latest = json.loads(body)
            if not isinstance(latest, dict):
                raise SnapshotError("latest-model answer is not a JSON object")
            try:
                version = int(latest["version"])
                digest = str(latest["sha256"]).lower()
            except (KeyError, TypeError, ValueError) as e:
                raise SnapshotError("latest-model answer lacks version or sha256") from e
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise SnapshotError("latest-model sha256 is not 64 hex digits")
            cur = self.current
            if cur is not None and version < cur.version:
                return False
            status, data, etag = self._get(
                self._model_path(latest, version),
                "application/octet-stream",
                cur.etag if cur is not None else None,
            )
            if status == 304:
                self.stats["not_modified"] += 1
                return False
            if etag is not None and etag.strip().strip('"').lower() != digest:
                raise SnapshotError("snapshot ETag %s is not the announced sha256" % etag)
            if hashlib.sha256(data).hexdigest() != digest:
                raise SnapshotError("downloaded snapshot does not match the announced sha256")
            snap = Snapshot(data, self.max_items)
            if snap.version != version:
                raise SnapshotError("snapshot says version %d, the server %d" % (snap.version, version))
            self.current = snap
            self.stats["swaps"] += 1
            return True

    def run(self, stop_event, interval_s=30.0, on_error=None, on_swap=None):
        """Polls until stop_event is set. on_swap(snapshot) follows each swap;
        errors go to on_error and polling continues with the current snapshot."""
        while not stop_event.is_set():
            try:
                if self.poll_once() and on_swap is not None:
                    on_swap(self.current)
            except Exception as e:  # a bad poll must not stop serving the current model
                if on_error is not None:
                    on_error(e)
            stop_event.wait(interval_s)


def _main(argv):
    if len(argv) != 3 or argv[1] != "inspect":
        print("usage: fedagg_ncf.py inspect FILE.safetensors", file=sys.stderr)
        return 2
    try:
        snap = Snapshot.from_file(argv[2])
    except (OSError, SnapshotError) as e:
        print("fedagg_ncf: %s" % e, file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "version": snap.version,
                "parent_version": None if snap.parent_version < 0 else snap.parent_version,
                "epsilon": snap.epsilon,
                "delta": snap.delta,
                "num_items": snap.num_items,
                "sha256": snap.sha256,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
