#include "privacy/ledger.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "core/util.h"
#include "privacy/crypto.h"
#include "privacy/internal.h"

/*
 * The canonical encoding (docs/privacy.md, "Canonical encoding (v2), byte
 * for byte") is JSON text with a fixed key order, no whitespace, integers in
 * decimal, doubles as printf("%.17g") (which round-trips every double
 * exactly), booleans as true/false, names restricted to [a-z0-9_.,()+-] so
 * no escaping is ever needed, and digests as 64 lower-case hex digits. The
 * parser reads that shape, then re-encodes what it read and demands byte
 * equality: there is exactly one accepted text per entry, so the hash names
 * the entry.
 *
 * Three formats share it. v3 (written now) records the mechanism and the
 * accountant's name and the cumulative epsilon, not the accountant's
 * state: no RDP vectors and no order, so an entry stays well under 1 KB
 * and any accountant can be re-run from the recorded mechanisms. v2 has
 * "accountant":"rdp-sgm-v1" followed by the two RDP vectors and the order;
 * v1 is v2 without "snapshot_sha256" (right after "model_version") and
 * without the kind "budget". An entry keeps the format it was written in
 * (fa_ledger_entry.format), so a stored v1 or v2 entry re-encodes to its
 * own bytes and its hash and signature still verify: the ledger is
 * append-only and old entries are never rewritten, so a chain may start
 * in v1 and continue in v2 and then v3.
 *
 * printf and strtod follow LC_NUMERIC; fedagg never calls setlocale(), so
 * both use the "C" locale's '.'.
 */

#define FORMAT_CURRENT FA_LEDGER__FORMAT_V3

static const char *const KIND_NAMES[] = {NULL, "release", "refusal", "abandonment", "budget"};

const char *fa_ledger_kind_name(fa_ledger_kind kind)
{
    if (kind < FA_LEDGER_RELEASE || kind > FA_LEDGER_BUDGET)
        return NULL;
    return KIND_NAMES[kind];
}

