/*
 * The server's key directory: an X25519 pair that devices seal updates to
 * and an Ed25519 pair that signs the ledger. Files hold 64 lower-case hex
 * digits and a newline; secret files are mode 0600 and are never replaced.
 * A loaded fa_keys is immutable and may be shared by threads; its secrets
 * live in guarded memory and are wiped when it is freed.
 */
#ifndef FA_PRIVACY_KEYS_H
#define FA_PRIVACY_KEYS_H

#include "core/error.h"

typedef struct fa_crypto_box_key fa_crypto_box_key;
typedef struct fa_crypto_sign_key fa_crypto_sign_key;
typedef struct fa_crypto_prf_key fa_crypto_prf_key;

#define FA_KEYS_BOX_PK   "box.pk"  /* X25519 public key */
#define FA_KEYS_BOX_SK   "box.sk"  /* X25519 secret scalar, 0600 */
#define FA_KEYS_SIGN_PK  "sign.pk" /* Ed25519 public key */
#define FA_KEYS_SIGN_SK  "sign.sk" /* Ed25519 seed (RFC 8032 secret key), 0600 */
#define FA_KEYS_PK_BYTES 32

typedef struct fa_keys fa_keys;

/* Fresh key pairs from the OS CSPRNG. FA_ENOMEM. */
int fa_keys_generate(fa_keys **out, fa_error *err) FA_MUST_CHECK;

/*
 * Writes the four files into dir, creating dir (mode 0700) when missing.
 * FA_ECONFLICT when any of the files already exists: nothing is written and
 * nothing replaced. FA_EINVAL on I/O errors (files written so far removed).
 */
int fa_keys_save(const fa_keys *keys, const char *dir, fa_error *err) FA_MUST_CHECK;

/*
 * Loads the four files of dir. FA_ENOTFOUND when one is missing; FA_EINVAL
 * when one is malformed, a public key does not match its secret, or a
 * secret file is readable by group or others.
 */
int fa_keys_load(fa_keys **out, const char *dir, fa_error *err) FA_MUST_CHECK;

/* Reads one public key file (e.g. DIR/sign.pk). FA_ENOTFOUND, FA_EINVAL. */
int fa_keys_read_public(unsigned char pk[FA_KEYS_PK_BYTES], const char *path,
                        fa_error *err) FA_MUST_CHECK;

/* Borrowed views; they live as long as keys. */
const fa_crypto_box_key *fa_keys_box(const fa_keys *keys);
const fa_crypto_sign_key *fa_keys_sign(const fa_keys *keys);
const unsigned char *fa_keys_box_public(const fa_keys *keys);  /* 32 bytes */
const unsigned char *fa_keys_sign_public(const fa_keys *keys); /* 32 bytes */

/*
 * The key of the device pseudonym hash and the sampling coin, derived from
 * the signing seed (fa_crypto_prf_key_derive, subkey 1, context
 * "fa-pseud"): every process of one deployment hashes pseudonyms and flips
 * coins alike, and nobody without sign.sk can. Guarded memory.
 */
const fa_crypto_prf_key *fa_keys_pseudonym(const fa_keys *keys);

/* Key id: the first 16 hex chars of SHA-256 of the box public key. */
const char *fa_keys_key_id(const fa_keys *keys);

/* Wipes and frees both pairs. NULL-safe. */
void fa_keys_free(fa_keys *keys);

#endif
