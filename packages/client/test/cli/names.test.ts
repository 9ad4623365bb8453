// The natural order in which the CLI lists process names.
import { describe, expect, it } from "vitest";
import { byName, naturalCompare } from "../../src/cli/names.js";

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
