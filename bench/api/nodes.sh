#!/usr/bin/env bash
# Multi-node benchmark: N `fedagg serve` processes on one PostgreSQL database,
# driven by many devices spread round-robin over them (bench_load, libcurl).
# For each node count and cohort it prints accepted updates/s and the round's
# close latency (rounds.ended_at - rounds.deadline, and the closing node's
# fedagg_round_close_seconds gauge if it exposes it), each as a ratio against
# baselines measured in the same run: opening the same sealed box on all cores
# (decrypt only) and raw libpq INSERTs of the same bytes. It also measures the
# ceiling: bench_sink (beside BENCH_LOAD), which only receives the same posts
# with the nodes' HTTP set-up, then also opens them, driven the same way: no
# server can beat it on this machine with the load generator beside it. Then, optionally,
# the database size after many closed rounds against keeping every ciphertext.
#
# usage: nodes.sh FEDAGG BENCH_LOAD   (starts its own PostgreSQL)
# environment (defaults in brackets):
#   FA_BENCH_NODES ["1 2 4"]           node counts
#   FA_BENCH_COHORTS ["1000 10000"]    updates per round
#   FA_BENCH_CLIENTS [32]              concurrent device connections
#   FA_BENCH_HTTP_THREADS [4]          FEDAGG_HTTP_THREADS of each node (the default)
#   FA_BENCH_DB_POOL_SIZE [8]          FEDAGG_DB_POOL_SIZE of each node (>= HTTP threads + 2)
#   FA_BENCH_RATE_GUESS [50]           updates/s assumed before the first measurement
#   FA_BENCH_REPEATS [3]               rounds per node count and cohort (the close
#                                      latency compared across node counts is their median)
#   FA_BENCH_DB_ROUNDS [100]           closed rounds for the size part; 0 skips it
#   FA_BENCH_DB_COHORT [1000]          updates per round in the size part
#   FA_BENCH_DB_ITEMS [50]             NCF num_items in the size part (a small model)
set -euo pipefail
fedagg=$1 load=$2
sink=$(dirname "$load")/bench_sink
root=$(cd "$(dirname "$0")/../.." && pwd)
node_counts=${FA_BENCH_NODES:-1 2 4}
cohorts=${FA_BENCH_COHORTS:-1000 10000}
clients=${FA_BENCH_CLIENTS:-32}
http_threads=${FA_BENCH_HTTP_THREADS:-4}
pool_size=${FA_BENCH_DB_POOL_SIZE:-8}
rate=${FA_BENCH_RATE_GUESS:-50}
repeats=${FA_BENCH_REPEATS:-3}
db_rounds=${FA_BENCH_DB_ROUNDS:-100}
db_cohort=${FA_BENCH_DB_COHORT:-1000}
db_items=${FA_BENCH_DB_ITEMS:-50}

