// The parsers of add's v1.1 options: what each one turns its text into, and
// that a bad value is a usage error (commander's InvalidArgumentError) saying
// what was expected.
import { DependencyCondition, RestartPolicy } from "@procmon/api";
import { InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import {
  countArg,
  dependencyArg,
  exitCodesArg,
  httpUrlArg,
  restartArg,
  rssArg,
  signalArg,
  tcpArg,
  wordsArg,
} from "../../src/cli/arguments.js";

/** The usage error `parse` throws. */
function refusal(parse: () => unknown): string {
  try {
    parse();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return (err as Error).message;
  }
  throw new Error("it was accepted");
}

describe("--restart", () => {
  it("takes the three policies by their short names", () => {
    expect(restartArg("always")).toBe(RestartPolicy.ALWAYS);
    expect(restartArg("on-failure")).toBe(RestartPolicy.ON_FAILURE);
    expect(restartArg("never")).toBe(RestartPolicy.NEVER);
  });
  it("refuses anything else, listing them", () => {
    expect(refusal(() => restartArg("sometimes"))).toBe(
      "expected one of always, on-failure, never.",
    );
  });
});

describe("--success-exit-codes", () => {
  it("reads a comma list of 0-255, without repeats", () => {
    expect(exitCodesArg("0")).toEqual([0]);
    expect(exitCodesArg("0,2, 255,2")).toEqual([0, 2, 255]);
  });
  it("refuses codes past 255, signs, empty items and words", () => {
    for (const text of ["256", "-1", "0,", "", "ok", "1.5"]) {
      expect(refusal(() => exitCodesArg(text))).toMatch(/is not an exit code \(0 to 255\)/);
    }
  });
});

describe("--max-instant-deaths", () => {
  it("reads a count, 0 included", () => {
    expect(countArg("0")).toBe(0);
    expect(countArg("5")).toBe(5);
  });
  it("refuses negatives, fractions and overflow", () => {
    for (const text of ["-1", "1.5", "4294967296", "three"]) {
      expect(refusal(() => countArg(text))).toMatch(/is not a count/);
    }
  });
});

describe("--stop-signal", () => {
  it("normalises case and the SIG prefix", () => {
    expect(signalArg("SIGQUIT")).toBe("SIGQUIT");
    expect(signalArg("QUIT")).toBe("SIGQUIT");
    expect(signalArg("int")).toBe("SIGINT");
    expect(signalArg("sigusr2")).toBe("SIGUSR2");
    for (const name of ["TERM", "HUP", "USR1"]) expect(signalArg(name)).toBe(`SIG${name}`);
  });
  it("refuses SIGKILL (it always follows) and unknown signals, listing the six", () => {
    expect(refusal(() => signalArg("KILL"))).toBe(
      '"KILL" is not one of SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2.',
    );
    expect(refusal(() => signalArg("9"))).toMatch(/is not one of/);
  });
});

describe("--depends-on", () => {
  it("defaults to started, reads a known condition after the last colon, and repeats", () => {
    const db = dependencyArg("db", undefined);
    expect(db).toEqual([{ name: "db", condition: DependencyCondition.STARTED }]);
    const two = dependencyArg("migrate:exited-ok", db);
    expect(two).toEqual([
      { name: "db", condition: DependencyCondition.STARTED },
      { name: "migrate", condition: DependencyCondition.EXITED_OK },
    ]);
    expect(dependencyArg("db:ready", undefined)).toEqual([
      { name: "db", condition: DependencyCondition.READY },
    ]);
  });
  it("keeps colons that are part of the name", () => {
    expect(dependencyArg("web:1", undefined)).toEqual([
      { name: "web:1", condition: DependencyCondition.STARTED },
    ]);
    expect(dependencyArg("web:1:ready", undefined)).toEqual([
      { name: "web:1", condition: DependencyCondition.READY },
    ]);
  });
  it("refuses a condition without a name", () => {
    expect(refusal(() => dependencyArg(":ready", undefined))).toBe('":ready" names no process.');
    expect(refusal(() => dependencyArg("", undefined))).toMatch(/names no process/);
  });
});

describe("--ready-exec", () => {
  it("splits on whitespace, as a shell would", () => {
    expect(wordsArg("pg_isready -h  127.0.0.1\t-p 5432")).toEqual([
      "pg_isready",
      "-h",
      "127.0.0.1",
      "-p",
      "5432",
    ]);
  });
  it("keeps quoted words whole, and sh -c with a script works", () => {
    expect(wordsArg(`sh -c "curl -sf localhost:8080 | grep ok"`)).toEqual([
      "sh",
      "-c",
      "curl -sf localhost:8080 | grep ok",
    ]);
    expect(wordsArg(`echo 'it''s' "a \\"b\\" \\n" c\\ d ''`)).toEqual([
      "echo",
      "its",
      'a "b" \\n',
      "c d",
      "",
    ]);
  });
  it("expands nothing", () => {
    expect(wordsArg("test -f $HOME/*.pid")).toEqual(["test", "-f", "$HOME/*.pid"]);
  });
  it("refuses an empty command, an open quote and a trailing backslash", () => {
    expect(refusal(() => wordsArg("  "))).toBe("the command is empty.");
    expect(refusal(() => wordsArg(`sh -c "exit 0`))).toBe('a " quote is not closed.');
    expect(refusal(() => wordsArg("true \\"))).toBe("it ends with a lone backslash.");
  });
});

describe("--ready-tcp", () => {
  it("reads PORT, HOST:PORT and [IPv6]:PORT", () => {
    expect(tcpArg("5432")).toEqual({ host: "", port: 5432 });
    expect(tcpArg("db.local:5432")).toEqual({ host: "db.local", port: 5432 });
    expect(tcpArg("[::1]:8080")).toEqual({ host: "::1", port: 8080 });
  });
  it("refuses ports out of range, bare IPv6 and missing ports", () => {
    for (const text of ["0", "65536", "::1:80", "db.local", "db:", ""]) {
      expect(refusal(() => tcpArg(text))).toMatch(/is not \[HOST:\]PORT/);
    }
  });
});

describe("--ready-http", () => {
  it("takes http and https URLs as written", () => {
    expect(httpUrlArg("http://127.0.0.1:8080/healthz")).toBe("http://127.0.0.1:8080/healthz");
    expect(httpUrlArg("https://example.test")).toBe("https://example.test");
  });
  it("refuses other schemes and non-URLs", () => {
    expect(refusal(() => httpUrlArg("ftp://x"))).toMatch(/is not an http:\/\/ or https:\/\/ URL/);
    expect(refusal(() => httpUrlArg("localhost:8080"))).toMatch(/http:\/\/ or https:\/\//);
    expect(refusal(() => httpUrlArg("/healthz"))).toMatch(/is not a URL/);
  });
});

describe("--max-rss", () => {
  it("reads binary sizes, 0 for no cap", () => {
    expect(rssArg("512MiB")).toBe(512n * 1024n * 1024n);
    expect(rssArg("512M")).toBe(512n * 1024n * 1024n);
    expect(rssArg("1GiB")).toBe(1024n ** 3n);
    expect(rssArg("1048576")).toBe(1048576n);
    expect(rssArg("0")).toBe(0n);
  });
  it("refuses a cap under 1 MiB, as the daemon would", () => {
    expect(refusal(() => rssArg("512KiB"))).toBe(
      '"512KiB" is below 1MiB, the smallest cap (0: no cap).',
    );
  });
  it("refuses decimal units rather than guess", () => {
    expect(refusal(() => rssArg("100MB"))).toMatch(/write MiB or M \(sizes are binary/);
  });
});
