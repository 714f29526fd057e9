// Preloaded into the tunnel, relay and agent children (`node --import ./bench/exit-with-parent.mjs ...`) by
// bench/run.mjs, which holds this process's stdin open. If the benchmark dies without stopping
// its children (SIGKILL, a crash), stdin reaches EOF and this sends the tunnel its own SIGTERM,
// so it shuts down the usual way instead of living on as an orphan. The tunnel never reads stdin.
let fired = false;
function parentGone() {
  if (fired) return;
  fired = true;
  process.kill(process.pid, 'SIGTERM');
  // If the graceful shutdown hangs, do not linger.
  setTimeout(() => process.exit(1), 5_000).unref();
}
process.stdin.on('end', parentGone);
process.stdin.on('error', parentGone);
process.stdin.resume();
// Reading stdin must not by itself keep the process alive.
process.stdin.unref?.();
