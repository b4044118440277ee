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
typedef struct fa_crypto_aead_key fa_crypto_aead_key;

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

/*
 * Reads one secret key file (32 bytes as 64 hex digits) with the rules of
 * the key directory (mode 0600, guarded memory); sk should be guarded
 * memory too. FA_ENOTFOUND, FA_EINVAL.
 */
int fa_keys_read_secret(unsigned char sk[FA_KEYS_PK_BYTES], const char *path,
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

/*
 * The key that seals the server's state at rest (a round's partial sums in
 * the database), derived from the signing seed like the pseudonym key.
 */
const fa_crypto_aead_key *fa_keys_at_rest(const fa_keys *keys);

/* Key id: the first 16 hex chars of SHA-256 of the box public key. */
const char *fa_keys_key_id(const fa_keys *keys);

/*
 * Box key rotation. The current box pair is box.pk / box.sk (what
 * GET /api/federated/key announces); a rotation keeps the pair it replaces
 * as box.<id>.pk / box.<id>.sk, still loaded and accepted, until it is
 * retired. At most FA_KEYS_OLD_MAX replaced pairs.
 */
#define FA_KEYS_OLD_MAX 8

/* The box key (current or replaced) whose id is key_id; NULL when none. */
const fa_crypto_box_key *fa_keys_box_for(const fa_keys *keys, const char *key_id);

/* All box keys, the current one at index 0, then the replaced ones. */
int fa_keys_box_count(const fa_keys *keys);
const fa_crypto_box_key *fa_keys_box_at(const fa_keys *keys, int i);
const char *fa_keys_box_id_at(const fa_keys *keys, int i);

/*
 * Makes a fresh box pair the current one in dir and keeps the replaced
 * pair under its id; new_id gets the new key's id. dir must load. Takes
 * effect when the server next loads its keys. FA_ECONFLICT with
 * FA_KEYS_OLD_MAX replaced pairs (or a rotation's files left behind),
 * FA_EINVAL on I/O errors.
 */
int fa_keys_rotate(char new_id[17], const char *dir, fa_error *err) FA_MUST_CHECK;

/*
 * Destroys the replaced box pair key_id of dir: the secret file is
 * overwritten with zeros, flushed and removed, then the public one. Whatever
 * is still sealed to it can no longer be opened by anyone holding dir.
 * FA_ECONFLICT for the current key, FA_ENOTFOUND for an unknown one.
 */
int fa_keys_retire(const char *dir, const char *key_id, fa_error *err) FA_MUST_CHECK;

/* Wipes and frees both pairs. NULL-safe. */
void fa_keys_free(fa_keys *keys);

#endif
