// Colour for people at a terminal: the CLI's own state words, never the
// daemon's strings. A colour code is only ever wrapped around a word from the
// CLI's fixed vocabulary (running, backoff...), and the cells around it were
// escaped (terminal-text.ts) before it was added, so no string from the
// daemon can open, close or forge one.
import { State } from "@procmon/api/gen/procmon/v1/procmon_pb.js";

/** The styles the CLI uses. */
export type Style = "green" | "yellow" | "red" | "dim";

/** Wraps one of the CLI's own words in a style; the identity when colour is off. */
export type Paint = (word: string, style: Style | undefined) => string;

/** No colour: pipes, files, --json, NO_COLOR, --no-color. */
export const noPaint: Paint = (word) => word;

/** SGR codes to set, and to reset, each style (22 ends dim without touching colour). */
const SGR: Readonly<Record<Style, readonly [number, number]>> = {
  green: [32, 39],
  yellow: [33, 39],
  red: [31, 39],
  dim: [2, 22],
};

/** ANSI colour, as terminals show it. */
export const ansiPaint: Paint = (word, style) => {
  if (style === undefined || word === "") return word;
  const [on, off] = SGR[style];
  return `\x1b[${on}m${word}\x1b[${off}m`;
};

/** How each state's word is shown: running green, waiting yellow, failed red, stopped dim. */
const STATE_STYLES: Readonly<Partial<Record<State, Style>>> = {
  [State.RUNNING]: "green",
  [State.BACKOFF]: "yellow",
  [State.WAITING]: "yellow",
  [State.STOPPING]: "yellow",
  [State.EXITED]: "red",
  [State.FAILED]: "red",
  [State.STOPPED]: "dim",
};

/** The style of a state's word; undefined for one without (unknown). */
export function stateStyle(state: State): Style | undefined {
  return STATE_STYLES[state];
}

/** What decides whether to colour a run's standard output. */
export interface ColorContext {
  /** Standard output is a terminal. */
  readonly isTerminal: boolean;
  /** --json was given: JSON is never coloured. */
  readonly json: boolean;
  /** false when --no-color was given. */
  readonly color: boolean;
  /** The environment, for NO_COLOR (https://no-color.org: any non-empty value turns colour off). */
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** True if this run's standard output gets colour. */
export function colorEnabled(context: ColorContext): boolean {
  const noColor = context.env.NO_COLOR;
  return (
    context.isTerminal &&
    !context.json &&
    context.color &&
    (noColor === undefined || noColor === "")
  );
}

/** How to paint this run's standard output. */
export function paintFor(context: ColorContext): Paint {
  return colorEnabled(context) ? ansiPaint : noPaint;
}
