/*
 * Shared between the units of the privacy module only; no other module
 * includes this header. Constants only; any thread.
 */
#ifndef FA_PRIVACY_INTERNAL_H
#define FA_PRIVACY_INTERNAL_H

/* ---- ledger (ledger.c, ledger_verify.c) ----------------------------------------------------- */

/* The values of fa_ledger_entry.format: the encoding an entry was written in. */
#define FA_LEDGER__FORMAT_V1 1 /* FA_LEDGER_FORMAT_V1: parsed and verified, no longer written */
#define FA_LEDGER__FORMAT_V2 2 /* FA_LEDGER_FORMAT_V2: parsed and verified, no longer written */
#define FA_LEDGER__FORMAT_V3 3 /* FA_LEDGER_FORMAT: what fa_ledger_entry_next starts */

#endif
