// The natural order in which the CLI lists process names.
import { describe, expect, it } from "vitest";
import { byName, globMatcher, isPattern, naturalCompare } from "../../src/cli/names.js";

const sorted = (names: string[]) => [...names].sort(naturalCompare);

describe("naturalCompare", () => {
  it("compares digit runs as numbers", () => {
    expect(sorted(["p10", "p2", "p1", "p20", "p3"])).toEqual(["p1", "p2", "p3", "p10", "p20"]);
    expect(sorted(["web-10.log", "web-9.log", "web-1.log"])).toEqual([
      "web-1.log",
      "web-9.log",
      "web-10.log",
    ]);
    expect(sorted(["a2b10", "a2b9", "a10b1", "a1"])).toEqual(["a1", "a2b9", "a2b10", "a10b1"]);
  });

  it("keeps the plain order for text, and a prefix before a longer name", () => {
    expect(sorted(["web", "api", "db", "Web"])).toEqual(["Web", "api", "db", "web"]);
    expect(sorted(["p1", "p", "p-1"])).toEqual(["p", "p-1", "p1"]);
    expect(naturalCompare("web", "web")).toBe(0);
  });

  it("orders numbers beyond 2^53 and leading zeros without ties", () => {
    expect(naturalCompare("n99999999999999999999", "n100000000000000000000")).toBeLessThan(0);
    expect(naturalCompare("p01", "p1")).not.toBe(0);
    expect(naturalCompare("p01", "p1")).toBe(-naturalCompare("p1", "p01"));
    expect(sorted(["p02", "p1", "p01", "p3"])).toEqual(["p01", "p1", "p02", "p3"]);
  });

  it("is a total order on a mixed set (antisymmetric and transitive)", () => {
    const names = [
      "p",
      "p0",
      "p00",
      "p1",
      "p01",
      "p-1",
      "p10",
      "p9a",
      "p9",
      "p.2",
      "q",
      "1",
      "01",
      "",
    ];
    for (const a of names) {
      for (const b of names) {
        expect(Math.sign(naturalCompare(a, b)) + Math.sign(naturalCompare(b, a))).toBe(0);
        if (a !== b) expect(naturalCompare(a, b)).not.toBe(0);
        for (const c of names) {
          if (naturalCompare(a, b) < 0 && naturalCompare(b, c) < 0) {
            expect(naturalCompare(a, c)).toBeLessThan(0);
          }
        }
      }
    }
  });
});

describe("byName", () => {
  it("sorts a copy by the name it reads", () => {
    const items = [{ n: "p10" }, { n: "p2" }];
    expect(byName(items, (i) => i.n).map((i) => i.n)).toEqual(["p2", "p10"]);
    expect(items[0]?.n).toBe("p10");
  });
});

describe("isPattern", () => {
  it("is all, or a word with * ? or [", () => {
    expect(isPattern("all")).toBe(true);
    expect(isPattern("web-*")).toBe(true);
    expect(isPattern("web-?")).toBe(true);
    expect(isPattern("[ab]pi")).toBe(true);
    expect(isPattern("web")).toBe(false);
    expect(isPattern("all2")).toBe(false);
    expect(isPattern("db:primary@1.2")).toBe(false);
    expect(isPattern("web-[!1]*")).toBe(true);
    // Not made of name characters: sent to the daemon as a name, for its own error.
    expect(isPattern("x\x1b[2J")).toBe(false);
    expect(isPattern("web *")).toBe(false);
  });
});

describe("globMatcher", () => {
  const match = (pattern: string, names: string[]) => names.filter(globMatcher(pattern));
  const names = ["web-1", "web-2", "web-10", "web", "api", "db", "worker.a", "w"];

  it("matches all, *, ? and sets against the whole name", () => {
    expect(match("all", names)).toEqual(names);
    expect(match("web-*", names)).toEqual(["web-1", "web-2", "web-10"]);
    expect(match("web*", names)).toEqual(["web-1", "web-2", "web-10", "web"]);
    expect(match("web-?", names)).toEqual(["web-1", "web-2"]);
    expect(match("*b", names)).toEqual(["web", "db"]);
    expect(match("*", names)).toEqual(names);
    expect(match("w*", names)).toEqual(["web-1", "web-2", "web-10", "web", "worker.a", "w"]);
    expect(match("[ad]*", names)).toEqual(["api", "db"]);
    expect(match("web-[1-5]", names)).toEqual(["web-1", "web-2"]);
    expect(match("web-[!1]", names)).toEqual(["web-2"]);
    expect(match("web-[^1]*", names)).toEqual(["web-2"]);
    expect(match("*-*0", names)).toEqual(["web-10"]);
  });

  it("reads no character as a regular expression would", () => {
    expect(match("worker.a", ["worker.a", "workerxa"])).toEqual(["worker.a"]);
    expect(match("w.*", ["worker.a", "w.x"])).toEqual(["w.x"]);
    expect(match("a+", ["a", "aa", "a+"])).toEqual(["a+"]);
    expect(match("(a|b)", ["a", "b", "(a|b)"])).toEqual(["(a|b)"]);
    expect(match("^a$", ["a", "^a$"])).toEqual(["^a$"]);
    expect(match("a{2}", ["aa", "a{2}"])).toEqual(["a{2}"]);
  });

  it("keeps a [ without ] literal, a ] first in a set, - at a set's end, and \\ escapes", () => {
    expect(match("web[", ["web[", "web"])).toEqual(["web["]);
    expect(match("[]a]", ["]", "a", "b"])).toEqual(["]", "a"]);
    expect(match("[a-]", ["a", "-", "b"])).toEqual(["a", "-"]);
    expect(match("\\*", ["*", "a"])).toEqual(["*"]);
    expect(match("[a]ll", ["all", "ball"])).toEqual(["all"]);
  });

  it("takes linear-ish time on a pattern that would backtrack a regex", () => {
    const name = "a".repeat(5_000);
    const started = performance.now();
    expect(globMatcher(`${"*a".repeat(50)}*b`)(name)).toBe(false);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
