/*
 * SHA-256 (FIPS 180-4), the one digest of the project: snapshot digests,
 * ledger entry hashes, token hashes, migration checksums, key ids. By
 * libsodium. Stateless; any thread.
 */
#ifndef FA_CORE_DIGEST_H
#define FA_CORE_DIGEST_H

#include <stddef.h>

#define FA_SHA256_BYTES 32

/* out = SHA-256(data[0..len)). Cannot fail. */
void fa_sha256(unsigned char out[FA_SHA256_BYTES], const void *data, size_t len);

#endif
