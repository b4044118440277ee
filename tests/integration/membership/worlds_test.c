/*
 * Neighbouring worlds on the server's real code paths: the same rounds run
 * twice on two databases with the same model seed and the same seeded
 * noise, once without device j (D) and once with it (D + j), under
 * adversarial orders of arrival, retries, two server processes and crashes.
 * User-level DP with add/remove adjacency holds only if j moves the
 * released model by at most its sensitivity: with S = 1, weight 1, FedAvg
 * at server learning rate 1 and the public denominator m, the two released
 * models differ by exactly ||clip(u_j)|| / m = S / m (j's update has norm
 * 5 S and is clipped to S): more means j displaced or doubled someone, less
 * means j was dropped although it was answered 202.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "privacy/keys.h"
#include "store/store.h"

#include "harness.h"
#include "pgtest.h"

#define M      3    /* min_cohort: the public denominator */
#define J      1000 /* device j's index (norm 5 S) */
#define OTHERS 4    /* devices of D: more than M, so a close at M arrivals would drop one */

typedef void (*scenario)(h_world *w, int with_j);

TestSuite(worlds, .timeout = 240);

static long cohort_of_round1(h_world *w)
{
    return h_sql_long(w, "SELECT (entry::jsonb->'mechanism'->>'cohort_size')::bigint"
                         " FROM privacy_ledger WHERE round_id = 1");
}

static void past_deadline(h_world *w)
{
    h_advance(w, h_until_deadline(w) + 0.5);
}

/* Round 1 ended: its receipts stay, its partial sums and any ciphertext are gone. */
static void no_update_outlives_round1(h_world *w)
{
    cr_assert(h_sql_long(w, "SELECT count(*) FROM updates WHERE round_id = 1") > 0);
    cr_assert_eq(h_sql_long(w, "SELECT count(*) FROM updates WHERE round_id = 1"
                               " AND octet_length(box) > 0"),
                 0, "a ciphertext of an ended round is still stored");
    cr_assert_eq(h_sql_long(w, "SELECT count(*) FROM partial_sums WHERE round_id = 1"), 0,
                 "a partial sum of an ended round is still stored");
}

/* Runs fn in D and D + j and checks the two releases of round 1. */
static void neighbours(scenario fn, int nprocs)
{
    fa_config cfg;
    h_world a, b;
    int64_t va = 0, vb = 0;
    float *pa, *pb;
    double d, bound = 1.0 / M;

    h_config(&cfg, M, 100, 60.0, 0.5);
    h_world_start(&a, &cfg, nprocs, 0);
    fn(&a, 0);
    h_world_start(&b, &cfg, nprocs, 0);
    fn(&b, 1);
    pa = h_model(&va, &a, -1);
    pb = h_model(&vb, &b, -1);
    cr_assert_eq(va, 1, "D published version %lld, not 1", (long long)va);
    cr_assert_eq(vb, 1, "D + j published version %lld, not 1", (long long)vb);
    cr_assert_eq(cohort_of_round1(&a), OTHERS);
    cr_assert_eq(cohort_of_round1(&b), OTHERS + 1, "the ledger's cohort must count j once");
    d = h_dist(pa, pb, h_dim());
    cr_assert(d <= bound * (1 + 1e-5), "j moved the release by %.9g > S/m = %.9g (%.4f S/m)", d,
              bound, d / bound);
    cr_assert(d >= bound * (1 - 1e-3), "j moved the release by only %.9g < S/m = %.9g (dropped?)",
              d, bound);
    no_update_outlives_round1(&a);
    no_update_outlives_round1(&b);
    h_verify_ledger(&a);
    h_verify_ledger(&b);
    free(pa);
    free(pb);
    h_world_stop(&a);
    h_world_stop(&b);
}

static void post_ok(h_world *w, int p, unsigned dev)
{
    const char *reason = NULL;
    int rc = h_participate(w, p, dev, &reason);
    cr_assert_eq(rc, FA_OK, "device %u: code %d reason %s", dev, rc, reason ? reason : "-");
}

/* ------------------------------------------------------------ orders */

