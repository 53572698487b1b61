// Package flowlog is the router's connection log: one record (Flow) per
// finished conntrack connection, kept for months, so that an operator can
// ask "who connected to 198.51.100.103:6881 between 15:50 and 16:05 on 18
// June?" and get the internal client behind the NAT.
//
// It owns the on-disk format, retention, and queries over it. It knows
// nothing of conntrack or netlink: the daemon turns events into Flows.
//
// # Layout
//
// A directory holds one SQLite file per period (Options.Partition, a day by
// default, aligned to UTC): flows-20260618.db. A flow goes to the partition
// of its end time; only the newest partition is written, the others are
// closed. Retention (Expire) removes whole files, so dropping a day costs
// the same whatever it holds, and never a DELETE.
//
// Inside a partition, flows are stored in blocks of up to BlockFlows
// (1 024): Append buffers BatchFlows (65 536) flows (the few lasting over
// five minutes in batches of their own, so that the other blocks span a
// short time), the writer sorts them by source address and start, cuts
// them into blocks,
// encodes each block by columns (runs of equal source; times as deltas;
// ports as 2 bytes; destination addresses, ports, NAT addresses and names
// through per-block dictionaries, most frequent first; counters as
// varints) and compresses it with zstd. See block.go for the exact layout.
// Each block has a row in an index table (time bounds, source and
// NAT-source address ranges) and a Bloom filter over its destination
// addresses and ports; the index, the filters and the data are separate
// tables, so a query reads the data of only the blocks that may match.
//
// Sorting by source is what makes "everything this client did" fast: a
// client's flows of a batch are in one or two blocks, found by the index's
// source ranges. Destinations are found through the filters.
//
// # Guarantees
//
//   - Exact results: the index and filters only ever let through blocks
//     that hold no match, never hide one; every flow read is checked
//     against the whole Filter. Times are kept to the nanosecond.
//   - Durability: a flow is on disk at most FlushEvery (5 s) after Append
//     (Flush: at once), written ahead as "tail" blocks that the batch's
//     final commit replaces in the same transaction, so a reader sees each
//     flow exactly once. Commits use SQLite's WAL with synchronous=NORMAL:
//     they survive the process being killed; a power cut can take back the
//     last seconds. After a crash Open recovers: SQLite drops a torn last
//     write, half-created partitions are removed, tail blocks are sorted
//     into proper blocks, a newest partition too damaged to open is moved
//     aside, and nothing older is touched.
//   - Concurrency: one goroutine appends, any number query, in this process
//     or another (OpenReadOnly, for the CLI while the daemon writes). Only
//     one process may write a directory (an flock on flowlog.lock).
//   - Robustness: a block that does not decode is skipped and counted, and
//     the Query that met it returns an error wrapping ErrCorrupt after the
//     results; block decoding checks every length and index (fuzzed:
//     FuzzDecodeBlock, FuzzScanExport).
//   - Bounded memory: at most six batches of flows (136 bytes each, ~40 MB
//     at the default BatchFlows) on the write side; Append blocks when the
//     writer is a batch behind. A query holds a few blocks at a time, plus the matches the
//     callback has not yet taken.
//   - Export: a closed partition as one self-describing zstd stream (see
//     export.go), which ScanExport reads directly and Import turns back into
//     a partition file.
//
// # Limits
//
//   - A flow ending before the newest partition began (clock step,
//     reordering) is written to the newest one (Stats.Late), and kept until
//     that one expires. A flow ending more than an hour after the clock goes
//     by the clock.
//   - A destination in most blocks (one's own server, a big CDN) defeats the
//     filters: a query for it reads every block in its time range. Source
//     queries on prefixes are pruned by the index; destination queries only
//     for a single address.
//   - Query returns flows in no particular order.
//   - IPv6 zones are not stored; Iface and Comm are at most 256 bytes.
package flowlog
