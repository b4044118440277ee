/*
 * fedagg keygen: the server's box and signing keys, their rotation and the
 * retirement of a replaced box key. Exit status: 0 success, 1 failure,
 * 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aggregator/audit.h"
#include "cli/cli.h"
#include "cli/internal.h"
#include "core/config.h"
#include "core/util.h"
#include "privacy/accountant.h"
#include "privacy/crypto.h"
#include "privacy/keys.h"
#include "privacy/ledger.h"
#include "privacy/rdp.h"
#include "store/store.h"

/* ================================================================= keygen */

static void keygen_usage(FILE *f)
{
    fprintf(f,
            "usage: fedagg keygen --out DIR\n"
            "       fedagg keygen --rotate --out DIR\n"
            "       fedagg keygen --retire KEYID --out DIR [--config FILE] [--database-url URL]\n"
            "  creates DIR (mode 0700) if needed and writes the server keys, each as 64 hex\n"
            "  digits and a newline:\n"
            "    %-8s X25519 public key that devices seal updates to\n"
            "    %-8s X25519 secret key (mode 0600)\n"
            "    %-8s Ed25519 public key that verifies the ledger\n"
            "    %-8s Ed25519 secret seed (mode 0600)\n"
            "  existing key files are never replaced. The key id is the first 16 hex\n"
            "  digits of SHA-256 of the box public key.\n"
            "  --rotate        makes a fresh box key the one devices seal to and keeps the\n"
            "                  replaced one as box.<id>.pk/.sk, still accepted; restart the\n"
            "                  servers to load it\n"
            "  --retire KEYID  destroys the replaced box key KEYID (overwritten, flushed,\n"
            "                  removed) once no stored update is still sealed to it (the\n"
            "                  database is --database-url, else DATABASE_URL, else the\n"
            "                  config file); restart the servers afterwards\n",
            FA_KEYS_BOX_PK, FA_KEYS_BOX_SK, FA_KEYS_SIGN_PK, FA_KEYS_SIGN_SK);
}

/* Retires key_id of dir after checking that the database holds nothing sealed to it. */
static int keygen_retire(const char *dir, const char *key_id, const char *config_path,
                         const char *url)
{
    fa_config cfg;
    fa_store *st = NULL;
    fa_error err = FA_ERROR_INIT;
    int64_t pending = 0;

    if (fa_config_load(&cfg, config_path, &err) < 0)
        return fa_cli__usage_error("keygen", "%s", err.msg);
    if ((url = fa_cli__database_url(url, &cfg)) == NULL)
        return fa_cli__usage_error("keygen",
                                   "--retire needs the database (to check that no stored update "
                                   "is still sealed to the key): set DATABASE_URL, "
                                   "database_url in the config file, or --database-url");
    if (fa_store_open(&st, url, 1, &err) < 0 ||
        fa_store_updates_sealed_to(&pending, st, key_id, &err) < 0) {
        fa_store_free(st);
        fprintf(stderr, "fedagg keygen: %s\n", err.msg);
        return 1;
    }
    fa_store_free(st);
    if (pending > 0) {
        fprintf(stderr,
                "fedagg keygen: %lld stored update%s of a round that has not ended %s still "
                "sealed to key %s; retire it after that round ends\n",
                (long long)pending, pending == 1 ? "" : "s", pending == 1 ? "is" : "are", key_id);
        return 1;
    }
    if (fa_keys_retire(dir, key_id, &err) < 0) {
        fprintf(stderr, "fedagg keygen: %s\n", err.msg);
        return 1;
    }
    printf("retired box key %s: %s/box.%s.sk destroyed; restart the servers\n", key_id, dir,
           key_id);
    return 0;
}

int fa_cmd_keygen(int argc, char **argv)
{
    static const struct option OPTS[] = {
        {"out", required_argument, NULL, 'o'},
        {"rotate", no_argument, NULL, 'r'},
        {"retire", required_argument, NULL, 'R'},
        {"config", required_argument, NULL, 'c'},
        {"database-url", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *retire = NULL, *config_path = NULL, *url = NULL;
    fa_keys *keys = NULL;
    fa_error err = FA_ERROR_INIT;
    int c, rc, rotate = 0;
    char id[17];

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", OPTS, NULL)) != -1) {
        switch (c) {
        case 'o':
            dir = optarg;
            break;
        case 'r':
            rotate = 1;
            break;
        case 'R':
            retire = optarg;
            break;
        case 'c':
            config_path = optarg;
            break;
        case 'd':
            url = optarg;
            break;
        case 'h':
            keygen_usage(stdout);
            return 0;
        default:
            return fa_cli__bad_option("keygen", c, argv);
        }
    }
    if (optind != argc)
        return fa_cli__usage_error("keygen", "unexpected argument '%s'", argv[optind]);
    if (dir == NULL || *dir == '\0')
        return fa_cli__usage_error("keygen", "--out DIR is required");
    if (rotate && retire != NULL)
        return fa_cli__usage_error("keygen", "give --rotate or --retire, not both");
    if (retire == NULL && (config_path != NULL || url != NULL))
        return fa_cli__usage_error("keygen", "--config and --database-url apply to --retire");
    if (fa_crypto_init(&err) < 0) {
        fprintf(stderr, "fedagg keygen: %s\n", err.msg);
        return 1;
    }
    if (retire != NULL)
        return keygen_retire(dir, retire, config_path, url);
    if (rotate) {
        if (fa_keys_rotate(id, dir, &err) < 0) {
            fprintf(stderr, "fedagg keygen: %s\n", err.msg);
            return 1;
        }
        printf("rotated: new box key %s in %s/{%s,%s}; the replaced one stays accepted until "
               "retired; restart the servers\n",
               id, dir, FA_KEYS_BOX_PK, FA_KEYS_BOX_SK);
        return 0;
    }
    if (fa_keys_generate(&keys, &err) < 0 || fa_keys_save(keys, dir, &err) < 0) {
        fprintf(stderr, "fedagg keygen: %s\n", err.msg);
        rc = 1;
    } else {
        printf("wrote %s/{%s,%s,%s,%s}; key id %s\n", dir, FA_KEYS_BOX_PK, FA_KEYS_BOX_SK,
               FA_KEYS_SIGN_PK, FA_KEYS_SIGN_SK, fa_keys_key_id(keys));
        rc = 0;
    }
    fa_keys_free(keys);
    return rc;
}
