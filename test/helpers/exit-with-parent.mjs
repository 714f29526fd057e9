// Loaded with --import into every CLI a test starts: if the test process dies without stopping
// its children (a killed worker, a timeout), the child notices it was re-parented and exits.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(1);
}, 500).unref();
