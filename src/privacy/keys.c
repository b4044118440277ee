#include "privacy/keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "privacy/crypto.h"

#define KEY_BYTES    32
#define HEX_CHARS    (2 * KEY_BYTES)
#define FILE_MAX     (HEX_CHARS + 2) /* hex, newline, and one byte to detect excess */
#define KEY_PATH_MAX 4096

#define PSEUDONYM_SUBKEY  1
#define PSEUDONYM_CONTEXT "fa-pseud" /* FA_CRYPTO_KDF_CONTEXT bytes */
#define AT_REST_SUBKEY    1
#define AT_REST_CONTEXT   "fa-state" /* FA_CRYPTO_KDF_CONTEXT bytes */

struct fa_keys {
    fa_crypto_box_key *box;
    fa_crypto_sign_key *sign;
    fa_crypto_prf_key *pseudonym; /* derived from sign (fa_keys_pseudonym) */
    fa_crypto_aead_key *at_rest;  /* derived from sign (fa_keys_at_rest) */
    char id[FA_CRYPTO_KEY_ID_CHARS + 1];
    /* Box keys replaced by a rotation, still accepted until retired. */
    fa_crypto_box_key *old[FA_KEYS_OLD_MAX];
    char old_id[FA_KEYS_OLD_MAX][FA_CRYPTO_KEY_ID_CHARS + 1];
    int n_old;
};

_Static_assert(KEY_BYTES == FA_KEYS_PK_BYTES && KEY_BYTES == FA_CRYPTO_BOX_SK_BYTES &&
                   KEY_BYTES == FA_CRYPTO_SIGN_SEED_BYTES && KEY_BYTES == FA_CRYPTO_BOX_PK_BYTES &&
                   KEY_BYTES == FA_CRYPTO_SIGN_PK_BYTES,
               "every key file holds 32 bytes");

static const char *const FILES[4] = {FA_KEYS_BOX_PK, FA_KEYS_BOX_SK, FA_KEYS_SIGN_PK,
                                     FA_KEYS_SIGN_SK};

static int join(char out[KEY_PATH_MAX], const char *dir, const char *name, fa_error *err)
{
    if (snprintf(out, KEY_PATH_MAX, "%s/%s", dir, name) >= KEY_PATH_MAX)
        return fa_fail(err, FA_EINVAL, "key path too long: %s/%s", dir, name);
    return FA_OK;
}

int fa_keys_generate(fa_keys **out, fa_error *err)
{
    fa_keys *k = NULL;
    int rc;

    *out = NULL;
    k = calloc(1, sizeof(*k));
    if (k == NULL)
        return fa_fail(err, FA_ENOMEM, "out of memory for keys");
    if ((rc = fa_crypto_box_key_generate(&k->box, err)) < 0 ||
        (rc = fa_crypto_sign_key_generate(&k->sign, err)) < 0 ||
        (rc = fa_crypto_prf_key_derive(&k->pseudonym, k->sign, PSEUDONYM_SUBKEY, PSEUDONYM_CONTEXT,
                                       err)) < 0 ||
        (rc = fa_crypto_aead_key_derive(&k->at_rest, k->sign, AT_REST_SUBKEY, AT_REST_CONTEXT,
                                        err)) < 0)
        goto cleanup;
    fa_crypto_key_id(k->id, fa_crypto_box_key_public(k->box));
    *out = k;
    k = NULL;
cleanup:
    fa_keys_free(k);
    return rc;
}

/* ---------------------------------------------------------------- saving */

static int write_key(const char *path, const unsigned char key[KEY_BYTES], unsigned mode,
                     fa_error *err)
{
    char *text = fa_crypto_secure_alloc(HEX_CHARS + 2);
    int rc;

    if (text == NULL)
        return fa_fail(err, FA_ENOMEM, "out of guarded memory writing %s", path);
    fa_hex_encode(text, key, KEY_BYTES);
    text[HEX_CHARS] = '\n';
    text[HEX_CHARS + 1] = '\0';
    rc = fa_file_write(path, text, HEX_CHARS + 1, mode, 1, err);
    fa_crypto_secure_free(text);
    return rc;
}