work=$(mktemp -d /tmp/fedagg-nodes.XXXXXX)
chmod 755 "$work"
pids=()
stop_nodes() {
    local p
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    pids=()
}
cleanup() {
    stop_nodes
    bash "$root/scripts/pg-cluster.sh" destroy "$work/pg" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

conn=$(bash "$root/scripts/pg-cluster.sh" start "$work/pg" | tail -n 1)
db_url() { echo "${conn/dbname=postgres/dbname=$1}"; }
psql "$conn" -qc "CREATE DATABASE fedagg_template" >/dev/null
"$fedagg" migrate --database-url "$(db_url fedagg_template)" >/dev/null
"$fedagg" keygen --out "$work/keys" >/dev/null
# Each trial gets a fresh copy of the migrated database, shared by all of its
# nodes: round 1 then opens when the first node starts, with a deadline sized
# for that trial (rounds follow a fixed schedule of round_deadline_s).
new_db() {
    psql "$conn" -qc "CREATE DATABASE $1 TEMPLATE fedagg_template" >/dev/null
    db_url "$1"
}

# start_nodes DATABASE_URL N DEADLINE_S [VAR=VALUE ...]: sets $servers.
# Every device runs on this host: no per-address limits.
servers=()
start_nodes() {
    local url=$1 n=$2 deadline=$3 i out
    shift 3
    servers=()
    for i in $(seq "$n"); do
        out=$work/serve.$i.out
        : >"$out"
        env DATABASE_URL="$url" FEDAGG_KEY_DIR="$work/keys" FEDAGG_PORT=0 \
            FEDAGG_MODEL=ncf FEDAGG_ROUND_DEADLINE_S="$deadline" FEDAGG_MIN_COHORT=100 \
            FEDAGG_MAX_COHORT=1000000 FEDAGG_EPSILON_MAX=10000 FEDAGG_LOG_LEVEL=warn \
            FEDAGG_HTTP_THREADS="$http_threads" FEDAGG_DB_POOL_SIZE="$pool_size" \
            FEDAGG_RATE_LIMIT_PER_S=0 FEDAGG_MAX_CONNECTIONS_PER_IP=0 "$@" \
            "$fedagg" serve >"$out" 2>>"$work/serve.err" &
        pids+=($!)
        # One at a time: the first node writes model 0 and round 1.
        for _ in $(seq 100); do grep -q '^listening' "$out" && break; sleep 0.1; done
        grep -q '^listening' "$out" || { echo "nodes.sh: fedagg serve did not start" >&2; cat "$work/serve.err" >&2; exit 1; }
        servers+=(--server "$(sed -n 's/^listening on //p' "$out")")
    done
}

# The deadline a round of $1 updates needs at $2 updates/s: check-ins, posting, margin.
deadline_for() { python3 -c "import math; print(math.ceil(5 + $1 / 500 + 1.5 * $1 / $2))"; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1]).get('$2'))" "$1"; }

echo "# nodes.sh: per node FEDAGG_HTTP_THREADS=$http_threads FEDAGG_DB_POOL_SIZE=$pool_size;" \
    "$clients device connections; $(nproc) cores"
results=$work/results.jsonl

# Baselines, on an idle node (it only serves the key and the model).
start_nodes "$(new_db fedagg_base)" 1 3600
"$load" baseline "${servers[@]}" --database-url "$(db_url fedagg_base)" --key-dir "$work/keys" \
    --clients "$clients" | tee -a "$results"
# The ceiling, at the largest cohort (the idle node serves the key and model).
"$sink" --key-dir "$work/keys" --threads "$http_threads" >"$work/sink.out" &
pids+=($!)
for _ in $(seq 100); do grep -q '^listening' "$work/sink.out" && break; sleep 0.1; done
"$load" ceiling "${servers[@]}" --database-url "$(db_url fedagg_base)" \
    --sink "$(sed -n 's/^listening on //p' "$work/sink.out")" \
    --cohort "$(echo "$cohorts" | tr ' ' '\n' | sort -n | tail -n 1)" --clients "$clients" |
    tee -a "$results"
stop_nodes

for n in $node_counts; do
    for cohort in $cohorts; do
        for attempt in 1 2; do
            deadline=$(deadline_for "$cohort" "$rate")
            db=fedagg_n${n}_c${cohort}_a${attempt}
            start_nodes "$(new_db "$db")" "$n" "$deadline"
            line=$("$load" round "${servers[@]}" --database-url "$(db_url "$db")" \
                --cohort "$cohort" --clients "$clients") || line=
            # More rounds on the same nodes (each opens as the last one
            # closes, with the same deadline): more samples of the close.
            more=()
            if [ -n "$line" ] && [ "$(python3 -c "print(int($(field "$line" deadline_margin_s) > 0))")" = 1 ]; then
                for _ in $(seq 2 "$repeats"); do
                    extra=$("$load" round "${servers[@]}" --database-url "$(db_url "$db")" \
                        --cohort "$cohort" --clients "$clients") && more+=("$extra")
                done
            fi
            stop_nodes
            psql "$conn" -qc "DROP DATABASE $db" >/dev/null
            if [ -z "$line" ]; then
                echo "# nodes=$n cohort=$cohort: no result with a ${deadline}s deadline" >&2
                rate=$(python3 -c "print($rate / 2)")
                continue
            fi
            for l in "$line" "${more[@]}"; do
                echo "$l" | python3 -c "import json,sys; d=json.load(sys.stdin); d['deadline_s']=$deadline; print(json.dumps(d))" | tee -a "$results"
            done
            # Size the next deadline from what this run reached; a run that
            # posted past its deadline is measured again with a longer one.
            measured=$(field "$line" accepted_per_s)
            rate=$(python3 -c "print(max(1.0, min($rate * 4, $measured)))")
            [ "$(python3 -c "print(int($(field "$line" deadline_margin_s) > 0))")" = 1 ] && break
        done
    done
