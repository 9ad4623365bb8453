import { ProcmonError } from "./errors.js";
import { quote } from "./quote.js";
import type { Dependency, DependencyCondition, StateName } from "./types.js";

/** What a dependency's condition is judged on: its state now. */
export interface DependencyState {
  readonly state: StateName;
  /** Its readiness probe has passed in the current run (true without a probe). */
  readonly ready: boolean;
  /** The exit code of its last run; null for a signal; undefined before any. */
  readonly lastExitCode: number | null | undefined;
}

/** True if a dependency in `state` meets `condition`. */
export function meets(condition: DependencyCondition, state: DependencyState): boolean {
  switch (condition) {
    case "started":
      return state.state === "running";
    case "ready":
      return state.state === "running" && state.ready;
    case "exited-ok":
      return state.state === "exited" && state.lastExitCode === 0;
  }
}

/** The names of `dependsOn` not met now (a name not registered is not met), in order. */
export function unmet(
  dependsOn: readonly Dependency[],
  lookup: (name: string) => DependencyState | undefined,
): string[] {
  return dependsOn
    .filter((dep) => {
      const state = lookup(dep.name);
      return state === undefined || !meets(dep.condition, state);
    })
    .map((dep) => dep.name);
}

/**
 * A cycle among the dependencies (`next(name)`: the names `name` depends on,
 * undefined for a name not registered), as the path that closes it
 * (`["a", "b", "a"]`); undefined when there is none. The search starts from
 * `from`: when the rest was acyclic before they changed, any cycle passes
 * through one of them. Names not registered end a path: they are waited for.
 */
export function findCycle(
  next: (name: string) => readonly string[] | undefined,
  from: Iterable<string>,
): string[] | undefined {
  const done = new Set<string>();
  const onPath: string[] = [];
  const visit = (name: string): string[] | undefined => {
    const at = onPath.indexOf(name);
    if (at >= 0) return [...onPath.slice(at), name];
    const edges = done.has(name) ? undefined : next(name);
    if (edges === undefined) return undefined;
    onPath.push(name);
    for (const edge of edges) {
      const cycle = visit(edge);
      if (cycle) return cycle;
    }
    onPath.pop();
    done.add(name);
    return undefined;
  };
  for (const name of from) {
    const cycle = visit(name);
    if (cycle) return cycle;
  }
  return undefined;
}

/**
 * Refuses dependencies that make a cycle (see {@link findCycle}).
 * @throws ProcmonError invalid_argument naming the cycle: `"a" -> "b" -> "a"`.
 */
export function refuseCycles(
  next: (name: string) => readonly string[] | undefined,
  from: Iterable<string>,
): void {
  const cycle = findCycle(next, from);
  if (cycle === undefined) return;
  throw new ProcmonError(
    "invalid_argument",
    `depends_on makes a cycle: ${cycle.map((name) => quote(name)).join(" -> ")}`,
  );
}
