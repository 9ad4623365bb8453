import { ProcmonError } from "@procmon/client";
import { expect } from "vitest";

/** The error a call rejected with; fails the test if it succeeded or threw something else. */
export async function rejection(call: Promise<unknown>): Promise<ProcmonError> {
  try {
    await call;
  } catch (err) {
    expect(err).toBeInstanceOf(ProcmonError);
    return err as ProcmonError;
  }
  throw new Error("expected the call to fail, but it succeeded");
}
