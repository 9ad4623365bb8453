// Parsers of option values: each turns the text into what the command needs
// or throws commander's InvalidArgumentError, which ends the run as a usage
// error (exit 2) before anything is sent to the daemon.
import { resolve } from "node:path";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { DurationError, parseDuration, parseDurationMs } from "@procmon/api/duration";
import { DependencyCondition, RestartPolicy } from "@procmon/api/gen/procmon/v1/procmon_pb.js";
import { STOP_SIGNALS } from "@procmon/api/signals";
import { InvalidArgumentError } from "commander";
import { parseSize } from "./sizes.js";

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

/** The words `--restart` takes, and the policies they stand for. */
export const RESTART_POLICIES: Readonly<Record<string, RestartPolicy>> = {
  always: RestartPolicy.ALWAYS,
  "on-failure": RestartPolicy.ON_FAILURE,
  never: RestartPolicy.NEVER,
};

/** `--restart always|on-failure|never`. */
export function restartArg(text: string): RestartPolicy {
  const policy = RESTART_POLICIES[text];
  if (policy === undefined) {
    throw new InvalidArgumentError(`expected one of ${Object.keys(RESTART_POLICIES).join(", ")}.`);
  }
  return policy;
}

/** `--success-exit-codes 0,2`: exit codes, 0 to 255, comma-separated. */
export function exitCodesArg(text: string): number[] {
  const codes = text.split(",").map((item) => item.trim());
  for (const code of codes) {
    if (!/^\d+$/.test(code) || Number(code) > 255) {
      throw new InvalidArgumentError(
        `"${code}" is not an exit code (0 to 255); write them as 0,2.`,
      );
    }
  }
  return [...new Set(codes.map(Number))];
}

/** `--max-instant-deaths N`: a count, 0 (never give up) or more. */
export function countArg(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 0xffff_ffff) {
    throw new InvalidArgumentError(`"${text}" is not a count (0 to 4294967295).`);
  }
  return Number(text);
}

/** `--stop-signal QUIT`: one of {@link STOP_SIGNALS}, in any case, with or without SIG. */
export function signalArg(text: string): string {
  const upper = text.toUpperCase();
  const name = upper.startsWith("SIG") ? upper : `SIG${upper}`;
  if (!(STOP_SIGNALS as readonly string[]).includes(name)) {
    throw new InvalidArgumentError(`"${text}" is not one of ${STOP_SIGNALS.join(", ")}.`);
  }
  return name;
}

/** The words after the colon of `--depends-on NAME:CONDITION`. */
export const DEPENDENCY_CONDITIONS: Readonly<Record<string, DependencyCondition>> = {
  started: DependencyCondition.STARTED,
  ready: DependencyCondition.READY,
  "exited-ok": DependencyCondition.EXITED_OK,
};

/** One `--depends-on`, parsed. */
export interface DependencyArg {
  readonly name: string;
  readonly condition: DependencyCondition;
}

/**
 * `--depends-on NAME[:started|ready|exited-ok]`, repeatable. Names may hold
 * colons themselves, so only a known condition after the last one is read
 * as the condition: `a:b` depends on the process "a:b" being started.
 */
export function dependencyArg(
  text: string,
  previous: readonly DependencyArg[] | undefined,
): DependencyArg[] {
  const colon = text.lastIndexOf(":");
  const condition = colon < 0 ? undefined : DEPENDENCY_CONDITIONS[text.slice(colon + 1)];
  const name = condition === undefined ? text : text.slice(0, colon);
  if (name === "") throw new InvalidArgumentError(`"${text}" names no process.`);
  return [...(previous ?? []), { name, condition: condition ?? DependencyCondition.STARTED }];
}

/**
 * `--ready-exec 'CMD ARGS'`: split into words as a shell splits them
 * (whitespace, '...' and "..." quotes, backslash escapes) but never run by
 * one: no variables, globs or pipes, as the process's own command. Write
 * `sh -c '...'` for those.
 */
export function wordsArg(text: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else word += c;
    } else if (c === "\\") {
      const next = text[++i];
      if (next === undefined) throw new InvalidArgumentError("it ends with a lone backslash.");
      // In double quotes a backslash escapes only what is special there, as in sh.
      word = (word ?? "") + (quote === '"' && !'"\\$`'.includes(next) ? `\\${next}` : next);
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= "";
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (quote !== undefined) throw new InvalidArgumentError(`a ${quote} quote is not closed.`);
  if (word !== undefined) words.push(word);
  if (words.length === 0) throw new InvalidArgumentError("the command is empty.");
  return words;
}

/** `--ready-tcp [HOST:]PORT`, parsed; an empty host is the daemon's 127.0.0.1. */
export interface TcpArg {
  readonly host: string;
  readonly port: number;
}

/** `--ready-tcp 5432`, `--ready-tcp db.local:5432`, `--ready-tcp [::1]:5432`. */
export function tcpArg(text: string): TcpArg {
  const match = /^(?:\[([^\]]+)\]:|([^:[\]]*):)?(\d+)$/.exec(text);
  const port = Number(match?.[3]);
  if (match === null || port < 1 || port > 65_535) {
    throw new InvalidArgumentError(`"${text}" is not [HOST:]PORT with a port from 1 to 65535.`);
  }
  return { host: match[1] ?? match[2] ?? "", port };
}

/** `--ready-http URL`: an http:// or https:// URL. */
export function httpUrlArg(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidArgumentError(`"${text}" is not a URL.`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new InvalidArgumentError(`"${text}" is not an http:// or https:// URL.`);
  }
  return text;
}

/** The smallest memory cap the daemon takes (0 is no cap). */
export const MIN_RSS_BYTES = 1024n * 1024n;

/** `--max-rss 512MiB`: a size in binary units (sizes.ts), 0 or at least 1 MiB. */
export function rssArg(text: string): bigint {
  let bytes: bigint;
  try {
    bytes = parseSize(text);
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message}.`);
  }
  if (bytes !== 0n && bytes < MIN_RSS_BYTES) {
    throw new InvalidArgumentError(`"${text}" is below 1MiB, the smallest cap (0: no cap).`);
  }
  return bytes;
}

function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof DurationError) throw new InvalidArgumentError(`${err.message}.`);
    throw err;
  }
}
