// Every installed package must accept the oldest Node the project declares:
// npm only warns (EBADENGINE) when one does not, and the install goes on to
// run code written for a newer Node.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./helpers/daemon.js";

type Version = readonly [number, number, number];

function parseVersion(text: string): Version {
  const parts = text.replace(/^v/, "").split(".");
  const num = (i: number) => {
    const part = parts[i];
    return part === undefined || part === "x" || part === "*" ? 0 : Number(part);
  };
  return [num(0), num(1), num(2)];
}

function compare(a: Version, b: Version): number {
  for (let i = 0; i < 3; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Whether `version` satisfies one comparator set of an engines range, in the
 * forms npm packages use (`>=20`, `>= 10.x`, `^20.11`, `6.* || 8.*`, `*`).
 * @throws Error for a form this test does not know, so that it is looked at.
 */
function satisfies(version: Version, range: string): boolean {
  return range.split("||").some((alternative) => {
    const comparators = alternative
      .trim()
      .replace(/(>=|<=|>|<|\^|~)\s+/g, "$1")
      .split(/\s+/);
    return comparators.every((comparator) => {
      if (comparator === "*" || comparator === "") return true;
      const match = /^(>=|<=|>|<|\^|~|=)?v?(\d+(?:\.(?:\d+|x|\*))*)$/.exec(comparator);
      if (!match) throw new Error(`unknown engines range "${range}"`);
      const [, op = "", text = ""] = match;
      const bound = parseVersion(text);
      const c = compare(version, bound);
      const wildcard = op === "" || op === "=";
      switch (op) {
        case ">=":
          return c >= 0;
        case ">":
          return c > 0;
        case "<=":
          return c <= 0;
        case "<":
          return c < 0;
        case "^":
          return c >= 0 && version[0] === bound[0];
        case "~":
          return c >= 0 && version[0] === bound[0] && version[1] === bound[1];
        default:
          if (!wildcard) throw new Error(`unknown operator in "${range}"`);
          // "6.*" or "20": the same major (and minor, when given).
          return text
            .split(".")
            .every((part, i) => part === "x" || part === "*" || Number(part) === version[i]);
      }
    });
  });
}

describe("engines", () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
    engines: { node: string };
  };
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
    packages: Record<string, { engines?: { node?: string } | string[]; dev?: boolean }>;
  };
  const oldestOf = (range: string) => parseVersion(/(\d+(?:\.\d+)*)/.exec(range)?.[1] ?? "0");
  const refusing = (oldest: Version, entries: Array<[string, { engines?: unknown }]>) =>
    entries.flatMap(([path, entry]) => {
      const engines = entry.engines as { node?: string } | string[] | undefined;
      const node = Array.isArray(engines) ? undefined : engines?.node;
      return node === undefined || satisfies(oldest, node) ? [] : [`${path} wants node ${node}`];
    });
  const oldest = oldestOf(pkg.engines.node);

  it("reads the ranges it checks", () => {
    expect(satisfies([20, 11, 0], ">=22")).toBe(false);
    expect(satisfies([20, 11, 0], ">= 10.x")).toBe(true);
    expect(satisfies([20, 11, 0], "6.* || 8.* || >= 10.*")).toBe(true);
    expect(satisfies([20, 11, 0], "^18 || ^20.12")).toBe(false);
    expect(() => satisfies([20, 11, 0], "node20")).toThrow(/unknown/);
  });

  it(`every locked package accepts Node ${oldest.join(".")}, the oldest package.json allows`, () => {
    expect(refusing(oldest, Object.entries(lock.packages))).toEqual([]);
  });

  it("the published packages' runtime dependencies accept the Node they declare", () => {
    const runtime = Object.entries(lock.packages).filter(
      ([path, entry]) => path !== "" && entry.dev !== true,
    );
    for (const name of ["client", "daemon"]) {
      const own = JSON.parse(
        readFileSync(join(ROOT, "packages", name, "package.json"), "utf8"),
      ) as { engines: { node: string } };
      expect(refusing(oldestOf(own.engines.node), runtime), name).toEqual([]);
    }
  });
});