static void j_first(h_world *w, int with_j)
{
    if (with_j) {
        post_ok(w, 0, J);
        h_tick(w, 0);
    }
    for (unsigned k = 0; k < OTHERS; k++) {
        post_ok(w, 0, k);
        h_tick(w, 0); /* the worker runs between posts; a round with M updates stays open */
    }
    past_deadline(w);
    h_tick(w, 0);
}

Test(worlds, j_first_does_not_push_anyone_out)
{
    neighbours(j_first, 1);
}

static void j_last(h_world *w, int with_j)
{
    for (unsigned k = 0; k < OTHERS; k++) {
        post_ok(w, 0, k);
        h_tick(w, 0);
    }
    h_advance(w, h_until_deadline(w) - 0.25);
    if (with_j)
        post_ok(w, 0, J);
    past_deadline(w);
    h_tick(w, 0);
}

Test(worlds, j_just_before_the_deadline_is_in)
{
    neighbours(j_last, 1);
}

static void j_retried(h_world *w, int with_j)
{
    h_post post;
    fa_update_receipt first, again;

    post_ok(w, 0, 0);
    if (with_j) {
        h_prepare(&post, w, 0, J);
        cr_assert_eq(h_send(w, 0, &post, NULL, &first), FA_OK);
        cr_assert_eq(h_send(w, 0, &post, NULL, &again), FA_OK); /* a retry before any fold */
        cr_assert(again.duplicate);
        cr_assert_str_eq(again.receipt, first.receipt);
        h_tick(w, 0);
        cr_assert_eq(h_send(w, 0, &post, NULL, &again), FA_OK); /* and one after */
        cr_assert(again.duplicate);
        h_post_done(&post);
    }
    for (unsigned k = 1; k < OTHERS; k++)
        post_ok(w, 0, k);
    h_tick(w, 0);
    past_deadline(w);
    h_tick(w, 0);
}

Test(worlds, j_retried_is_counted_once)
{
    neighbours(j_retried, 1);
}

/* ------------------------------------------------------ two processes */

static void two_processes(h_world *w, int with_j, int closer)
{
    post_ok(w, 0, 0);
    post_ok(w, 1, 1);
    if (with_j)
        post_ok(w, 1, J);
    h_tick(w, 0);
    h_tick(w, 1);
    post_ok(w, 0, 2);
    post_ok(w, 1, 3);
    h_tick(w, 1 - closer);
    past_deadline(w);
    /* The closer's running sum lacks the other process's updates: the
     * close folds those from the store, and only those. */
    h_tick(w, closer);
    h_tick(w, 1 - closer);
}

static void two_processes_j_elsewhere(h_world *w, int with_j)
{
    two_processes(w, with_j, 0);
}

static void two_processes_j_here(h_world *w, int with_j)
{
    two_processes(w, with_j, 1);
}

Test(worlds, two_processes_closer_did_not_receive_j)
{
    neighbours(two_processes_j_elsewhere, 2);
}

Test(worlds, two_processes_closer_received_j)
{
    neighbours(two_processes_j_here, 2);
}

/* ------------------------------------------------- stored before upgrade */

/*
 * j's update stored the way every update was before partial sums existed:
 * a row holding its ciphertext and no node (a database upgraded while
 * round 1 was open). The close folds it from the ciphertext, once, and a
 * retry of the same post afterwards is an identical retry, not a second
 * member.
 */
static void j_stored_as_a_ciphertext(h_world *w, int with_j)
{
    post_ok(w, 0, 0);
    post_ok(w, 0, 1);
    if (with_j) {
        h_post post;
        fa_store_update_in u;
        fa_update_receipt again;
        fa_error err = FA_ERROR_INIT;
        int64_t id = 0;

        h_prepare(&post, w, 0, J);
        memset(&u, 0, sizeof(u));
        u.round_id = post.round_id;
        fa_sha256(u.token_hash, post.token, strlen(post.token));
        (void)snprintf(u.receipt, sizeof(u.receipt), "legacy-j");
        (void)snprintf(u.key_id, sizeof(u.key_id), "%s", fa_keys_key_id(h_keys()));
        u.num_samples = 10;
        u.box = post.box;
        u.box_len = post.box_len;
        cr_assert_eq(fa_store_update_insert(&id, w->st[0], &u, &err), FA_OK, "%s", err.msg);
        cr_assert_eq(h_send(w, 0, &post, NULL, &again), FA_OK);
        cr_assert(again.duplicate);
        cr_assert_str_eq(again.receipt, "legacy-j");
        h_post_done(&post);
    }
    post_ok(w, 0, 2);
    post_ok(w, 0, 3);
    past_deadline(w);
    h_tick(w, 0);
}

