"""Serving tier against a live fedagg server, for the end-to-end test.

Runs ``fedagg_ncf.SnapshotPoller`` in a background thread (as a serving
process would) while the devices federate, until it has hot-swapped to the
wanted version; checks the latest-model answer, the ETag and the 304 of a
conditional download; then scores the users of CASE.json with the swapped-in
PyTorch model and writes OUT.json {"version", "sha256", "versions_seen",
"scores"}.

usage: serving_check.py --server URL --python-dir DIR --version V
                        --case CASE.json --out OUT.json [--timeout-s S]
Exits 1 with a message on any failure.
"""

import argparse
import http.server
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request


def fail(msg):
    print("serving: " + msg, file=sys.stderr)
    sys.exit(1)


def request(url, headers=None, timeout_s=10.0):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def check_refusals(fedagg_ncf, snap, data):
    """A poller fed a wrong digest or an older version by a fake server keeps its snapshot."""
    answers = {}

    class Fake(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = answers.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        poller = fedagg_ncf.SnapshotPoller("http://127.0.0.1:%d" % server.server_address[1])
        poller.current = snap
        latest = {"version": snap.version + 1, "sha256": "0" * 64, "formats": {"safetensors": "/m"}}
        answers["/api/federated/model/latest"] = json.dumps(latest).encode()
        answers["/m"] = data
        try:
            poller.poll_once()
            fail("a snapshot with the wrong digest was accepted")
        except fedagg_ncf.SnapshotError:
            pass
        latest.update(version=snap.version - 1, sha256="1" * 64)
        answers["/api/federated/model/latest"] = json.dumps(latest).encode()
        if poller.poll_once() or poller.current is not snap:
            fail("the poller went back to an older version")
    finally:
        server.shutdown()
        server.server_close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--python-dir", required=True)
    ap.add_argument("--version", type=int, required=True)
    ap.add_argument("--case", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout-s", type=float, default=300.0)
    a = ap.parse_args()
    sys.path.insert(0, a.python_dir)
    import fedagg_ncf

    t0 = time.monotonic()
    deadline = t0 + a.timeout_s
    poller = fedagg_ncf.SnapshotPoller(a.server, timeout_s=10.0)
    seen, errors = [], []
    stop = threading.Event()
    thread = threading.Thread(
        target=poller.run,
        kwargs={
            "stop_event": stop,
            "interval_s": 0.2,
            "on_error": lambda e: errors.append(repr(e)),
            "on_swap": lambda s: seen.append(s.version),
        },
        daemon=True,
    )
    thread.start()
    try:
        while True:
            cur = poller.current
            if cur is not None and cur.version >= a.version and os.path.exists(a.case):
                break
            if errors:
                fail("polling failed: " + "; ".join(errors[:3]))
            if time.monotonic() > deadline:
                fail(
                    "no version %d and case file within %.0f s (seen %s)"
                    % (a.version, a.timeout_s, seen)
                )
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    if errors:
        fail("polling failed: " + "; ".join(errors[:3]))
    snap = poller.current
    if snap.version != a.version:
        fail("serving tier holds version %d, expected %d" % (snap.version, a.version))
    if seen != sorted(set(seen)):
        fail("versions were not swapped in increasing order: %s" % seen)

    # Polling again finds nothing new: the conditional download answers 304.
    swaps, not_modified = poller.stats["swaps"], poller.stats["not_modified"]
    if poller.poll_once() or poller.stats["not_modified"] != not_modified + 1:
        fail("a poll without a new version did not end in 304 Not Modified")

    # The wire format the poller relies on.
    status, _, body = request(a.server + "/api/federated/model/latest")
    latest = json.loads(body)
    if status != 200 or sorted(latest) != sorted(
        ["version", "parent", "sha256", "createdAt", "formats", "metrics"]
    ):
        fail("latest answered %d with fields %s" % (status, sorted(latest)))
    if latest["sha256"] != snap.sha256 or latest["formats"] != {
        "tfjs": "/api/federated/model/%d" % a.version,
        "safetensors": "/api/federated/model/%d.safetensors" % a.version,
    }:
        fail("latest does not describe the swapped-in snapshot: %s" % latest)
    url = a.server + latest["formats"]["safetensors"]
    status, headers, _ = request(url, {"If-None-Match": snap.etag})
    if status != 304 or headers.get("ETag") != snap.etag:
        fail("If-None-Match %s answered %d (ETag %s)" % (snap.etag, status, headers.get("ETag")))
    status, headers, st_bytes = request(url, {"If-None-Match": '"%s"' % ("0" * 64)})
    if status != 200 or headers.get("ETag") != '"%s"' % snap.sha256 or len(st_bytes) == 0:
        fail("a stale If-None-Match answered %d" % status)

    check_refusals(fedagg_ncf, snap, st_bytes)

    with open(a.case) as f:
        case = json.load(f)
    scores = [snap.score(u, case["items"]).tolist() for u in case["users"]]
    with open(a.out, "w") as f:
        json.dump(
            {"version": snap.version, "sha256": snap.sha256, "versions_seen": seen, "scores": scores},
            f,
        )
    print(
        "serving: hot-swapped to versions %s (%d swaps, %d polls, 304 on re-poll), "
        "scored %d users, %.2f s"
        % (seen, swaps, poller.stats["polls"], len(scores), time.monotonic() - t0)
    )


if __name__ == "__main__":
    main()
