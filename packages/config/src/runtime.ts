/**
 * What a serving process (a proxy worker, the single-process proxy) needs of this package at run time, without
 * what reading a config file needs: zod and yaml stay unloaded (+3.3 and about +1 MB of live heap in a bare
 * process, kept for the process's life). A worker gets its config section checked, from the primary, over IPC.
 * Types come from the package's main entry (`import type`, which loads nothing).
 */
export { familyOf, isLoopbackAddress, parseCidr, splitHostPort, toBlockList } from './address.ts';
export { bearerTokenMatches, checkAdminRequest } from './admin-access.ts';
export { STATUS_PAGE_REFRESH_S, statusPage, statusPageAccess } from './admin-page.ts';
export { DEFAULT_DRAIN_DELAY_MS, DRAIN_DELAY_MARGIN_MS, drainDelayMs } from './drain-delay.ts';
