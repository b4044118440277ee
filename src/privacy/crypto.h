/*
 * The privacy module's door to libsodium and OpenSSL: SHA-256, Ed25519
 * signatures, X25519 sealed boxes, the ChaCha20 keystream behind the noise
 * sampler and guarded memory for secrets. Only this unit and base64.c
 * include sodium.h, and only this unit an OpenSSL header. Key objects
 * live in guarded memory, are read-only after creation and may be shared by
 * threads; fa_crypto_init() (or sodium_init()) must run before any thread.
 */
#ifndef FA_PRIVACY_CRYPTO_H
#define FA_PRIVACY_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "core/digest.h"
#include "core/error.h"

#define FA_CRYPTO_BOX_PK_BYTES     32 /* X25519 public key */
#define FA_CRYPTO_BOX_SK_BYTES     32 /* X25519 secret scalar */
#define FA_CRYPTO_SEAL_OVERHEAD    48 /* sealed box bytes beyond the plaintext */
#define FA_CRYPTO_SIGN_PK_BYTES    32 /* Ed25519 public key */
#define FA_CRYPTO_SIGN_SEED_BYTES  32 /* Ed25519 secret seed */
#define FA_CRYPTO_SIGN_BYTES       64 /* Ed25519 signature */
#define FA_CRYPTO_STREAM_KEY_BYTES 32 /* ChaCha20 key */
#define FA_CRYPTO_STREAM_BLOCK     64 /* bytes per ChaCha20 block */
#define FA_CRYPTO_KEY_ID_CHARS     16 /* hex chars of a key id */

typedef struct fa_crypto_box_key fa_crypto_box_key;   /* X25519 pair, guarded */
typedef struct fa_crypto_sign_key fa_crypto_sign_key; /* Ed25519 pair, guarded */
typedef struct fa_crypto_prf_key fa_crypto_prf_key;   /* BLAKE2b key, guarded */
typedef struct fa_crypto_aead_key fa_crypto_aead_key; /* XChaCha20-Poly1305 key, guarded */

#define FA_CRYPTO_PRF_BYTES     32 /* output of fa_crypto_prf */
#define FA_CRYPTO_PRF_LABEL_MAX 64 /* bytes of a PRF purpose label */
#define FA_CRYPTO_KDF_CONTEXT   8  /* bytes of a key-derivation context */

/* Initialises libsodium (idempotent). FA_EINTERNAL when it cannot. */
int fa_crypto_init(fa_error *err) FA_MUST_CHECK;

/* ------------------------------------------------------------ primitives */

/* Fills buf with bytes from the operating system's CSPRNG. */
void fa_crypto_random(void *buf, size_t len);

/* Overwrites len bytes with zeros in a way the compiler keeps. NULL-safe. */
void fa_crypto_wipe(void *buf, size_t len);

/* Constant-time comparison of two buffers: 1 when equal, 0 otherwise. */
int fa_crypto_equal(const void *a, const void *b, size_t len);

/*
 * ChaCha20 keystream (64-bit nonce = 0, 64-bit block counter from 0, i.e.
 * crypto_stream_chacha20 of libsodium) under a 32-byte key; OpenSSL's
 * vectorised implementation produces it. The generator copies the key into
 * its own context (wiped when freed) and is used by one thread at a time.
 */
typedef struct fa_crypto_stream fa_crypto_stream;

/* A generator positioned at block 0. FA_ENOMEM. */
int fa_crypto_stream_new(fa_crypto_stream **out,
                         const unsigned char key[FA_CRYPTO_STREAM_KEY_BYTES],
                         fa_error *err) FA_MUST_CHECK;

/*
 * Writes the next len bytes of the keystream; len must be a multiple of
 * FA_CRYPTO_STREAM_BLOCK (FA_EINVAL). FA_EINTERNAL if the cipher fails.
 */
int fa_crypto_stream_read(fa_crypto_stream *st, unsigned char *out, size_t len,
                          fa_error *err) FA_MUST_CHECK;

/* Wipes and frees the generator. NULL-safe. */
void fa_crypto_stream_free(fa_crypto_stream *st);

/*
 * Guarded memory for secrets (guard pages, locked where the system allows).
 * fa_crypto_secure_alloc returns NULL when out of memory; fa_crypto_secure_free
 * wipes and releases it and accepts NULL.
 */
