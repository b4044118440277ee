#include "model/ncf.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "model/internal.h"
#include "model/params.h"

/* Offsets of the MLP tensors inside the dense block (floats). */
#define OFF_W1 0
#define OFF_B1 (OFF_W1 + FA_NCF_INPUT_DIM * FA_NCF_H1)
#define OFF_W2 (OFF_B1 + FA_NCF_H1)
#define OFF_B2 (OFF_W2 + FA_NCF_H1 * FA_NCF_H2)
#define OFF_W3 (OFF_B2 + FA_NCF_H2)
#define OFF_B3 (OFF_W3 + FA_NCF_H2 * FA_NCF_H3)
#define OFF_WO (OFF_B3 + FA_NCF_H3)
#define OFF_BO (OFF_WO + FA_NCF_H3)

struct fa_ncf {
    size_t max_batch; /* rows */
    float *x0;        /* [max_batch, 128] input */
    float *h1;        /* [max_batch, 128] post-ReLU */
    float *h2;        /* [max_batch, 64] post-ReLU */
    float *h3;        /* [max_batch, 32] post-ReLU */
    float *d1;        /* [max_batch, 128] d loss / d pre-activation 1 */
    float *d2;        /* [max_batch, 64] */
    float *d3;        /* [max_batch, 32] */
    float *dx0;       /* [max_batch, 128] d loss / d input */
};

int fa_ncf_new(fa_ncf **out, size_t max_batch, fa_error *err)
{
    fa_ncf *ws = NULL;
    int rc = FA_OK;

    *out = NULL;
    if (max_batch < 1 || max_batch > FA_NCF_MAX_BATCH)
        return fa_fail(err, FA_EINVAL, "batch size %zu is outside 1..%d", max_batch,
                       FA_NCF_MAX_BATCH);
    ws = calloc(1, sizeof(*ws));
    if (ws == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory for the model workspace");
        goto cleanup;
    }
    ws->max_batch = max_batch;
    ws->x0 = fa_model__alloc_floats(max_batch * FA_NCF_INPUT_DIM);
    ws->h1 = fa_model__alloc_floats(max_batch * FA_NCF_H1);
    ws->h2 = fa_model__alloc_floats(max_batch * FA_NCF_H2);
    ws->h3 = fa_model__alloc_floats(max_batch * FA_NCF_H3);
    ws->d1 = fa_model__alloc_floats(max_batch * FA_NCF_H1);
    ws->d2 = fa_model__alloc_floats(max_batch * FA_NCF_H2);
    ws->d3 = fa_model__alloc_floats(max_batch * FA_NCF_H3);
    ws->dx0 = fa_model__alloc_floats(max_batch * FA_NCF_INPUT_DIM);
    if (ws->x0 == NULL || ws->h1 == NULL || ws->h2 == NULL || ws->h3 == NULL || ws->d1 == NULL ||
        ws->d2 == NULL || ws->d3 == NULL || ws->dx0 == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory for the model workspace");
        goto cleanup;
    }
    *out = ws;
    ws = NULL;
cleanup:
    fa_ncf_free(ws);
    return rc;
}

void fa_ncf_free(fa_ncf *ws)
{
    if (ws == NULL)
        return;
    free(ws->x0);
    free(ws->h1);
    free(ws->h2);
    free(ws->h3);
    free(ws->d1);
    free(ws->d2);
    free(ws->d3);
    free(ws->dx0);
    free(ws);
}

size_t fa_ncf_max_batch(const fa_ncf *ws)
{
    return ws->max_batch;
}

float *fa_ncf_input(fa_ncf *ws)
{
    return ws->x0;
}

const float *fa_ncf_input_grad(const fa_ncf *ws)
{
    return ws->dx0;
}

/* out[n, cols] = relu(in[n, k] * w[k, cols] + b): the bias is broadcast first, then beta = 1. */
static void dense_relu(float *out, const float *in, const float *w, const float *b, size_t n, int k,
                       int cols)
{
    for (size_t i = 0; i < n; i++)
        memcpy(out + i * (size_t)cols, b, (size_t)cols * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)n, cols, k, 1.0f, in, k, w,
                cols, 1.0f, out, cols);
    for (size_t i = 0; i < n * (size_t)cols; i++)
        out[i] = out[i] > 0.0f ? out[i] : 0.0f;
}

void fa_ncf_forward(float *logits_out, fa_ncf *ws, const float *dense, size_t n)
{
    assert(n >= 1 && n <= ws->max_batch);
    dense_relu(ws->h1, ws->x0, dense + OFF_W1, dense + OFF_B1, n, FA_NCF_INPUT_DIM, FA_NCF_H1);
    dense_relu(ws->h2, ws->h1, dense + OFF_W2, dense + OFF_B2, n, FA_NCF_H1, FA_NCF_H2);
    dense_relu(ws->h3, ws->h2, dense + OFF_W3, dense + OFF_B3, n, FA_NCF_H2, FA_NCF_H3);
    if (logits_out == NULL)
        return;
    /* The output layer is linear: the logit feeds the loss (sigmoid inside BCE). */
    for (size_t i = 0; i < n; i++)
        logits_out[i] = dense[OFF_BO];
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)n, FA_NCF_H3, 1.0f, ws->h3, FA_NCF_H3,
                dense + OFF_WO, 1, 1.0f, logits_out, 1);
}

