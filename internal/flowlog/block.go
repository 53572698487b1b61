package flowlog

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// A block holds up to Options.BlockFlows flows sorted by (Src, Start), in
// columns, compressed with zstd. Before compression:
//
//	byte     format version (1)
//	uvarint  n, the number of flows (1 to maxBlockFlows)
//	varint   base: the smallest start time (Unix ns, zigzag)
//	uvarint  number of columns (at least numCols; later ones are ignored)
//	uvarint  the byte length of each column
//	...      the columns, in the order of the col* constants
//
// Columns of "n" entries have one per flow; those marked "flagged" one per
// flow with that flag bit. Addresses in a dictionary are a family byte (0
// none, 4, 6) and 0, 4 or 16 bytes; dictionaries list values most frequent
// first, so the common ones get one-byte indexes.
//
//	groups    uvarint count, then per run of equal Src: family byte, the
//	          address as a delta from the previous one of its family (the
//	          runs are sorted), uvarint run length
//	flags     n bytes: outcome (bits 0-1), open, NATSrc address differs,
//	          NATSrc port differs, NATDst address differs, NATDst port
//	          differs, process known
//	proto     n bytes
//	start     n uvarints: first of a run from base, then from the previous
//	dur       uvarint zigzag(End-Start) for each flow not open
//	sport     n × 2 bytes big-endian
//	dst       dictionary; index: n uvarints
//	dport     dictionary of 2-byte ports; index: n uvarints
//	natsrc    dictionary; index: flagged uvarints; port: flagged 2 bytes
//	natdst    dictionary; index: flagged uvarints; port: flagged 2 bytes
//	counters  four columns of n uvarints: orig packets, bytes, reply packets, bytes
//	iface     dictionary of strings (uvarint length, bytes); index: n uvarints
//	process   pid, uid: flagged uvarints; comm: dictionary, flagged index
//
// Times are kept to the nanosecond, as conntrack gives them: a query
// returns exactly what was appended. (Microseconds would save ~2.5 bytes a
// flow of the ~5 that start and duration take.)
const (
	blockVersion  = 1
	maxBlockFlows = 16384
	maxCols       = 64
	// maxRawBlock bounds a block before compression: ~100 bytes of columns
	// and ~590 of dictionaries a flow at worst (strings of MaxStringLen).
	// The decoder refuses to inflate more, so a damaged or hostile block
	// cannot make it allocate without bound.
	maxRawBlock = maxBlockFlows * 700
)

const (
	colGroups = iota
	colFlags
	colProto
	colStart
	colDur
	colSport
	colDstDict
	colDstIdx
	colDportDict
	colDportIdx
	colNsrcDict
	colNsrcIdx
	colNsport
	colNdstDict
	colNdstIdx
	colNdport
	colOP
	colOB
	colRP
	colRB
	colIfaceDict
	colIfaceIdx
	colPID
	colUID
	colCommDict
	colCommIdx
	numCols
)

var colNames = [numCols]string{colGroups: "groups", colFlags: "flags", colProto: "proto", colStart: "start",
	colDur: "duration", colSport: "source port", colDstDict: "destination", colDstIdx: "destination index",
	colDportDict: "port", colDportIdx: "port index", colNsrcDict: "NAT source", colNsrcIdx: "NAT source index",
	colNsport: "NAT source port", colNdstDict: "NAT destination", colNdstIdx: "NAT destination index",
	colNdport: "NAT destination port", colOP: "packets", colOB: "bytes", colRP: "reply packets",
	colRB: "reply bytes", colIfaceDict: "interface", colIfaceIdx: "interface index", colPID: "pid",
	colUID: "uid", colCommDict: "command", colCommIdx: "command index"}

const (
	flOutcome = 0x03
	flOpen    = 1 << 2
	flNSA     = 1 << 3
	flNSP     = 1 << 4
	flNDA     = 1 << 5
	flNDP     = 1 << 6
	flProc    = 1 << 7
)

// ErrCorrupt is wrapped by errors about damaged data: a block that does not
// decode, a partition file SQLite calls corrupt, a truncated export.
var ErrCorrupt = errors.New("corrupt")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("flowlog: %w block: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// blockMeta is what the block index (the blocks table) holds about a block.
type blockMeta struct {
	n                int
	minStart, maxEnd int64  // maxEnd is openEnd if a flow is open
	srcLo, srcHi     []byte // keys of the smallest and largest Src
	nsrcLo, nsrcHi   []byte // of the translated NATSrc addresses; nil if none
}

// sortRecs returns recs sorted by (Src, Start), the order blocks are
// stored in, in out.
func sortRecs(recs []rec, keys []sortKey, out []rec) ([]rec, []sortKey) {
	keys = sortKeys(recs, keys)
	out = out[:0]
	for _, k := range keys {
		out = append(out, recs[k.i])
	}
	return out, keys
}

// sortInPlace sorts recs like sortRecs without a second array of them: the
// writer's batches are its largest memory.
func sortInPlace(recs []rec, keys []sortKey) []sortKey {
	keys = sortKeys(recs, keys)
	// Apply the permutation (recs[j] = old recs[keys[j].i]) cycle by
	// cycle, marking each position done with i = -1.
	for start := range keys {
		if keys[start].i < 0 {
			continue
		}
		tmp := recs[start]
		j := start
		for {
			k := int(keys[j].i)
			keys[j].i = -1
			if k == start {
				recs[j] = tmp
				break
			}
			recs[j] = recs[k]
			j = k
		}
	}
	return keys
}

// sortKeys sorts the keys of recs: short flows before long ones, then the
// source, the start, the position.
func sortKeys(recs []rec, keys []sortKey) []sortKey {
	keys = keys[:0]
	for i := range recs {
		r := &recs[i]
		keys = append(keys, sortKey{r.src.hi, r.src.lo, r.start, int32(i), r.src.fam, r.long()})
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if a.long != b.long {
			if a.long {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(a.fam, b.fam); c != 0 {
			return c
		}
		if c := cmp.Compare(a.hi, b.hi); c != 0 {
			return c
		}
		if c := cmp.Compare(a.lo, b.lo); c != 0 {
			return c
		}
		if c := cmp.Compare(a.start, b.start); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	return keys
}

type sortKey struct {
	hi, lo uint64
	start  int64
	i      int32
	fam    uint8
	long   bool
}

// longFlow: flows that lasted longer (or are still open) go into blocks of
// their own. Sorted by source alone, nearly every block of 1 024 would hold
// one of the ~2 % of flows that last minutes to hours, and its time range
// would reach back hours: a query for one hour read four hours of blocks
// (1.05 s at 100 M flows). Apart, short blocks span their batch plus at
// most longFlow.
const longFlow = int64(5 * time.Minute)

func (r *rec) long() bool { return r.open || r.end-r.start > longFlow }

// blockRanges cuts sorted recs into blocks of at most size flows, none
// mixing short and long flows.
func blockRanges(recs []rec, size int, out [][2]int) [][2]int {
	out = out[:0]
	split := len(recs)
	for i := range recs {
		if recs[i].long() {
			split = i
			break
		}
	}
	for _, part := range [][2]int{{0, split}, {split, len(recs)}} {
		for i := part[0]; i < part[1]; i += size {
			out = append(out, [2]int{i, min(i+size, part[1])})
		}
	}
	return out
}