void *fa_crypto_secure_alloc(size_t len);
void fa_crypto_secure_free(void *p);

/* Key id of a box public key: the first 16 hex chars of its SHA-256. */
void fa_crypto_key_id(char out[FA_CRYPTO_KEY_ID_CHARS + 1],
                      const unsigned char box_pk[FA_CRYPTO_BOX_PK_BYTES]);

/* ------------------------------------------------------ X25519 sealed box */

/* Creates a fresh X25519 key pair. FA_ENOMEM when guarded memory is short. */
int fa_crypto_box_key_generate(fa_crypto_box_key **out, fa_error *err) FA_MUST_CHECK;

/* Rebuilds a pair from its secret scalar (public key derived). FA_ENOMEM. */
int fa_crypto_box_key_from_secret(fa_crypto_box_key **out,
                                  const unsigned char sk[FA_CRYPTO_BOX_SK_BYTES],
                                  fa_error *err) FA_MUST_CHECK;

/* Borrowed views of the pair; they live as long as key. */
const unsigned char *fa_crypto_box_key_public(const fa_crypto_box_key *key);
const unsigned char *fa_crypto_box_key_secret(const fa_crypto_box_key *key);

/* Wipes and frees the pair. NULL-safe. */
void fa_crypto_box_key_free(fa_crypto_box_key *key);

/*
 * Seals len bytes to pk (crypto_box_seal: ephemeral X25519 + XSalsa20-Poly1305).
 * out must hold len + FA_CRYPTO_SEAL_OVERHEAD bytes (else FA_EINVAL).
 */
int fa_crypto_box_seal(unsigned char *out, size_t out_cap,
                       const unsigned char pk[FA_CRYPTO_BOX_PK_BYTES], const void *msg, size_t len,
                       fa_error *err) FA_MUST_CHECK;

/*
 * Opens a sealed box with key into out, which must hold
 * box_len - FA_CRYPTO_SEAL_OVERHEAD bytes; *len_out receives that length.
 * FA_EINVAL "update did not decrypt" for any box that does not open.
 */
int fa_crypto_box_open(unsigned char *out, size_t out_cap, size_t *len_out,
                       const fa_crypto_box_key *key, const unsigned char *box, size_t box_len,
                       fa_error *err) FA_MUST_CHECK;

/* ------------------------------------------------------------- Ed25519 */

/* Creates a fresh Ed25519 pair. FA_ENOMEM when guarded memory is short. */
int fa_crypto_sign_key_generate(fa_crypto_sign_key **out, fa_error *err) FA_MUST_CHECK;

/* Rebuilds a pair from its 32-byte seed (RFC 8032 secret key). FA_ENOMEM. */
int fa_crypto_sign_key_from_seed(fa_crypto_sign_key **out,
                                 const unsigned char seed[FA_CRYPTO_SIGN_SEED_BYTES],
                                 fa_error *err) FA_MUST_CHECK;

/* Borrowed views of the pair; they live as long as key. */
const unsigned char *fa_crypto_sign_key_public(const fa_crypto_sign_key *key);
const unsigned char *fa_crypto_sign_key_seed(const fa_crypto_sign_key *key);

/* Wipes and frees the pair. NULL-safe. */
void fa_crypto_sign_key_free(fa_crypto_sign_key *key);

/* Detached Ed25519 signature of len bytes. */
void fa_crypto_sign(unsigned char sig[FA_CRYPTO_SIGN_BYTES], const fa_crypto_sign_key *key,
                    const void *msg, size_t len);

/* FA_OK when sig is a valid signature of msg under pk, FA_EINVAL otherwise. */
/*
 * ECDSA P-256 with SHA-256 (JOSE "ES256", RFC 7518 Sec. 3.4): sig is R || S
 * (32 bytes each, big-endian), pub the uncompressed point's x and y (32
 * bytes each). FA_OK when it verifies; FA_EINVAL otherwise (bad point,
 * bad signature).
 */
int fa_crypto_es256_verify(const unsigned char sig[64], const void *msg, size_t len,
                           const unsigned char pub_x[32], const unsigned char pub_y[32]);

int fa_crypto_sign_verify(const unsigned char sig[FA_CRYPTO_SIGN_BYTES], const void *msg,
                          size_t len,
                          const unsigned char pk[FA_CRYPTO_SIGN_PK_BYTES]) FA_MUST_CHECK;