/* bias_grad[j] = sum_i d[i, j]. */
static void column_sums(float *bias_grad, const float *d, size_t n, int cols)
{
    memset(bias_grad, 0, (size_t)cols * sizeof(float));
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < cols; j++)
            bias_grad[j] += d[i * (size_t)cols + (size_t)j];
}

/* d[i] = 0 where the post-ReLU activation h[i] is 0 (ReLU derivative). */
static void relu_mask(float *d, const float *h, size_t count)
{
    for (size_t i = 0; i < count; i++)
        d[i] = h[i] > 0.0f ? d[i] : 0.0f;
}

void fa_ncf_backward(float *grad_dense_out, fa_ncf *ws, const float *dense, const float *dlogits,
                     size_t n)
{
    float *g = grad_dense_out;
    float gbo = 0.0f;
    blasint bn = (blasint)n;

    assert(n >= 1 && n <= ws->max_batch);
    /* Output layer: z = h3 wo + bo. */
    cblas_sgemv(CblasRowMajor, CblasTrans, bn, FA_NCF_H3, 1.0f, ws->h3, FA_NCF_H3, dlogits, 1, 0.0f,
                g + OFF_WO, 1);
    for (size_t i = 0; i < n; i++)
        gbo += dlogits[i];
    g[OFF_BO] = gbo;
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < FA_NCF_H3; j++)
            ws->d3[i * FA_NCF_H3 + (size_t)j] = dlogits[i] * dense[OFF_WO + j];
    relu_mask(ws->d3, ws->h3, n * FA_NCF_H3);

    /* dense_3: h3 = relu(h2 W3 + b3). */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, FA_NCF_H2, FA_NCF_H3, bn, 1.0f, ws->h2,
                FA_NCF_H2, ws->d3, FA_NCF_H3, 0.0f, g + OFF_W3, FA_NCF_H3);
    column_sums(g + OFF_B3, ws->d3, n, FA_NCF_H3);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bn, FA_NCF_H2, FA_NCF_H3, 1.0f, ws->d3,
                FA_NCF_H3, dense + OFF_W3, FA_NCF_H3, 0.0f, ws->d2, FA_NCF_H2);
    relu_mask(ws->d2, ws->h2, n * FA_NCF_H2);

    /* dense_2: h2 = relu(h1 W2 + b2). */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, FA_NCF_H1, FA_NCF_H2, bn, 1.0f, ws->h1,
                FA_NCF_H1, ws->d2, FA_NCF_H2, 0.0f, g + OFF_W2, FA_NCF_H2);
    column_sums(g + OFF_B2, ws->d2, n, FA_NCF_H2);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bn, FA_NCF_H1, FA_NCF_H2, 1.0f, ws->d2,
                FA_NCF_H2, dense + OFF_W2, FA_NCF_H2, 0.0f, ws->d1, FA_NCF_H1);
    relu_mask(ws->d1, ws->h1, n * FA_NCF_H1);

    /* dense_1: h1 = relu(x0 W1 + b1); the input gradient feeds the embeddings. */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, FA_NCF_INPUT_DIM, FA_NCF_H1, bn, 1.0f,
                ws->x0, FA_NCF_INPUT_DIM, ws->d1, FA_NCF_H1, 0.0f, g + OFF_W1, FA_NCF_H1);
    column_sums(g + OFF_B1, ws->d1, n, FA_NCF_H1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bn, FA_NCF_INPUT_DIM, FA_NCF_H1, 1.0f,
                ws->d1, FA_NCF_H1, dense + OFF_W1, FA_NCF_H1, 0.0f, ws->dx0, FA_NCF_INPUT_DIM);
}

double fa_ncf_loss_bce(float *dlogits_out, const float *logits, const float *labels, size_t n)
{
    double sum = 0.0;
    double inv_n = 1.0 / (double)n;

    for (size_t i = 0; i < n; i++) {
        double z = logits[i], y = labels[i];
        /* log(1 + e^z) - y z, written so that neither branch overflows. */
        double softplus = (z > 0.0 ? z : 0.0) + log1p(exp(-fabs(z)));
        sum += softplus - y * z;
        if (dlogits_out != NULL) {
            double sig = z >= 0.0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
            dlogits_out[i] = (float)((sig - y) * inv_n);
        }
    }
    return sum * inv_n;
}

double fa_ncf_loss_mse(float *dlogits_out, const float *outputs, const float *targets, size_t n)
{
    double sum = 0.0;
    double inv_n = 1.0 / (double)n;

    for (size_t i = 0; i < n; i++) {
        double e = (double)outputs[i] - (double)targets[i];
        sum += e * e;
        if (dlogits_out != NULL)
            dlogits_out[i] = (float)(2.0 * e * inv_n);
    }
    return sum * inv_n;
}

void fa_ncf_predict(float *logits_out, fa_ncf *ws, const fa_params *theta, const float *user_vec,
                    const int32_t *items, size_t n)
{
    float *x = ws->x0;

    assert(n >= 1 && n <= ws->max_batch);
    for (size_t i = 0; i < n; i++) {
        assert(items[i] >= 0 && (size_t)items[i] < fa_params_num_items(theta));
        memcpy(x + i * FA_NCF_INPUT_DIM, user_vec, FA_NCF_EMBED_DIM * sizeof(float));
        memcpy(x + i * FA_NCF_INPUT_DIM + FA_NCF_EMBED_DIM,
               fa_params_item_row(theta, (size_t)items[i]), FA_NCF_EMBED_DIM * sizeof(float));
    }
    fa_ncf_forward(logits_out, ws, fa_params_dense(theta), n);
}
