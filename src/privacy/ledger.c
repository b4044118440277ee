#include "privacy/ledger.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "privacy/crypto.h"

/*
 * The v1 canonical encoding (docs/privacy.md, "Canonical encoding (v1), byte for byte") is JSON
 * text with a fixed key order, no whitespace, integers in decimal, doubles
 * as printf("%.17g") (which round-trips every double exactly), booleans as
 * true/false, names restricted to [a-z0-9_.,()+-] so no escaping is ever
 * needed, and prev_hash as 64 lower-case hex digits. The parser reads that
 * shape, then re-encodes what it read and demands byte equality: there is
 * exactly one accepted text per entry, so the hash names the entry.
 *
 * printf and strtod follow LC_NUMERIC; fedagg never calls setlocale(), so
 * both use the "C" locale's '.'.
 */

#define REL_TOL 1e-9 /* verification: relative agreement of recomputed numbers */

static const char *const KIND_NAMES[] = {NULL, "release", "refusal", "abandonment"};

const char *fa_ledger_kind_name(fa_ledger_kind kind)
{
    if (kind < FA_LEDGER_RELEASE || kind > FA_LEDGER_ABANDONMENT)
        return NULL;
    return KIND_NAMES[kind];
}

int fa_ledger_kind_parse(fa_ledger_kind *out, const char *name)
{
    for (int k = FA_LEDGER_RELEASE; k <= FA_LEDGER_ABANDONMENT; k++) {
        if (strcmp(name, KIND_NAMES[k]) == 0) {
            *out = (fa_ledger_kind)k;
            return FA_OK;
        }
    }
    return FA_EINVAL;
}

/* ============================================================= validation */

static int name_ok(const char *s)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        const char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == ',' || c == '(' || c == ')' || c == '+' || c == '-'))
            return 0;
        if (n + 1 >= FA_LEDGER_NAME_MAX)
            return 0;
    }
    return n > 0;
}

/* Finite, >= 0 and not negative zero: the only doubles an entry holds besides > 0 ones. */
static int nonneg_ok(double x)
{
    return isfinite(x) && x >= 0.0 && !signbit(x);
}

/* Checks every field's domain; the encoder and the parser both call it. */
static int entry_check(const fa_ledger_entry *e, fa_error *err)
{
    const fa_ledger_mechanism *m = &e->mech;
    fa_error inner = FA_ERROR_INIT;

    if (e->seq < 1)
        return fa_fail(err, FA_EINVAL, "entry seq %lld is not positive", (long long)e->seq);
    if (fa_ledger_kind_name(e->kind) == NULL)
        return fa_fail(err, FA_EINVAL, "entry kind %d is unknown", (int)e->kind);
    if (e->round_id < 0 || e->model_version < 0 || e->created_at < 0)
        return fa_fail(err, FA_EINVAL, "entry round, model version or time is negative");
    if ((e->kind == FA_LEDGER_RELEASE) != (e->model_version > 0))
        return fa_fail(err, FA_EINVAL, "a release produces a model version and nothing else does");
    if (!(isfinite(m->clip_norm) && m->clip_norm > 0.0))
        return fa_fail(err, FA_EINVAL, "clip norm %g is not a finite positive number",
                       m->clip_norm);
    if (fa_rdp_check(m->sampling_rate, m->noise_multiplier, &inner) < 0)
        return fa_fail(err, FA_EINVAL, "%s", inner.msg);
    if (m->cohort_size < 0)
        return fa_fail(err, FA_EINVAL, "cohort size is negative");
    if (!(isfinite(m->denominator) && m->denominator > 0.0))
        return fa_fail(err, FA_EINVAL, "denominator %g is not a finite positive number",
                       m->denominator);
    if (!(m->weight_bound > 0.0 && m->weight_bound <= 1.0))
        return fa_fail(err, FA_EINVAL, "weight bound %g is outside (0, 1]", m->weight_bound);
    if (m->seeded != 0 && m->seeded != 1)
        return fa_fail(err, FA_EINVAL, "seeded flag is not 0 or 1");
    if (!name_ok(m->denominator_rule) || !name_ok(m->noise_method) || !name_ok(m->trust_policy))
        return fa_fail(err, FA_EINVAL, "a name is empty, too long or not in [a-z0-9_.,()+-]");
    if (!(isfinite(e->epsilon_max) && e->epsilon_max > 0.0))
        return fa_fail(err, FA_EINVAL, "budget epsilon %g is not a finite positive number",
                       e->epsilon_max);
    if (!(e->delta > 0.0 && e->delta < 1.0))
        return fa_fail(err, FA_EINVAL, "delta %g is outside (0, 1)", e->delta);
    for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++) {
        if (!nonneg_ok(e->round_rdp[i]) || !nonneg_ok(e->cumulative_rdp[i]))
            return fa_fail(err, FA_EINVAL, "rdp at order %g is negative or not finite",
                           fa_rdp_order(i));
        if (e->kind != FA_LEDGER_RELEASE && e->round_rdp[i] != 0.0)
            return fa_fail(err, FA_EINVAL, "a %s spends no privacy but has round rdp",
                           fa_ledger_kind_name(e->kind));
    }
    if (!nonneg_ok(e->epsilon))
        return fa_fail(err, FA_EINVAL, "epsilon %g is negative or not finite", e->epsilon);
    if (!(e->order == 0.0 && !signbit(e->order)) && fa_rdp_order_index(e->order) < 0)
        return fa_fail(err, FA_EINVAL, "order %g is not one of the accountant's", e->order);
    return FA_OK;
}