Test(worlds, j_stored_as_a_ciphertext_before_the_upgrade_is_released_once)
{
    neighbours(j_stored_as_a_ciphertext, 1);
}

/* ------------------------------------------------------------- crashes */

static void crash_between_posts(h_world *w, int with_j)
{
    post_ok(w, 0, 0);
    post_ok(w, 0, 1);
    h_tick(w, 0);
    h_world_restart(w, 0); /* the sum is rebuilt from the store */
    if (with_j)
        post_ok(w, 0, J); /* queued, then lost with the queue */
    post_ok(w, 0, 2);
    h_world_restart(w, 0);
    post_ok(w, 0, 3);
    h_tick(w, 0);
    past_deadline(w);
    h_tick(w, 0);
}

Test(worlds, crash_and_restart_between_posts)
{
    neighbours(crash_between_posts, 1);
}

static void rebuilt_then_queued(h_world *w, int with_j)
{
    /* Process 1 restarts and rebuilds the round from the store after j's
     * update was committed through it, while j's job may still be queued:
     * the rebuild and the queue both hold j, and j must count once. */
    post_ok(w, 0, 0);
    if (with_j)
        post_ok(w, 1, J);
    post_ok(w, 0, 1);
    h_tick(w, 1);
    post_ok(w, 1, 2);
    post_ok(w, 0, 3);
    h_tick(w, 1);
    past_deadline(w);
    h_tick(w, 1);
}

Test(worlds, rebuild_and_queue_hold_j_once)
{
    neighbours(rebuilt_then_queued, 2);
}

/* ----------------------------------------------- the deadline and the cap */

Test(worlds, j_after_the_deadline_is_refused_and_changes_nothing)
{
    fa_config cfg;
    h_world a, b;
    const char *reason = NULL;
    float *pa, *pb;

    h_config(&cfg, M, 100, 60.0, 0.5);
    h_world_start(&a, &cfg, 1, 0);
    h_world_start(&b, &cfg, 1, 0);
    for (unsigned k = 0; k < OTHERS; k++) {
        post_ok(&a, 0, k);
        post_ok(&b, 0, k);
    }
    h_post post;
    h_prepare(&post, &b, 0, J);
    past_deadline(&a);
    past_deadline(&b);
    cr_assert_eq(h_send(&b, 0, &post, &reason, NULL), FA_ECONFLICT);
    cr_assert_str_eq(reason, "round_closed");
    h_post_done(&post);
    h_tick(&a, 0);
    h_tick(&b, 0);
    pa = h_model(NULL, &a, 1);
    pb = h_model(NULL, &b, 1);
    cr_assert_eq(h_dist(pa, pb, h_dim()), 0.0);
    cr_assert_eq(cohort_of_round1(&b), OTHERS);
    free(pa);
    free(pb);
    h_world_stop(&a);
    h_world_stop(&b);
}

