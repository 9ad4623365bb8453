// Memory sizes: read in binary units, shown for people and written back exactly.
import { describe, expect, it } from "vitest";
import { formatBytes, formatSize, parseSize } from "../../src/cli/sizes.js";

const MIB = 1024n * 1024n;

describe("parseSize", () => {
  it("reads bytes and every binary unit, in any case, with or without i and B", () => {
    expect(parseSize("100")).toBe(100n);
    expect(parseSize("100B")).toBe(100n);
    expect(parseSize("2k")).toBe(2048n);
    expect(parseSize("2KiB")).toBe(2048n);
    expect(parseSize("100M")).toBe(100n * MIB);
    expect(parseSize("100 mib")).toBe(100n * MIB);
    expect(parseSize("1G")).toBe(1024n * MIB);
    expect(parseSize("1TiB")).toBe(1024n * 1024n * MIB);
  });
  it("rounds fractions down to whole bytes", () => {
    expect(parseSize("1.5GiB")).toBe(1536n * MIB);
    expect(parseSize("0.5K")).toBe(512n);
    expect(parseSize("1.0001K")).toBe(1024n);
  });
  it("refuses decimal units, unknown units, signs and sizes past 2^53", () => {
    expect(() => parseSize("1GB")).toThrow(/write GiB or G/);
    expect(() => parseSize("1kb")).toThrow(/write KiB or K/);
    expect(() => parseSize("1X")).toThrow(/is not a size such as 512MiB/);
    expect(() => parseSize("-1M")).toThrow(/is not a size/);
    expect(() => parseSize("")).toThrow(/is not a size/);
    expect(() => parseSize("9999999T")).toThrow(/too large/);
  });
});

describe("formatBytes", () => {
  it("picks the largest unit that fits, one decimal", () => {
    expect(formatBytes(0n)).toBe("0 B");
    expect(formatBytes(1023n)).toBe("1023 B");
    expect(formatBytes(1536n)).toBe("1.5 KiB");
    expect(formatBytes(12_897_485n)).toBe("12.3 MiB");
    expect(formatBytes(1024n * MIB)).toBe("1.0 GiB");
  });
});

describe("formatSize", () => {
  it("writes a size back as the command line takes it, exactly", () => {
    expect(formatSize(512n * MIB)).toBe("512MiB");
    expect(formatSize(1024n * MIB)).toBe("1GiB");
    expect(formatSize(1536n * MIB)).toBe("1536MiB");
    expect(formatSize(MIB + 1n)).toBe("1048577B");
    for (const text of ["512MiB", "1GiB", "1536MiB", "1048577B"]) {
      expect(formatSize(parseSize(text))).toBe(text);
    }
  });
});