/* =============================================================== building */

void fa_ledger_entry_next(fa_ledger_entry *e, const fa_ledger_entry *prev,
                          const unsigned char prev_hash[FA_LEDGER_HASH_BYTES])
{
    memset(e, 0, sizeof(*e));
    e->seq = 1;
    if (prev == NULL)
        return;
    e->seq = prev->seq + 1;
    memcpy(e->prev_hash, prev_hash, FA_LEDGER_HASH_BYTES);
    memcpy(e->cumulative_rdp, prev->cumulative_rdp, sizeof(e->cumulative_rdp));
    e->epsilon = prev->epsilon;
    e->order = prev->order;
}

int fa_ledger_entry_decide(fa_ledger_entry *e, const fa_budget *b, fa_error *err)
{
    fa_budget_decision d;
    int rc;

    rc = fa_budget_decide(&d, b, e->cumulative_rdp, e->mech.sampling_rate, e->mech.noise_multiplier,
                          err);
    if (rc < 0 && rc != FA_EREFUSED)
        return rc;
    e->epsilon_max = b->epsilon_max;
    e->delta = b->delta;
    if (rc == FA_EREFUSED) {
        e->kind = FA_LEDGER_REFUSAL;
        e->model_version = 0;
        memset(e->round_rdp, 0, sizeof(e->round_rdp));
    } else {
        e->kind = FA_LEDGER_RELEASE;
        memcpy(e->round_rdp, d.round_rdp, sizeof(e->round_rdp));
    }
    memcpy(e->cumulative_rdp, d.cumulative_rdp, sizeof(e->cumulative_rdp));
    e->epsilon = d.epsilon;
    e->order = d.order;
    return rc;
}

int fa_ledger_entry_abandon(fa_ledger_entry *e, const fa_budget *b, fa_error *err)
{
    int rc;

    if ((rc = fa_budget_check(b, err)) < 0)
        return rc;
    e->kind = FA_LEDGER_ABANDONMENT;
    e->model_version = 0;
    e->epsilon_max = b->epsilon_max;
    e->delta = b->delta;
    memset(e->round_rdp, 0, sizeof(e->round_rdp));
    return fa_rdp_epsilon(&e->epsilon, &e->order, e->cumulative_rdp, b->delta, err);
}

/* =============================================================== encoding */

typedef struct outbuf {
    char *p;
    size_t len, cap; /* cap excludes the NUL */
    int overflow;
} outbuf;

