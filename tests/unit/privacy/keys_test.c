#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