int fa_keys_save(const fa_keys *keys, const char *dir, fa_error *err)
{
    char paths[4][KEY_PATH_MAX];
    const unsigned char *data[4];
    const unsigned modes[4] = {0644, 0600, 0644, 0600};
    struct stat st;
    int written = 0;
    int rc = FA_OK;

    data[0] = fa_crypto_box_key_public(keys->box);
    data[1] = fa_crypto_box_key_secret(keys->box);
    data[2] = fa_crypto_sign_key_public(keys->sign);
    data[3] = fa_crypto_sign_key_seed(keys->sign);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return fa_fail(err, FA_EINVAL, "cannot create key directory %s: %s", dir, strerror(errno));
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fa_fail(err, FA_EINVAL, "%s is not a directory", dir);
    /* Refuse before writing anything: never leave half a key set, never replace one. */
    for (int i = 0; i < 4; i++) {
        if ((rc = join(paths[i], dir, FILES[i], err)) < 0)
            return rc;
        if (lstat(paths[i], &st) == 0)
            return fa_fail(err, FA_ECONFLICT, "%s already exists; refusing to replace keys",
                           paths[i]);
        if (errno != ENOENT)
            return fa_fail(err, FA_EINVAL, "cannot check %s: %s", paths[i], strerror(errno));
    }
    for (; written < 4; written++)
        if ((rc = write_key(paths[written], data[written], modes[written], err)) < 0)
            goto cleanup;
cleanup:
    /* A failure part way (disk full, a racing writer) removes what this call created. */
    if (rc < 0)
        for (int i = 0; i < written; i++)
            (void)unlink(paths[i]);
    return rc;
}

/* --------------------------------------------------------------- loading */

/*
 * Reads a key file into key (32 bytes). With secret set the file must not be
 * readable by group or others, and the text passes only through guarded memory.
 */
