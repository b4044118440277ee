/*
 * The epsilon ledger: one entry per release, refusal, abandonment or budget
 * change, each a canonical text (the v3 encoding of docs/privacy.md; v1
 * and v2 entries are still parsed and verified) whose SHA-256 is signed with
 * Ed25519 and chained through prev_hash. This unit builds, signs, parses
 * and verifies entries (ledger.c builds, encodes, parses and signs;
 * ledger_verify.c verifies); storing them is the store's job. Structs are
 * the caller's; functions keep no state and may run on any thread.
 */
#ifndef FA_PRIVACY_LEDGER_H
#define FA_PRIVACY_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "privacy/accountant.h"
#include "privacy/budget.h"
#include "privacy/rdp.h"

typedef struct fa_crypto_sign_key fa_crypto_sign_key;

#define FA_LEDGER_HASH_BYTES 32
#define FA_LEDGER_SIG_BYTES  64
#define FA_LEDGER_PK_BYTES   32                 /* Ed25519 public key */
#define FA_LEDGER_NAME_MAX   48                 /* bytes of a name field, NUL included */
#define FA_LEDGER_TEXT_MAX   16384              /* bytes of a canonical entry; longer is rejected */
#define FA_LEDGER_FORMAT     "fedagg-ledger-v3" /* written by this version */
#define FA_LEDGER_FORMAT_V2  "fedagg-ledger-v2" /* still parsed and verified */
#define FA_LEDGER_FORMAT_V1  "fedagg-ledger-v1" /* still parsed and verified */
#define FA_LEDGER_ACCOUNTANT FA_ACCOUNTANT_RDP_NAME /* the accountant of every v1/v2 entry */

typedef enum fa_ledger_kind {
    FA_LEDGER_RELEASE = 1,     /* noise added and a model version published */
    FA_LEDGER_REFUSAL = 2,     /* the release would have exceeded the budget: nothing released */
    FA_LEDGER_ABANDONMENT = 3, /* the round closed below its minimum cohort: nothing released */
    FA_LEDGER_BUDGET = 4,      /* v2 only: the budget (epsilon_max, delta) in force changed */
} fa_ledger_kind;

/*
 * The mechanism of one round. For a refusal it is the release that was
 * refused; for an abandonment the configured one (nothing ran).
 */
typedef struct fa_ledger_mechanism {
    double clip_norm;        /* S: L2 bound of one device's update */
    double noise_multiplier; /* sigma: noise stddev is sigma * S */
    double sampling_rate;    /* q of Poisson sampling; 1 = none */
    int64_t cohort_size;     /* updates folded into the sum */
    double denominator;      /* public divisor of the noisy sum */
    char
        denominator_rule[FA_LEDGER_NAME_MAX]; /* how it was chosen, e.g. "max(cohort,min_cohort)" */
    double weight_bound;                      /* largest per-device weight, 1 */
    char noise_method[FA_LEDGER_NAME_MAX];    /* FA_NOISE_METHOD */
    int seeded;                               /* 1: deterministic test noise */
    char trust_policy[FA_LEDGER_NAME_MAX];    /* e.g. "none", "cosine" */
} fa_ledger_mechanism;

typedef struct fa_ledger_entry {
    int format;            /* 1, 2 or 3: the encoding this entry is written in (3 for new ones) */
    int64_t seq;           /* 1-based position in the chain */
    fa_ledger_kind kind;   /* release | refusal | abandonment | budget */
    int64_t round_id;      /* 0 when none */
    int64_t model_version; /* version produced; 0 unless a release */
    unsigned char snapshot_sha256[FA_LEDGER_HASH_BYTES]; /* v2: SHA-256 of the release's
                                                            safetensors snapshot; zeros
                                                            unless a release */
    int64_t created_at; /* seconds since the epoch, from the caller */
    fa_ledger_mechanism mech;
    double epsilon_max;                       /* the budget in force */
    double delta;                             /* the delta epsilon is stated at */
    fa_accountant_kind accountant;            /* the accountant in force (RDP before v3) */
    double round_rdp[FA_RDP_NUM_ORDERS];      /* v1/v2: this release's RDP; zeros otherwise */
    double cumulative_rdp[FA_RDP_NUM_ORDERS]; /* v1/v2: after this entry; zeros in v3 */
    double epsilon;                           /* cumulative epsilon after this entry */
    double order; /* v1/v2: order attaining it; 0 when nothing spent, and in v3 */
    unsigned char prev_hash[FA_LEDGER_HASH_BYTES]; /* hash of entry seq-1; zeros for seq 1 */
} fa_ledger_entry;

