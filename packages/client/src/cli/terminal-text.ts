// Text from the daemon made safe to show on a terminal. Child output, args,
// env, cwd and spawn errors are strings that any client of the daemon chose:
// printed raw, `\e[2J` would clear the operator's screen, `\e]0;...\a` retitle
// the terminal and U+202E reorder what the rest of the line seems to say.

/** Turns a string that came from the daemon into the text to print. */
export type Escape = (text: string) => string;

/** Prints text as it is: for pipes, files and --json, where scripts need the real bytes. */
export const asIs: Escape = (text) => text;

// C0 controls but tab, DEL, C1 controls, and the bidi embeddings, overrides
// (U+202A-U+202E) and isolates (U+2066-U+2069). Tab only moves the cursor
// right; a newline is escaped too, because text from the daemon that holds
// one (an argument, say) could otherwise forge a line of the CLI's own output.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const UNSAFE = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Escapes what a terminal would act on rather than show: ESC becomes `\x1b`,
 * BEL `\x07`, a newline `\x0a`, U+202E `\u202e`; everything else, tab
 * included, is left as is.
 *
 * A backslash is not escaped, so a child that prints the four characters
 * `\x1b` looks the same as one that prints ESC. That is enough here: the point
 * is that no string can take control of the terminal, not that the text can
 * be decoded back (pipe the output, or use --json, for the real bytes), and
 * doubling every backslash would garble the common case, such as the `\"` of
 * JSON log lines.
 */
export function escapeForTerminal(text: string): string {
  return text.replace(UNSAFE, (char) => {
    const code = char.charCodeAt(0);
    return code < 0x100
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

/** How to print the daemon's strings on a stream: escaped on a terminal, as is elsewhere. */
export function escapeFor(isTerminal: boolean): Escape {
  return isTerminal ? escapeForTerminal : asIs;
}
