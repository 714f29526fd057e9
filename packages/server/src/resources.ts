/**
 * What keeps this process's event loop busy, by kind (`Timeout`, `TCPSocketWrap`, …), from
 * Node's own count. Status dumps include it so a leak of sockets or timers shows as a number.
 */
export function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}