/* ------------------------------------------------- keyed pseudorandom function */

/*
 * A PRF key derived from a signing key's seed for one purpose, so every
 * process holding the same key files derives the same key and nothing
 * else can: libsodium's crypto_kdf_derive_from_key (BLAKE2b-256 keyed with
 * the seed, salt = subkey_id as 8 little-endian bytes followed by 8 zero
 * bytes, personalisation = the 8-byte context followed by 8 zero bytes).
 * context is exactly FA_CRYPTO_KDF_CONTEXT bytes (no NUL needed). The key
 * lives in guarded memory, read-only. FA_ENOMEM.
 */
int fa_crypto_prf_key_derive(fa_crypto_prf_key **out, const fa_crypto_sign_key *root,
                             uint64_t subkey_id, const char context[FA_CRYPTO_KDF_CONTEXT],
                             fa_error *err) FA_MUST_CHECK;

/* Wipes and frees the key. NULL-safe. */
void fa_crypto_prf_key_free(fa_crypto_prf_key *key);

/*
 * out = BLAKE2b-256 keyed with key over
 *   len(label) (1 byte) || label || x (8 bytes little-endian) || data,
 * so distinct (label, x, data) never share an input: the label is length
 * prefixed, never truncated. label is 1..FA_CRYPTO_PRF_LABEL_MAX bytes
 * (FA_EINVAL otherwise; out is then zeros).
 */
int fa_crypto_prf(unsigned char out[FA_CRYPTO_PRF_BYTES], const fa_crypto_prf_key *key,
                  const char *label, uint64_t x, const void *data, size_t len,
                  fa_error *err) FA_MUST_CHECK;

/*
 * The identity of one sealed box: SHA-256 of its first 48 bytes, the
 * sender's ephemeral X25519 public key and the Poly1305 tag over the rest
 * (crypto_box_seal's layout). Two boxes that open and share it are the same
 * box to anyone but their sender (whose only gain is having its own retry
 * of a different box taken as identical: it is not folded again), so it
 * tells an identical retry from a reused token without hashing or keeping
 * the whole ciphertext. Shorter input is hashed whole.
 */
void fa_crypto_box_digest(unsigned char out[32], const unsigned char *box, size_t len);

/* ------------------------------------------------ authenticated encryption */

#define FA_CRYPTO_AEAD_OVERHEAD 40 /* sealed bytes beyond the message: 24 nonce + 16 tag */

/*
 * A key for sealing server state at rest, derived from a signing key's seed
 * for one purpose exactly as fa_crypto_prf_key_derive derives (libsodium's
 * crypto_kdf_derive_from_key), so every process holding the same key files
 * derives it and nothing else can. Guarded memory, read-only. FA_ENOMEM.
 */
int fa_crypto_aead_key_derive(fa_crypto_aead_key **out, const fa_crypto_sign_key *root,
                              uint64_t subkey_id, const char context[FA_CRYPTO_KDF_CONTEXT],
                              fa_error *err) FA_MUST_CHECK;

/* Wipes and frees the key. NULL-safe. */
void fa_crypto_aead_key_free(fa_crypto_aead_key *key);

/*
 * out (len + FA_CRYPTO_AEAD_OVERHEAD bytes) = a random 24-byte nonce ||
 * XChaCha20-Poly1305-IETF(key, nonce, ad, msg) (libsodium
 * crypto_aead_xchacha20poly1305_ietf_encrypt): the ciphertext is bound to
 * ad, which is authenticated but not stored. FA_EINVAL when out_cap is
 * too small.
 */
int fa_crypto_aead_seal(unsigned char *out, size_t out_cap, const fa_crypto_aead_key *key,
                        const void *ad, size_t ad_len, const void *msg, size_t len,
                        fa_error *err) FA_MUST_CHECK;

/*
 * Opens what fa_crypto_aead_seal wrote under the same key and ad into out
 * (sealed_len - FA_CRYPTO_AEAD_OVERHEAD bytes). FA_EINVAL when it was
 * changed, sealed under another key or bound to other ad, or out_cap is
 * too small; out is then zeroed.
 */
int fa_crypto_aead_open(unsigned char *out, size_t out_cap, const fa_crypto_aead_key *key,
                        const void *ad, size_t ad_len, const unsigned char *sealed,
                        size_t sealed_len, fa_error *err) FA_MUST_CHECK;

#endif