done

if [ "$db_rounds" -gt 0 ]; then
    # A short probe on a scratch database sizes the small model's deadline.
    small=(FEDAGG_NUM_ITEMS="$db_items" FEDAGG_EPSILON_MAX=10000)
    deadline=$(deadline_for "$db_cohort" "$rate")
    start_nodes "$(new_db fedagg_probe)" 1 "$deadline" "${small[@]}"
    probe=$("$load" round "${servers[@]}" --database-url "$(db_url fedagg_probe)" \
        --cohort "$db_cohort" --clients "$clients")
    stop_nodes
    echo "# size part, probe round: $probe"
    deadline=$(python3 -c "import json,math; d=json.loads('$probe'); print(math.ceil(2 + 2 * d['checkin_s'] + 1.5 * d['post_s']))")
    echo "# size part: NCF with num_items=$db_items, $db_rounds rounds of $db_cohort, round_deadline_s=$deadline"
    start_nodes "$(new_db fedagg_size)" 1 "$deadline" "${small[@]}"
    "$load" rounds "${servers[@]}" --database-url "$(db_url fedagg_size)" \
        --rounds "$db_rounds" --cohort "$db_cohort" --clients "$clients" | tee -a "$results"
    stop_nodes
fi

# What the nodes logged at warn and above, by event.
if [ -s "$work/serve.err" ]; then
    echo "# server log events (warn and above):"
    grep -o 'level=[a-z]* event=[^ ]*' "$work/serve.err" | sort | uniq -c | sed 's/^/#   /'
fi

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
base = next(r for r in rows if r["bench"] == "nodes-baseline")
dec, ins = base["decrypt_only_per_s"], base["libpq_inserts_per_s"]
print(f"\nbaselines ({base['update_bytes']} byte boxes): decrypt-only {dec:.0f}/s on "
      f"{base['decrypt_threads']} threads, raw libpq INSERT {ins:.0f}/s on {base['insert_clients']} connections")
sinks = {r["sink"]: r for r in rows if r["bench"] == "nodes-ceiling"}
for name, what in (("recv", "receive only"), ("open", "receive and open")):
    if name in sinks:
        r = sinks[name]
        cpu = " ".join(f"{k} {v:.3f}" for k, v in r["cpu_ms_per_update"].items())
        print(f"ceiling, bench_sink {what}: {r['accepted_per_s']:.0f}/s = {r['accepted_per_s'] / dec:.3f} x decrypt-only"
              f" (CPU ms per update: {cpu})")
print("close_s: rounds.ended_at - rounds.deadline (ended_at is the closing transaction's start);\n"
      "seen_s: when the ended round became visible, after the deadline; x_open_all divides seen_s\n"
      "by the time decrypt-only takes to open the cohort's boxes once; gauge_s: the closing\n"
      "node's fedagg_round_close_seconds (the node whose closed rounds rose; '-': not exposed)")
print("nodes cohort  accepted/s  x decrypt  x INSERT  statuses                 close_s  seen_s  x_open_all  gauge_s")
close10k, seen10k, gauge10k = {}, {}, {}
ok = [r for r in rows if r["bench"] == "nodes" and r["deadline_margin_s"] > 0]
for r in (r for r in rows if r["bench"] == "nodes"):
    a = r["accepted_per_s"]
    x_ins = f"{a / ins:8.2f}" if r["nodes"] == 1 else "       -"
    lat, seen = r["close_latency_s"], r["close_visible_s"]
    gauge = r["metrics_close_seconds"]
    print(f"{r['nodes']:5d} {r['cohort']:6d} {a:11.1f} {a / dec:10.3f} {x_ins}  "
          f"{json.dumps(r['status']):24s} {lat:7.3f} {seen:7.3f} {seen / (r['cohort'] / dec):11.2f}  "
          f"{'-' if gauge is None else f'{gauge:.3f}'}"
          + ("" if r in ok else "  (posting ran past the deadline: not used below)"))
    # a refused round (budget spent) releases nothing: not a close to compare
    if r["cohort"] == 10000 and r in ok and r["round_state"] == "closed":
        close10k.setdefault(r["nodes"], []).append(lat)
        seen10k.setdefault(r["nodes"], []).append(seen)
        if gauge is not None:
            gauge10k.setdefault(r["nodes"], []).append(gauge)