Test(worlds, a_full_round_turns_devices_away_and_releases_nothing)
{
    fa_config cfg;
    h_world a, b;
    const char *reason = NULL;
    float *pa;

    /* max_cohort 5: D has 4 updates and releases; D + j reaches 5, so a
     * later device is turned away, and the round is abandoned. */
    h_config(&cfg, M, OTHERS + 1, 60.0, 0.5);
    h_world_start(&a, &cfg, 1, 0);
    h_world_start(&b, &cfg, 1, 0);
    post_ok(&b, 0, J);
    for (unsigned k = 0; k < OTHERS; k++) {
        post_ok(&a, 0, k);
        post_ok(&b, 0, k);
    }
    cr_assert_eq(h_participate(&b, 0, OTHERS, &reason), FA_ECONFLICT);
    cr_assert_str_eq(reason, "round_full");
    h_tick(&b, 0); /* full: ends at once, before its deadline */
    cr_assert_eq(h_sql_long(&b, "SELECT count(*) FROM rounds WHERE id = 1 AND state = 'abandoned'"),
                 1);
    cr_assert_eq(h_sql_long(&b, "SELECT count(*) FROM model_versions"), 1, "nothing is released");
    cr_assert_eq(h_sql_long(&b, "SELECT count(*) FROM privacy_ledger WHERE kind = 'abandonment'"
                                " AND cumulative_epsilon = 0"),
                 1);
    past_deadline(&a);
    h_tick(&a, 0);
    pa = h_model(NULL, &a, 1);
    cr_assert_eq(cohort_of_round1(&a), OTHERS);
    no_update_outlives_round1(&a);
    no_update_outlives_round1(&b); /* abandoned rounds too */
    h_verify_ledger(&a);
    h_verify_ledger(&b);
    free(pa);
    h_world_stop(&a);
    h_world_stop(&b);
}

/* ------------------------------------------------ a tampered database */

static void sql_exec(h_world *w, const char *q)
{
    PGconn *pg = fa_pgtest_connect(w->db);
    free(fa_pgtest_query(pg, q));
    PQfinish(pg);
}

/* Two released rounds, then round 3 with enough updates to release. */
static void two_releases_then_a_third_round(h_world *w)
{
    fa_config cfg;

    h_config(&cfg, 1, 100, 60.0, 0.5);
    h_world_start(w, &cfg, 1, 0);
    for (int r = 0; r < 2; r++) {
        post_ok(w, 0, (unsigned)r);
        past_deadline(w);
        h_tick(w, 0);
    }
    cr_assert_eq(h_sql_long(w, "SELECT max(version) FROM model_versions"), 2);
    post_ok(w, 0, 7);
    past_deadline(w);
}

static void close_is_refused(h_world *w, const char *why)
{
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_aggregator_tick(w->agg[0], &err), FA_EINTERNAL, "the close went ahead");
    cr_assert(strstr(err.msg, why) != NULL, "unexpected reason: %s", err.msg);
    cr_assert_eq(h_sql_long(w, "SELECT count(*) FROM rounds WHERE id = 3 AND state = 'open'"), 1);
    cr_assert_eq(h_sql_long(w, "SELECT count(*) FROM model_versions WHERE version = 3"), 0);
}

Test(tamper, a_partial_sum_dropped_or_recounted_the_close_refuses)
{
    h_world w;

    /* A node's partial sum removed: its receipts name a sum that is gone. */
    two_releases_then_a_third_round(&w);
    sql_exec(&w, "DELETE FROM partial_sums WHERE round_id = 3");
    close_is_refused(&w, "receipts but its partial sum holds 0");
    h_world_stop(&w);

    /* A receipt forged into the node's sum and its count raised to match:
     * the seal is bound to the count, so the sum no longer opens. */
    two_releases_then_a_third_round(&w);
    sql_exec(&w, "INSERT INTO updates (round_id, token_hash, receipt, key_id, num_samples, node)"
                 " SELECT 3, decode(repeat('ab', 32), 'hex'), 'forged', key_id, 1, node"
                 " FROM updates WHERE round_id = 3 LIMIT 1");
    sql_exec(&w, "UPDATE partial_sums SET folded = folded + 1 WHERE round_id = 3");
    close_is_refused(&w, "does not open");
    h_world_stop(&w);
}

Test(tamper, ledger_tail_dropped_the_close_refuses)
{
    h_world w;

    two_releases_then_a_third_round(&w);
    /* An operator with database access drops the newest entry to spend
     * its epsilon again. */
    sql_exec(&w, "ALTER TABLE privacy_ledger DISABLE TRIGGER USER");
    sql_exec(&w, "DELETE FROM privacy_ledger WHERE seq = (SELECT max(seq) FROM privacy_ledger)");
    close_is_refused(&w, "entries are missing");
    h_world_stop(&w);
}

