// Parsers of option values: each turns the text into what the command needs
// or throws commander's InvalidArgumentError, which ends the run as a usage
// error (exit 2) before anything is sent to the daemon.
import { resolve } from "node:path";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { DurationError, parseDuration, parseDurationMs } from "@procmon/api/duration";
import { InvalidArgumentError } from "commander";

/** `--threshold 1.5s` and the like: a duration procmon accepts, as a google.protobuf.Duration. */
export function durationArg(text: string): Duration {
  return usage(() => parseDuration(text));
}

/** `--timeout 10s`: a duration procmon accepts, in ms. */
export function timeoutArg(text: string): number {
  return usage(() => parseDurationMs(text));
}

/** `--env K=V`, repeatable: appends the pair to those seen before. */
export function envArg(
  text: string,
  previous: readonly (readonly [string, string])[] | undefined,
): (readonly [string, string])[] {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new InvalidArgumentError(`"${text}" is not KEY=VALUE.`);
  return [...(previous ?? []), [text.slice(0, eq), text.slice(eq + 1)]];
}

/** `--uid N`, `--gid N`: a 32-bit unsigned id. */
export function idArg(text: string): number {
  const id = Number(text);
  if (!/^\d+$/.test(text) || id > 0xffff_ffff) {
    throw new InvalidArgumentError(`"${text}" is not a numeric id (0 to 4294967295).`);
  }
  return id;
}

/** `--since SEQ`: an event seq, 0 or more. */
export function seqArg(text: string): bigint {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError(`"${text}" is not an event seq.`);
  return BigInt(text);
}

/** `--cwd DIR`: made absolute against the CLI's own directory, not the daemon's. */
export function dirArg(text: string): string {
  if (text === "") throw new InvalidArgumentError("the directory is empty.");
  return resolve(text);
}

function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof DurationError) throw new InvalidArgumentError(`${err.message}.`);
    throw err;
  }
}
