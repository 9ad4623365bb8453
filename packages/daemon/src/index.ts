export { type Daemon, type DaemonOverrides, startDaemon } from "./daemon.js";
export { type DaemonOptions, parseFlags } from "./flags.js";
