// The committed generated code must be what `buf generate` makes of the
// committed protos today: the suite fails when someone forgets to regenerate.
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { afterAll, expect, it } from "vitest";
import { cleanupAll, makeTempDir, ROOT } from "./helpers/daemon.js";

const GEN = "packages/api/src/gen";

afterAll(cleanupAll);

/** Every file under `dir`, as paths relative to it, sorted. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

it("packages/api/src/gen is what buf generate makes of the protos", async () => {
  const out = makeTempDir("procmon-gen-");
  await new Promise<void>((resolve, reject) => {
    execFile(
      join(ROOT, "node_modules/.bin/buf"),
      ["generate", "--output", out],
      {
        cwd: ROOT,
        timeout: 30_000,
        // buf.gen.yaml names the local protoc-gen-es, found on PATH.
        env: { ...process.env, PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH}` },
      },
      (err, _stdout, stderr) =>
        err ? reject(new Error(`buf generate failed: ${err.message}\n${stderr}`)) : resolve(),
    );
  });

  const committed = join(ROOT, GEN);
  const generated = join(out, GEN);
  const files = filesUnder(generated);
  expect(files.length).toBeGreaterThan(0);
  expect(files).toContain("procmon/v1/procmon_pb.ts");
  // No file missing from or extra in the committed tree.
  expect(filesUnder(committed)).toEqual(files);
  const differing = files.filter(
    (file) => !readFileSync(join(committed, file)).equals(readFileSync(join(generated, file))),
  );
  expect(
    differing.map((file) => firstDifference(join(committed, file), join(generated, file))),
    "the committed generated code is stale: run `npm run generate`",
  ).toEqual([]);
}, 60_000);

/** Where two files first differ, for a failure message that shows what changed. */
function firstDifference(committed: string, fresh: string): string {
  const a = readFileSync(committed, "utf8").split("\n");
  const b = readFileSync(fresh, "utf8").split("\n");
  const line = a.findIndex((text, i) => text !== b[i]);
  const at = line === -1 ? a.length : line;
  return `${relative(ROOT, committed)}:${at + 1}: committed ${JSON.stringify(a[at])}, generated ${JSON.stringify(b[at])}`;
}
