#include <criterion/criterion.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "core/base64.h"
#include "privacy/crypto.h"
#include "vectors.h"

static void init(void)
{
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
}

TestSuite(crypto, .init = init);

/* Splits a vector line into at most 5 space-separated fields (in place). */
static int fields(char *line, char *f[5])
{
    int n = 0;
    char *p = line;

    while (*p != '\0' && n < 5) {
        f[n++] = p;
        while (*p != '\0' && *p != ' ')
            p++;
        if (*p == ' ')
            *p++ = '\0';
    }
    return n;
}

Test(crypto, known_answers)
{
    FILE *f = fa_vectors_open("crypto_kat.txt");
    char line[1024];
    int seen[4] = {0};
    fa_error err = FA_ERROR_INIT;

    while (fa_vectors_next(f, line, sizeof(line))) {
        char *v[5] = {0};
        const int n = fields(line, v);
        if (strcmp(v[0], "sha256") == 0) {
            unsigned char msg[256], want[32], got[32];
            const size_t len = strcmp(v[1], "-") == 0 ? 0 : strlen(v[1]) / 2;
            cr_assert_eq(n, 3);
            if (len > 0)
                fa_vectors_hex(msg, len, v[1]);
            fa_vectors_hex(want, 32, v[2]);
            fa_sha256(got, msg, len);
            cr_assert_eq(memcmp(got, want, 32), 0, "sha256 of %s", v[1]);
            seen[0]++;
        } else if (strcmp(v[0], "ed25519") == 0) {
            unsigned char seed[32], pk[32], msg[64], sig[64], got[64];
            const size_t len = strcmp(v[3], "-") == 0 ? 0 : strlen(v[3]) / 2;
            fa_crypto_sign_key *k = NULL;
            cr_assert_eq(n, 5);
            fa_vectors_hex(seed, 32, v[1]);
            fa_vectors_hex(pk, 32, v[2]);
            if (len > 0)
                fa_vectors_hex(msg, len, v[3]);
            fa_vectors_hex(sig, 64, v[4]);
            cr_assert_eq(fa_crypto_sign_key_from_seed(&k, seed, &err), FA_OK);
            cr_assert_eq(memcmp(fa_crypto_sign_key_public(k), pk, 32), 0);
            cr_assert_eq(memcmp(fa_crypto_sign_key_seed(k), seed, 32), 0);
            fa_crypto_sign(got, k, msg, len);
            cr_assert_eq(memcmp(got, sig, 64), 0);
            cr_assert_eq(fa_crypto_sign_verify(sig, msg, len, pk), FA_OK);
            sig[10] ^= 1;
            cr_assert_eq(fa_crypto_sign_verify(sig, msg, len, pk), FA_EINVAL);
            fa_crypto_sign_key_free(k);
            seen[1]++;
        } else if (strcmp(v[0], "x25519") == 0) {
            unsigned char sk[32], pk[32];
            fa_crypto_box_key *k = NULL;
            cr_assert_eq(n, 3);
            fa_vectors_hex(sk, 32, v[1]);
            fa_vectors_hex(pk, 32, v[2]);
            cr_assert_eq(fa_crypto_box_key_from_secret(&k, sk, &err), FA_OK);
            cr_assert_eq(memcmp(fa_crypto_box_key_public(k), pk, 32), 0);
            cr_assert_eq(memcmp(fa_crypto_box_key_secret(k), sk, 32), 0);
            fa_crypto_box_key_free(k);
            seen[2]++;
        } else if (strcmp(v[0], "chacha20") == 0) {
            unsigned char key[32], want[192], got[192];
            fa_crypto_stream *st = NULL;
            cr_assert_eq(n, 3);
            fa_vectors_hex(key, 32, v[1]);
            fa_vectors_hex(want, 192, v[2]);
            cr_assert_eq(fa_crypto_stream_new(&st, key, &err), FA_OK);
            /* Two reads continue the stream where the first stopped. */
            cr_assert_eq(fa_crypto_stream_read(st, got, 64, &err), FA_OK);
            cr_assert_eq(fa_crypto_stream_read(st, got + 64, 128, &err), FA_OK);
            cr_assert_eq(memcmp(got, want, 192), 0);
            cr_assert_eq(fa_crypto_stream_read(st, got, 10, &err), FA_EINVAL);
            fa_crypto_stream_free(st);
            seen[3]++;
        } else {
            cr_assert_fail("unknown vector kind %s", v[0]);
        }
    }
    fclose(f);
    cr_assert(seen[0] >= 2 && seen[1] >= 3 && seen[2] >= 2 && seen[3] >= 1);
}