Test(tamper, ledger_rolled_back_with_its_rounds_the_close_refuses)
{
    h_world w;

    two_releases_then_a_third_round(&w);
    /* A careful rollback: the newest entry and round go, round 2 reopens,
     * but model version 2 stays (the release is in the field). */
    sql_exec(&w, "ALTER TABLE privacy_ledger DISABLE TRIGGER USER");
    sql_exec(&w, "DELETE FROM privacy_ledger WHERE round_id = 2");
    sql_exec(&w, "DELETE FROM partial_sums WHERE round_id IN (2, 3)");
    sql_exec(&w, "DELETE FROM updates WHERE round_id IN (2, 3)");
    sql_exec(&w, "DELETE FROM round_tokens WHERE round_id = 3");
    sql_exec(&w, "DELETE FROM rounds WHERE id = 3");
    sql_exec(&w, "UPDATE rounds SET state = 'open', result_version = NULL, ended_at = NULL,"
                 " base_version = 2, deadline = to_timestamp(2e9) WHERE id = 2");
    post_ok(&w, 0, 8);
    past_deadline(&w);
    fa_error err = FA_ERROR_INIT;
    int rc = fa_aggregator_tick(w.agg[0], &err);
    cr_assert_eq(rc, FA_EINTERNAL, "the close went ahead (%d: %s)", rc, err.msg);
    cr_assert(strstr(err.msg, "newest release is version 1") != NULL, "%s", err.msg);
    h_world_stop(&w);
}

/*
 * A complete rollback: the newest release goes with its entry, its model
 * version and its rounds, leaving a database that is consistent in itself
 * (and whose every entry still verifies). Only a process that accounted the
 * removed release can tell; it must refuse rather than spend that budget
 * again.
 */
Test(tamper, a_complete_rollback_is_refused_by_the_process_that_accounted_it)
{
    h_world w;

    two_releases_then_a_third_round(&w);
    sql_exec(&w, "ALTER TABLE privacy_ledger DISABLE TRIGGER USER");
    sql_exec(&w, "ALTER TABLE model_versions DISABLE TRIGGER USER");
    sql_exec(&w, "DELETE FROM privacy_ledger WHERE round_id = 2");
    sql_exec(&w, "DELETE FROM partial_sums WHERE round_id IN (2, 3)");
    sql_exec(&w, "DELETE FROM updates WHERE round_id IN (2, 3)");
    sql_exec(&w, "DELETE FROM round_tokens WHERE round_id IN (2, 3)");
    sql_exec(&w, "DELETE FROM rounds WHERE id = 3");
    sql_exec(&w, "UPDATE rounds SET state = 'open', result_version = NULL, ended_at = NULL,"
                 " base_version = 1, deadline = to_timestamp(2e9) WHERE id = 2");
    sql_exec(&w, "DELETE FROM model_versions WHERE version = 2");
    post_ok(&w, 0, 8);
    past_deadline(&w);
    fa_error err = FA_ERROR_INIT;
    int rc = fa_aggregator_tick(w.agg[0], &err);
    cr_assert_eq(rc, FA_EINTERNAL, "the close went ahead (%d: %s)", rc, err.msg);
    cr_assert(strstr(err.msg, "entries were removed or rewritten") != NULL, "%s", err.msg);
    cr_assert_eq(h_sql_long(&w, "SELECT count(*) FROM model_versions WHERE version = 2"), 0);
    h_world_stop(&w);
}

Test(tamper, model_row_rewritten_the_close_refuses)
{
    h_world w;

    two_releases_then_a_third_round(&w);
    sql_exec(&w, "ALTER TABLE model_versions DISABLE TRIGGER USER");
    sql_exec(&w, "UPDATE model_versions SET sha256 = sha256(snapshot || '\\x00'::bytea)"
                 " WHERE version = 2");
    h_world_restart(&w, 0); /* a process that has not cached version 2 */
    past_deadline(&w);
    close_is_refused(&w, "tampered");
    h_world_stop(&w);
}

