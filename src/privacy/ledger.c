#include "privacy/ledger.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "core/util.h"
#include "privacy/crypto.h"

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

#define REL_TOL 1e-9 /* verification: relative agreement of recomputed numbers */

#define FORMAT_V1      1 /* FA_LEDGER_FORMAT_V1: parsed and verified, no longer written */
#define FORMAT_V2      2 /* FA_LEDGER_FORMAT_V2: parsed and verified, no longer written */
#define FORMAT_V3      3 /* FA_LEDGER_FORMAT: what fa_ledger_entry_next starts */
#define FORMAT_CURRENT FORMAT_V3

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

    if (e->format != FORMAT_V1 && e->format != FORMAT_V2 && e->format != FORMAT_V3)
        return fa_fail(err, FA_EINVAL, "entry format %d is unknown", e->format);
    if (e->format < FORMAT_V3 && e->accountant != FA_ACCOUNTANT_RDP)
        return fa_fail(err, FA_EINVAL, "a v1 or v2 entry is accounted in rdp");
    if (e->format == FORMAT_V3 && fa_accountant_name(e->accountant) == NULL)
        return fa_fail(err, FA_EINVAL, "entry accountant %d is unknown", (int)e->accountant);
    if (e->format == FORMAT_V1) {
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
        if (e->format == FORMAT_V3 && (e->round_rdp[i] != 0.0 || e->cumulative_rdp[i] != 0.0))
            return fa_fail(err, FA_EINVAL, "a v3 entry records no rdp vectors");
    }
    if (e->format == FORMAT_V3 && e->order != 0.0)
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
    if (e->format >= FORMAT_V3)
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

    if (e->format < FORMAT_V3 && fa_accountant_rdp(acc) == NULL)
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
        if (e->format < FORMAT_V3 && (rc = fa_rdp_sgm(e->round_rdp, e->mech.sampling_rate,
                                                      e->mech.noise_multiplier, err)) < 0)
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
    put_lit(o, e->format == FORMAT_V1   ? "{\"format\":\"" FA_LEDGER_FORMAT_V1 "\",\"seq\":"
               : e->format == FORMAT_V2 ? "{\"format\":\"" FA_LEDGER_FORMAT_V2 "\",\"seq\":"
                                        : "{\"format\":\"" FA_LEDGER_FORMAT "\",\"seq\":");
    put_i64(o, e->seq);
    put_lit(o, ",\"kind\":");
    put_str(o, fa_ledger_kind_name(e->kind));
    put_lit(o, ",\"round_id\":");
    put_i64(o, e->round_id);
    put_lit(o, ",\"model_version\":");
    put_i64(o, e->model_version);
    if (e->format >= FORMAT_V2) {
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
    if (e->format < FORMAT_V3) {
        put_lit(o, ",\"round_rdp\":");
        put_vec(o, e->round_rdp);
        put_lit(o, ",\"cumulative_rdp\":");
        put_vec(o, e->cumulative_rdp);
    }
    put_lit(o, ",\"epsilon\":");
    put_dbl(o, e->epsilon);
    if (e->format < FORMAT_V3) {
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
        out->format = FORMAT_V1;
    } else if (accept(&c, "{\"format\":\"" FA_LEDGER_FORMAT_V2 "\",\"seq\":")) {
        out->format = FORMAT_V2;
    } else {
        expect(&c, "{\"format\":\"" FA_LEDGER_FORMAT "\",\"seq\":");
        out->format = FORMAT_V3;
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
    if (out->format >= FORMAT_V2) {
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
    if (out->format < FORMAT_V3) {
        expect(&c, ",\"round_rdp\":");
        get_vec(&c, out->round_rdp);
        expect(&c, ",\"cumulative_rdp\":");
        get_vec(&c, out->cumulative_rdp);
    }
    expect(&c, ",\"epsilon\":");
    out->epsilon = get_dbl(&c);
    if (out->format < FORMAT_V3) {
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

/* =========================================================== verification */

#define WHY_MAX 160 /* bytes of a reason, as fa_ledger_report.reason */

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

/* Writes why a record does not hold into why[WHY_MAX]; returns -1. */
static int not_held(char *why, const char *fmt, ...) FA_PRINTF(2, 3);

static int not_held(char *why, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(why, WHY_MAX, fmt, ap);
    va_end(ap);
    return -1;
}

/*
 * What one stored record must satisfy on its own, cheapest cause first: the
 * text is there, the hash column is its SHA-256, the signature covers that
 * hash, the text parses strictly, and the columns (copies of signed fields,
 * kept for queries) agree with it. The hash is checked before the signature
 * so that an edited text is named "hash mismatch", and the parse comes after
 * the signature so that only signed text reaches the parser's domain
 * checks. 0 with *e the entry, or -1 with why[WHY_MAX] set.
 */
static int record_holds(fa_ledger_entry *e, char *why, const fa_ledger_record *r,
                        const unsigned char sign_pk[FA_LEDGER_PK_BYTES])
{
    unsigned char digest[FA_LEDGER_HASH_BYTES];
    fa_error inner = FA_ERROR_INIT;

    if (r->entry == NULL || r->entry_len > FA_LEDGER_TEXT_MAX)
        return not_held(why, "entry text is missing or too long");
    fa_sha256(digest, r->entry, r->entry_len);
    if (memcmp(digest, r->hash, sizeof(digest)) != 0)
        return not_held(why, "hash mismatch");
    if (fa_crypto_sign_verify(r->signature, r->hash, sizeof(r->hash), sign_pk) < 0)
        return not_held(why, "bad signature");
    if (fa_ledger_entry_parse(e, r->entry, r->entry_len, &inner) < 0)
        return not_held(why, "entry does not parse: %s", inner.msg);
    if (e->seq != r->seq)
        return not_held(why, "seq column disagrees with the entry (entry says %lld)",
                        (long long)e->seq);
    if (r->kind == NULL || strcmp(r->kind, fa_ledger_kind_name(e->kind)) != 0)
        return not_held(why, "kind column disagrees with the entry");
    if (r->round_id != e->round_id)
        return not_held(why, "round_id column disagrees with the entry");
    if (r->model_version != e->model_version)
        return not_held(why, "model_version column disagrees with the entry");
    if (!close_rel(r->cumulative_epsilon, e->epsilon))
        return not_held(why, "cumulative_epsilon column disagrees with the entry");
    if (memcmp(r->prev_hash, e->prev_hash, FA_LEDGER_HASH_BYTES) != 0)
        return not_held(why, "prev_hash column disagrees with the entry");
    return 0;
}

int fa_ledger_record_check(fa_ledger_entry *out, const fa_ledger_record *r,
                           const unsigned char sign_pk[FA_LEDGER_PK_BYTES], fa_error *err)
{
    char why[WHY_MAX];

    if (record_holds(out, why, r, sign_pk) < 0) {
        memset(out, 0, sizeof(*out));
        return fa_fail(err, FA_ECONFLICT, "ledger entry %lld: %s", (long long)r->seq, why);
    }
    return FA_OK;
}

/* What the entries that held so far establish for the next one. */
typedef struct chain_state {
    unsigned char prev[FA_LEDGER_HASH_BYTES]; /* hash of the last entry; zeros before the first */
    fa_accountant *acct[3];        /* [kind]: the releases so far, re-composed by each accountant */
    fa_rdp_release *rel;           /* (q, sigma) of every release so far, in chain order */
    size_t nrel, caprel;           /* releases recorded, capacity of rel */
    double epsilon_max;            /* the budget in force: epsilon */
    double delta;                  /* the budget in force: delta */
    fa_accountant_kind accountant; /* the budget in force: accountant */
    int64_t last_round;            /* highest round id so far; 0 before any */
    int last_format;               /* format of the last entry; 0 before the first */
} chain_state;

static void chain_done(chain_state *st)
{
    for (size_t k = 0; k < 3; k++)
        fa_accountant_free(st->acct[k]);
    free(st->rel);
}

/*
 * The running accountant of kind, holding every release so far. Each kind
 * is built on first use from the recorded mechanisms and then kept up to
 * date one release at a time, so an RDP-only chain never pays for a PLD
 * and a switch of accountant costs one pass over the releases before it.
 */
static int chain_accountant(fa_accountant **out, chain_state *st, fa_accountant_kind kind,
                            fa_error *err)
{
    fa_accountant *a;
    int rc;

    if (st->acct[kind] == NULL && (rc = fa_accountant_new(&st->acct[kind], kind, err)) < 0)
        return rc;
    a = st->acct[kind];
    while ((size_t)fa_accountant_releases(a) < st->nrel) {
        const fa_rdp_release *r = &st->rel[fa_accountant_releases(a)];
        if ((rc = fa_accountant_compose(a, r->q, r->sigma, 1, err)) < 0)
            return rc;
    }
    *out = a;
    return FA_OK;
}

static int chain_add_release(chain_state *st, double q, double sigma, fa_error *err)
{
    if (st->nrel == st->caprel) {
        const size_t cap = st->caprel ? 2 * st->caprel : 64;
        fa_rdp_release *p = realloc(st->rel, cap * sizeof(*p));
        if (p == NULL)
            return fa_fail(err, FA_ENOMEM, "out of memory verifying the ledger");
        st->rel = p;
        st->caprel = cap;
    }
    st->rel[st->nrel].q = q;
    st->rel[st->nrel].sigma = sigma;
    st->nrel++;
    return FA_OK;
}

/*
 * v1/v2 entries record the accountant's state: the release's RDP vector,
 * the cumulative one and the order attaining epsilon. They must be what
 * the RDP accountant computes from the recorded mechanisms.
 */
static int check_rdp_state(fa_ledger_report *out, const fa_ledger_entry *e, int64_t seq,
                           const fa_accountant *acc, fa_rdp_cache *cache, fa_error *err)
{
    const double *cum = fa_accountant_rdp(acc);
    const double *round = NULL;
    double eps, order;
    int rc;

    if (e->kind == FA_LEDGER_RELEASE) {
        if ((rc = fa_rdp_sgm_cached(&round, cache, e->mech.sampling_rate, e->mech.noise_multiplier,
                                    err)) < 0)
            return rc;
        for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++)
            if (!close_rel(e->round_rdp[i], round[i]))
                return bad(out, err, seq, "round rdp at order %g is %.17g, recomputed %.17g",
                           fa_rdp_order(i), e->round_rdp[i], round[i]);
    }
    for (size_t i = 0; i < FA_RDP_NUM_ORDERS; i++)
        if (!close_rel(e->cumulative_rdp[i], cum[i]))
            return bad(out, err, seq, "cumulative rdp at order %g is %.17g, recomputed %.17g",
                       fa_rdp_order(i), e->cumulative_rdp[i], cum[i]);
    if ((rc = fa_rdp_epsilon(&eps, &order, cum, e->delta, err)) < 0)
        return rc;
    if (e->order != order)
        return bad(out, err, seq, "epsilon is stated at order %g, recomputed at order %g", e->order,
                   order);
    return FA_OK;
}

/*
 * Checks a parsed entry (record_holds passed) against the chain before it:
 * the hash link, the budget in force, the order of versions and rounds, and
 * the accountant. On success st describes the chain including e.
 */
static int chain_step(fa_ledger_report *out, chain_state *st, const fa_ledger_record *r,
                      const fa_ledger_entry *e, fa_rdp_cache *cache, fa_error *err)
{
    const int64_t seq = r->seq;
    fa_accountant *acc = NULL, *would = NULL;
    double eps;
    int rc;

    if (memcmp(e->prev_hash, st->prev, FA_LEDGER_HASH_BYTES) != 0)
        return bad(out, err, seq,
                   seq == 1 ? "prev_hash of the first entry is not zero"
                            : "prev_hash does not link to the previous entry");
    /*
     * Formats only move forward: a chain may continue a v1 prefix in v2 and
     * a v2 prefix in v3, never the reverse, or a writer could fall back to
     * an older format to skip what a newer one binds (the snapshot digest
     * and budget events of v2, the accountant of v3).
     */
    if (e->format < st->last_format)
        return bad(out, err, seq, "a v%d entry follows a v%d entry", e->format, st->last_format);

    /*
     * The budget in force: epsilon_max, delta and the accountant. The first
     * entry establishes it and only a budget event changes it, so a budget
     * raised to make room for more releases, or an accountant swapped for
     * one that states less, shows in the ledger as an event of its own, not
     * as a quietly different number in the next release. v1 had no budget
     * event: each v1 entry states the budget it ran under, and that becomes
     * the budget in force. The values are configuration copied verbatim, so
     * equality is exact.
     */
    if (seq == 1 || e->kind == FA_LEDGER_BUDGET || e->format == FORMAT_V1) {
        st->epsilon_max = e->epsilon_max;
        st->delta = e->delta;
        st->accountant = e->accountant;
    } else if (e->epsilon_max != st->epsilon_max || e->delta != st->delta) {
        return bad(out, err, seq,
                   "budget changed without a budget entry (entry states epsilon %g at delta %g, "
                   "in force %g at %g)",
                   e->epsilon_max, e->delta, st->epsilon_max, st->delta);
    } else if (e->accountant != st->accountant) {
        return bad(out, err, seq, "accountant changed without a budget entry (%s, in force %s)",
                   fa_accountant_name(e->accountant), fa_accountant_name(st->accountant));
    }

    /*
     * Version v+1 is published only by a release on base v, in the same
     * transaction as its entry: releases produce 1, 2, 3, ... in chain
     * order, so a skipped or repeated version means an entry is missing or
     * a version was published twice.
     */
    if (e->kind == FA_LEDGER_RELEASE && e->model_version != (int64_t)st->nrel + 1)
        return bad(out, err, seq, "release produces version %lld, expected %lld",
                   (long long)e->model_version, (long long)(st->nrel + 1));

    /* Rounds open one after another and each ends in exactly one entry. */
    if (e->kind != FA_LEDGER_BUDGET && e->round_id <= st->last_round)
        return bad(out, err, seq, "round id %lld does not follow round id %lld",
                   (long long)e->round_id, (long long)st->last_round);

    /*
     * Re-run the entry's accountant over the recorded mechanism of every
     * release so far, this one included: nothing stored is trusted but the
     * signed (q, sigma) of each release.
     */
    if (e->kind == FA_LEDGER_RELEASE &&
        (rc = chain_add_release(st, e->mech.sampling_rate, e->mech.noise_multiplier, err)) < 0)
        return rc;
    if ((rc = chain_accountant(&acc, st, e->accountant, err)) < 0 ||
        (rc = fa_accountant_epsilon(&eps, acc, e->delta, err)) < 0)
        return rc;
    if (e->format < FORMAT_V3 && (rc = check_rdp_state(out, e, seq, acc, cache, err)) < 0)
        return rc;
    if (!close_rel(e->epsilon, eps))
        return bad(out, err, seq, "epsilon is %.17g, recomputed %.17g", e->epsilon, eps);
    if (e->kind == FA_LEDGER_RELEASE && eps > e->epsilon_max * (1.0 + REL_TOL))
        return bad(out, err, seq, "release brings epsilon to %.6g, over its budget of %.6g", eps,
                   e->epsilon_max);
    if (e->kind == FA_LEDGER_REFUSAL) {
        if ((rc = fa_accountant_copy(&would, acc, err)) < 0)
            return rc;
        rc = fa_accountant_compose(would, e->mech.sampling_rate, e->mech.noise_multiplier, 1, err);
        if (rc == FA_OK)
            rc = fa_accountant_epsilon(&eps, would, e->delta, err);
        fa_accountant_free(would);
        if (rc < 0)
            return rc;
        if (eps <= e->epsilon_max * (1.0 - REL_TOL))
            return bad(out, err, seq,
                       "refused a release that fit the budget (epsilon %.6g <= %.6g)", eps,
                       e->epsilon_max);
    }

    memcpy(st->prev, r->hash, sizeof(st->prev));
    st->last_format = e->format;
    if (e->kind != FA_LEDGER_BUDGET)
        st->last_round = e->round_id;
    return FA_OK;
}

int fa_ledger_verify(fa_ledger_report *out, const fa_ledger_record *records, size_t n,
                     const unsigned char sign_pk[FA_LEDGER_PK_BYTES], fa_error *err)
{
    chain_state st;
    fa_rdp_cache *cache = NULL;
    fa_ledger_entry e;
    char why[WHY_MAX];
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&st, 0, sizeof(st));
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
        if (record_holds(&e, why, r, sign_pk) < 0) {
            rc = bad(out, err, want, "%s", why);
            goto cleanup;
        }
        if ((rc = chain_step(out, &st, r, &e, cache, err)) < 0)
            goto cleanup;
        out->entries = i + 1;
        out->releases += e.kind == FA_LEDGER_RELEASE;
        out->refusals += e.kind == FA_LEDGER_REFUSAL;
        out->abandonments += e.kind == FA_LEDGER_ABANDONMENT;
        out->budget_changes += e.kind == FA_LEDGER_BUDGET;
        /* Seeded noise can be subtracted by whoever knows the seed: such a
         * release is not private whatever its epsilon says. */
        out->seeded_releases += e.kind == FA_LEDGER_RELEASE && e.mech.seeded;
        out->epsilon_max = st.epsilon_max;
        out->accountant = st.accountant;
        out->epsilon = e.epsilon;
        out->delta = e.delta;
        out->order = e.order;
        memcpy(out->head, r->hash, sizeof(out->head));
    }
cleanup:
    chain_done(&st);
    fa_rdp_cache_free(cache);
    return rc;
}

/* ============================================ the ledger and the versions */

static int version_cmp(const void *a, const void *b)
{
    const int64_t x = ((const fa_ledger_version *)a)->version;
    const int64_t y = ((const fa_ledger_version *)b)->version;

    return (x > y) - (x < y);
}

/*
 * fa_ledger_verify proves the chain is what the key holder signed, but a
 * chain cut after any entry is still a valid chain. The published model
 * versions are a second record written by the same transaction as each
 * release entry: a version without its release means entries were removed
 * (or never written), a release without its version means a version was
 * removed, and for v2 entries the signed snapshot digest must be the stored
 * one, which binds the entry to the bytes devices and the serving tier
 * download.
 */
int fa_ledger_verify_versions(fa_ledger_report *out, const fa_ledger_record *records, size_t n,
                              const fa_ledger_version *versions, size_t nv, fa_error *err)
{
    fa_ledger_version *sorted = NULL;
    unsigned char *named = NULL; /* named[i]: a release names sorted[i] */
    fa_ledger_entry e;
    fa_error inner = FA_ERROR_INIT;
    int rc = FA_OK;

    out->bad_seq = 0;
    out->reason[0] = '\0';
    sorted = malloc((nv > 0 ? nv : 1) * sizeof(*sorted));
    named = calloc(nv > 0 ? nv : 1, 1);
    if (sorted == NULL || named == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory checking the model versions");
        goto cleanup;
    }
    if (nv > 0) {
        memcpy(sorted, versions, nv * sizeof(*sorted));
        qsort(sorted, nv, sizeof(*sorted), version_cmp);
    }
    for (size_t i = 0; i < n; i++) {
        const fa_ledger_record *r = &records[i];
        const fa_ledger_version *v;
        fa_ledger_version key;
        size_t at;

        /* The chain was verified, so its kind column is its entry's kind. */
        if (r->kind == NULL || strcmp(r->kind, KIND_NAMES[FA_LEDGER_RELEASE]) != 0)
            continue;
        if (r->entry == NULL || fa_ledger_entry_parse(&e, r->entry, r->entry_len, &inner) < 0) {
            rc = bad(out, err, r->seq, "entry does not parse: %s",
                     r->entry == NULL ? "no text" : inner.msg);
            goto cleanup;
        }
        key.version = e.model_version;
        v = nv > 0 ? bsearch(&key, sorted, nv, sizeof(*sorted), version_cmp) : NULL;
        if (v == NULL) {
            rc = bad(out, err, r->seq, "release produces version %lld, which is not published",
                     (long long)e.model_version);
            goto cleanup;
        }
        at = (size_t)(v - sorted);
        if (named[at]) {
            rc = bad(out, err, r->seq, "version %lld already has a release entry",
                     (long long)e.model_version);
            goto cleanup;
        }
        named[at] = 1;
        if (e.format >= FORMAT_V2 &&
            memcmp(e.snapshot_sha256, v->sha256, FA_LEDGER_HASH_BYTES) != 0) {
            rc = bad(out, err, r->seq, "snapshot sha256 differs from published version %lld",
                     (long long)e.model_version);
            goto cleanup;
        }
    }
    /*
     * Version 0 is the initial model, released by no round. Any other
     * version without a release: the releases of a verified chain produce
     * 1..R in order, so the missing entries come after the last one stored.
     */
    for (size_t i = 0; i < nv; i++) {
        if (sorted[i].version < 1 || named[i])
            continue;
        rc = bad(out, err, (n > 0 ? records[n - 1].seq : 0) + 1,
                 "missing: published version %lld has no release entry",
                 (long long)sorted[i].version);
        goto cleanup;
    }
cleanup:
    free(named);
    free(sorted);
    return rc;
}
