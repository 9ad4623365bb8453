import type { CoreEvent } from "../core/events.js";
import type { ProcessSpec } from "../core/types.js";

// What keeping one event costs in V8's heap, fitted to what `node --expose-gc
// bench/keepup.mjs --heap` measured on Node 20 (x64): the LoggedEvent, its
// event object, its seq, the window's two slots and, for `added`, the spec's
// objects, arrays and env dictionary; the text of strings is counted apart.
// Measured: an output line of 0 / 20 / 99 / 1,000 ASCII characters 174 / 215 /
// 295 / 1,161 B; `started` 159 B, `exited` 239 B; `added` with three short
// args and no env 534 B, with 1,000 env entries of 250 B 353,682 B.

/** An output line's share, without the line's characters. */
export const OUTPUT_EVENT_BYTES = 190;
/** A state event's share, without the characters of its own strings. */
export const STATE_EVENT_BYTES = 240;
/** An `added` event's share, without its spec's strings and env entries. */
export const ADDED_EVENT_BYTES = 400;
/** A string's header and alignment, beyond its characters. */
const STRING_BYTES = 24;
/** One entry of a spec's env, beyond its key and value. */
const ENV_ENTRY_BYTES = 48;

/** A character V8 cannot store in one byte. */
const TWO_BYTE = /[\u0100-\uffff]/;

/**
 * The heap taken by a string's characters: one byte each, or two when any of
 * them is past U+00FF, as V8 stores strings.
 */
export function textBytes(text: string): number {
  return TWO_BYTE.test(text) ? 2 * text.length : text.length;
}

function stringBytes(text: string): number {
  return STRING_BYTES + textBytes(text);
}

/** The heap an `added` event's spec holds: its args, env, cwd and name. */
export function specBytes(spec: ProcessSpec): number {
  let bytes = stringBytes(spec.name) + stringBytes(spec.cwd);
  for (const arg of spec.args) bytes += stringBytes(arg);
  for (const [key, value] of Object.entries(spec.env)) {
    bytes += ENV_ENTRY_BYTES + stringBytes(key) + stringBytes(value);
  }
  return bytes;
}

/**
 * What retaining `event` costs, estimated, in bytes: what the event windows
 * are bounded by. Within 10 % of the measured heap for output lines and large
 * specs, above it for short state events.
 */
export function estimatedBytes(event: CoreEvent): number {
  switch (event.kind) {
    case "output":
      return OUTPUT_EVENT_BYTES + textBytes(event.line);
    case "added":
      return ADDED_EVENT_BYTES + specBytes(event.spec);
    case "spawnFailed":
      return STATE_EVENT_BYTES + stringBytes(event.error);
    default:
      return STATE_EVENT_BYTES;
  }
}
