// The contract's stop signals (procmon-v1.1 §B, ProcessSpec.stop_signal),
// shared by the daemon's rule and the CLI's option.

/** The signals a stop may begin with; SIGKILL follows after kill_time. */
export const STOP_SIGNALS = [
  "SIGTERM",
  "SIGINT",
  "SIGQUIT",
  "SIGHUP",
  "SIGUSR1",
  "SIGUSR2",
] as const;

/** A stop's first signal. */
export type StopSignalName = (typeof STOP_SIGNALS)[number];
