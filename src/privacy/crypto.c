#include "privacy/crypto.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <sodium.h>

#include "core/util.h"

/*
 * Both pairs live in one sodium_malloc() block each (guard pages, mlock where
 * permitted) and are made read-only once filled, so a stray write faults
 * instead of corrupting a key. sodium_free() wipes them.
 */
struct fa_crypto_box_key {
    unsigned char pk[crypto_box_PUBLICKEYBYTES];
    unsigned char sk[crypto_box_SECRETKEYBYTES];
};

struct fa_crypto_sign_key {
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sk[crypto_sign_SECRETKEYBYTES]; /* seed || pk, libsodium's layout */
};

_Static_assert(FA_CRYPTO_BOX_PK_BYTES == crypto_box_PUBLICKEYBYTES, "box pk size");
_Static_assert(FA_CRYPTO_BOX_SK_BYTES == crypto_box_SECRETKEYBYTES, "box sk size");
_Static_assert(FA_CRYPTO_SEAL_OVERHEAD == crypto_box_SEALBYTES, "seal overhead");
_Static_assert(FA_CRYPTO_SIGN_PK_BYTES == crypto_sign_PUBLICKEYBYTES, "sign pk size");
_Static_assert(FA_CRYPTO_SIGN_SEED_BYTES == crypto_sign_SEEDBYTES, "sign seed size");
_Static_assert(FA_CRYPTO_SIGN_BYTES == crypto_sign_BYTES, "signature size");
_Static_assert(FA_CRYPTO_STREAM_KEY_BYTES == crypto_stream_chacha20_KEYBYTES, "stream key");
_Static_assert(FA_CRYPTO_STREAM_BLOCK == 64, "chacha20 block");
_Static_assert(FA_SHA256_BYTES == crypto_hash_sha256_BYTES, "sha256 size");

int fa_crypto_init(fa_error *err)
{
    if (sodium_init() < 0)
        return fa_fail(err, FA_EINTERNAL, "libsodium failed to initialise");
    return FA_OK;
}

/* ------------------------------------------------------------ primitives */

void fa_crypto_random(void *buf, size_t len)
{
    randombytes_buf(buf, len);
}

void fa_crypto_wipe(void *buf, size_t len)
{
    if (buf != NULL && len > 0)
        sodium_memzero(buf, len);
}

int fa_crypto_equal(const void *a, const void *b, size_t len)
{
    return sodium_memcmp(a, b, len) == 0;
}

/* ------------------------------------------------------------ keystream */

struct fa_crypto_stream {
    EVP_CIPHER_CTX *ctx; /* holds the key; EVP_CIPHER_CTX_free cleanses it */
};

int fa_crypto_stream_new(fa_crypto_stream **out,
                         const unsigned char key[FA_CRYPTO_STREAM_KEY_BYTES], fa_error *err)
{
    /*
     * OpenSSL's ChaCha20 takes a 16-byte IV: a 32-bit little-endian block
     * counter, then 12 nonce bytes, and carries counter overflow into the
     * first nonce word. With an all-zero IV that is exactly the 64-bit-counter,
     * zero-nonce keystream of crypto_stream_chacha20 (a known-answer test
     * checks it against an independent implementation).
     */
    static const unsigned char IV[16];
    fa_crypto_stream *st = NULL;
    int rc = FA_OK;

    *out = NULL;
    st = calloc(1, sizeof(*st));
    if (st == NULL || (st->ctx = EVP_CIPHER_CTX_new()) == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory for a keystream");
        goto cleanup;
    }
    if (EVP_EncryptInit_ex(st->ctx, EVP_chacha20(), NULL, key, IV) != 1) {
        rc = fa_fail(err, FA_EINTERNAL, "chacha20 keystream could not be set up");
        goto cleanup;
    }
    *out = st;
    st = NULL;
cleanup:
    fa_crypto_stream_free(st);
    return rc;
}

