#!/usr/bin/env node
// The moco-cxr command: runs the compiled CLI.
import '../dist/cli/run.js';
