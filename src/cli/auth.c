/*
 * fedagg auth: a test identity provider for device tokens (auth = jwt), so
 * a deployment can be tried, and tests and simulations can run, before the
 * app's real provider is wired in. `keygen` makes an Ed25519 issuer key and
 * the JWKS the server reads; `token` mints one device token with it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/internal.h"
#include "core/base64.h"
#include "core/digest.h"
#include "core/util.h"
#include "device/client.h"
#include "privacy/crypto.h"
#include "privacy/keys.h"

#define ISSUER_SK   "issuer.sk"
#define ISSUER_JWKS "jwks.json"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fedagg auth keygen --out DIR\n"
            "       fedagg auth token --key FILE --issuer ISS --subject SUB\n"
            "                         [--audience AUD] [--ttl SECONDS]\n"
            "\n"
            "A test identity provider for auth = jwt (docs/api.md, \"Device tokens\").\n"
            "  keygen  writes DIR/%s (an Ed25519 seed, 64 hex digits, mode 0600) and\n"
            "          DIR/%s (its public key as a JWKS, for auth_jwks_file); the key id\n"
            "          (kid) is the first 16 hex digits of SHA-256 of the public key\n"
            "  token   prints one EdDSA-signed device token for SUB (audience default\n"
            "          fedagg, lifetime default 3600 s), signed with FILE (an issuer.sk)\n",
            ISSUER_SK, ISSUER_JWKS);
}

/* The kid of an issuer key: the first 16 hex digits of SHA-256 of its public key. */
static void kid_of(char kid[17], const fa_crypto_sign_key *k)
{
    unsigned char d[32];

    fa_sha256(d, fa_crypto_sign_key_public(k), 32);
    fa_hex_encode(kid, d, 8);
}

/* Loads an issuer.sk (secret file rules as the server's keys: 0600, 64 hex). */
int fa_cmd_auth_load_issuer(fa_crypto_sign_key **out, char kid[17], const char *path, fa_error *err)
{
    unsigned char *seed = fa_crypto_secure_alloc(32);
    int rc;

    *out = NULL;
    if (seed == NULL)
        return fa_fail(err, FA_ENOMEM, "out of guarded memory");
    if ((rc = fa_keys_read_secret(seed, path, err)) == FA_OK &&
        (rc = fa_crypto_sign_key_from_seed(out, seed, err)) == FA_OK)
        kid_of(kid, *out);
    fa_crypto_secure_free(seed);
    return rc;
}

static int keygen(const char *dir)
{
    fa_crypto_sign_key *k = NULL;
    fa_error err = FA_ERROR_INIT;
    char path[4096], hex[66], x[64], kid[17], jwks[512];
    int rc = 1;

    if (fa_crypto_sign_key_generate(&k, &err) < 0)
        goto fail;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        (void)fa_fail(&err, FA_EINVAL, "cannot create %s: %s", dir, strerror(errno));
        goto fail;
    }
    fa_hex_encode(hex, fa_crypto_sign_key_seed(k), 32);
    hex[64] = '\n';
    hex[65] = '\0';
    (void)snprintf(path, sizeof(path), "%s/%s", dir, ISSUER_SK);
    if (fa_file_write(path, hex, 65, 0600, 1, &err) < 0)
        goto fail;
    fa_crypto_wipe(hex, sizeof(hex));
    kid_of(kid, k);
    fa_base64url_encode(x, sizeof(x), fa_crypto_sign_key_public(k), 32);
    int n = snprintf(jwks, sizeof(jwks),
                     "{\"keys\": [{\"kty\": \"OKP\", \"crv\": \"Ed25519\", \"x\": \"%s\", "
                     "\"kid\": \"%s\", \"alg\": \"EdDSA\", \"use\": \"sig\"}]}\n",
                     x, kid);
    (void)snprintf(path, sizeof(path), "%s/%s", dir, ISSUER_JWKS);
    if (fa_file_write(path, jwks, (size_t)n, 0644, 1, &err) < 0)
        goto fail;
    printf("wrote %s/{%s,%s}; kid %s\n", dir, ISSUER_SK, ISSUER_JWKS, kid);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "fedagg auth: %s\n", err.msg);
done:
    fa_crypto_wipe(hex, sizeof(hex));
    fa_crypto_sign_key_free(k);
    return rc;
}

static int token(const char *key, const char *iss, const char *aud, const char *sub, int64_t ttl)
{
    fa_crypto_sign_key *k = NULL;
    fa_error err = FA_ERROR_INIT;
    char kid[17], *tok = NULL;
    int rc = 1;

    if (fa_cmd_auth_load_issuer(&k, kid, key, &err) == FA_OK &&
        fa_device_mint_token(&tok, k, kid, iss, aud, sub, (int64_t)time(NULL) + ttl, &err) ==
            FA_OK) {
        printf("%s\n", tok);
        rc = 0;
    } else {
        fprintf(stderr, "fedagg auth: %s\n", err.msg);
    }
    free(tok);
    fa_crypto_sign_key_free(k);
    return rc;
}

int fa_cmd_auth(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"out", required_argument, NULL, 'o'},     {"key", required_argument, NULL, 'k'},
        {"issuer", required_argument, NULL, 'i'},  {"audience", required_argument, NULL, 'a'},
        {"subject", required_argument, NULL, 's'}, {"ttl", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *out = NULL, *key = NULL, *iss = NULL, *aud = "fedagg", *sub = NULL;
    int64_t ttl = 3600;
    fa_error err = FA_ERROR_INIT;
    int c;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    optind = 2;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", OPTS, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'i':
            iss = optarg;
            break;
        case 'a':
            aud = optarg;
            break;
        case 's':
            sub = optarg;
            break;
        case 't':
            if (fa_parse_i64(&ttl, optarg) < 0 || ttl < 1 || ttl > 31536000)
                return fa_cli__usage_error("auth", "--ttl must be 1..31536000 seconds, got '%s'",
                                           optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            return fa_cli__bad_option("auth", c, argv);
        }
    }
    if (optind != argc)
        return fa_cli__usage_error("auth", "unexpected argument '%s'", argv[optind]);
    if (fa_crypto_init(&err) < 0) {
        fprintf(stderr, "fedagg auth: %s\n", err.msg);
        return 1;
    }
    if (strcmp(argv[1], "keygen") == 0) {
        if (out == NULL || key != NULL || iss != NULL || sub != NULL)
            return fa_cli__usage_error("auth", "keygen takes --out DIR only");
        return keygen(out);
    }
    if (strcmp(argv[1], "token") == 0) {
        if (key == NULL || iss == NULL || sub == NULL || out != NULL)
            return fa_cli__usage_error("auth",
                                       "token needs --key FILE, --issuer ISS and --subject SUB");
        return token(key, iss, aud, sub, ttl);
    }
    return fa_cli__usage_error("auth", "unknown subcommand '%s' (keygen or token)", argv[1]);
}