int fa_crypto_stream_read(fa_crypto_stream *st, unsigned char *out, size_t len, fa_error *err)
{
    int n = 0;

    if (len % FA_CRYPTO_STREAM_BLOCK != 0 || len > INT_MAX)
        return fa_fail(err, FA_EINVAL, "keystream reads must be whole blocks, got %zu bytes", len);
    /* Encrypting zeros yields the keystream; in place is allowed. */
    memset(out, 0, len);
    if (EVP_EncryptUpdate(st->ctx, out, &n, out, (int)len) != 1 || (size_t)n != len)
        return fa_fail(err, FA_EINTERNAL, "chacha20 keystream failed");
    return FA_OK;
}

void fa_crypto_stream_free(fa_crypto_stream *st)
{
    if (st == NULL)
        return;
    EVP_CIPHER_CTX_free(st->ctx);
    free(st);
}

/* --------------------------------------------------------- guarded memory */

void *fa_crypto_secure_alloc(size_t len)
{
    /* sodium_malloc aborts the process when libsodium was never initialised;
     * sodium_init is idempotent and thread-safe, so a caller that forgot
     * fa_crypto_init gets memory (or NULL), never an abort. */
    if (sodium_init() < 0)
        return NULL;
    return sodium_malloc(len);
}

void fa_crypto_secure_free(void *p)
{
    if (p != NULL)
        sodium_free(p);
}

void fa_crypto_key_id(char out[FA_CRYPTO_KEY_ID_CHARS + 1],
                      const unsigned char box_pk[FA_CRYPTO_BOX_PK_BYTES])
{
    unsigned char digest[FA_SHA256_BYTES];

    fa_sha256(digest, box_pk, FA_CRYPTO_BOX_PK_BYTES);
    fa_hex_encode(out, digest, FA_CRYPTO_KEY_ID_CHARS / 2);
}

/* ------------------------------------------------------ X25519 sealed box */

static int box_key_alloc(fa_crypto_box_key **out, fa_error *err)
{
    *out = sodium_malloc(sizeof(**out));
    if (*out == NULL)
        return fa_fail(err, FA_ENOMEM, "out of guarded memory for a box key");
    return FA_OK;
}

int fa_crypto_box_key_generate(fa_crypto_box_key **out, fa_error *err)
{
    fa_crypto_box_key *key = NULL;
    int rc;

    *out = NULL;
    if ((rc = box_key_alloc(&key, err)) < 0)
        return rc;
    (void)crypto_box_keypair(key->pk, key->sk);
    (void)sodium_mprotect_readonly(key);
    *out = key;
    return FA_OK;
}

int fa_crypto_box_key_from_secret(fa_crypto_box_key **out,
                                  const unsigned char sk[FA_CRYPTO_BOX_SK_BYTES], fa_error *err)
{
    fa_crypto_box_key *key = NULL;
    int rc;

    *out = NULL;
    if ((rc = box_key_alloc(&key, err)) < 0)
        return rc;
    memcpy(key->sk, sk, sizeof(key->sk));
    (void)crypto_scalarmult_base(key->pk, key->sk);
    (void)sodium_mprotect_readonly(key);
    *out = key;
    return FA_OK;
}

const unsigned char *fa_crypto_box_key_public(const fa_crypto_box_key *key)
{
    return key->pk;
}

const unsigned char *fa_crypto_box_key_secret(const fa_crypto_box_key *key)
{
    return key->sk;
}

void fa_crypto_box_key_free(fa_crypto_box_key *key)
{
    if (key != NULL)
        sodium_free(key);
}

int fa_crypto_box_seal(unsigned char *out, size_t out_cap,
                       const unsigned char pk[FA_CRYPTO_BOX_PK_BYTES], const void *msg, size_t len,
                       fa_error *err)
{
    if (len > SIZE_MAX - crypto_box_SEALBYTES || out_cap < len + crypto_box_SEALBYTES)
        return fa_fail(err, FA_EINVAL, "output buffer too small for the sealed box");
    if (crypto_box_seal(out, msg, (unsigned long long)len, pk) != 0)
        return fa_fail(err, FA_EINVAL, "public key cannot be sealed to");
    return FA_OK;
}

