#include <criterion/criterion.h>
#include <math.h>

#include "model/central.h"
#include "model/data.h"
#include "model/eval.h"
#include "model/synth.h"

static fa_dataset *synthetic(void)
{
    fa_synth_opts o = FA_SYNTH_OPTS_INIT;
    fa_dataset *ds = NULL;
    fa_error err = FA_ERROR_INIT;

    o.num_users = 150;
    o.num_items = 300;
    o.positives = 20;
    o.seed = 12;
    cr_assert_eq(fa_synth_dataset(&ds, &o, &err), FA_OK, "%s", err.msg);
    return ds;
}

Test(central, short_run_on_planted_data_beats_the_untrained_model)
{
    fa_dataset *ds = synthetic();
    fa_central *c = NULL;
    fa_error err = FA_ERROR_INIT;
    fa_train_opts o = FA_TRAIN_OPTS_INIT;
    fa_eval_result before, after;
    double loss0 = 0.0, loss = 0.0;

    o.batch = 64;
    o.lr = 0.005;
    o.seed = 3;
    cr_assert_eq(fa_central_new(&c, ds, &o, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_eval_dataset(&before, fa_central_params(c), fa_central_users(c), ds, &err),
                 FA_OK);
    /* Ten epochs: six left the margin to the untrained model at 0.13 on
     * some CPUs (OpenBLAS picks its kernels by CPU, and the rounding of
     * each kernel steers this short a run); ten reach about 0.25. */
    for (int e = 0; e < 10; e++) {
        cr_assert_eq(fa_central_epoch(&loss, c, &err), FA_OK, "%s", err.msg);
        if (e == 0)
            loss0 = loss;
    }
    cr_assert_eq(fa_central_samples(c), 150u * 20u * 5u);
    cr_assert_eq(fa_eval_dataset(&after, fa_central_params(c), fa_central_users(c), ds, &err),
                 FA_OK);
    cr_assert_lt(loss, loss0);
    cr_assert_gt(after.hr10, before.hr10 + 0.15, "HR@10 %.3f -> %.3f", before.hr10, after.hr10);
    cr_assert_gt(after.ndcg10, before.ndcg10);
    fa_central_free(c);
    fa_dataset_free(ds);
}

Test(central, sgd_and_mse_run_and_are_deterministic)
{
    fa_dataset *ds = synthetic();
    fa_central *a = NULL, *b = NULL;
    fa_error err = FA_ERROR_INIT;
    fa_train_opts o = FA_TRAIN_OPTS_INIT;
    double la, lb;

    o.optimizer = FA_OPTIMIZER_SGD;
    o.lr = 0.05;
    o.loss = FA_LOSS_MSE;
    cr_assert_eq(fa_central_new(&a, ds, &o, &err), FA_OK);
    cr_assert_eq(fa_central_new(&b, ds, &o, &err), FA_OK);
    cr_assert_eq(fa_central_epoch(&la, a, &err), FA_OK);
    cr_assert_eq(fa_central_epoch(&lb, b, &err), FA_OK);
    cr_assert_eq(fa_central_samples(a), 150u * 20u); /* no negatives with MSE */
    cr_assert(isfinite(la));
    cr_assert_eq(la, lb);
    fa_central_free(a);
    fa_central_free(b);
    o.batch = 0;
    cr_assert_eq(fa_central_new(&a, ds, &o, &err), FA_EINVAL);
    fa_dataset_free(ds);
}
