#!/usr/bin/env -S node --max-semi-space-size=4
// --max-semi-space-size=4: see "Memory" in the README.
import "../dist/main.js";