static void put(outbuf *o, const char *s, size_t n)
{
    if (o->overflow || n > o->cap - o->len) {
        o->overflow = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void put_lit(outbuf *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_i64(outbuf *o, int64_t v)
{
    char tmp[32];
    const int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v);

    put(o, tmp, (size_t)n);
}

static void put_dbl(outbuf *o, double v)
{
    char tmp[40];
    const int n = snprintf(tmp, sizeof(tmp), "%.17g", v);

    put(o, tmp, (size_t)n);
}

static void put_str(outbuf *o, const char *s)
{
    put_lit(o, "\"");
    put_lit(o, s);
    put_lit(o, "\"");
}

static void put_vec(outbuf *o, const double *v)
{
    put_lit(o, "[");
    for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++) {
        if (i > 0)
            put_lit(o, ",");
        put_dbl(o, v[i]);
    }
    put_lit(o, "]");
}

/* Writes e's canonical text into o (fields already checked). */
static void encode(outbuf *o, const fa_ledger_entry *e)
{
    const fa_ledger_mechanism *m = &e->mech;
    char hex[2 * FA_LEDGER_HASH_BYTES + 1];

    put_lit(o, "{\"format\":\"" FA_LEDGER_FORMAT "\",\"seq\":");
    put_i64(o, e->seq);
    put_lit(o, ",\"kind\":");
    put_str(o, fa_ledger_kind_name(e->kind));
    put_lit(o, ",\"round_id\":");
    put_i64(o, e->round_id);
    put_lit(o, ",\"model_version\":");
    put_i64(o, e->model_version);
    put_lit(o, ",\"created_at\":");
    put_i64(o, e->created_at);
    put_lit(o, ",\"mechanism\":{\"clip_norm\":");
    put_dbl(o, m->clip_norm);
    put_lit(o, ",\"noise_multiplier\":");
    put_dbl(o, m->noise_multiplier);
    put_lit(o, ",\"sampling_rate\":");
    put_dbl(o, m->sampling_rate);
    put_lit(o, ",\"cohort_size\":");
    put_i64(o, m->cohort_size);
    put_lit(o, ",\"denominator\":");
    put_dbl(o, m->denominator);
    put_lit(o, ",\"denominator_rule\":");
    put_str(o, m->denominator_rule);
    put_lit(o, ",\"weight_bound\":");
    put_dbl(o, m->weight_bound);
    put_lit(o, ",\"noise_method\":");
    put_str(o, m->noise_method);
    put_lit(o, ",\"seeded\":");
    put_lit(o, m->seeded ? "true" : "false");
    put_lit(o, ",\"trust_policy\":");
    put_str(o, m->trust_policy);
    put_lit(o, "},\"budget\":{\"epsilon_max\":");
    put_dbl(o, e->epsilon_max);
    put_lit(o, ",\"delta\":");
    put_dbl(o, e->delta);
    put_lit(o, "},\"accountant\":\"" FA_LEDGER_ACCOUNTANT "\",\"round_rdp\":");
    put_vec(o, e->round_rdp);
    put_lit(o, ",\"cumulative_rdp\":");
    put_vec(o, e->cumulative_rdp);
    put_lit(o, ",\"epsilon\":");
    put_dbl(o, e->epsilon);
    put_lit(o, ",\"order\":");
    put_dbl(o, e->order);
    put_lit(o, ",\"prev_hash\":\"");
    fa_hex_encode(hex, e->prev_hash, FA_LEDGER_HASH_BYTES);
    put_lit(o, hex);
    put_lit(o, "\"}");
}

int fa_ledger_entry_encode(char **text_out, size_t *len_out, const fa_ledger_entry *e,
                           fa_error *err)
{
    outbuf o = {NULL, 0, FA_LEDGER_TEXT_MAX, 0};
    int rc;

    *text_out = NULL;
    *len_out = 0;
    if ((rc = entry_check(e, err)) < 0)
        return rc;
    o.p = malloc(FA_LEDGER_TEXT_MAX + 1);
    if (o.p == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory encoding a ledger entry");
    o.p[0] = '\0';
    encode(&o, e);
    if (o.overflow) {
        free(o.p);
        return fa_fail(err, FA_EINVAL, "ledger entry is longer than %d bytes", FA_LEDGER_TEXT_MAX);
    }
    *text_out = o.p;
    *len_out = o.len;
    return FA_OK;
}

/* ================================================================ parsing */

typedef struct cursor {
    const char *p, *end;
    int bad; /* sticky: once set, every read fails */
} cursor;

static void expect(cursor *c, const char *lit)
{
    const size_t n = strlen(lit);

    if (c->bad || (size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) {
        c->bad = 1;
        return;
    }
    c->p += n;
}

/* Copies the longest run of chars in `set` (at most cap-1) into tok. */
static size_t token(cursor *c, const char *set, char *tok, size_t cap)
{
    size_t n = 0;

    if (c->bad)
        return 0;
    while (c->p + n < c->end && c->p[n] != '\0' && strchr(set, c->p[n]) != NULL) {
        if (n + 1 >= cap) {
            c->bad = 1;
            return 0;
        }
        tok[n] = c->p[n];
        n++;
    }
    tok[n] = '\0';
    c->p += n;
    if (n == 0)
        c->bad = 1;
    return n;
}

static int64_t get_i64(cursor *c)
{
    char tok[24];
    int64_t v = 0;

    if (token(c, "-0123456789", tok, sizeof(tok)) == 0 || fa_parse_i64(&v, tok) < 0)
        c->bad = 1;
    return v;
}

static double get_dbl(cursor *c)
{
    char tok[40];
    double v = 0.0;

    if (token(c, "-+.0123456789eE", tok, sizeof(tok)) == 0 || fa_parse_double(&v, tok) < 0)
        c->bad = 1;
    return v;
}

static void get_str(cursor *c, char out[FA_LEDGER_NAME_MAX])
{
    out[0] = '\0';
    expect(c, "\"");
    token(c, "abcdefghijklmnopqrstuvwxyz0123456789_.,()+-", out, FA_LEDGER_NAME_MAX);
    expect(c, "\"");
}

static int get_bool(cursor *c)
{
    if (!c->bad && c->end - c->p >= 4 && memcmp(c->p, "true", 4) == 0) {
        c->p += 4;
        return 1;
    }
    expect(c, "false");
    return 0;
}

static void get_vec(cursor *c, double *v)
{
    expect(c, "[");
    for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++) {
        if (i > 0)
            expect(c, ",");
        v[i] = get_dbl(c);
    }
    expect(c, "]");
}

int fa_ledger_entry_parse(fa_ledger_entry *out, const char *text, size_t len, fa_error *err)
{
    cursor c = {text, text + len, 0};
    fa_ledger_mechanism *m = &out->mech;
    char name[FA_LEDGER_NAME_MAX];
    char hex[2 * FA_LEDGER_HASH_BYTES + 1];
    char *again = NULL;
    size_t again_len = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (len > FA_LEDGER_TEXT_MAX)
        return fa_fail(err, FA_EINVAL, "ledger entry is longer than %d bytes", FA_LEDGER_TEXT_MAX);
    expect(&c, "{\"format\":\"" FA_LEDGER_FORMAT "\",\"seq\":");
    out->seq = get_i64(&c);
    expect(&c, ",\"kind\":");
    get_str(&c, name);
    if (!c.bad && fa_ledger_kind_parse(&out->kind, name) < 0)
        c.bad = 1;
    expect(&c, ",\"round_id\":");
    out->round_id = get_i64(&c);
    expect(&c, ",\"model_version\":");
    out->model_version = get_i64(&c);
    expect(&c, ",\"created_at\":");
    out->created_at = get_i64(&c);
    expect(&c, ",\"mechanism\":{\"clip_norm\":");
    m->clip_norm = get_dbl(&c);
    expect(&c, ",\"noise_multiplier\":");
    m->noise_multiplier = get_dbl(&c);
    expect(&c, ",\"sampling_rate\":");
    m->sampling_rate = get_dbl(&c);
    expect(&c, ",\"cohort_size\":");
    m->cohort_size = get_i64(&c);
    expect(&c, ",\"denominator\":");
    m->denominator = get_dbl(&c);
    expect(&c, ",\"denominator_rule\":");
    get_str(&c, m->denominator_rule);
    expect(&c, ",\"weight_bound\":");
    m->weight_bound = get_dbl(&c);
    expect(&c, ",\"noise_method\":");
    get_str(&c, m->noise_method);
    expect(&c, ",\"seeded\":");
    m->seeded = get_bool(&c);
    expect(&c, ",\"trust_policy\":");
    get_str(&c, m->trust_policy);
    expect(&c, "},\"budget\":{\"epsilon_max\":");
    out->epsilon_max = get_dbl(&c);
    expect(&c, ",\"delta\":");
    out->delta = get_dbl(&c);
    expect(&c, "},\"accountant\":\"" FA_LEDGER_ACCOUNTANT "\",\"round_rdp\":");
    get_vec(&c, out->round_rdp);
    expect(&c, ",\"cumulative_rdp\":");
    get_vec(&c, out->cumulative_rdp);
    expect(&c, ",\"epsilon\":");
    out->epsilon = get_dbl(&c);
    expect(&c, ",\"order\":");
    out->order = get_dbl(&c);
    expect(&c, ",\"prev_hash\":\"");
    if (!c.bad && token(&c, "0123456789abcdef", hex, sizeof(hex)) != 2 * FA_LEDGER_HASH_BYTES)
        c.bad = 1;
    if (!c.bad && fa_hex_decode(out->prev_hash, FA_LEDGER_HASH_BYTES, hex) < 0)
        c.bad = 1;
    expect(&c, "\"}");
    if (c.bad || c.p != c.end) {
        rc = fa_fail(err, FA_EINVAL, "ledger entry is malformed at byte %zu", (size_t)(c.p - text));
        goto cleanup;
    }
    if ((rc = entry_check(out, err)) < 0)
        goto cleanup;
    /* Canonical form: exactly the bytes the encoder writes for what was read. */
    if ((rc = fa_ledger_entry_encode(&again, &again_len, out, err)) < 0)
        goto cleanup;
    if (again_len != len || memcmp(again, text, len) != 0)
        rc = fa_fail(err, FA_EINVAL, "ledger entry is not in canonical form");
cleanup:
    free(again);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* ================================================================ signing */

int fa_ledger_sign(fa_ledger_signed *out, const fa_ledger_entry *e, const fa_crypto_sign_key *key,
                   fa_error *err)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = fa_ledger_entry_encode(&out->text, &out->text_len, e, err)) < 0)
        return rc;
    fa_crypto_sha256(out->hash, out->text, out->text_len);
    fa_crypto_sign(out->signature, key, out->hash, sizeof(out->hash));
    return FA_OK;
}