Test(tamper, model_snapshot_replaced_consistently_the_close_refuses)
{
    h_world w;

    two_releases_then_a_third_round(&w);
    /* Version 2's bytes and digest replaced by version 1's: consistent in
     * the table, but not the snapshot the ledger's release entry names. */
    sql_exec(&w, "ALTER TABLE model_versions DISABLE TRIGGER USER");
    sql_exec(&w, "UPDATE model_versions SET (snapshot, sha256) = (SELECT snapshot, sha256 FROM"
                 " model_versions WHERE version = 1) WHERE version = 2");
    h_world_restart(&w, 0);
    past_deadline(&w);
    close_is_refused(&w, "not the snapshot its release entry names");
    h_world_stop(&w);
}

Test(tamper, model_versions_refuse_update_and_delete)
{
    h_world w;
    char msg[512];
    PGconn *pg;

    two_releases_then_a_third_round(&w);
    pg = fa_pgtest_connect(w.db);
    cr_assert_null(fa_pgtest_try(pg, "UPDATE model_versions SET metrics = '{}'", msg, sizeof(msg)));
    cr_assert(strstr(msg, "append-only") != NULL, "%s", msg);
    cr_assert_null(
        fa_pgtest_try(pg, "DELETE FROM model_versions WHERE version = 2", msg, sizeof(msg)));
    cr_assert_null(fa_pgtest_try(pg, "TRUNCATE model_versions CASCADE", msg, sizeof(msg)));
    PQfinish(pg);
    h_world_stop(&w);
}

/* --------------------------------------------------- budget changes */

Test(ledger, a_changed_budget_is_a_ledger_event_before_the_next_entry)
{
    fa_config cfg;
    h_world w;

    h_config(&cfg, 1, 100, 60.0, 0.5);
    h_world_start(&w, &cfg, 1, 0);
    post_ok(&w, 0, 0);
    past_deadline(&w);
    h_tick(&w, 0);
    /* The operator raises the budget and restarts (the configuration is
     * read once at start). */
    w.cfg.epsilon_max = 2000.0;
    h_world_restart(&w, 0);
    post_ok(&w, 0, 1);
    past_deadline(&w);
    h_tick(&w, 0);
    cr_assert_eq(h_sql_long(&w, "SELECT count(*) FROM privacy_ledger"), 3);
    cr_assert_eq(h_sql_long(&w, "SELECT seq FROM privacy_ledger WHERE kind = 'budget'"), 2);
    cr_assert_eq(h_sql_long(&w, "SELECT (entry::jsonb->'budget'->>'epsilon_max')::float8"
                                " FROM privacy_ledger WHERE seq = 2"),
                 2000);
    cr_assert_eq(h_sql_long(&w, "SELECT count(*) FROM privacy_ledger WHERE seq = 3"
                                " AND kind = 'release' AND round_id = 2"),
                 1);
    /* An unchanged budget writes no event. */
    post_ok(&w, 0, 2);
    past_deadline(&w);
    h_tick(&w, 0);
    cr_assert_eq(h_sql_long(&w, "SELECT count(*) FROM privacy_ledger WHERE kind = 'budget'"), 1);
    h_verify_ledger(&w);
    h_world_stop(&w);
}

/* ------------------------------------------------------------ the ALS model */

/* 1 when the f x f matrix m is positive definite (a Cholesky factorisation succeeds). */
static int positive_definite(const double *m, int f)
{
    double l[H_FACTORS * H_FACTORS] = {0};

    for (int j = 0; j < f; j++) {
        double d = m[j * f + j];
        for (int k = 0; k < j; k++)
            d -= l[j * f + k] * l[j * f + k];
        if (!(d > 0.0))
            return 0;
        l[j * f + j] = sqrt(d);
        for (int i = j + 1; i < f; i++) {
            double s = m[i * f + j];
            for (int k = 0; k < j; k++)
                s -= l[i * f + k] * l[j * f + k];
            l[i * f + j] = s / l[j * f + j];
        }
    }
    return 1;
}

