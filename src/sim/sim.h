/*
 * `fedagg simulate`: a population of simulated devices, one per user of a
 * dataset, each keeping its own user vector across rounds. Two drivers
 * share the population, the choice of devices, the evaluation and the
 * per-round JSON line: over HTTP against a running server
 * (sim/http.c), and in process with the server's round arithmetic
 * and accountant but without HTTP and PostgreSQL (sim/local.c).
 * A fa_sim belongs to the command's main thread; device threads read it
 * and write only the user vectors of the devices they train.
 */
#ifndef FA_SIM_SIM_H
#define FA_SIM_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "core/error.h"
#include "model/train.h"

/* The rng stream of the sample of users the command line picks to evaluate. */
#define FA_SIM_STREAM_EVAL 12u

typedef struct fa_dataset fa_dataset;
typedef struct fa_params fa_params;

/*
 * What adversarial devices send (in process only). Each is a device of the
 * population chosen by a seeded coin (fa_sim_is_attacker) that takes part
 * in rounds like any other and claims the weight cap's sample count:
 *   boost  trains on a fabricated history of only the target item, to push
 *          it into everyone's top 10, and scales its update by attack_scale;
 *   scale  trains honestly and scales its update by attack_scale (model
 *          replacement);
 *   noise  sends Gaussian noise of norm attack_scale * clip_norm.
 * The server clips every update to S and weights it in [0, 1] whatever it
 * is: the attacks measure what that and the trust policy leave.
 */
typedef enum fa_sim_attack {
    FA_SIM_ATTACK_NONE = 0,
    FA_SIM_ATTACK_BOOST,
    FA_SIM_ATTACK_SCALE,
    FA_SIM_ATTACK_NOISE,
} fa_sim_attack;

/* FA_SIM_ATTACK_* of "none", "boost", "scale", "noise"; FA_EINVAL otherwise. */
int fa_sim_attack_parse(fa_sim_attack *out, const char *name) FA_MUST_CHECK;

typedef struct fa_crypto_sign_key fa_crypto_sign_key;

typedef struct fa_sim {
    fa_dataset *ds;         /* the population's data, one user per device (owned) */
    int32_t users;          /* devices */
    float *user_table;      /* users x 64: each device's own vector (owned) */
    fa_train_opts opts;     /* local training; opts.seed seeds everything */
    int parallel;           /* devices training at once */
    int64_t rounds;         /* rounds to run */
    int64_t cohort;         /* devices per round without sampling; 0: the minimum cohort */
    int32_t *eval_ids;      /* users scored each evaluation, increasing (owned) */
    int32_t n_eval;         /* their count */
    int64_t eval_every;     /* evaluate every N rounds and after the last */
    int eval_initial;       /* 1: also score the starting model, printed as round 0 */
    const char *save_model; /* in-process: safetensors of the last model, or NULL */
    /* in-process only */
    fa_config cfg; /* the server configuration the round math follows */
    int no_noise;  /* 1: non-private baseline, no noise, no accounting */
    FILE *out;     /* where the JSON lines go */
    /* adversarial devices (in process only) */
    fa_sim_attack attack;   /* what they send; NONE: every device is honest */
    double attack_fraction; /* share of the population that attacks, [0, 1] */
    int32_t attack_target;  /* boost: the item id pushed into everyone's top 10 */
    double attack_scale;    /* boost/scale: update multiple; noise: norm in units of S */
    /* device tokens for a server with auth = jwt (over HTTP only) */
    const fa_crypto_sign_key *auth_key; /* the test issuer's key, or NULL: no tokens */
    char auth_kid[17];                  /* its kid */
    const char *auth_issuer;            /* "iss" of the tokens */
    const char *auth_audience;          /* "aud" of the tokens */
    const char *ca_file;                /* HTTPS: the CA that verifies the server, or NULL */
} fa_sim;

/* One round's report, printed as one JSON line by fa_sim_print. */
typedef struct fa_sim_line {
    int64_t round;   /* round id */
    int64_t version; /* model version the round published */
    int64_t cohort;  /* updates in the round's sum */
    int evaluated;   /* 0: hr10/ndcg10 are printed as null */
    double hr10, ndcg10;
    double epsilon; /* cumulative; infinity for the non-private baseline */
    /* with attackers: both metrics above are over honest evaluated users, and */
    double target_hr10; /* boost: share of them with the target item in their top 10 */
    int64_t attackers;  /* adversarial devices in the round's sum */
    double delta;
    double seconds; /* wall time of the round, evaluation included */
} fa_sim_line;

/*
 * The devices of round round_id without sampling: a seeded shuffle of all
 * users, the first k, in increasing id order (the order updates are sent
 * and folded in). out holds at least s->users ids; returns how many.
 */
int32_t fa_sim_choose(int32_t *out, const fa_sim *s, int64_t round_id, int64_t k);

/*
 * The devices of round round_id under Poisson sampling at rate q: each
 * device's own coin for the round, in increasing id order. Returns the count.
 */
int32_t fa_sim_poisson(int32_t *out, const fa_sim *s, int64_t round_id, double q);

/* 1 when device u is adversarial (a seeded coin per device, s->attack_fraction). */
int fa_sim_is_attacker(const fa_sim *s, int32_t u);

/* The seed of device u's local training on base model version v. */
uint64_t fa_sim_device_seed(const fa_sim *s, int32_t u, int64_t version);

/*
 * HR@10 and NDCG@10 of theta over s->eval_ids with each device's own
 * vector, on s->parallel threads; the same numbers as fa_eval_dataset over
 * those users, whatever the thread count. With attackers, only honest
 * users count, and *target_out (may be NULL) is the share of them for
 * whom the attack target, ranked against the same 99 negatives as their
 * test item, is in the top 10 (0 without a boost attack). FA_EINVAL,
 * FA_ENOMEM.
 */
int fa_sim_eval(double *hr10_out, double *ndcg10_out, double *target_out, const fa_sim *s,
                const fa_params *theta, fa_error *err) FA_MUST_CHECK;

/* Prints one round's JSON line to s->out and flushes it. */
void fa_sim_print(const fa_sim *s, const fa_sim_line *line);

/* 1 when round r (1-based count of this run) is evaluated. */
int fa_sim_eval_due(const fa_sim *s, int64_t r);

/*
 * Runs s->rounds rounds against the server at url, each until the server's
 * deadline; devices that miss it sit the round out. A round the server
 * abandons (below its minimum cohort, or full) prints no line and the run
 * goes on. FA_EREFUSED when the budget refuses a round (nothing after it
 * runs), FA_EUNAVAIL, FA_EINVAL.
 */
int fa_sim_run_http(fa_sim *s, const char *url, fa_error *err) FA_MUST_CHECK;

/*
 * Runs s->rounds rounds in process under s->cfg, as the server would: a
 * round below min_cohort, or with max_cohort devices or more, is abandoned
 * (no line) and the run goes on. FA_EREFUSED when the budget refuses a
 * round (nothing after it runs), FA_EINVAL, FA_ENOMEM.
 */
int fa_sim_run_local(fa_sim *s, fa_error *err) FA_MUST_CHECK;

#endif