void fa_ledger_signed_done(fa_ledger_signed *s)
{
    if (s == NULL)
        return;
    free(s->text);
    s->text = NULL;
    s->text_len = 0;
}

/* =========================================================== verification */

static int close_rel(double a, double b)
{
    return fabs(a - b) <= REL_TOL * fmax(fabs(a), fabs(b));
}

/* Records the first failure and returns FA_ECONFLICT. */
static int bad(fa_ledger_report *out, fa_error *err, int64_t seq, const char *fmt, ...)
    FA_PRINTF(4, 5);

static int bad(fa_ledger_report *out, fa_error *err, int64_t seq, const char *fmt, ...)
{
    va_list ap;

    out->bad_seq = seq;
    va_start(ap, fmt);
    (void)vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
    va_end(ap);
    return fa_fail(err, FA_ECONFLICT, "ledger entry %lld: %s", (long long)seq, out->reason);
}

/* Checks one parsed entry against its columns, the chain and the accountant. */
static int verify_one(fa_ledger_report *out, const fa_ledger_record *r, const fa_ledger_entry *e,
                      const unsigned char expect_prev[FA_LEDGER_HASH_BYTES], double *acc,
                      fa_rdp_cache *cache, fa_error *err)
{
    const int64_t seq = r->seq;
    const double *round = NULL;
    double next[FA_RDP_NUM_ORDERS];
    double eps, order;
    int rc;

    if (e->seq != seq)
        return bad(out, err, seq, "seq column disagrees with the entry (entry says %lld)",
                   (long long)e->seq);
    if (r->kind == NULL || strcmp(r->kind, fa_ledger_kind_name(e->kind)) != 0)
        return bad(out, err, seq, "kind column disagrees with the entry");
    if (r->round_id != e->round_id)
        return bad(out, err, seq, "round_id column disagrees with the entry");
    if (r->model_version != e->model_version)
        return bad(out, err, seq, "model_version column disagrees with the entry");
    if (!close_rel(r->cumulative_epsilon, e->epsilon))
        return bad(out, err, seq, "cumulative_epsilon column disagrees with the entry");
    if (memcmp(r->prev_hash, e->prev_hash, FA_LEDGER_HASH_BYTES) != 0)
        return bad(out, err, seq, "prev_hash column disagrees with the entry");
    if (memcmp(e->prev_hash, expect_prev, FA_LEDGER_HASH_BYTES) != 0)
        return bad(out, err, seq,
                   seq == 1 ? "prev_hash of the first entry is not zero"
                            : "prev_hash does not link to the previous entry");

    /* Re-run the accountant from the recorded mechanism. */
    memcpy(next, acc, sizeof(next));
    if (e->kind != FA_LEDGER_ABANDONMENT &&
        (rc = fa_rdp_sgm_cached(&round, cache, e->mech.sampling_rate, e->mech.noise_multiplier,
                                err)) < 0)
        return rc;
    if (e->kind == FA_LEDGER_RELEASE) {
        for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++)
            if (!close_rel(e->round_rdp[i], round[i]))
                return bad(out, err, seq, "round rdp at order %g is %.17g, recomputed %.17g",
                           fa_rdp_order(i), e->round_rdp[i], round[i]);
        fa_rdp_add(next, round, 1.0);
    }
    for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++)
        if (!close_rel(e->cumulative_rdp[i], next[i]))
            return bad(out, err, seq, "cumulative rdp at order %g is %.17g, recomputed %.17g",
                       fa_rdp_order(i), e->cumulative_rdp[i], next[i]);
    if ((rc = fa_rdp_epsilon(&eps, &order, next, e->delta, err)) < 0)
        return rc;
    if (!close_rel(e->epsilon, eps) || e->order != order)
        return bad(out, err, seq, "epsilon is %.17g at order %g, recomputed %.17g at order %g",
                   e->epsilon, e->order, eps, order);
    if (e->kind == FA_LEDGER_RELEASE && eps > e->epsilon_max * (1.0 + REL_TOL))
        return bad(out, err, seq, "release brings epsilon to %.6g, over its budget of %.6g", eps,
                   e->epsilon_max);
    if (e->kind == FA_LEDGER_REFUSAL) {
        double would[FA_RDP_NUM_ORDERS];
        memcpy(would, next, sizeof(would));
        fa_rdp_add(would, round, 1.0);
        if ((rc = fa_rdp_epsilon(&eps, &order, would, e->delta, err)) < 0)
            return rc;
        if (eps <= e->epsilon_max * (1.0 - REL_TOL))
            return bad(out, err, seq,
                       "refused a release that fit the budget (epsilon %.6g <= %.6g)", eps,
                       e->epsilon_max);
    }
    memcpy(acc, next, sizeof(next));
    return FA_OK;
}

