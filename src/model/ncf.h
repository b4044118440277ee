/*
 * Forward and backward pass of the NCF MLP tower (He et al. 2017, section
 * 3.3) for a batch, on OpenBLAS sgemm: concat(user_vec, item_row) -> Dense
 * 128 ReLU -> Dense 64 ReLU -> Dense 32 ReLU -> Dense 1 (logit). An fa_ncf
 * is a workspace of activation buffers for batches up to max_batch rows. It
 * is not shared: one thread uses one workspace.
 */
#ifndef FA_MODEL_NCF_H
#define FA_MODEL_NCF_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct fa_ncf fa_ncf;
typedef struct fa_params fa_params;

/* Largest batch a workspace may be created for. */
#define FA_NCF_MAX_BATCH 65536

/* A workspace for batches of up to max_batch rows (caller frees). FA_EINVAL, FA_ENOMEM. */
int fa_ncf_new(fa_ncf **out, size_t max_batch, fa_error *err) FA_MUST_CHECK;

/* Frees ws; NULL-safe. */
void fa_ncf_free(fa_ncf *ws);

size_t fa_ncf_max_batch(const fa_ncf *ws);

/*
 * The input matrix [max_batch, 128], borrowed from ws: row i is the user
 * vector (columns 0..63) then the item embedding row (64..127) of sample i.
 * The caller fills the first n rows before fa_ncf_forward().
 */
float *fa_ncf_input(fa_ncf *ws);

/*
 * Forward pass over the first n input rows with the MLP weights dense
 * (FA_NCF_DENSE_LEN floats in layout order, see fa_params_dense). Writes n
 * logits to logits_out (may be NULL) and keeps the activations for
 * fa_ncf_backward(). Requires 1 <= n <= max_batch.
 */
void fa_ncf_forward(float *logits_out, fa_ncf *ws, const float *dense, size_t n);

/*
 * Backward pass of the last forward: given dlogits[n] = d loss / d logit,
 * writes d loss / d dense (FA_NCF_DENSE_LEN floats, overwritten) to
 * grad_dense_out and d loss / d input rows to fa_ncf_input_grad(ws).
 */
void fa_ncf_backward(float *grad_dense_out, fa_ncf *ws, const float *dense, const float *dlogits,
                     size_t n);

/* d loss / d input [max_batch, 128] of the last backward, borrowed from ws. */
const float *fa_ncf_input_grad(const fa_ncf *ws);

/*
 * Mean binary cross-entropy of sigmoid(logits) against labels in {0, 1},
 * computed stably from the logits, and dlogits_out[i] = (sigmoid(z_i) -
 * y_i) / n (may be NULL). Returns the mean loss.
 */
double fa_ncf_loss_bce(float *dlogits_out, const float *logits, const float *labels, size_t n);

/*
 * Mean squared error of the outputs (used as predicted ratings) against
 * targets, and dlogits_out[i] = 2 (z_i - t_i) / n (may be NULL).
 */
double fa_ncf_loss_mse(float *dlogits_out, const float *outputs, const float *targets, size_t n);

/*
 * Scores n item rows for one user: logits_out[i] = f(user_vec, items[i])
 * under theta. Every items[i] must be a valid row; 1 <= n <= max_batch.
 */
void fa_ncf_predict(float *logits_out, fa_ncf *ws, const fa_params *theta, const float *user_vec,
                    const int32_t *items, size_t n);

#endif
