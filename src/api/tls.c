/*
 * HTTPS: the certificate chain and key served, loaded from tls_cert_file and
 * tls_key_file and replaced on reload, handed to GnuTLS through
 * libmicrohttpd's certificate callback.
 */
#include "api/internal.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdlib.h>

#include "core/util.h"
#include "privacy/crypto.h"

/*
 * The certificate and key served, loaded from tls_cert_file / tls_key_file.
 * A reload (SIGHUP) puts a new one in front; the ones before stay until the
 * server stops, since a handshake under way may still use them.
 */
#define TLS_CHAIN_MAX 8

struct tls_cert {
    gnutls_pcert_st chain[TLS_CHAIN_MAX];
    unsigned n;
    gnutls_privkey_t key;
    struct tls_cert *older;
};

/* libmicrohttpd's certificate callback has no closure: one TLS server per process. */
static pthread_mutex_t g_tls_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tls_cert *g_tls; /* g_tls_mu: the one served */

static void tls_cert_free(struct tls_cert *c)
{
    while (c != NULL) {
        struct tls_cert *older = c->older;
        for (unsigned i = 0; i < c->n; i++)
            gnutls_pcert_deinit(&c->chain[i]);
        if (c->key != NULL)
            gnutls_privkey_deinit(c->key);
        free(c);
        c = older;
    }
}

/* Whether key is the private key of cert: it signs a message cert's key verifies. */
static int tls_key_matches(gnutls_privkey_t key, gnutls_pubkey_t cert)
{
    gnutls_datum_t msg = {(unsigned char *)"fedagg", 6}, sig = {NULL, 0};
    const int pk = gnutls_pubkey_get_pk_algorithm(cert, NULL);
    gnutls_sign_algorithm_t alg =
        pk == GNUTLS_PK_EDDSA_ED25519
            ? GNUTLS_SIGN_EDDSA_ED25519
            : gnutls_pk_to_sign((gnutls_pk_algorithm_t)pk, GNUTLS_DIG_SHA256);
    int ok = gnutls_privkey_sign_data2(key, alg, 0, &msg, &sig) >= 0 &&
             gnutls_pubkey_verify_data2(cert, alg, 0, &msg, &sig) >= 0;

    gnutls_free(sig.data);
    return ok;
}

static int tls_cert_load(struct tls_cert **out, const char *cert_path, const char *key_path,
                         fa_error *err)
{
    struct tls_cert *c = calloc(1, sizeof(*c));
    char *cert = NULL, *key = NULL;
    size_t cert_len = 0, key_len = 0;
    int rc = FA_OK, g;

    *out = NULL;
    if (c == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory loading the TLS certificate");
    if ((rc = fa_file_read(&cert, &cert_len, cert_path, 1 << 20, err)) < 0 ||
        (rc = fa_file_read(&key, &key_len, key_path, 1 << 20, err)) < 0)
        goto cleanup;
    gnutls_datum_t cd = {(unsigned char *)cert, (unsigned)cert_len};
    gnutls_datum_t kd = {(unsigned char *)key, (unsigned)key_len};
    c->n = TLS_CHAIN_MAX;
    if ((g = gnutls_pcert_list_import_x509_raw(c->chain, &c->n, &cd, GNUTLS_X509_FMT_PEM, 0)) < 0) {
        c->n = 0;
        rc = fa_fail(err, FA_EINVAL, "%s: not a PEM certificate chain of at most %d: %s", cert_path,
                     TLS_CHAIN_MAX, gnutls_strerror(g));
        goto cleanup;
    }
    if ((g = gnutls_privkey_init(&c->key)) < 0 ||
        (g = gnutls_privkey_import_x509_raw(c->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        rc = fa_fail(err, FA_EINVAL, "%s: not a PEM private key: %s", key_path, gnutls_strerror(g));
        goto cleanup;
    }
    if (!tls_key_matches(c->key, c->chain[0].pubkey)) {
        rc = fa_fail(err, FA_EINVAL, "%s is not the private key of %s", key_path, cert_path);
        goto cleanup;
    }
    *out = c;
    c = NULL;
cleanup:
    if (key != NULL)
        fa_crypto_wipe(key, key_len);
    free(key);
    free(cert);
    tls_cert_free(c);
    return rc;
}

int fa_api__tls_cert_cb(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                        const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                        gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    int rc = -1;

    (void)session;
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    (void)pthread_mutex_lock(&g_tls_mu);
    if (g_tls != NULL) {
        *pcert = g_tls->chain;
        *pcert_length = g_tls->n;
        *pkey = g_tls->key;
        rc = 0;
    }
    (void)pthread_mutex_unlock(&g_tls_mu);
    return rc;
}

int fa_api__tls_reload(const fa_config *cfg, fa_error *err)
{
    struct tls_cert *c = NULL;
    int rc;

    if ((rc = tls_cert_load(&c, cfg->tls_cert_file, cfg->tls_key_file, err)) < 0)
        return rc;
    (void)pthread_mutex_lock(&g_tls_mu);
    c->older = g_tls;
    g_tls = c;
    (void)pthread_mutex_unlock(&g_tls_mu);
    return FA_OK;
}

void fa_api__tls_free(void)
{
    (void)pthread_mutex_lock(&g_tls_mu);
    tls_cert_free(g_tls);
    g_tls = NULL;
    (void)pthread_mutex_unlock(&g_tls_mu);
}