one = [r for r in ok if r["nodes"] == 1]
if one:
    a = max(r["accepted_per_s"] for r in one)
    print(f"target: ingest on 1 node >= 0.5 x decrypt-only: {a / dec:.3f}"
          f" ({'met' if a >= 0.5 * dec else 'not met'})")
    if "open" in sinks:
        c = sinks["open"]["accepted_per_s"]
        print(f"  the ceiling (receive and open, no database) is {c / dec:.3f} x decrypt-only here;"
              f" one node reaches {a / c:.3f} of it")
    print(f"target: ingest on 1 node >= 2 x raw INSERT: {a / ins:.2f}"
          f" ({'met' if a >= 2 * ins else 'not met'})")
# Where an accepted update's CPU went during the timed posting (all
# processes of the machine, from /proc), against what opening one box costs
# alone: the decrypt-only threads keep every core busy, so one open costs
# threads / rate core-seconds. "server / open" is the ingest rate, as a
# fraction of decrypt-only, that the servers and PostgreSQL would reach with
# the cores to themselves (the load generator elsewhere).
open_ms = 1000.0 * base["decrypt_threads"] / dec
print(f"CPU per accepted update, ms (opening one box alone: {open_ms:.3f}):")
print("nodes cohort   fedagg  postgres    load   other    idle   server/open  updates/commit")
for r in (r for r in rows if r["bench"] == "nodes" and "cpu_ms_per_update" in r):
    c = r["cpu_ms_per_update"]
    server = c["fedagg"] + c["postgres"]
    batch = r.get("mean_batch")
    print(f"{r['nodes']:5d} {r['cohort']:6d} {c['fedagg']:8.3f} {c['postgres']:9.3f} "
          f"{c['load']:7.3f} {c['other']:7.3f} {c['idle']:7.3f} "
          f"{open_ms / server if server > 0 else 0:13.3f}  {'-' if batch is None else f'{batch:14.1f}'}")
def spread(name, samples):
    # the median of each node count's rounds
    by_nodes = {n: sorted(v)[len(v) // 2] for n, v in samples.items()}
    if len(by_nodes) > 1:
        lo, hi = min(by_nodes.values()), max(by_nodes.values())
        x = (hi - lo) / lo if lo > 0 else float("inf")
        print(f"target: close latency ({name}) at 10,000 within 20% across nodes {sorted(by_nodes)}: "
              + ", ".join(f"{by_nodes[n]:.3f} s on {n} (median of {len(samples[n])})"
                          for n in sorted(by_nodes))
              + f"; spread {x:.0%} ({'met' if x <= 0.2 else 'not met'})")
# The close's own duration (the closing node's gauge) is what the target is
# about; close_s and seen_s also hold up to one 200 ms worker tick after the
# deadline, which dominates them when the close itself takes 0.1 s.
spread("gauge_s, the close itself", gauge10k)
spread("close_s", close10k)
spread("seen_s", seen10k)
for r in (r for r in rows if r["bench"] == "nodes-db"):
    print(f"database after {r['rounds_closed']} closed rounds of {r['cohort']} "
          f"({r['update_bytes']} byte boxes), after VACUUM: {r['pg_database_size'] / 1e6:.1f} MB; "
          f"every ciphertext kept: {r['if_ciphertexts_kept'] / 1e6:.1f} MB "
          f"({r['kept_round_bytes'] / 1e6:.1f} MB a round); ratio {r['kept_vs_actual']:.1f}")
    print(f"  largest tables after VACUUM (bytes): {r['largest_tables']}")
PY
