// vggserve_process.mjs - start `vggserve serve` for the Node tests (tests/openapi, tests/browser).
//
// Like test_server.py's Server: the real binary on a free loopback port (--port 0, the port
// read from the "listening on" event on stderr), generated weights, used once GET /readyz
// answers 200. The process runs under coreutils `timeout`, so a test runner killed hard
// (ctest's timeout) cannot leave a server behind for long; stop() kills it at once (timeout
// puts itself and the server in a process group of their own, killed together).
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const READY_TIMEOUT_MS = 180_000; // loading + warm-up is 5-15 s on two cores; CI can be slower
const SERVER_LIFETIME_S = 1500; // upper bound on any one test file

// Installs the npm dependencies of a test folder (its package-lock.json) into its
// node_modules (ignored by git) when they are missing.
export function npmInstall(dir, probe) {
  if (existsSync(join(dir, "node_modules", probe))) return;
  const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd: dir,
    stdio: "inherit",
  });
  if (r.status !== 0) throw new Error(`npm ci in ${dir} failed (status ${r.status}); the npm registry is needed once`);
}

export class Server {
  constructor(bin, flags = []) {
    this.bin = bin;
    this.flags = ["--host", "127.0.0.1", "--port", "0", ...flags];
    this.out = "";
    this.err = "";
    this.port = null;
    this.notReady = []; // {path, status, headers, body} seen while loading or warming
  }

  // Starts the server; onNotReady(port) runs once while /readyz still answers 503.
  async start(onNotReady = null) {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("VGGSERVE_")));
    this.proc = spawn("timeout", ["-s", "KILL", String(SERVER_LIFETIME_S), this.bin, "serve", ...this.flags], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.proc.stdout.on("data", (d) => (this.out += d));
    this.proc.stderr.on("data", (d) => (this.err += d));
    this.exited = new Promise((resolve) => this.proc.on("exit", (code, signal) => resolve({ code, signal })));
    process.on("exit", () => this.kill());
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let hooked = false;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`vggserve exited (${this.proc.exitCode})\n${this.logs()}`);
      const m = /listening on https?:\/\/127\.0\.0\.1:(\d+)/.exec(this.err);
      if (m && this.port === null) this.port = Number(m[1]);
      if (this.port !== null) {
        try {
          const r = await fetch(this.url("/readyz"));
          await r.arrayBuffer();
          if (r.status === 200) return this;
          if (r.status === 503 && onNotReady && !hooked) {
            hooked = true;
            await onNotReady(this);
          }
        } catch {
          // not accepting yet
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await this.stop();
    throw new Error(`vggserve not ready after ${READY_TIMEOUT_MS} ms\n${this.logs()}`);
  }

  url(path) {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  logs(tail = 40) {
    const last = (t) => t.split("\n").slice(-tail).join("\n");
    return `----- stdout (access log) -----\n${last(this.out)}\n----- stderr -----\n${last(this.err)}`;
  }

  kill() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      try {
        process.kill(-this.proc.pid, "SIGKILL"); // timeout and the server
      } catch {
        this.proc.kill("SIGKILL");
      }
    }
  }

  async stop() {
    if (!this.proc) return;
    this.kill();
    await this.exited;
  }
}
