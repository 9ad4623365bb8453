// Builds procmon-shim with the system C compiler into native/build/. Run by
// the root package's `build` script (so by `npm ci`), and by CI for the
// sanitizer and fuzz builds:
//   node packages/daemon/native/build.mjs              build/procmon-shim
//   node packages/daemon/native/build.mjs --sanitize   build/procmon-shim-asan
//   node packages/daemon/native/build.mjs --fuzz       build/fuzz-frames (clang only)
// Without a usable compiler it warns and exits 0: the install must still
// succeed, and procmond then spawns from Node. A compiler that fails on the
// shim's own code fails the build: that is a bug to see.
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";

const here = import.meta.dirname;
const out = path.join(here, "build");
const shimSources = ["shim.c", "children.c", "index.c", "spawn.c", "proc.c", "frame.c"];
const strict = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE"];
const sanitizers = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"];

/** Whether `command` runs at all (a missing one fails to spawn). */
function present(command) {
  return spawnSync(command, ["--version"], { stdio: "ignore" }).error === undefined;
}

/**
 * Whether `compiler` can build a program with libc's headers: a cc without
 * libc6-dev is no compiler for this purpose, and must not fail the install.
 */
function usable(compiler) {
  if (!present(compiler)) return false;
  const probe = '#include <stdio.h>\nint main(void) { return puts("") < 0; }\n';
  const args = ["-x", "c", "-o", "/dev/null", "-"];
  return (
    spawnSync(compiler, args, { input: probe, stdio: ["pipe", "ignore", "ignore"] }).status === 0
  );
}

/** Compiles `sources` (relative to native/) into build/`name`; exits 1 on a compile error. */
function compile(compiler, flags, sources, name) {
  mkdirSync(out, { recursive: true });
  const args = [...strict, ...flags, "-o", path.join(out, name), ...sources];
  const result = spawnSync(compiler, args, { cwd: here, stdio: "inherit" });
  if (result.status !== 0) {
    console.error(`procmon: ${compiler} ${args.join(" ")} failed`);
    process.exit(1);
  }
  console.error(`procmon: built ${path.relative(process.cwd(), path.join(out, name))}`);
}

const mode = process.argv[2] ?? "";
if (mode === "--fuzz") {
  if (!present("clang")) {
    console.error("procmon: no clang: the fuzz target of the shim's frame decoder is not built");
    process.exit(0);
  }
  const flags = ["-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all"];
  compile("clang", flags, ["fuzz/fuzz-frames.c", "frame.c"], "fuzz-frames");
} else if (mode === "" || mode === "--sanitize") {
  const cc = process.env.CC || "cc";
  if (!usable(cc)) {
    console.error(
      "procmon: no C compiler: procmon-shim not built; procmond will spawn from Node (no process survival)",
    );
    process.exit(0);
  }
  if (mode === "") compile(cc, ["-O2"], shimSources, "procmon-shim");
  else {
    const flags = [...sanitizers, "-fno-omit-frame-pointer", "-g", "-O1"];
    compile(cc, flags, shimSources, "procmon-shim-asan");
  }
} else {
  console.error("usage: node build.mjs [--sanitize | --fuzz]");
  process.exit(2);
}