Test(crypto, sealed_box_round_trip_and_failures)
{
    const char msg[] = "a model update";
    unsigned char box[sizeof(msg) + FA_CRYPTO_SEAL_OVERHEAD];
    unsigned char out[sizeof(msg)];
    fa_crypto_box_key *k = NULL, *other = NULL;
    fa_error err = FA_ERROR_INIT;
    size_t len = 0;

    cr_assert_eq(fa_crypto_box_key_generate(&k, &err), FA_OK);
    cr_assert_eq(fa_crypto_box_key_generate(&other, &err), FA_OK);
    cr_assert_eq(
        fa_crypto_box_seal(box, sizeof(box), fa_crypto_box_key_public(k), msg, sizeof(msg), &err),
        FA_OK);
    cr_assert_eq(fa_crypto_box_open(out, sizeof(out), &len, k, box, sizeof(box), &err), FA_OK);
    cr_assert_eq(len, sizeof(msg));
    cr_assert_str_eq((const char *)out, msg);
    /* Wrong key, flipped bit, short box, short output: all the same message. */
    cr_assert_eq(fa_crypto_box_open(out, sizeof(out), &len, other, box, sizeof(box), &err),
                 FA_EINVAL);
    cr_assert_str_eq(err.msg, "update did not decrypt");
    box[20] ^= 1;
    cr_assert_eq(fa_crypto_box_open(out, sizeof(out), &len, k, box, sizeof(box), &err), FA_EINVAL);
    cr_assert_eq(fa_crypto_box_open(out, sizeof(out), &len, k, box, 10, &err), FA_EINVAL);
    cr_assert_eq(fa_crypto_box_open(out, 3, &len, k, box, sizeof(box), &err), FA_EINVAL);
    cr_assert_eq(len, 0);
    cr_assert_eq(fa_crypto_box_seal(box, 10, fa_crypto_box_key_public(k), msg, sizeof(msg), &err),
                 FA_EINVAL);
    fa_crypto_box_key_free(k);
    fa_crypto_box_key_free(other);
    fa_crypto_box_key_free(NULL);
}

Test(crypto, key_id_is_sixteen_hex_digits_of_the_public_key_hash)
{
    unsigned char pk[32], digest[32];
    char id[FA_CRYPTO_KEY_ID_CHARS + 1], want[65];

    for (int i = 0; i < 32; i++)
        pk[i] = (unsigned char)(i * 7);
    fa_sha256(digest, pk, 32);
    for (int i = 0; i < 8; i++)
        (void)snprintf(want + 2 * i, 3, "%02x", digest[i]);
    fa_crypto_key_id(id, pk);
    cr_assert_eq(strlen(id), 16);
    cr_assert_str_eq(id, want);
}

Test(crypto, secure_memory_and_wipe)
{
    unsigned char *p = fa_crypto_secure_alloc(100);
    unsigned char buf[16];

    cr_assert_not_null(p);
    memset(p, 0xab, 100);
    fa_crypto_secure_free(p);
    fa_crypto_secure_free(NULL);
    memset(buf, 0xcd, sizeof(buf));
    fa_crypto_wipe(buf, sizeof(buf));
    for (size_t i = 0; i < sizeof(buf); i++)
        cr_assert_eq(buf[i], 0);
    fa_crypto_wipe(NULL, 3);
    cr_assert_eq(fa_crypto_equal("abc", "abc", 3), 1);
    cr_assert_eq(fa_crypto_equal("abc", "abd", 3), 0);
}

Test(crypto, base64_is_strict)
{
    const unsigned char bin[5] = {0xfb, 0xff, 0x00, 0x10, 0x7f};
    char text[FA_BASE64_LEN(5)], url[FA_BASE64_LEN(5)], tiny[4];
    unsigned char out[8];
    size_t len = 0;

    fa_base64_encode(text, sizeof(text), bin, sizeof(bin));
    cr_assert_str_eq(text, "+/8AEH8=");
    fa_base64url_encode(url, sizeof(url), bin, sizeof(bin));
    cr_assert_str_eq(url, "-_8AEH8");
    fa_base64_encode(tiny, sizeof(tiny), bin, sizeof(bin));
    cr_assert_str_eq(tiny, "");
    cr_assert_eq(fa_base64_decode(out, sizeof(out), &len, text, strlen(text)), FA_OK);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(out, bin, 5), 0);
    cr_assert_eq(fa_base64_decode(out, sizeof(out), &len, "+/8AEH8", 7), FA_EINVAL);
    cr_assert_eq(fa_base64_decode(out, sizeof(out), &len, "+/8A EH8=", 9), FA_EINVAL);
    cr_assert_eq(fa_base64_decode(out, sizeof(out), &len, "-_8AEH8=", 8), FA_EINVAL);
    cr_assert_eq(fa_base64_decode(out, sizeof(out), &len, "+/8AEH8=x", 9), FA_EINVAL);
    cr_assert_eq(fa_base64_decode(out, 3, &len, text, strlen(text)), FA_EINVAL);
}