int fa_crypto_box_open(unsigned char *out, size_t out_cap, size_t *len_out,
                       const fa_crypto_box_key *key, const unsigned char *box, size_t box_len,
                       fa_error *err)
{
    *len_out = 0;
    if (box_len < crypto_box_SEALBYTES || out_cap < box_len - crypto_box_SEALBYTES)
        return fa_fail(err, FA_EINVAL, "update did not decrypt");
    if (crypto_box_seal_open(out, box, (unsigned long long)box_len, key->pk, key->sk) != 0) {
        /* libsodium leaves out untouched on failure; wipe anyway so no partial plaintext stays. */
        fa_crypto_wipe(out, box_len - crypto_box_SEALBYTES);
        return fa_fail(err, FA_EINVAL, "update did not decrypt");
    }
    *len_out = box_len - crypto_box_SEALBYTES;
    return FA_OK;
}

/* ------------------------------------------------------------- Ed25519 */

static int sign_key_alloc(fa_crypto_sign_key **out, fa_error *err)
{
    *out = sodium_malloc(sizeof(**out));
    if (*out == NULL)
        return fa_fail(err, FA_ENOMEM, "out of guarded memory for a signing key");
    return FA_OK;
}

int fa_crypto_sign_key_generate(fa_crypto_sign_key **out, fa_error *err)
{
    fa_crypto_sign_key *key = NULL;
    int rc;

    *out = NULL;
    if ((rc = sign_key_alloc(&key, err)) < 0)
        return rc;
    (void)crypto_sign_keypair(key->pk, key->sk);
    (void)sodium_mprotect_readonly(key);
    *out = key;
    return FA_OK;
}

int fa_crypto_sign_key_from_seed(fa_crypto_sign_key **out,
                                 const unsigned char seed[FA_CRYPTO_SIGN_SEED_BYTES], fa_error *err)
{
    fa_crypto_sign_key *key = NULL;
    int rc;

    *out = NULL;
    if ((rc = sign_key_alloc(&key, err)) < 0)
        return rc;
    (void)crypto_sign_seed_keypair(key->pk, key->sk, seed);
    (void)sodium_mprotect_readonly(key);
    *out = key;
    return FA_OK;
}

const unsigned char *fa_crypto_sign_key_public(const fa_crypto_sign_key *key)
{
    return key->pk;
}

const unsigned char *fa_crypto_sign_key_seed(const fa_crypto_sign_key *key)
{
    return key->sk; /* the first crypto_sign_SEEDBYTES of libsodium's secret key */
}

void fa_crypto_sign_key_free(fa_crypto_sign_key *key)
{
    if (key != NULL)
        sodium_free(key);
}

void fa_crypto_sign(unsigned char sig[FA_CRYPTO_SIGN_BYTES], const fa_crypto_sign_key *key,
                    const void *msg, size_t len)
{
    (void)crypto_sign_detached(sig, NULL, msg, (unsigned long long)len, key->sk);
}

int fa_crypto_sign_verify(const unsigned char sig[FA_CRYPTO_SIGN_BYTES], const void *msg,
                          size_t len, const unsigned char pk[FA_CRYPTO_SIGN_PK_BYTES])
{
    if (crypto_sign_verify_detached(sig, msg, (unsigned long long)len, pk) != 0)
        return FA_EINVAL;
    return FA_OK;
}

/* ------------------------------------------------- keyed pseudorandom function */

struct fa_crypto_prf_key {
    unsigned char k[crypto_generichash_KEYBYTES];
};

