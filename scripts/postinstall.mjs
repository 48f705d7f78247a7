#!/usr/bin/env node
// npm postinstall: build the native tensor kernels (native/, node-gyp, system oneDNN). Never fails the install:
// without the native addon the program runs on the stock tfjs cpu backend (slowly) and says so at start-up.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const say = (msg) => console.log(`[postinstall] ${msg}`);
const INSTALL_HINT = 'apt-get install libdnnl-dev libopenblas-dev';

// TFJS_NATIVE_PREFIXES (colon-separated install prefixes) replaces the standard locations, e.g. for a oneDNN
// under /opt; CPATH / LIBRARY_PATH directories are searched too, as the compiler and linker do.
const prefixes = process.env.TFJS_NATIVE_PREFIXES?.split(delimiter).filter(Boolean);

function dirsFrom(envVar, defaults) {
  return [...(process.env[envVar] ?? '').split(delimiter).filter(Boolean), ...defaults];
}

function findHeader(name) {
  const std = ['/usr/include', '/usr/local/include', '/opt/homebrew/include'];
  const dirs = dirsFrom('CPATH', prefixes ? prefixes.map((p) => join(p, 'include')) : std);
  return dirs.find((d) => existsSync(join(d, name))) ?? null;
}

function findLib(prefix) {
  const std = [
    '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib', '/opt/homebrew/lib',
  ];
  const dirs = dirsFrom('LIBRARY_PATH', prefixes ? prefixes.flatMap((p) => [join(p, 'lib'), join(p, 'lib64')]) : std);
  for (const d of dirs) {
    try {
      if (readdirSync(d).some((f) => f.startsWith(prefix) && (f.includes('.so') || f.endsWith('.dylib')))) return d;
    } catch {
      // directory absent
    }
  }
  return null;
}

function buildAddon() {
  if (process.env.TFJS_NATIVE_SKIP_BUILD) {
    say('TFJS_NATIVE_SKIP_BUILD set: not building the native addon');
    return;
  }
  // oneDNN is what the addon links (its Debian build brings GNU OpenMP, the one threading runtime we use).
  if (!findHeader('dnnl.hpp') || !findLib('libdnnl')) {
    say('oneDNN headers or library not found; the native-cpu tensor backend will not be built.');
    say('Install them with:');
    console.log(INSTALL_HINT);
    say('then run: npm run build:native');
    return;
  }
  const cxx = process.env.CXX ?? 'c++';
  if (spawnSync(cxx, ['--version'], { stdio: 'ignore' }).status !== 0) {
    say(`no C++ compiler (${cxx}); install one (apt-get install g++ make) and run: npm run build:native`);
    return;
  }
  let gyp;
  try {
    gyp = require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    say('node-gyp is not installed; run npm install, then npm run build:native');
    return;
  }
  const args = [gyp, 'rebuild', '--directory', join(root, 'native')];
  // Build against the headers of the running node so nothing is downloaded.
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
  say(`building the native tensor kernels: node ${args.slice(1).join(' ')}`);
  const env = { ...process.env };
  if (prefixes) {
    // The compiler and linker read these; at run time such a library also needs LD_LIBRARY_PATH.
    const join2 = (extra, cur) => [...extra, ...(cur ? [cur] : [])].join(delimiter);
    env.CPATH = join2(prefixes.map((p) => join(p, 'include')), env.CPATH);
    env.LIBRARY_PATH = join2(prefixes.flatMap((p) => [join(p, 'lib'), join(p, 'lib64')]), env.LIBRARY_PATH);
  }
  const r = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root, env });
  if (r.status === 0) say('native addon built: native/build/Release/tfjs_native.node');
  else say('native addon build FAILED (see above); the program will fall back to the stock cpu backend');
}

buildAddon();
process.exit(0);