/*
 * The released mean (b rows, then the symmetric Gram part) read back from an
 * ALS model published with step 1: the Gram slot is (A + A^T) / 2 and each
 * row is v_i = (A' )^-1 b_i with A' = that + lambda I, lambda = reg |tr| / F
 * doubled until A' is positive definite (docs/model.md), so b_i = A' v_i.
 */
static double *als_release(const float *model, double reg)
{
    const size_t f = H_FACTORS, gram = H_ITEMS * H_FACTORS;
    double a[H_FACTORS * H_FACTORS], tr = 0.0, lambda, *out = calloc(h_dim(), sizeof(double));

    cr_assert_not_null(out);
    for (size_t k = 0; k < f * f; k++)
        a[k] = out[gram + k] = model[gram + k];
    for (size_t j = 0; j < f; j++)
        tr += a[j * f + j];
    lambda = reg * fabs(tr) / (double)f;
    for (;;) {
        double t[H_FACTORS * H_FACTORS];
        memcpy(t, a, sizeof(t));
        for (size_t j = 0; j < f; j++)
            t[j * f + j] += lambda;
        if (positive_definite(t, (int)f))
            break;
        lambda *= 2.0;
    }
    for (size_t i = 0; i < H_ITEMS; i++)
        for (size_t r = 0; r < f; r++) {
            double s = lambda * model[i * f + r];
            for (size_t c = 0; c < f; c++)
                s += a[r * f + c] * model[i * f + c];
            out[i * f + r] = s;
        }
    return out;
}

/*
 * The same neighbouring worlds on the ALS model with trust_policy =
 * structure: j's update counts with weight 1 whatever sample count it
 * claims, and the release read back from the two models differs by exactly
 * S / m (float storage of the rows: 1e-4 relative).
 */
static void neighbours_als(scenario fn, int nprocs)
{
    fa_config cfg;
    h_world a, b;
    int64_t va = 0, vb = 0;
    float *pa, *pb;
    double *ra, *rb, d = 0.0, bound = 1.0 / M;

    h_config_als(&cfg, M, 100, 60.0, 0.5);
    h_world_start(&a, &cfg, nprocs, 0);
    fn(&a, 0);
    h_world_start(&b, &cfg, nprocs, 0);
    fn(&b, 1);
    pa = h_model(&va, &a, -1);
    pb = h_model(&vb, &b, -1);
    cr_assert_eq(va, 1, "D published version %lld, not 1", (long long)va);
    cr_assert_eq(vb, 1, "D + j published version %lld, not 1", (long long)vb);
    cr_assert_eq(cohort_of_round1(&a), OTHERS);
    cr_assert_eq(cohort_of_round1(&b), OTHERS + 1, "the ledger's cohort must count j once");
    ra = als_release(pa, cfg.als_reg);
    rb = als_release(pb, cfg.als_reg);
    for (size_t i = 0; i < h_dim(); i++)
        d += (ra[i] - rb[i]) * (ra[i] - rb[i]);
    d = sqrt(d);
    cr_assert(d <= bound * (1 + 1e-4), "j moved the ALS release by %.9g > S/m = %.9g", d, bound);
    cr_assert(d >= bound * (1 - 1e-3), "j moved the ALS release by only %.9g < S/m = %.9g", d,
              bound);
    no_update_outlives_round1(&a);
    no_update_outlives_round1(&b);
    h_verify_ledger(&a);
    h_verify_ledger(&b);
    free(ra);
    free(rb);
    free(pa);
    free(pb);
    h_world_stop(&a);
    h_world_stop(&b);
}

Test(worlds, als_j_moves_the_release_by_exactly_s_over_m)
{
    neighbours_als(j_first, 1);
}

Test(worlds, als_j_retried_is_counted_once)
{
    neighbours_als(j_retried, 1);
}

/* The ALS sums survive a crash and merge across nodes like the NCF ones. */
Test(worlds, als_crash_and_restart_between_posts)
{
    neighbours_als(crash_between_posts, 1);
}

Test(worlds, als_two_processes_closer_did_not_receive_j)
{
    neighbours_als(two_processes_j_elsewhere, 2);
}

Test(worlds, als_rebuild_and_queue_hold_j_once)
{
    neighbours_als(rebuilt_then_queued, 2);
}
