// The trailing-metadata keys of the API: what a program reads off an ended
// WatchEvents stream without parsing the message.

/**
 * Trailer of a WatchEvents stream the daemon ended cleanly (it is shutting
 * down): the subscriber was sent everything up to this seq that it selects.
 */
export const LAST_SEQ_KEY = "procmon-last-seq";

/** Trailer of WatchEvents' OUT_OF_RANGE: the oldest seq one may resume after. */
export const OLDEST_RESUMABLE_SEQ_KEY = "procmon-oldest-resumable-seq";

/** Trailer of WatchEvents' RESOURCE_EXHAUSTED: the last seq sent before the stream was ended. */
export const LAST_DELIVERED_SEQ_KEY = "procmon-last-delivered-seq";
