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
 * A cycle among `graph`'s dependencies (names → the names they depend on),
 * as the path that closes it (`["a", "b", "a"]`); undefined when there is none.
 * Names not in the graph end a path: they are waited for, never a cycle.
 */
export function findCycle(
  graph: ReadonlyMap<string, readonly string[]>,
  /** Where to look first: the message of a refusal starts at the spec being added. */
  from: readonly string[] = [],
): string[] | undefined {
  const done = new Set<string>();
  const onPath: string[] = [];
  const visit = (name: string): string[] | undefined => {
    const at = onPath.indexOf(name);
    if (at >= 0) return [...onPath.slice(at), name];
    if (done.has(name) || !graph.has(name)) return undefined;
    onPath.push(name);
    for (const next of graph.get(name) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    onPath.pop();
    done.add(name);
    return undefined;
  };
  for (const name of [...from, ...graph.keys()]) {
    const cycle = visit(name);
    if (cycle) return cycle;
  }
  return undefined;
}

/**
 * Refuses a registry whose dependencies would make a cycle.
 * @throws ProcmonError invalid_argument naming the cycle: `"a" -> "b" -> "a"`.
 */
export function refuseCycles(
  graph: ReadonlyMap<string, readonly string[]>,
  from: readonly string[] = [],
): void {
  const cycle = findCycle(graph, from);
  if (cycle === undefined) return;
  throw new ProcmonError(
    "invalid_argument",
    `depends_on makes a cycle: ${cycle.map((name) => quote(name)).join(" -> ")}`,
  );
}