static int read_key(unsigned char key[KEY_BYTES], const char *path, int secret, fa_error *err)
{
    char *text = NULL;
    struct stat st;
    ssize_t got = 0;
    int fd = -1;
    int rc = FA_OK;

    text = fa_crypto_secure_alloc(FILE_MAX + 1);
    if (text == NULL)
        return fa_fail(err, FA_ENOMEM, "out of guarded memory reading %s", path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = fa_fail(err, errno == ENOENT ? FA_ENOTFOUND : FA_EINVAL, "cannot open %s: %s", path,
                     strerror(errno));
        goto cleanup;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = fa_fail(err, FA_EINVAL, "%s is not a regular file", path);
        goto cleanup;
    }
    if (secret && (st.st_mode & 077) != 0) {
        rc = fa_fail(err, FA_EINVAL, "%s is readable by others (mode %03o); chmod 600 it", path,
                     (unsigned)(st.st_mode & 0777));
        goto cleanup;
    }
    while (got < FILE_MAX) {
        const ssize_t n = read(fd, text + got, (size_t)(FILE_MAX - got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = fa_fail(err, FA_EINVAL, "cannot read %s: %s", path, strerror(errno));
            goto cleanup;
        }
        if (n == 0)
            break;
        got += n;
    }
    /* Exactly 64 hex digits, optionally followed by one newline. */
    if (got == HEX_CHARS + 1 && text[HEX_CHARS] == '\n')
        got = HEX_CHARS;
    text[got] = '\0';
    if (got != HEX_CHARS || fa_hex_decode(key, KEY_BYTES, text) < 0) {
        rc = fa_fail(err, FA_EINVAL, "%s does not hold a key (64 hex digits)", path);
        goto cleanup;
    }
cleanup:
    if (fd >= 0)
        (void)close(fd);
    fa_crypto_secure_free(text);
    return rc;
}

int fa_keys_read_public(unsigned char pk[FA_KEYS_PK_BYTES], const char *path, fa_error *err)
{
    return read_key(pk, path, 0, err);
}

int fa_keys_read_secret(unsigned char sk[FA_KEYS_PK_BYTES], const char *path, fa_error *err)
{
    return read_key(sk, path, 1, err);
}

/* Whether name is box.<16 lower-case hex>.sk; the id goes to id. */
static int old_secret_name(char id[FA_CRYPTO_KEY_ID_CHARS + 1], const char *name)
{
    const size_t n = strlen(name);

    if (n != strlen("box.") + FA_CRYPTO_KEY_ID_CHARS + strlen(".sk") ||
        strncmp(name, "box.", 4) != 0 || strcmp(name + n - 3, ".sk") != 0)
        return 0;
    for (size_t i = 0; i < FA_CRYPTO_KEY_ID_CHARS; i++) {
        const char c = name[4 + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
        id[i] = c;
    }
    id[FA_CRYPTO_KEY_ID_CHARS] = '\0';
    return 1;
}

/*
 * Loads every box.<id>.pk / box.<id>.sk pair of dir (keys a rotation
 * replaced): each pair must match and carry its own id. secret is guarded
 * scratch memory of KEY_BYTES.
 */
static int load_old(fa_keys *k, const char *dir, unsigned char *secret, fa_error *err)
{
    DIR *d = opendir(dir);
    const struct dirent *e;
    char path[KEY_PATH_MAX], name[64], id[FA_CRYPTO_KEY_ID_CHARS + 1],
        got[FA_CRYPTO_KEY_ID_CHARS + 1];
    unsigned char pk[KEY_BYTES];
    int rc = FA_OK;

    if (d == NULL)
        return fa_fail(err, FA_EINVAL, "cannot list key directory %s: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        fa_crypto_box_key *box = NULL;
        if (!old_secret_name(id, e->d_name))
            continue;
        if (k->n_old == FA_KEYS_OLD_MAX) {
            rc = fa_fail(err, FA_EINVAL,
                         "%s holds more than %d replaced box keys; retire some "
                         "(fedagg keygen --retire)",
                         dir, FA_KEYS_OLD_MAX);
            break;
        }
        (void)snprintf(name, sizeof(name), "box.%s.pk", id);
        if ((rc = join(path, dir, e->d_name, err)) < 0 ||
            (rc = read_key(secret, path, 1, err)) < 0 || (rc = join(path, dir, name, err)) < 0 ||
            (rc = read_key(pk, path, 0, err)) < 0 ||
            (rc = fa_crypto_box_key_from_secret(&box, secret, err)) < 0)
            break;
        fa_crypto_key_id(got, fa_crypto_box_key_public(box));
        if (memcmp(pk, fa_crypto_box_key_public(box), KEY_BYTES) != 0 || strcmp(got, id) != 0) {
            fa_crypto_box_key_free(box);
            rc = fa_fail(err, FA_EINVAL, "%s/%s does not hold the box key %s", dir, e->d_name, id);
            break;
        }
        if (strcmp(id, k->id) == 0) { /* the current pair under its id: a rotation stopped */
            fa_crypto_box_key_free(box);
            continue;
        }
        k->old[k->n_old] = box;
        memcpy(k->old_id[k->n_old], id, sizeof(id));
        k->n_old++;
    }
    (void)closedir(d);
    return rc;
}

int fa_keys_load(fa_keys **out, const char *dir, fa_error *err)
{
    char path[KEY_PATH_MAX];
    unsigned char box_pk[KEY_BYTES], sign_pk[KEY_BYTES];
    unsigned char *secret = NULL;
    fa_keys *k = NULL;
    int rc;

    *out = NULL;
    secret = fa_crypto_secure_alloc(KEY_BYTES);
    k = calloc(1, sizeof(*k));
    if (secret == NULL || k == NULL) {
        rc = fa_fail(err, FA_ENOMEM, "out of memory loading keys");
        goto cleanup;
    }
    if ((rc = join(path, dir, FA_KEYS_BOX_PK, err)) < 0 ||
        (rc = read_key(box_pk, path, 0, err)) < 0 ||
        (rc = join(path, dir, FA_KEYS_BOX_SK, err)) < 0 ||
        (rc = read_key(secret, path, 1, err)) < 0 ||
        (rc = fa_crypto_box_key_from_secret(&k->box, secret, err)) < 0)
        goto cleanup;
    if (memcmp(box_pk, fa_crypto_box_key_public(k->box), KEY_BYTES) != 0) {
        rc = fa_fail(err, FA_EINVAL, "%s/%s does not match %s/%s", dir, FA_KEYS_BOX_PK, dir,
                     FA_KEYS_BOX_SK);
        goto cleanup;
    }
    if ((rc = join(path, dir, FA_KEYS_SIGN_PK, err)) < 0 ||
        (rc = read_key(sign_pk, path, 0, err)) < 0 ||
        (rc = join(path, dir, FA_KEYS_SIGN_SK, err)) < 0 ||
        (rc = read_key(secret, path, 1, err)) < 0 ||
        (rc = fa_crypto_sign_key_from_seed(&k->sign, secret, err)) < 0)
        goto cleanup;
    if (memcmp(sign_pk, fa_crypto_sign_key_public(k->sign), KEY_BYTES) != 0) {
        rc = fa_fail(err, FA_EINVAL, "%s/%s does not match %s/%s", dir, FA_KEYS_SIGN_PK, dir,
                     FA_KEYS_SIGN_SK);
        goto cleanup;
    }
    if ((rc = fa_crypto_prf_key_derive(&k->pseudonym, k->sign, PSEUDONYM_SUBKEY, PSEUDONYM_CONTEXT,
                                       err)) < 0 ||
        (rc = fa_crypto_aead_key_derive(&k->at_rest, k->sign, AT_REST_SUBKEY, AT_REST_CONTEXT,
                                        err)) < 0)
        goto cleanup;
    fa_crypto_key_id(k->id, box_pk);
    if ((rc = load_old(k, dir, secret, err)) < 0)
        goto cleanup;
    *out = k;
    k = NULL;
cleanup:
    fa_crypto_secure_free(secret);
    fa_keys_free(k);
    return rc;
}

const fa_crypto_box_key *fa_keys_box(const fa_keys *keys)
{
    return keys->box;
}

const fa_crypto_sign_key *fa_keys_sign(const fa_keys *keys)
{
    return keys->sign;
}

const unsigned char *fa_keys_box_public(const fa_keys *keys)
{
    return fa_crypto_box_key_public(keys->box);
}

const unsigned char *fa_keys_sign_public(const fa_keys *keys)
{
    return fa_crypto_sign_key_public(keys->sign);
}

const fa_crypto_prf_key *fa_keys_pseudonym(const fa_keys *keys)
{
    return keys->pseudonym;
}

const fa_crypto_aead_key *fa_keys_at_rest(const fa_keys *keys)
{
    return keys->at_rest;
}

const char *fa_keys_key_id(const fa_keys *keys)
{
    return keys->id;
}

const fa_crypto_box_key *fa_keys_box_for(const fa_keys *keys, const char *key_id)
{
    if (strcmp(key_id, keys->id) == 0)
        return keys->box;
    for (int i = 0; i < keys->n_old; i++)
        if (strcmp(key_id, keys->old_id[i]) == 0)
            return keys->old[i];
    return NULL;
}

int fa_keys_box_count(const fa_keys *keys)
{
    return 1 + keys->n_old;
}

const fa_crypto_box_key *fa_keys_box_at(const fa_keys *keys, int i)
{
    return i == 0 ? keys->box : keys->old[i - 1];
}

const char *fa_keys_box_id_at(const fa_keys *keys, int i)
{
    return i == 0 ? keys->id : keys->old_id[i - 1];
}

/* ------------------------------------------------------ rotation, retiring */

int fa_keys_rotate(char new_id[FA_CRYPTO_KEY_ID_CHARS + 1], const char *dir, fa_error *err)
{
    fa_keys *cur = NULL;
    fa_crypto_box_key *fresh = NULL;
    char from[KEY_PATH_MAX], to[KEY_PATH_MAX], tmp_pk[KEY_PATH_MAX], tmp_sk[KEY_PATH_MAX], name[64];
    int rc;

    /* The whole directory must load: rotate only what the server would serve. */
    if ((rc = fa_keys_load(&cur, dir, err)) < 0)
        return rc;
    if (cur->n_old == FA_KEYS_OLD_MAX) {
        rc = fa_fail(err, FA_ECONFLICT, "%s already holds %d replaced box keys; retire one first",
                     dir, FA_KEYS_OLD_MAX);
        goto cleanup;
    }
    if ((rc = fa_crypto_box_key_generate(&fresh, err)) < 0 ||
        (rc = join(tmp_pk, dir, FA_KEYS_BOX_PK ".new", err)) < 0 ||
        (rc = join(tmp_sk, dir, FA_KEYS_BOX_SK ".new", err)) < 0)
        goto cleanup;
    /* 1. The new pair under temporary names (exclusive: a rotation already
     *    under way, or one that crashed, is not overwritten). */
    if ((rc = write_key(tmp_pk, fa_crypto_box_key_public(fresh), 0644, err)) < 0)
        goto cleanup;
    if ((rc = write_key(tmp_sk, fa_crypto_box_key_secret(fresh), 0600, err)) < 0) {
        (void)unlink(tmp_pk);
        goto cleanup;
    }
    /* 2. The current pair also under its id (hard links: it stays where it is). */
    for (int i = 0; i < 2; i++) {
        (void)snprintf(name, sizeof(name), "box.%s.%s", cur->id, i == 0 ? "sk" : "pk");
        if ((rc = join(from, dir, i == 0 ? FA_KEYS_BOX_SK : FA_KEYS_BOX_PK, err)) < 0 ||
            (rc = join(to, dir, name, err)) < 0)
            goto undo;
        if (link(from, to) != 0 && errno != EEXIST) { /* EEXIST: a stopped rotation's link */
            rc = fa_fail(err, FA_EINVAL, "cannot link %s to %s: %s", from, to, strerror(errno));
            goto undo;
        }
    }
    /* 3. The new pair takes the current names (secret first: a crash between
     *    the two renames leaves a pair that does not match, which load
     *    reports, never a server that seals to a key it cannot open). */
    if ((rc = join(to, dir, FA_KEYS_BOX_SK, err)) < 0 || rename(tmp_sk, to) != 0 ||
        (rc = join(to, dir, FA_KEYS_BOX_PK, err)) < 0 || rename(tmp_pk, to) != 0) {
        rc = fa_fail(err, FA_EINVAL, "cannot install the new box key in %s: %s", dir,
                     strerror(errno));
        goto cleanup;
    }
    fa_crypto_key_id(new_id, fa_crypto_box_key_public(fresh));
    goto cleanup;
undo:
    (void)unlink(tmp_pk);
    (void)unlink(tmp_sk);
    for (int i = 0; i < 2; i++) {
        (void)snprintf(name, sizeof(name), "box.%s.%s", cur->id, i == 0 ? "sk" : "pk");
        if (join(to, dir, name, err) == FA_OK)
            (void)unlink(to);
    }
cleanup:
    fa_crypto_box_key_free(fresh);
    fa_keys_free(cur);
    return rc;
}

/* Overwrites the file with zeros, flushes it to disk, then removes it. */
static int shred(const char *path, fa_error *err)
{
    unsigned char zero[FILE_MAX] = {0};
    int fd = open(path, O_WRONLY | O_CLOEXEC);

    if (fd < 0)
        return fa_fail(err, errno == ENOENT ? FA_ENOTFOUND : FA_EINVAL, "cannot open %s: %s", path,
                       strerror(errno));
    if (write(fd, zero, sizeof(zero)) != (ssize_t)sizeof(zero) || fsync(fd) != 0) {
        int e = errno;
        (void)close(fd);
        return fa_fail(err, FA_EINVAL, "cannot overwrite %s: %s", path, strerror(e));
    }
    (void)close(fd);
    if (unlink(path) != 0)
        return fa_fail(err, FA_EINVAL, "cannot remove %s: %s", path, strerror(errno));
    return FA_OK;
}

int fa_keys_retire(const char *dir, const char *key_id, fa_error *err)
{
    fa_keys *cur = NULL;
    char path[KEY_PATH_MAX], name[64];
    int rc;

    if ((rc = fa_keys_load(&cur, dir, err)) < 0)
        return rc;
    if (strcmp(key_id, cur->id) == 0) {
        rc =
            fa_fail(err, FA_ECONFLICT,
                    "key %s is the current box key: rotate first (fedagg keygen --rotate)", key_id);
    } else if (fa_keys_box_for(cur, key_id) == NULL) {
        rc = fa_fail(err, FA_ENOTFOUND, "%s holds no replaced box key %s", dir, key_id);
    } else {
        (void)snprintf(name, sizeof(name), "box.%s.sk", key_id);
        if ((rc = join(path, dir, name, err)) == FA_OK && (rc = shred(path, err)) == FA_OK) {
            (void)snprintf(name, sizeof(name), "box.%s.pk", key_id);
            if ((rc = join(path, dir, name, err)) == FA_OK && unlink(path) != 0)
                rc = fa_fail(err, FA_EINVAL, "cannot remove %s: %s", path, strerror(errno));
        }
    }
    fa_keys_free(cur);
    return rc;
}

void fa_keys_free(fa_keys *keys)
{
    if (keys == NULL)
        return;
    fa_crypto_box_key_free(keys->box);
    for (int i = 0; i < keys->n_old; i++)
        fa_crypto_box_key_free(keys->old[i]);
    fa_crypto_sign_key_free(keys->sign);
    fa_crypto_prf_key_free(keys->pseudonym);
    fa_crypto_aead_key_free(keys->at_rest);
    free(keys);
}