int fa_ledger_kind_parse(fa_ledger_kind *out, const char *name)
{
    for (int k = FA_LEDGER_RELEASE; k <= FA_LEDGER_BUDGET; k++) {
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

static int all_zero(const unsigned char *p, size_t n)
{
    unsigned char acc = 0;

    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

/*
 * The rules that differ between the formats. v1 has no snapshot digest and
 * no budget kind, and its fields must then be zero/absent, or encoding would
 * silently drop them. v2 binds a release to the bytes it published (the
 * digest is what fa_ledger_verify_versions compares with model_versions), so
 * a release must carry one; and every round-bearing kind names its round
 * (rounds start at 1) while a budget event belongs to no round.
 */
static int format_check(const fa_ledger_entry *e, fa_error *err)
{
    const int no_digest = all_zero(e->snapshot_sha256, FA_LEDGER_HASH_BYTES);

    if (e->format != FA_LEDGER__FORMAT_V1 && e->format != FA_LEDGER__FORMAT_V2 &&
        e->format != FA_LEDGER__FORMAT_V3)
        return fa_fail(err, FA_EINVAL, "entry format %d is unknown", e->format);
    if (e->format < FA_LEDGER__FORMAT_V3 && e->accountant != FA_ACCOUNTANT_RDP)
        return fa_fail(err, FA_EINVAL, "a v1 or v2 entry is accounted in rdp");
    if (e->format == FA_LEDGER__FORMAT_V3 && fa_accountant_name(e->accountant) == NULL)
        return fa_fail(err, FA_EINVAL, "entry accountant %d is unknown", (int)e->accountant);
    if (e->format == FA_LEDGER__FORMAT_V1) {
        if (e->kind == FA_LEDGER_BUDGET)
            return fa_fail(err, FA_EINVAL, "a budget entry needs format v2");
        if (!no_digest)
            return fa_fail(err, FA_EINVAL, "a v1 entry has no snapshot digest");
        return FA_OK;
    }
    if ((e->kind == FA_LEDGER_RELEASE) == no_digest)
        return fa_fail(err, FA_EINVAL, "a release names its snapshot digest and nothing else does");
    if (e->kind == FA_LEDGER_BUDGET ? e->round_id != 0 : e->round_id < 1)
        return fa_fail(err, FA_EINVAL, "a budget entry has no round and every other entry has one");
    return FA_OK;
}

/* Checks every field's domain; the encoder and the parser both call it. */
static int entry_check(const fa_ledger_entry *e, fa_error *err)
{
    const fa_ledger_mechanism *m = &e->mech;
    fa_error inner = FA_ERROR_INIT;
    int rc;

    if (e->seq < 1)
        return fa_fail(err, FA_EINVAL, "entry seq %lld is not positive", (long long)e->seq);
    if (fa_ledger_kind_name(e->kind) == NULL)
        return fa_fail(err, FA_EINVAL, "entry kind %d is unknown", (int)e->kind);
    if (e->round_id < 0 || e->model_version < 0 || e->created_at < 0)
        return fa_fail(err, FA_EINVAL, "entry round, model version or time is negative");
    if ((e->kind == FA_LEDGER_RELEASE) != (e->model_version > 0))
        return fa_fail(err, FA_EINVAL, "a release produces a model version and nothing else does");
    if ((rc = format_check(e, err)) < 0)
        return rc;
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
        if (e->format == FA_LEDGER__FORMAT_V3 &&
            (e->round_rdp[i] != 0.0 || e->cumulative_rdp[i] != 0.0))
            return fa_fail(err, FA_EINVAL, "a v3 entry records no rdp vectors");
    }
    if (e->format == FA_LEDGER__FORMAT_V3 && e->order != 0.0)
        return fa_fail(err, FA_EINVAL, "a v3 entry records no order");
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
    e->format = FORMAT_CURRENT;
    e->seq = 1;
    if (prev == NULL)
        return;
    e->seq = prev->seq + 1;
    memcpy(e->prev_hash, prev_hash, FA_LEDGER_HASH_BYTES);
    e->epsilon = prev->epsilon;
}

/*
 * Records budget b, acc's kind and epsilon in e. v1/v2 entries also carry
 * acc's cumulative RDP vector and the order attaining epsilon (what they
 * recorded); v3 entries carry neither.
 */
static int entry_account(fa_ledger_entry *e, const fa_budget *b, const fa_accountant *acc,
                         double epsilon, fa_error *err)
{
    const double *rdp = fa_accountant_rdp(acc);
    double eps_rdp;

    e->epsilon_max = b->epsilon_max;
    e->delta = b->delta;
    e->accountant = fa_accountant_kind_of(acc);
    e->epsilon = epsilon;
    memset(e->cumulative_rdp, 0, sizeof(e->cumulative_rdp));
    e->order = 0.0;
    if (e->format >= FA_LEDGER__FORMAT_V3)
        return FA_OK;
    if (rdp == NULL)
        return fa_fail(err, FA_EINVAL, "a v%d entry needs the rdp accountant", e->format);
    memcpy(e->cumulative_rdp, rdp, sizeof(e->cumulative_rdp));
    return fa_rdp_epsilon(&eps_rdp, &e->order, rdp, b->delta, err);
}

int fa_ledger_entry_decide(fa_ledger_entry *e, const fa_budget *b, fa_accountant *acc,
                           fa_error *err)
{
    double before, after;
    int rc, decided;

    if (e->format < FA_LEDGER__FORMAT_V3 && fa_accountant_rdp(acc) == NULL)
        return fa_fail(err, FA_EINVAL, "a v%d entry needs the rdp accountant", e->format);
    decided = fa_accountant_decide(acc, &before, &after, b, e->mech.sampling_rate,
                                   e->mech.noise_multiplier, err);
    if (decided < 0 && decided != FA_EREFUSED)
        return decided;
    memset(e->round_rdp, 0, sizeof(e->round_rdp));
    if (decided == FA_EREFUSED) {
        e->kind = FA_LEDGER_REFUSAL;
        e->model_version = 0;
        memset(e->snapshot_sha256, 0, sizeof(e->snapshot_sha256));
    } else {
        e->kind = FA_LEDGER_RELEASE;
        if (e->format < FA_LEDGER__FORMAT_V3 &&
            (rc = fa_rdp_sgm(e->round_rdp, e->mech.sampling_rate, e->mech.noise_multiplier, err)) <
                0)
            return rc;
    }
    if ((rc = entry_account(e, b, acc, decided == FA_EREFUSED ? before : after, err)) < 0)
        return rc;
    return decided;
}

/* An entry that spends nothing restates acc's epsilon at b's delta. */
static int entry_nothing(fa_ledger_entry *e, fa_ledger_kind kind, const fa_budget *b,
                         const fa_accountant *acc, fa_error *err)
{
    double eps;
    int rc;

    if ((rc = fa_budget_check(b, err)) < 0 ||
        (rc = fa_accountant_epsilon(&eps, acc, b->delta, err)) < 0)
        return rc;
    e->kind = kind;
    e->model_version = 0;
    memset(e->snapshot_sha256, 0, sizeof(e->snapshot_sha256));
    memset(e->round_rdp, 0, sizeof(e->round_rdp));
    return entry_account(e, b, acc, eps, err);
}

int fa_ledger_entry_abandon(fa_ledger_entry *e, const fa_budget *b, const fa_accountant *acc,
                            fa_error *err)
{
    return entry_nothing(e, FA_LEDGER_ABANDONMENT, b, acc, err);
}

/*
 * A budget event spends nothing; only the statement of what was spent
 * moves, because epsilon is stated at the (possibly new) delta and by the
 * (possibly new) accountant, over the same releases.
 */
int fa_ledger_entry_budget(fa_ledger_entry *e, const fa_budget *b, const fa_accountant *acc,
                           fa_error *err)
{
    e->round_id = 0;
    return entry_nothing(e, FA_LEDGER_BUDGET, b, acc, err);
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

    /* The entry's own format: a v1 entry re-encodes to its stored bytes. */
    put_lit(o,
            e->format == FA_LEDGER__FORMAT_V1   ? "{\"format\":\"" FA_LEDGER_FORMAT_V1 "\",\"seq\":"
            : e->format == FA_LEDGER__FORMAT_V2 ? "{\"format\":\"" FA_LEDGER_FORMAT_V2 "\",\"seq\":"
                                                : "{\"format\":\"" FA_LEDGER_FORMAT "\",\"seq\":");
    put_i64(o, e->seq);
    put_lit(o, ",\"kind\":");
    put_str(o, fa_ledger_kind_name(e->kind));
    put_lit(o, ",\"round_id\":");
    put_i64(o, e->round_id);
    put_lit(o, ",\"model_version\":");
    put_i64(o, e->model_version);
    if (e->format >= FA_LEDGER__FORMAT_V2) {
        put_lit(o, ",\"snapshot_sha256\":\"");
        fa_hex_encode(hex, e->snapshot_sha256, FA_LEDGER_HASH_BYTES);
        put_lit(o, hex);
        put_lit(o, "\"");
    }
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
    put_lit(o, "},\"accountant\":");
    put_str(o, fa_accountant_name(e->accountant));
    if (e->format < FA_LEDGER__FORMAT_V3) {
        put_lit(o, ",\"round_rdp\":");
        put_vec(o, e->round_rdp);
        put_lit(o, ",\"cumulative_rdp\":");
        put_vec(o, e->cumulative_rdp);
    }
    put_lit(o, ",\"epsilon\":");
    put_dbl(o, e->epsilon);
    if (e->format < FA_LEDGER__FORMAT_V3) {
        put_lit(o, ",\"order\":");
        put_dbl(o, e->order);
    }
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

/* 64 lower-case hex digits into a 32-byte digest (the closing quote is the caller's). */
static void get_digest(cursor *c, unsigned char out[FA_LEDGER_HASH_BYTES])
{
    char hex[2 * FA_LEDGER_HASH_BYTES + 1];

    if (!c->bad && token(c, "0123456789abcdef", hex, sizeof(hex)) != 2 * FA_LEDGER_HASH_BYTES)
        c->bad = 1;
    if (!c->bad && fa_hex_decode(out, FA_LEDGER_HASH_BYTES, hex) < 0)
        c->bad = 1;
}

/* Consumes lit when the text continues with it; 0 (nothing consumed) otherwise. */
static int accept(cursor *c, const char *lit)
{
    const size_t n = strlen(lit);

    if (c->bad || (size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
        return 0;
    c->p += n;
    return 1;
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
    char *again = NULL;
    size_t again_len = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (len > FA_LEDGER_TEXT_MAX)
        return fa_fail(err, FA_EINVAL, "ledger entry is longer than %d bytes", FA_LEDGER_TEXT_MAX);
    if (accept(&c, "{\"format\":\"" FA_LEDGER_FORMAT_V1 "\",\"seq\":")) {
        out->format = FA_LEDGER__FORMAT_V1;
    } else if (accept(&c, "{\"format\":\"" FA_LEDGER_FORMAT_V2 "\",\"seq\":")) {
        out->format = FA_LEDGER__FORMAT_V2;
    } else {
        expect(&c, "{\"format\":\"" FA_LEDGER_FORMAT "\",\"seq\":");
        out->format = FA_LEDGER__FORMAT_V3;
    }
    out->seq = get_i64(&c);
    expect(&c, ",\"kind\":");
    get_str(&c, name);
    if (!c.bad && fa_ledger_kind_parse(&out->kind, name) < 0)
        c.bad = 1;
    expect(&c, ",\"round_id\":");
    out->round_id = get_i64(&c);
    expect(&c, ",\"model_version\":");
    out->model_version = get_i64(&c);
    if (out->format >= FA_LEDGER__FORMAT_V2) {
        expect(&c, ",\"snapshot_sha256\":\"");
        get_digest(&c, out->snapshot_sha256);
        expect(&c, "\"");
    }
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
    expect(&c, "},\"accountant\":");
    get_str(&c, name);
    if (!c.bad && fa_accountant_parse(&out->accountant, name) < 0)
        c.bad = 1;
    if (out->format < FA_LEDGER__FORMAT_V3) {
        expect(&c, ",\"round_rdp\":");
        get_vec(&c, out->round_rdp);
        expect(&c, ",\"cumulative_rdp\":");
        get_vec(&c, out->cumulative_rdp);
    }
    expect(&c, ",\"epsilon\":");
    out->epsilon = get_dbl(&c);
    if (out->format < FA_LEDGER__FORMAT_V3) {
        expect(&c, ",\"order\":");
        out->order = get_dbl(&c);
    }
    expect(&c, ",\"prev_hash\":\"");
    get_digest(&c, out->prev_hash);
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
    fa_sha256(out->hash, out->text, out->text_len);
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
