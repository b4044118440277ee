#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "privacy/crypto.h"
#include "privacy/keys.h"

static char dir[64];

static void make_dir(void)
{
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
    (void)snprintf(dir, sizeof(dir), "%s", "/tmp/fa-keys-test-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    static const char *const NAMES[] = {FA_KEYS_BOX_PK, FA_KEYS_BOX_SK, FA_KEYS_SIGN_PK,
                                        FA_KEYS_SIGN_SK, "extra.pk"};
    char path[128];

    for (size_t i = 0; i < sizeof(NAMES) / sizeof(NAMES[0]); i++) {
        (void)snprintf(path, sizeof(path), "%s/sub/%s", dir, NAMES[i]);
        (void)unlink(path);
        (void)snprintf(path, sizeof(path), "%s/%s", dir, NAMES[i]);
        (void)unlink(path);
    }
    (void)snprintf(path, sizeof(path), "%s/sub", dir);
    (void)rmdir(path);
    (void)rmdir(dir);
}

TestSuite(keys, .init = make_dir, .fini = remove_dir);

static mode_t mode_of(const char *name)
{
    char path[128];
    struct stat st;

    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return st.st_mode & 0777;
}

static void write_file(const char *name, const char *text, mode_t mode)
{
    char path[128];
    FILE *f;

    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(chmod(path, mode), 0);
}

