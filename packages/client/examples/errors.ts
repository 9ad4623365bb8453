import {
  Code,
  codeName,
  createClient,
  isAlreadyExists,
  isInvalidArgument,
  isNotFound,
  isUnavailable,
  ProcmonError,
} from "@procmon/client";

/** Provokes one error of each kind and tells them apart; returns "GUARD: message" lines. */
export async function main(socket: string): Promise<string[]> {
  const client = createClient({ socket, timeoutMs: 5_000 });
  const seen: string[] = [];
  try {
    try {
      await client.stopProcess("nope");
    } catch (err) {
      if (!isNotFound(err)) throw err;
      seen.push(`NOT_FOUND: ${err.message}`); // process "nope" does not exist
    }

    await client.addProcess({ name: "once", args: ["sleep", "600"] });
    try {
      await client.addProcess({ name: "once", args: ["sleep", "600"] });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      seen.push(`ALREADY_EXISTS: ${err.message}`);
    }
    await client.removeProcess("once");

    try {
      await client.addProcess({ name: "-bad name-", args: [] });
    } catch (err) {
      if (!isInvalidArgument(err)) throw err;
      seen.push(`INVALID_ARGUMENT: ${err.message}`); // nothing was added
    }

    // Any code, by name: every call rejects with a ProcmonError.
    try {
      await client.getProcess("nope", { timeoutMs: 1_000 });
    } catch (err) {
      if (!(err instanceof ProcmonError) || err.code !== Code.NOT_FOUND) throw err;
      seen.push(`${codeName(err.code)}: ${err.message}`);
    }
  } finally {
    client.close();
  }

  // No daemon there: fails at once, naming the socket.
  const nobody = createClient({ socket: `${socket}.missing` });
  try {
    await nobody.listProcesses();
  } catch (err) {
    if (!isUnavailable(err)) throw err;
    seen.push(`UNAVAILABLE: ${err.message}`); // cannot connect to procmond at ...: is it running?
  } finally {
    nobody.close();
  }
  return seen;
}