_Static_assert(crypto_kdf_KEYBYTES == FA_CRYPTO_SIGN_SEED_BYTES, "the seed keys the KDF");
_Static_assert(crypto_kdf_CONTEXTBYTES == FA_CRYPTO_KDF_CONTEXT, "8-byte KDF contexts");
_Static_assert(crypto_generichash_KEYBYTES == 32 && FA_CRYPTO_PRF_BYTES == 32, "BLAKE2b-256");

/*
 * A 32-byte subkey of root's seed (crypto_kdf_derive_from_key) in new
 * guarded memory, read-only once written: the body of every derived key.
 */
static int derive_guarded(void **out, const fa_crypto_sign_key *root, uint64_t subkey_id,
                          const char context[FA_CRYPTO_KDF_CONTEXT], fa_error *err)
{
    unsigned char *k = fa_crypto_secure_alloc(32);

    *out = NULL;
    if (k == NULL)
        return fa_fail(err, FA_ENOMEM, "out of guarded memory for a derived key");
    if (crypto_kdf_derive_from_key(k, 32, subkey_id, context, root->sk) != 0) {
        sodium_free(k);
        return fa_fail(err, FA_EINTERNAL, "key derivation failed");
    }
    (void)sodium_mprotect_readonly(k);
    *out = k;
    return FA_OK;
}

int fa_crypto_prf_key_derive(fa_crypto_prf_key **out, const fa_crypto_sign_key *root,
                             uint64_t subkey_id, const char context[FA_CRYPTO_KDF_CONTEXT],
                             fa_error *err)
{
    _Static_assert(sizeof(fa_crypto_prf_key) == 32, "a bare 32-byte key");
    void *k = NULL;
    int rc = derive_guarded(&k, root, subkey_id, context, err);
    *out = k;
    return rc;
}

void fa_crypto_prf_key_free(fa_crypto_prf_key *key)
{
    if (key != NULL)
        sodium_free(key);
}

int fa_crypto_prf(unsigned char out[FA_CRYPTO_PRF_BYTES], const fa_crypto_prf_key *key,
                  const char *label, uint64_t x, const void *data, size_t len, fa_error *err)
{
    crypto_generichash_state st;
    const size_t ll = strlen(label);
    unsigned char head[1 + FA_CRYPTO_PRF_LABEL_MAX + 8];

    memset(out, 0, FA_CRYPTO_PRF_BYTES);
    if (ll < 1 || ll > FA_CRYPTO_PRF_LABEL_MAX)
        return fa_fail(err, FA_EINVAL, "PRF label must be 1..%d bytes", FA_CRYPTO_PRF_LABEL_MAX);
    head[0] = (unsigned char)ll;
    memcpy(head + 1, label, ll);
    for (int i = 0; i < 8; i++)
        head[1 + ll + (size_t)i] = (unsigned char)(x >> (8 * i));
    (void)crypto_generichash_init(&st, key->k, sizeof(key->k), FA_CRYPTO_PRF_BYTES);
    (void)crypto_generichash_update(&st, head, 1 + ll + 8);
    (void)crypto_generichash_update(&st, data, (unsigned long long)len);
    (void)crypto_generichash_final(&st, out, FA_CRYPTO_PRF_BYTES);
    sodium_memzero(&st, sizeof(st)); /* the state holds the key */
    sodium_memzero(head, sizeof(head));
    return FA_OK;
}

/* ------------------------------------------------------------------ ES256 */