Test(keys, saved_keys_load_back_with_safe_modes)
{
    fa_keys *k = NULL, *back = NULL;
    fa_error err = FA_ERROR_INIT;
    char sub[96];

    (void)snprintf(sub, sizeof(sub), "%s/sub", dir);
    cr_assert_eq(fa_keys_generate(&k, &err), FA_OK);
    cr_assert_eq(strlen(fa_keys_key_id(k)), 16);
    cr_assert_eq(fa_keys_save(k, sub, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_keys_load(&back, sub, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(memcmp(fa_keys_box_public(k), fa_keys_box_public(back), 32), 0);
    cr_assert_eq(memcmp(fa_keys_sign_public(k), fa_keys_sign_public(back), 32), 0);
    cr_assert_str_eq(fa_keys_key_id(k), fa_keys_key_id(back));
    cr_assert_eq(mode_of("sub/" FA_KEYS_BOX_SK), 0600);
    cr_assert_eq(mode_of("sub/" FA_KEYS_SIGN_SK), 0600);
    cr_assert_eq(mode_of("sub/" FA_KEYS_BOX_PK), 0644);
    cr_assert_eq(mode_of("sub"), 0700);
    fa_keys_free(k);
    fa_keys_free(back);
    fa_keys_free(NULL);
}

Test(keys, existing_keys_are_never_replaced)
{
    fa_keys *k = NULL, *k2 = NULL, *back = NULL;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_keys_generate(&k, &err), FA_OK);
    cr_assert_eq(fa_keys_generate(&k2, &err), FA_OK);
    cr_assert_eq(fa_keys_save(k, dir, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_keys_save(k2, dir, &err), FA_ECONFLICT);
    cr_assert(strstr(err.msg, "already exists") != NULL, "%s", err.msg);
    cr_assert_eq(fa_keys_load(&back, dir, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(memcmp(fa_keys_box_public(k), fa_keys_box_public(back), 32), 0);
    fa_keys_free(back);
    /* One stray file is enough to refuse, and nothing else is written. */
    remove_dir();
    cr_assert_eq(mkdir(dir, 0700), 0);
    write_file(FA_KEYS_SIGN_SK, "x\n", 0600);
    cr_assert_eq(fa_keys_save(k2, dir, &err), FA_ECONFLICT);
    {
        char path[128];
        (void)snprintf(path, sizeof(path), "%s/%s", dir, FA_KEYS_BOX_PK);
        cr_assert_eq(access(path, F_OK), -1, "%s was written", path);
    }
    fa_keys_free(k);
    fa_keys_free(k2);
}

Test(keys, loading_checks_files_modes_and_pairs)
{
    fa_keys *k = NULL, *other = NULL, *back = NULL;
    fa_error err = FA_ERROR_INIT;
    char path[128], hex[80];
    unsigned char pk[32];

    cr_assert_eq(fa_keys_load(&back, dir, &err), FA_ENOTFOUND);
    cr_assert_eq(fa_keys_generate(&k, &err), FA_OK);
    cr_assert_eq(fa_keys_generate(&other, &err), FA_OK);
    cr_assert_eq(fa_keys_save(k, dir, &err), FA_OK);

    /* A secret readable by others is refused. */
    (void)snprintf(path, sizeof(path), "%s/%s", dir, FA_KEYS_BOX_SK);
    cr_assert_eq(chmod(path, 0644), 0);
    cr_assert_eq(fa_keys_load(&back, dir, &err), FA_EINVAL);
    cr_assert(strstr(err.msg, "readable by others") != NULL, "%s", err.msg);
    cr_assert_eq(chmod(path, 0600), 0);

    /* A public key that is not the secret's. */
    for (int i = 0; i < 32; i++)
        (void)snprintf(hex + 2 * i, 3, "%02x", fa_keys_sign_public(other)[i]);
    hex[64] = '\n';
    hex[65] = '\0';
    (void)snprintf(path, sizeof(path), "%s/%s", dir, FA_KEYS_SIGN_PK);
    cr_assert_eq(unlink(path), 0);
    write_file(FA_KEYS_SIGN_PK, hex, 0644);
    cr_assert_eq(fa_keys_load(&back, dir, &err), FA_EINVAL);
    cr_assert(strstr(err.msg, "does not match") != NULL, "%s", err.msg);

    /* Public key files read alone; malformed ones are refused. */
    cr_assert_eq(fa_keys_read_public(pk, path, &err), FA_OK);
    cr_assert_eq(memcmp(pk, fa_keys_sign_public(other), 32), 0);
    write_file("extra.pk", "abc\n", 0644);
    (void)snprintf(path, sizeof(path), "%s/extra.pk", dir);
    cr_assert_eq(fa_keys_read_public(pk, path, &err), FA_EINVAL);
    hex[64] = 'a';
    write_file("extra.pk", hex, 0644);
    cr_assert_eq(fa_keys_read_public(pk, path, &err), FA_EINVAL);
    hex[64] = '\0';
    write_file("extra.pk", hex, 0644);
    cr_assert_eq(fa_keys_read_public(pk, path, &err), FA_OK);
    fa_keys_free(k);
    fa_keys_free(other);
}

/* Removes every file of dir (rotation leaves files remove_dir does not know). */
static void empty_dir(void)
{
    char cmd[160];
    (void)snprintf(cmd, sizeof(cmd), "rm -f %s/box.*", dir);
    cr_assert_eq(system(cmd), 0);
}

/* Seals 5 bytes to pk and opens them with key; 1 when they come back. */
static int opens(const unsigned char pk[32], const fa_crypto_box_key *key)
{
    unsigned char box[5 + FA_CRYPTO_SEAL_OVERHEAD], out[5 + FA_CRYPTO_SEAL_OVERHEAD];
    size_t len = 0;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_crypto_box_seal(box, sizeof(box), pk, "hello", 5, &err), FA_OK);
    return key != NULL &&
           fa_crypto_box_open(out, sizeof(out), &len, key, box, sizeof(box), &err) == FA_OK &&
           len == 5 && memcmp(out, "hello", 5) == 0;
}

Test(keys, rotation_keeps_the_replaced_box_key_until_it_is_retired)
{
    fa_keys *k = NULL, *back = NULL;
    fa_error err = FA_ERROR_INIT;
    char old_id[17], new_id[17], name[64];
    unsigned char old_pk[32];

    cr_assert_eq(fa_keys_generate(&k, &err), FA_OK);
    cr_assert_eq(fa_keys_save(k, dir, &err), FA_OK, "%s", err.msg);
    memcpy(old_pk, fa_keys_box_public(k), 32);
    (void)snprintf(old_id, sizeof(old_id), "%s", fa_keys_key_id(k));
    fa_keys_free(k);

    cr_assert_eq(fa_keys_rotate(new_id, dir, &err), FA_OK, "%s", err.msg);
    cr_assert_str_neq(new_id, old_id);
    cr_assert_eq(fa_keys_load(&back, dir, &err), FA_OK, "%s", err.msg);
    cr_assert_str_eq(fa_keys_key_id(back), new_id, "the new key is the one announced");
    cr_assert_eq(fa_keys_box_count(back), 2);
    cr_assert_str_eq(fa_keys_box_id_at(back, 1), old_id);
    cr_assert(opens(old_pk, fa_keys_box_for(back, old_id)), "an update sealed before still opens");
    cr_assert(opens(fa_keys_box_public(back), fa_keys_box_for(back, new_id)));
    cr_assert(!opens(old_pk, fa_keys_box_for(back, new_id)), "keys are not interchangeable");
    cr_assert_null(fa_keys_box_for(back, "0000000000000000"));
    (void)snprintf(name, sizeof(name), "box.%s.sk", old_id);
    cr_assert_eq(mode_of(name), 0600);
    fa_keys_free(back);

    /* Retiring: never the current key, never an unknown one. */
    cr_assert_eq(fa_keys_retire(dir, new_id, &err), FA_ECONFLICT);
    cr_assert_eq(fa_keys_retire(dir, "0123456789abcdef", &err), FA_ENOTFOUND);
    cr_assert_eq(fa_keys_retire(dir, old_id, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_keys_load(&back, dir, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_keys_box_count(back), 1);
    cr_assert_null(fa_keys_box_for(back, old_id), "a retired key is gone");
    {
        char path[128];
        (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
        cr_assert_eq(access(path, F_OK), -1, "%s is still there", path);
    }
    fa_keys_free(back);
    empty_dir();
}

Test(keys, a_stopped_rotation_still_loads_and_a_forged_old_pair_does_not)
{
    fa_keys *k = NULL, *k2 = NULL, *back = NULL;
    fa_error err = FA_ERROR_INIT;
    char from[128], to[128], hex[80];

    cr_assert_eq(fa_keys_generate(&k, &err), FA_OK);
    cr_assert_eq(fa_keys_save(k, dir, &err), FA_OK, "%s", err.msg);
    /* Stopped after step 2: the current pair is also linked under its id. */
    (void)snprintf(from, sizeof(from), "%s/box.sk", dir);
    (void)snprintf(to, sizeof(to), "%s/box.%s.sk", dir, fa_keys_key_id(k));
    cr_assert_eq(link(from, to), 0);
    (void)snprintf(from, sizeof(from), "%s/box.pk", dir);
    (void)snprintf(to, sizeof(to), "%s/box.%s.pk", dir, fa_keys_key_id(k));
    cr_assert_eq(link(from, to), 0);
    cr_assert_eq(fa_keys_load(&back, dir, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_keys_box_count(back), 1);
    fa_keys_free(back);
    /* ... and a rotation then completes. */
    char id[17];
    cr_assert_eq(fa_keys_rotate(id, dir, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_keys_load(&back, dir, &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_keys_box_count(back), 2);
    fa_keys_free(back);

    /* A replaced pair whose name is not its key's id is refused. */
    cr_assert_eq(fa_keys_generate(&k2, &err), FA_OK);
    fa_hex_encode(hex, fa_keys_box_public(k2), 32);
    hex[64] = '\n';
    hex[65] = '\0';
    write_file("box.00000000000000ff.pk", hex, 0644);
    fa_hex_encode(hex, fa_crypto_box_key_secret(fa_keys_box(k2)), 32);
    hex[64] = '\n';
    hex[65] = '\0';
    write_file("box.00000000000000ff.sk", hex, 0600);
    cr_assert_eq(fa_keys_load(&back, dir, &err), FA_EINVAL);
    cr_assert(strstr(err.msg, "does not hold the box key") != NULL, "%s", err.msg);
    fa_keys_free(k);
    fa_keys_free(k2);
    empty_dir();
}
