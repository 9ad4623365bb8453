// What /proc says of the processes a test's daemons run: their identity for
// ever (pid and start time) and the registry's marker in their environment.
import { readdirSync, readFileSync } from "node:fs";

/** The fields of /proc/<pid>/stat after the command; undefined once it is gone. */
export function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** The live processes (zombies left out) carrying `instance`'s marker, by PROCMON_NAME. */
export function marked(instance: string): Map<string, number[]> {
  const byName = new Map<string, number[]>();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    let environ: string[];
    try {
      environ = readFileSync(`/proc/${pid}/environ`, "latin1").split("\0");
    } catch {
      continue;
    }
    if (!environ.includes(`PROCMON_INSTANCE=${instance}`)) continue;
    const state = statFields(pid)?.[0];
    if (state === undefined || state === "Z") continue;
    const name = environ.find((e) => e.startsWith("PROCMON_NAME="))?.slice(13) ?? "";
    byName.set(name, [...(byName.get(name) ?? []), pid]);
  }
  return byName;
}