int fa_crypto_es256_verify(const unsigned char sig[64], const void *msg, size_t len,
                           const unsigned char pub_x[32], const unsigned char pub_y[32])
{
    unsigned char point[65], der[80], *p = der;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *pkey = NULL;
    EVP_MD_CTX *md = NULL;
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    int der_len, ok = 0;

    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, pub_x, 32);
    memcpy(point + 33, pub_y, 32);
    /* The key from its coordinates (EVP_PKEY_fromdata checks the point is on the curve). */
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) != 1 ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
        (pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
        EVP_PKEY_fromdata_init(pctx) != 1 ||
        EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto cleanup;
    /* JOSE carries R || S; OpenSSL verifies the DER SEQUENCE of the two. */
    if ((es = ECDSA_SIG_new()) == NULL || (r = BN_bin2bn(sig, 32, NULL)) == NULL ||
        (s = BN_bin2bn(sig + 32, 32, NULL)) == NULL || ECDSA_SIG_set0(es, r, s) != 1)
        goto cleanup;
    r = s = NULL; /* owned by es now */
    if ((der_len = i2d_ECDSA_SIG(es, NULL)) <= 0 || der_len > (int)sizeof(der) ||
        i2d_ECDSA_SIG(es, &p) != der_len)
        goto cleanup;
    if ((md = EVP_MD_CTX_new()) == NULL ||
        EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) != 1)
        goto cleanup;
    ok = EVP_DigestVerify(md, der, (size_t)der_len, msg, len) == 1;
cleanup:
    EVP_MD_CTX_free(md);
    ECDSA_SIG_free(es);
    BN_free(r);
    BN_free(s);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return ok ? FA_OK : FA_EINVAL;
}

void fa_crypto_box_digest(unsigned char out[32], const unsigned char *box, size_t len)
{
    _Static_assert(crypto_box_PUBLICKEYBYTES + crypto_box_MACBYTES == 48, "epk || tag");
    (void)crypto_hash_sha256(out, box, len < 48 ? len : 48);
}

/* ------------------------------------------------ authenticated encryption */

struct fa_crypto_aead_key {
    unsigned char k[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
};

_Static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES +
                       crypto_aead_xchacha20poly1305_ietf_ABYTES ==
                   FA_CRYPTO_AEAD_OVERHEAD,
               "nonce and tag");

int fa_crypto_aead_key_derive(fa_crypto_aead_key **out, const fa_crypto_sign_key *root,
                              uint64_t subkey_id, const char context[FA_CRYPTO_KDF_CONTEXT],
                              fa_error *err)
{
    _Static_assert(sizeof(fa_crypto_aead_key) == 32, "a bare 32-byte key");
    void *k = NULL;
    int rc = derive_guarded(&k, root, subkey_id, context, err);
    *out = k;
    return rc;
}

void fa_crypto_aead_key_free(fa_crypto_aead_key *key)
{
    if (key != NULL)
        sodium_free(key);
}

int fa_crypto_aead_seal(unsigned char *out, size_t out_cap, const fa_crypto_aead_key *key,
                        const void *ad, size_t ad_len, const void *msg, size_t len, fa_error *err)
{
    const size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;

    if (len > SIZE_MAX - FA_CRYPTO_AEAD_OVERHEAD || out_cap < len + FA_CRYPTO_AEAD_OVERHEAD)
        return fa_fail(err, FA_EINVAL, "sealing buffer too small");
    randombytes_buf(out, nb);
    (void)crypto_aead_xchacha20poly1305_ietf_encrypt(out + nb, NULL, msg, (unsigned long long)len,
                                                     ad, (unsigned long long)ad_len, NULL, out,
                                                     key->k);
    return FA_OK;
}

int fa_crypto_aead_open(unsigned char *out, size_t out_cap, const fa_crypto_aead_key *key,
                        const void *ad, size_t ad_len, const unsigned char *sealed,
                        size_t sealed_len, fa_error *err)
{
    const size_t nb = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;

    if (sealed_len < FA_CRYPTO_AEAD_OVERHEAD || out_cap < sealed_len - FA_CRYPTO_AEAD_OVERHEAD)
        return fa_fail(err, FA_EINVAL, "sealed state is truncated");
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            out, NULL, NULL, sealed + nb, (unsigned long long)(sealed_len - nb), ad,
            (unsigned long long)ad_len, sealed, key->k) != 0) {
        sodium_memzero(out, sealed_len - FA_CRYPTO_AEAD_OVERHEAD);
        return fa_fail(err, FA_EINVAL, "sealed state does not open (changed, or another key)");
    }
    return FA_OK;
}