Test(crypto, base64_decode_agrees_with_encode_and_rejects_non_canonical)
{
    unsigned char bin[300], out[300];
    char text[FA_BASE64_LEN(300)];
    size_t len = 0;

    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (unsigned char)(i * 37 + 11);
    /* Every length, so every padding case and the last-quad path. */
    for (size_t n = 1; n <= sizeof(bin); n++) {
        fa_base64_encode(text, sizeof(text), bin, n);
        cr_assert_eq(fa_base64_decode(out, n, &len, text, strlen(text)), FA_OK, "n=%zu", n);
        cr_assert_eq(len, n);
        cr_assert_eq(memcmp(out, bin, n), 0, "n=%zu", n);
        cr_assert_eq(fa_base64_decode(out, n - 1, &len, text, strlen(text)), FA_EINVAL);
    }
    /* Padding bits must be zero; '=' only at the end. */
    cr_assert_eq(fa_base64_decode(out, sizeof(out), &len, "AB==", 4), FA_EINVAL);
    cr_assert_eq(fa_base64_decode(out, sizeof(out), &len, "AAB=", 4), FA_EINVAL);
    cr_assert_eq(fa_base64_decode(out, sizeof(out), &len, "AA=A", 4), FA_EINVAL);
    cr_assert_eq(fa_base64_decode(out, sizeof(out), &len, "A===", 4), FA_EINVAL);
    cr_assert_eq(fa_base64_decode(out, sizeof(out), &len, "====", 4), FA_EINVAL);
    cr_assert_eq(fa_base64_decode(out, sizeof(out), &len, "", 0), FA_EINVAL);
    cr_assert_eq(fa_base64_decode(out, sizeof(out), &len, "AA==AAAA", 8), FA_EINVAL);
}

/*
 * The pseudonym PRF against an independent computation (Python's hashlib
 * BLAKE2b with key, salt and personalisation, which is what libsodium's
 * crypto_kdf_derive_from_key and keyed crypto_generichash compute), under
 * the RFC 8032 TEST 1 seed:
 *   k = blake2b(b"", key=seed, salt=(1).to_bytes(8, "little") + 8 zero bytes,
 *               person=b"fa-pseud" + 8 zero bytes, digest_size=32)
 *   prf(label, x, data) = blake2b(bytes([len(label)]) + label + x.to_bytes(8, "little")
 *                                 + data, key=k, digest_size=32)
 */