/* A signed entry: the canonical text, its SHA-256 and the signature of that hash. */
typedef struct fa_ledger_signed {
    char *text;      /* canonical encoding, NUL-terminated, owned */
    size_t text_len; /* bytes, without the NUL */
    unsigned char hash[FA_LEDGER_HASH_BYTES];
    unsigned char signature[FA_LEDGER_SIG_BYTES];
} fa_ledger_signed;

/* "release", "refusal", "abandonment" or "budget"; NULL for an unknown kind. */
const char *fa_ledger_kind_name(fa_ledger_kind kind);

/* Kind of a name; FA_EINVAL when unknown. */
int fa_ledger_kind_parse(fa_ledger_kind *out, const char *name) FA_MUST_CHECK;

/* ------------------------------------------------------------- building */

/*
 * Starts the entry that follows prev (NULL when the ledger is empty; then
 * prev_hash is ignored): zeroes e, sets format 3, seq and prev_hash and
 * carries epsilon over. The caller fills round_id, created_at, mech, and
 * then calls one of the three functions below with the running accountant
 * of every release before e (its kind becomes e's accountant). A caller
 * writing an older format sets e->format (1 or 2) before that call; those
 * formats need an RDP accountant, whose vectors they record.
 */
void fa_ledger_entry_next(fa_ledger_entry *e, const fa_ledger_entry *prev,
                          const unsigned char prev_hash[FA_LEDGER_HASH_BYTES]);

/*
 * Decides e's release (e->mech.sampling_rate, e->mech.noise_multiplier)
 * against budget b with the running accountant acc and completes e: kind
 * release with the new cumulative epsilon (FA_OK; the release is then
 * composed into acc), or kind refusal with nothing spent (FA_EREFUSED; e
 * is then a complete refusal entry and acc is unchanged). Records the
 * budget and the accountant in e. FA_EINVAL for bad parameters.
 */
int fa_ledger_entry_decide(fa_ledger_entry *e, const fa_budget *b, fa_accountant *acc,
                           fa_error *err) FA_MUST_CHECK;

/*
 * Completes e as an abandonment: nothing spent, epsilon of acc restated at
 * b's delta. FA_EINVAL for a bad budget.
 */
int fa_ledger_entry_abandon(fa_ledger_entry *e, const fa_budget *b, const fa_accountant *acc,
                            fa_error *err) FA_MUST_CHECK;

/*
 * Completes e as a budget event (kind budget, v2 and later): the budget in
 * force, epsilon_max, delta and (v3) the accountant, becomes b and acc's
 * kind from this entry on; nothing spent, round_id and model_version 0,
 * and epsilon restated by acc at b's delta. acc must hold every release
 * before e (a new accountant recomposes them all). Written by the round
 * close before the first entry under a changed budget. FA_EINVAL.
 */
int fa_ledger_entry_budget(fa_ledger_entry *e, const fa_budget *b, const fa_accountant *acc,
                           fa_error *err) FA_MUST_CHECK;

/* --------------------------------------------------------------- coding */

/*
 * The canonical text of e, in e->format (1 or 2), into a new NUL-terminated
 * buffer owned by the caller (free()). FA_EINVAL when a field is out of its domain (negative,
 * non-finite, a name outside [a-z0-9_.,()+-] ...), FA_ENOMEM.
 */
int fa_ledger_entry_encode(char **text_out, size_t *len_out, const fa_ledger_entry *e,
                           fa_error *err) FA_MUST_CHECK;

/*
 * Parses canonical text (len bytes, need not be NUL-terminated) into out.
 * Strict: anything but the exact bytes fa_ledger_entry_encode would produce
 * for the parsed entry is FA_EINVAL, as is text over FA_LEDGER_TEXT_MAX.
 * Safe on untrusted input.
 */
int fa_ledger_entry_parse(fa_ledger_entry *out, const char *text, size_t len,
                          fa_error *err) FA_MUST_CHECK;

/*
 * Encodes e, hashes the text with SHA-256 and signs the 32-byte hash with
 * key. out's text is the caller's (fa_ledger_signed_done). FA_EINVAL, FA_ENOMEM.
 */
int fa_ledger_sign(fa_ledger_signed *out, const fa_ledger_entry *e, const fa_crypto_sign_key *key,
                   fa_error *err) FA_MUST_CHECK;

/* Frees the text of a signed entry (the struct is the caller's). NULL-safe. */
void fa_ledger_signed_done(fa_ledger_signed *s);

/* ---------------------------------------------------------- verification */