int fa_ledger_verify(fa_ledger_report *out, const fa_ledger_record *records, size_t n,
                     const unsigned char sign_pk[FA_LEDGER_PK_BYTES], fa_error *err)
{
    double acc[FA_RDP_NUM_ORDERS] = {0};
    unsigned char prev[FA_LEDGER_HASH_BYTES] = {0};
    unsigned char digest[FA_LEDGER_HASH_BYTES];
    fa_rdp_cache *cache = NULL;
    fa_ledger_entry e;
    fa_error inner = FA_ERROR_INIT;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = fa_rdp_cache_new(&cache, err)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const fa_ledger_record *r = &records[i];
        const int64_t want = (int64_t)i + 1;

        if (r->seq > want) {
            rc = bad(out, err, want, "missing (the next stored entry is %lld)", (long long)r->seq);
            goto cleanup;
        }
        if (r->seq < want) {
            rc = bad(out, err, r->seq, "out of order or duplicated (expected entry %lld)",
                     (long long)want);
            goto cleanup;
        }
        if (r->entry == NULL || r->entry_len > FA_LEDGER_TEXT_MAX) {
            rc = bad(out, err, want, "entry text is missing or too long");
            goto cleanup;
        }
        fa_crypto_sha256(digest, r->entry, r->entry_len);
        if (memcmp(digest, r->hash, sizeof(digest)) != 0) {
            rc = bad(out, err, want, "hash mismatch");
            goto cleanup;
        }
        if (fa_crypto_sign_verify(r->signature, r->hash, sizeof(r->hash), sign_pk) < 0) {
            rc = bad(out, err, want, "bad signature");
            goto cleanup;
        }
        if (fa_ledger_entry_parse(&e, r->entry, r->entry_len, &inner) < 0) {
            rc = bad(out, err, want, "entry does not parse: %s", inner.msg);
            goto cleanup;
        }
        if ((rc = verify_one(out, r, &e, prev, acc, cache, err)) < 0)
            goto cleanup;
        memcpy(prev, r->hash, sizeof(prev));
        out->entries = i + 1;
        out->releases += e.kind == FA_LEDGER_RELEASE;
        out->refusals += e.kind == FA_LEDGER_REFUSAL;
        out->abandonments += e.kind == FA_LEDGER_ABANDONMENT;
        out->epsilon = e.epsilon;
        out->delta = e.delta;
        out->order = e.order;
        memcpy(out->head, r->hash, sizeof(out->head));
    }
cleanup:
    fa_rdp_cache_free(cache);
    return rc;
}