Test(crypto, pseudonym_prf_matches_an_independent_blake2b)
{
    static const struct {
        const char *label;
        uint64_t x;
        const char *data;
        const char *want;
    } KAT[] = {
        {"coin", 7, "device-42",
         "7172f011028aedc8eaa18bc842547e68196fc179759f32e771fec2fd0f696a39"},
        {"pseudonym", 0, "device-42",
         "5b91deb15b0317d6325a57b276a007883a8eb05a462ffc1cec866efa2667aa2f"},
        {"pseudonym", 0, "", "d639dcdc43da9d339c033db42d99ba73d79bd0b86bc290ff1116717e03f93733"},
    };
    unsigned char seed[32], out[32], want[32];
    char long_label[FA_CRYPTO_PRF_LABEL_MAX + 2];
    fa_crypto_sign_key *root = NULL;
    fa_crypto_prf_key *k = NULL;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
    fa_vectors_hex(seed, 32, "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    cr_assert_eq(fa_crypto_sign_key_from_seed(&root, seed, &err), FA_OK);
    cr_assert_eq(fa_crypto_prf_key_derive(&k, root, 1, "fa-pseud", &err), FA_OK, "%s", err.msg);
    for (size_t i = 0; i < sizeof(KAT) / sizeof(KAT[0]); i++) {
        cr_assert_eq(
            fa_crypto_prf(out, k, KAT[i].label, KAT[i].x, KAT[i].data, strlen(KAT[i].data), &err),
            FA_OK, "%s", err.msg);
        fa_vectors_hex(want, 32, KAT[i].want);
        cr_assert_eq(memcmp(out, want, 32), 0, "case %zu", i);
    }
    /* Labels are never truncated: an empty or over-long one is refused. */
    memset(long_label, 'a', sizeof(long_label) - 1);
    long_label[sizeof(long_label) - 1] = '\0';
    cr_assert_eq(fa_crypto_prf(out, k, long_label, 0, "", 0, &err), FA_EINVAL);
    cr_assert_eq(fa_crypto_prf(out, k, "", 0, "", 0, &err), FA_EINVAL);
    /* Length-prefixed: moving a byte between label and data changes the output. */
    cr_assert_eq(fa_crypto_prf(want, k, "ab", 0, "c", 1, &err), FA_OK);
    cr_assert_eq(fa_crypto_prf(out, k, "a", 0, "bc", 2, &err), FA_OK);
    cr_assert_neq(memcmp(out, want, 32), 0);
    fa_crypto_prf_key_free(k);
    fa_crypto_sign_key_free(root);
}

Test(crypto, state_sealed_at_rest_opens_only_under_its_key_and_binding)
{
    unsigned char seed[32], key[32], sealed[64 + FA_CRYPTO_AEAD_OVERHEAD], back[64];
    unsigned long long n = 0;
    const char msg[64] = "a partial sum of one round, bound to round, node and count";
    fa_crypto_sign_key *root = NULL;
    fa_crypto_aead_key *k = NULL, *other = NULL;
    fa_error err = FA_ERROR_INIT;

    cr_assert_eq(fa_crypto_init(&err), FA_OK);
    fa_vectors_hex(seed, 32, "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    cr_assert_eq(fa_crypto_sign_key_from_seed(&root, seed, &err), FA_OK);
    cr_assert_eq(fa_crypto_aead_key_derive(&k, root, 1, "fa-state", &err), FA_OK, "%s", err.msg);
    cr_assert_eq(fa_crypto_aead_key_derive(&other, root, 1, "fa-pseud", &err), FA_OK);
    cr_assert_eq(fa_crypto_aead_seal(sealed, sizeof(sealed), k, "ad-1", 4, msg, 64, &err), FA_OK);
    cr_assert_eq(fa_crypto_aead_open(back, 64, k, "ad-1", 4, sealed, sizeof(sealed), &err), FA_OK);
    cr_assert_eq(memcmp(back, msg, 64), 0);

    /* The layout, read with libsodium directly and the key derived here:
     * nonce (24) || XChaCha20-Poly1305-IETF ciphertext and tag. */
    cr_assert_eq(crypto_kdf_derive_from_key(key, 32, 1, "fa-state", seed), 0);
    memset(back, 0, sizeof(back));
    cr_assert_eq(
        crypto_aead_xchacha20poly1305_ietf_decrypt(back, &n, NULL, sealed + 24, sizeof(sealed) - 24,
                                                   (const unsigned char *)"ad-1", 4, sealed, key),
        0);
    cr_assert_eq(n, 64);
    cr_assert_eq(memcmp(back, msg, 64), 0);

    /* Another binding, another key, a flipped bit, a short buffer: refused. */
    cr_assert_eq(fa_crypto_aead_open(back, 64, k, "ad-2", 4, sealed, sizeof(sealed), &err),
                 FA_EINVAL);
    cr_assert_eq(fa_crypto_aead_open(back, 64, other, "ad-1", 4, sealed, sizeof(sealed), &err),
                 FA_EINVAL);
    sealed[30] ^= 1;
    cr_assert_eq(fa_crypto_aead_open(back, 64, k, "ad-1", 4, sealed, sizeof(sealed), &err),
                 FA_EINVAL);
    cr_assert_eq(fa_crypto_aead_open(back, 63, k, "ad-1", 4, sealed, sizeof(sealed), &err),
                 FA_EINVAL);
    cr_assert_eq(fa_crypto_aead_seal(sealed, 64, k, NULL, 0, msg, 64, &err), FA_EINVAL);
    /* Two seals of the same state differ (random nonces). */
    unsigned char again[sizeof(sealed)];
    cr_assert_eq(fa_crypto_aead_seal(sealed, sizeof(sealed), k, NULL, 0, msg, 64, &err), FA_OK);
    cr_assert_eq(fa_crypto_aead_seal(again, sizeof(again), k, NULL, 0, msg, 64, &err), FA_OK);
    cr_assert_neq(memcmp(sealed, again, sizeof(again)), 0);
    fa_crypto_aead_key_free(k);
    fa_crypto_aead_key_free(other);
    fa_crypto_sign_key_free(root);
}

Test(crypto, a_sealed_box_is_identified_by_its_ephemeral_key_and_tag)
{
    unsigned char box[100], want[32], got[32];

    for (size_t i = 0; i < sizeof(box); i++)
        box[i] = (unsigned char)(i * 7 + 1);
    fa_sha256(want, box, 48);
    fa_crypto_box_digest(got, box, sizeof(box));
    cr_assert_eq(memcmp(got, want, 32), 0);
    box[60] ^= 1; /* past the tag: the same identity (the box would no longer open) */
    fa_crypto_box_digest(got, box, sizeof(box));
    cr_assert_eq(memcmp(got, want, 32), 0);
    box[40] ^= 1; /* the tag */
    fa_crypto_box_digest(got, box, sizeof(box));
    cr_assert_neq(memcmp(got, want, 32), 0);
}