/* One stored row as the verifier sees it (borrowed pointers). */
typedef struct fa_ledger_record {
    int64_t seq;               /* seq column */
    const char *kind;          /* kind column */
    int64_t round_id;          /* round_id column, 0 when NULL */
    int64_t model_version;     /* model_version column, 0 when NULL */
    double cumulative_epsilon; /* cumulative_epsilon column */
    const char *entry;         /* entry column: the canonical text */
    size_t entry_len;          /* bytes of entry */
    unsigned char prev_hash[FA_LEDGER_HASH_BYTES];
    unsigned char hash[FA_LEDGER_HASH_BYTES];
    unsigned char signature[FA_LEDGER_SIG_BYTES];
} fa_ledger_record;

typedef struct fa_ledger_report {
    size_t entries;   /* records that held, in order */
    int64_t bad_seq;  /* first entry that does not hold; 0 when all do */
    char reason[160]; /* why, e.g. "hash mismatch" */
    int64_t releases; /* counts over the entries that held */
    int64_t refusals;
    int64_t abandonments;
    int64_t seeded_releases;       /* releases whose noise was seeded (not private) */
    int64_t budget_changes;        /* budget events */
    double epsilon_max;            /* the budget in force after the last entry that held */
    fa_accountant_kind accountant; /* the accountant in force then (0 before any entry) */
    double epsilon;                /* cumulative epsilon of the last entry that held */
    double delta;                  /* its delta */
    double order;                  /* its order (v1/v2 entries; 0 in v3) */
    unsigned char head[FA_LEDGER_HASH_BYTES]; /* hash of the last entry that held */
} fa_ledger_report;

/*
 * Verifies a whole chain, records in seq order, against the signing public
 * key: seq runs 1, 2, ... without gaps; each hash is the SHA-256 of its
 * entry text and carries a valid signature; each text parses strictly and
 * agrees with its columns; prev_hash links to the previous hash (zeros for
 * seq 1); and the entry's accountant, re-run from the recorded (q, sigma)
 * of every release of the chain so far (never from stored numbers),
 * reproduces its epsilon (relative 1e-9) and, for v1/v2 entries, each
 * round and cumulative RDP vector and order; releases stay within their
 * budget and refusals would not have. The budget in force (epsilon_max,
 * delta, accountant) is the first entry's and changes only with a budget
 * entry (or a v1 entry, which had none); formats never go back (no v1
 * after v2, no v1/v2 after v3); releases
 * produce versions 1, 2, 3, ... in order; round ids strictly increase.
 * Returns FA_OK when every entry holds, FA_ECONFLICT at the
 * first that does not (out->bad_seq and out->reason; err reads "ledger entry
 * 17: hash mismatch"), FA_EINTERNAL from the accountant.
 */
int fa_ledger_verify(fa_ledger_report *out, const fa_ledger_record *records, size_t n,
                     const unsigned char sign_pk[FA_LEDGER_PK_BYTES], fa_error *err) FA_MUST_CHECK;

/*
 * Checks one stored record on its own: its hash is the SHA-256 of its text,
 * the signature verifies under sign_pk, the text parses strictly and agrees
 * with the record's columns. The round close checks the ledger head (and
 * the last release) this way before building on it. FA_OK with *out the
 * parsed entry, FA_ECONFLICT (err says what does not hold).
 */
int fa_ledger_record_check(fa_ledger_entry *out, const fa_ledger_record *r,
                           const unsigned char sign_pk[FA_LEDGER_PK_BYTES],
                           fa_error *err) FA_MUST_CHECK;

/* A published model version as the verifier sees it (model_versions). */
typedef struct fa_ledger_version {
    int64_t version;                            /* >= 0; 0 is the initial model */
    unsigned char sha256[FA_LEDGER_HASH_BYTES]; /* sha256 column */
} fa_ledger_version;

/*
 * Checks a verified chain (records as given to fa_ledger_verify) against
 * the published versions (any order): every version >= 1 has exactly one
 * release entry naming it, and for v2 entries the same snapshot SHA-256;
 * every release names a published version. A ledger whose tail was cut
 * off fails here. out is fa_ledger_verify's report: only bad_seq and
 * reason are written (the first missing entry is named as seq n + 1).
 * FA_OK, FA_ECONFLICT (out->bad_seq/out->reason, err), FA_ENOMEM.
 */
int fa_ledger_verify_versions(fa_ledger_report *out, const fa_ledger_record *records, size_t n,
                              const fa_ledger_version *versions, size_t nv,
                              fa_error *err) FA_MUST_CHECK;

#endif
