// Package connwatch records every outbound TCP connect() as it happens,
// with the process that made it, so that an outbound port scan can be
// named even after its sockets are gone.
//
// # Why
//
// The attribute package finds the process behind a connection by listing
// SYN_SENT sockets (sock_diag) and matching their inodes in /proc/PID/fd.
// A connect() scan of closed ports defeats that: each SYN is answered by a
// RST within microseconds, the socket is closed, and by the time anyone
// looks there is nothing left. Only a record made at connect time survives.
//
// # What it records
//
// A BPF program on the tracepoint sock/inet_sock_set_state runs whenever
// a socket changes TCP state. It keeps the transitions of TCP
// sockets to SYN_SENT, which the kernel makes in tcp_v4_connect and
// tcp_v6_connect in the context of the task calling connect(), and writes
// one fixed 96-byte record to a BPF ring buffer: boot-clock time, thread
// group id (the process) and thread id, uid and gid, cgroup v2 id, task
// comm, family, local and remote address and the remote port. The local
// port is not recorded: it is hashed just after this transition and is
// usually still 0. The program is assembled at run time with
// github.com/cilium/ebpf/asm (no clang), so a kernel that moves a field is
// followed rather than misread:
//
//   - Where the kernel has BTF (/sys/kernel/btf/vmlinux, Debian and most
//     distributions since 2021), on the raw tracepoint: the program gets
//     the socket and the new state as the kernel passes them, returns at
//     once for the four or so other state changes of every connection,
//     and reads the socket's fields (offsets from BTF) with
//     bpf_probe_read_kernel. The classic tracepoint makes the kernel copy
//     twelve fields into a perf record for every change before the program
//     can look at the state (raw.go).
//   - Otherwise on the classic tracepoint, using the field offsets the
//     kernel publishes in the tracepoint's format file.
//
// Watcher.Attach says which.
//
// The program does not wake the reader for each record (that wakeup more
// than doubled the cost of a refused connect() on a 2-core VM); Run polls
// every 10 ms, and the program wakes it early when a quarter of the ring
// is unread. The overhead left is about 1 µs per connect()
// (BenchmarkConnectOverhead).
//
// A Watcher reads the ring buffer into an in-memory index bounded in count
// (Options.MaxConns, oldest evicted first) and age (Options.MaxAge), keyed
// by remote address, so that Lookup(src, dsts, since) is cheap. Connections
// from every network namespace arrive; callers match by address.
// IPv4-mapped IPv6 addresses (a dual-stack socket connecting to IPv4) are
// unmapped, so they match the IPv4 packets a sensor sees.
//
// # Requirements
//
//   - Root, or CAP_BPF with CAP_PERFMON (kernel 5.8+), plus read access to
//     tracefs where the classic tracepoint is used. Without them Open fails with an error wrapping
//     ErrUnsupported that says what is missing.
//   - Linux 5.8 or later: BPF ring buffers and bpf_ktime_get_boot_ns.
//   - Kernel BTF for the raw tracepoint; or else tracefs, at /sys/kernel/tracing or /sys/kernel/debug/tracing. If
//     neither is mounted and the process runs as root, Open mounts tracefs
//     at /sys/kernel/tracing (mount -t tracefs nodev /sys/kernel/tracing)
//     and leaves it mounted; systemd normally mounts it at boot.
//   - On kernels before 5.11, BPF memory counts against RLIMIT_MEMLOCK;
//     Open lifts that limit for the process (rlimit.RemoveMemlock).
//
// # What it does not see
//
//   - Raw-socket scanners (nmap -sS, masscan, zmap) build their own SYNs
//     and never call connect(); no socket changes state. The packet
//     sensors see those scans, and the process must be found another way
//     (a raw socket in /proc/net/raw, for example).
//   - UDP: a UDP "connect" sends nothing and a UDP scan need not connect at
//     all; only TCP is recorded.
//   - Connects made before Open, or dropped because the ring buffer was full
//     (counted in Stats.Lost).
//   - The user behind a connect made by someone else's task: a connect
//     punted to an io_uring worker is recorded under that worker thread
//     (same process, comm iou-wrk-N), and a kernel-made connect (NFS,
//     iSCSI) under whichever task was running.
package connwatch
