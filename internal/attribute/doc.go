// Package attribute answers "which local process made this outbound
// connection attempt?" for outbound scan findings.
//
// What is exact: Outbound lists the sockets of the caller's network namespace
// with sock_diag (NETLINK_SOCK_DIAG), in every TCP state including SYN_SENT
// and for UDP, keeps those from the given local address to the given remote
// addresses, and maps each socket's inode to the processes holding it by
// reading /proc/PID/fd ("socket:[INODE]"). Those processes are
// Result.Exact: they own the sockets that made the attempts. The remotes
// are filtered in the kernel (inet_diag bytecode), so unrelated sockets cost
// little; a lookup costs about 1ms, mostly the kernel walking its TCP hash
// tables (BenchmarkOutbound).
//
// What is inference: raw-socket scanners (nmap -sS, masscan, zmap) write
// their SYNs through raw (AF_INET/AF_INET6 SOCK_RAW) or AF_PACKET sockets, so
// no TCP socket exists for sock_diag to find. When no socket matches,
// Result.Candidates lists the processes holding raw sockets (/proc/net/raw,
// /proc/net/raw6) or packet sockets (/proc/net/packet) in the namespace,
// except the caller itself (the daemon holds packet sockets). Any of them may
// have sent the packets, and many hold such sockets for other reasons
// (dhclient, tcpdump, lldpd); Result.How says which kind of answer it is.
//
// Limits:
//   - Sockets that closed before the lookup cannot be found by sock_diag:
//     look up while the scan is running, as soon as it is detected. A
//     connect() scan that has finished leaves at most TIME_WAIT entries,
//     which have no owner.
//   - A socket still open whose process is gone (or not yet seen by the
//     rate-limited /proc rescan) yields an Actor with only UID and User.
//   - PIDs are as the caller's /proc sees them: a process in another PID
//     namespace shows its PID in the daemon's namespace, not its own.
//   - Reading other users' /proc/PID/fd needs root or CAP_SYS_PTRACE; without
//     it only the caller's own sockets resolve to processes.
//   - Only the caller's network namespace is searched; call Outbound from a
//     thread that is in the namespace the traffic came from.
package attribute
