/*
 * Base64 for the wire formats (sealed updates, keys, tokens), by libsodium.
 * Stateless; any thread.
 */
#ifndef FA_CORE_BASE64_H
#define FA_CORE_BASE64_H

#include <stddef.h>

#include "core/error.h"

/* Bytes needed (NUL included) to encode n bytes in padded standard base64. */
#define FA_BASE64_LEN(n) ((((n) + 2) / 3) * 4 + 1)

/*
 * Standard alphabet with padding (RFC 4648 Sec. 4); out must hold
 * FA_BASE64_LEN(n) bytes, else it receives the empty string.
 */
void fa_base64_encode(char *out, size_t cap, const void *bin, size_t n);

/* URL-safe alphabet without padding (Sec. 5, tokens); out as above. */
void fa_base64url_encode(char *out, size_t cap, const void *bin, size_t n);

/*
 * Decodes len characters of padded standard base64 into out (cap bytes).
 * FA_EINVAL for any character outside the alphabet, bad padding, trailing
 * data, or output longer than cap.
 */
int fa_base64_decode(unsigned char *out, size_t cap, size_t *len_out, const char *b64,
                     size_t len) FA_MUST_CHECK;

/*
 * Decodes len characters of unpadded URL-safe base64 (Sec. 5, as JOSE uses
 * it) into out (cap bytes). FA_EINVAL for any character outside the
 * alphabet, padding, non-canonical trailing bits, or output over cap.
 */
int fa_base64url_decode(unsigned char *out, size_t cap, size_t *len_out, const char *b64,
                        size_t len) FA_MUST_CHECK;

#endif
