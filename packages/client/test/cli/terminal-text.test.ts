import { describe, expect, it } from "vitest";
import { asIs, escapeFor, escapeForTerminal } from "../../src/cli/terminal-text.js";

describe("escapeForTerminal", () => {
  it("escapes what would clear the screen and retitle the terminal", () => {
    expect(escapeForTerminal("\x1b[2J\x1b]0;pwned\x07")).toBe("\\x1b[2J\\x1b]0;pwned\\x07");
  });

  it.each([
    ["NUL", "\u0000", "\\x00"],
    ["backspace", "\b", "\\x08"],
    ["newline", "\n", "\\x0a"],
    ["vertical tab", "\v", "\\x0b"],
    ["form feed", "\f", "\\x0c"],
    ["carriage return", "\r", "\\x0d"],
    ["ESC", "\x1b", "\\x1b"],
    ["unit separator", "\x1f", "\\x1f"],
    ["DEL", "\x7f", "\\x7f"],
    ["C1 PAD", "\u0080", "\\x80"],
    ["C1 CSI", "\u009b", "\\x9b"],
    ["C1 APC", "\u009f", "\\x9f"],
    ["LRE", "\u202a", "\\u202a"],
    ["RLO", "\u202e", "\\u202e"],
    ["LRI", "\u2066", "\\u2066"],
    ["PDI", "\u2069", "\\u2069"],
  ])("escapes %s", (_name, char, escaped) => {
    expect(escapeForTerminal(`a${char}b`)).toBe(`a${escaped}b`);
  });

  it.each([
    ["tab", "\t"],
    ["space", " "],
    ["a backslash", "\\"],
    ["printable ASCII", "~!@#$%^&*()_+{}|:\"<>?`-=[];',./"],
    ["a no-break space, just past the C1 range", "\u00a0"],
    ["accented and CJK letters", "é漢字"],
    ["an emoji (a surrogate pair)", "🙂"],
    ["the left-to-right mark, which reorders nothing by itself", "\u200e"],
    ["the code points around the bidi ranges", "\u2029\u202f\u2065\u206a"],
  ])("keeps %s", (_name, text) => {
    expect(escapeForTerminal(text)).toBe(text);
  });

  it("escapes every unsafe character of a line, not just the first", () => {
    expect(escapeForTerminal("\x1b\x1b x \u202e\x07")).toBe("\\x1b\\x1b x \\u202e\\x07");
  });
});

describe("escapeFor", () => {
  it("escapes on a terminal and leaves the bytes alone elsewhere", () => {
    expect(escapeFor(true)("\x1b[2J")).toBe("\\x1b[2J");
    expect(escapeFor(false)("\x1b[2J")).toBe("\x1b[2J");
    expect(asIs("\x1b[2J\n")).toBe("\x1b[2J\n");
  });
});
