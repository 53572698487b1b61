package flowlog

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
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

// dict numbers distinct values most frequent first (ties: first seen).
type dict[K comparable] struct {
	pos   map[K]int32
	keys  []K
	count []int32
	remap []int32 // first-seen number → final index
	order []int32
	seen  []int32 // per added value, its first-seen number
}

func (d *dict[K]) reset() {
	if d.pos == nil {
		d.pos = map[K]int32{}
	}
	clear(d.pos)
	d.keys, d.count, d.seen = d.keys[:0], d.count[:0], d.seen[:0]
}

func (d *dict[K]) add(k K) {
	i, ok := d.pos[k]
	if !ok {
		i = int32(len(d.keys))
		d.pos[k] = i
		d.keys = append(d.keys, k)
		d.count = append(d.count, 0)
	}
	d.count[i]++
	d.seen = append(d.seen, i)
}

// finish orders the dictionary; then sorted(j) is the j-th entry and
// index(i) the final index of the i-th added value.
func (d *dict[K]) finish() {
	d.order = d.order[:0]
	for i := range d.keys {
		d.order = append(d.order, int32(i))
	}
	slices.SortStableFunc(d.order, func(a, b int32) int { return cmp.Compare(d.count[b], d.count[a]) })
	d.remap = slices.Grow(d.remap[:0], len(d.keys))[:len(d.keys)]
	for j, i := range d.order {
		d.remap[i] = int32(j)
	}
}

func (d *dict[K]) sorted(j int) K  { return d.keys[d.order[j]] }
func (d *dict[K]) index(i int) int { return int(d.remap[d.seen[i]]) }

// encoder turns flows into blocks. One per writer; not safe for concurrent
// use.
type encoder struct {
	cols          [numCols][]byte
	raw           []byte
	z             *zstd.Encoder
	dst, ns, nd   dict[ip]
	dport         dict[uint16]
	iface, comm   dict[uint16] // keyed by the batch's string index
	hashes        []uint64
	block, filter []byte
}

// zstd level: SpeedDefault (zstd level 3). On the benchmark mix, blocks are
// 1.6 % smaller than with SpeedFastest, and level 3 at a few MB/s of
// blocks is a small part of the writer's time. The column encoding does
// most of the work: zstd takes a block of 1 024 flows from 28.9 to 25.5 KB.
func newEncoder() *encoder {
	z, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(true), zstd.WithWindowSize(1<<20))
	if err != nil {
		panic(err) // only for invalid options
	}
	return &encoder{z: z}
}

// encode makes one block of recs, best sorted (sortRecs): unsorted, each
// flow is a run of its own source, which costs ~2 bytes a flow. The block
// and filter it returns are valid until the next call.
func (e *encoder) encode(recs []rec, strs []string) (blockMeta, []byte, []byte) {
	for i := range e.cols {
		e.cols[i] = e.cols[i][:0]
	}
	e.dst.reset()
	e.ns.reset()
	e.nd.reset()
	e.dport.reset()
	e.iface.reset()
	e.comm.reset()
	m := blockMeta{n: len(recs), minStart: math.MaxInt64, maxEnd: math.MinInt64}

	var nsLo, nsHi ip
	haveNS := false
	srcLo, srcHi := recs[0].src, recs[0].src
	for i := range recs {
		r := &recs[i]
		if r.src.cmp(srcLo) < 0 {
			srcLo = r.src
		} else if r.src.cmp(srcHi) > 0 {
			srcHi = r.src
		}
		m.minStart = min(m.minStart, r.start)
		m.maxEnd = max(m.maxEnd, r.endOrOpen())
		e.dst.add(r.dst)
		e.dport.add(r.dport)
		e.iface.add(r.iface)
		f := r.flags()
		if f&flNSA != 0 {
			e.ns.add(r.nsrc)
			switch {
			case !haveNS:
				nsLo, nsHi, haveNS = r.nsrc, r.nsrc, true
			case r.nsrc.cmp(nsLo) < 0:
				nsLo = r.nsrc
			case r.nsrc.cmp(nsHi) > 0:
				nsHi = r.nsrc
			}
		}
		if f&flNDA != 0 {
			e.nd.add(r.ndst)
		}
		if f&flProc != 0 {
			e.comm.add(r.comm)
		}
	}
	m.srcLo, m.srcHi = srcLo.key(), srcHi.key()
	if haveNS {
		m.nsrcLo, m.nsrcHi = nsLo.key(), nsHi.key()
	}
	for _, d := range []*dict[ip]{&e.dst, &e.ns, &e.nd} {
		d.finish()
	}
	for _, d := range []*dict[uint16]{&e.dport, &e.iface, &e.comm} {
		d.finish()
	}

	e.encodeGroups(recs, m.minStart)
	c := &e.cols
	var nsi, ndi, ci int
	for i := range recs {
		r := &recs[i]
		f := r.flags()
		c[colFlags] = append(c[colFlags], f)
		c[colProto] = append(c[colProto], r.proto)
		if f&flOpen == 0 {
			c[colDur] = binary.AppendUvarint(c[colDur], zigzag(r.end-r.start))
		}
		c[colSport] = binary.BigEndian.AppendUint16(c[colSport], r.sport)
		c[colDstIdx] = binary.AppendUvarint(c[colDstIdx], uint64(e.dst.index(i)))
		c[colDportIdx] = binary.AppendUvarint(c[colDportIdx], uint64(e.dport.index(i)))
		if f&flNSA != 0 {
			c[colNsrcIdx] = binary.AppendUvarint(c[colNsrcIdx], uint64(e.ns.index(nsi)))
			nsi++
		}
		if f&flNSP != 0 {
			c[colNsport] = binary.BigEndian.AppendUint16(c[colNsport], r.nsport)
		}
		if f&flNDA != 0 {
			c[colNdstIdx] = binary.AppendUvarint(c[colNdstIdx], uint64(e.nd.index(ndi)))
			ndi++
		}
		if f&flNDP != 0 {
			c[colNdport] = binary.BigEndian.AppendUint16(c[colNdport], r.ndport)
		}
		c[colOP] = binary.AppendUvarint(c[colOP], r.op)
		c[colOB] = binary.AppendUvarint(c[colOB], r.ob)
		c[colRP] = binary.AppendUvarint(c[colRP], r.rp)
		c[colRB] = binary.AppendUvarint(c[colRB], r.rb)
		c[colIfaceIdx] = binary.AppendUvarint(c[colIfaceIdx], uint64(e.iface.index(i)))
		if f&flProc != 0 {
			c[colPID] = binary.AppendUvarint(c[colPID], uint64(r.pid))
			c[colUID] = binary.AppendUvarint(c[colUID], uint64(r.uid))
			c[colCommIdx] = binary.AppendUvarint(c[colCommIdx], uint64(e.comm.index(ci)))
			ci++
		}
	}
	c[colDstDict] = appendIPDict(c[colDstDict], &e.dst)
	c[colNsrcDict] = appendIPDict(c[colNsrcDict], &e.ns)
	c[colNdstDict] = appendIPDict(c[colNdstDict], &e.nd)
	c[colDportDict] = binary.AppendUvarint(c[colDportDict], uint64(len(e.dport.keys)))
	for j := range e.dport.keys {
		c[colDportDict] = binary.BigEndian.AppendUint16(c[colDportDict], e.dport.sorted(j))
	}
	c[colIfaceDict] = appendStrDict(c[colIfaceDict], &e.iface, strs)
	c[colCommDict] = appendStrDict(c[colCommDict], &e.comm, strs)

	e.raw = append(e.raw[:0], blockVersion)
	e.raw = binary.AppendUvarint(e.raw, uint64(len(recs)))
	e.raw = binary.AppendUvarint(e.raw, zigzag(m.minStart))
	e.raw = binary.AppendUvarint(e.raw, numCols)
	for i := range c {
		e.raw = binary.AppendUvarint(e.raw, uint64(len(c[i])))
	}
	for i := range c {
		e.raw = append(e.raw, c[i]...)
	}
	e.block = e.z.EncodeAll(e.raw, e.block[:0])
	e.filter = buildBloom(e.filterKeys(recs), e.filter)
	return m, e.block, e.filter
}

// encodeGroups writes the runs of equal Src and the start column.
func (e *encoder) encodeGroups(recs []rec, base int64) {
	var runs []byte // counted first: the column starts with the count
	var prev4 uint32
	var prevHi, prevLo uint64
	ng := 0
	for i := 0; i < len(recs); {
		a := recs[i].src
		j := i + 1
		for j < len(recs) && recs[j].src == a {
			j++
		}
		runs = append(runs, a.fam)
		switch a.fam {
		case fam4:
			runs = binary.AppendUvarint(runs, uint64(uint32(a.lo)-prev4))
			prev4 = uint32(a.lo)
		case fam6:
			runs = binary.AppendUvarint(runs, a.hi-prevHi)
			if a.hi == prevHi {
				runs = binary.AppendUvarint(runs, a.lo-prevLo)
			} else {
				runs = binary.BigEndian.AppendUint64(runs, a.lo)
			}
			prevHi, prevLo = a.hi, a.lo
		}
		runs = binary.AppendUvarint(runs, uint64(j-i))
		prev := base
		for k := i; k < j; k++ {
			e.cols[colStart] = binary.AppendUvarint(e.cols[colStart], uint64(recs[k].start-prev))
			prev = recs[k].start
		}
		ng++
		i = j
	}
	e.cols[colGroups] = binary.AppendUvarint(e.cols[colGroups], uint64(ng))
	e.cols[colGroups] = append(e.cols[colGroups], runs...)
}

func (e *encoder) filterKeys(recs []rec) []uint64 {
	e.hashes = e.hashes[:0]
	for j := range e.dst.keys {
		e.hashes = append(e.hashes, addrHash(e.dst.keys[j]))
	}
	for j := range e.nd.keys {
		e.hashes = append(e.hashes, addrHash(e.nd.keys[j]))
	}
	for j := range e.dport.keys {
		e.hashes = append(e.hashes, portHash(e.dport.keys[j]))
	}
	for i := range recs {
		if recs[i].ndport != recs[i].dport {
			e.hashes = append(e.hashes, portHash(recs[i].ndport))
		}
	}
	return e.hashes
}

func (r *rec) flags() uint8 {
	f := r.outcome & flOutcome
	if r.open {
		f |= flOpen
	}
	if r.nsrc != r.src {
		f |= flNSA
	}
	if r.nsport != r.sport {
		f |= flNSP
	}
	if r.ndst != r.dst {
		f |= flNDA
	}
	if r.ndport != r.dport {
		f |= flNDP
	}
	if r.pid != 0 || r.uid != 0 || r.comm != 0 {
		f |= flProc
	}
	return f
}

func appendIP(b []byte, a ip) []byte {
	b = append(b, a.fam)
	switch a.fam {
	case fam4:
		b = binary.BigEndian.AppendUint32(b, uint32(a.lo))
	case fam6:
		b = binary.BigEndian.AppendUint64(b, a.hi)
		b = binary.BigEndian.AppendUint64(b, a.lo)
	}
	return b
}

func appendIPDict(b []byte, d *dict[ip]) []byte {
	b = binary.AppendUvarint(b, uint64(len(d.keys)))
	for j := range d.keys {
		b = appendIP(b, d.sorted(j))
	}
	return b
}

func appendStrDict(b []byte, d *dict[uint16], strs []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(d.keys)))
	for j := range d.keys {
		s := strs[d.sorted(j)]
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// zdec is shared: DecodeAll is safe for concurrent use.
var zdec = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxRawBlock),
		zstd.WithDecoderMaxWindow(8<<20))
	if err != nil {
		panic(err) // only for invalid options
	}
	return d
})

// decoder turns blocks back into flows; its buffers are reused. Not safe
// for concurrent use.
//
// It decodes into rec, not Flow: rec holds no pointers, so filling
// thousands of them costs the garbage collector nothing (decoding into
// Flows, write barriers were half the time of a query that reads every
// block), and a query builds Flows only for the matches.
type decoder struct {
	raw    []byte
	recs   []rec
	u      [13][]uint64 // decoded varint columns
	starts []uint64
	ports  []uint16
	addrs  [3][]ip
	strs   []string // the block's interface and command names; 0 is ""
}

// decode inflates and decodes a stored block. The flows, and the strings
// their iface and comm index, are valid until the next call.
func (d *decoder) decode(block []byte) ([]rec, []string, error) {
	raw, err := zdec().DecodeAll(block, d.raw[:0])
	if err != nil {
		return nil, nil, corrupt("inflating: %v", err)
	}
	d.raw = raw
	return d.decodeRaw(raw)
}

// flows decodes a stored block into Flows.
func (d *decoder) flows(block []byte) ([]Flow, error) {
	recs, strs, err := d.decode(block)
	if err != nil {
		return nil, err
	}
	fs := make([]Flow, len(recs))
	for i := range recs {
		recs[i].flow(strs, &fs[i])
	}
	return fs, nil
}

// rd reads a column; a read past its end sets bad and returns zeros, so the
// decoder checks once per column instead of at every value.
type rd struct {
	b   []byte
	bad bool
}

func (r *rd) uvarint() uint64 {
	// Most values are one byte: decode those inline.
	if b := r.b; len(b) > 0 && b[0] < 0x80 {
		r.b = b[1:]
		return uint64(b[0])
	}
	return r.uvarintLong()
}

func (r *rd) uvarintLong() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rd) take(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.bad, r.b = true, nil
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

func (r *rd) u8() byte {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *rd) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (r *rd) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

// done reports a column read past its end or not to its end.
func (r *rd) done(name string) error {
	switch {
	case r.bad:
		return corrupt("%s column is short", name)
	case len(r.b) != 0:
		return corrupt("%s column has %d bytes left over", name, len(r.b))
	}
	return nil
}

func (r *rd) ip() ip {
	switch fam := r.u8(); fam {
	case famNone:
		return ip{}
	case fam4:
		if b := r.take(4); b != nil {
			return ip{lo: 0xffff<<32 | uint64(binary.BigEndian.Uint32(b)), fam: fam4}
		}
	case fam6:
		if b := r.take(16); b != nil {
			return ip{hi: binary.BigEndian.Uint64(b), lo: binary.BigEndian.Uint64(b[8:]), fam: fam6}
		}
	default:
		r.bad = true
	}
	return ip{}
}

// ipDict reads an address dictionary of at most max entries.
func (r *rd) ipDict(dst []ip, max int) []ip {
	n := r.uvarint()
	if n > uint64(max) {
		r.bad = true
		return dst[:0]
	}
	dst = dst[:0]
	for range n {
		dst = append(dst, r.ip())
	}
	return dst
}

// strDict appends a dictionary of at most max strings to dst and returns
// the index of its first entry.
func (r *rd) strDict(dst []string, max int) ([]string, int) {
	first := len(dst)
	n := r.uvarint()
	if n > uint64(max) {
		r.bad = true
		return dst, first
	}
	for range n {
		l := r.uvarint()
		if l > MaxStringLen {
			r.bad = true
			return dst, first
		}
		dst = append(dst, string(r.take(int(l))))
	}
	return dst, first
}

// decodeRaw decodes an inflated block. It checks every length and index
// against the data, so that damaged input gives an error, never a panic or
// an allocation beyond maxBlockFlows flows.
func (d *decoder) decodeRaw(raw []byte) ([]rec, []string, error) {
	h := rd{b: raw}
	if v := h.u8(); v != blockVersion {
		if h.bad {
			return nil, nil, corrupt("empty")
		}
		return nil, nil, corrupt("format version %d, this scanwarden reads version %d", v, blockVersion)
	}
	n64 := h.uvarint()
	if n64 == 0 || n64 > maxBlockFlows {
		return nil, nil, corrupt("%d flows (1 to %d)", n64, maxBlockFlows)
	}
	n := int(n64)
	base := unzigzag(h.uvarint())
	ncols := h.uvarint()
	if ncols < numCols || ncols > maxCols {
		return nil, nil, corrupt("%d columns (%d to %d)", ncols, numCols, maxCols)
	}
	var lens [maxCols]uint64
	for i := range ncols {
		lens[i] = h.uvarint()
	}
	if h.bad {
		return nil, nil, corrupt("header is short")
	}
	var c [numCols]rd
	for i := range int(ncols) {
		b := h.take(int(min(lens[i], math.MaxInt32)))
		if h.bad {
			return nil, nil, corrupt("column %d is cut off", i)
		}
		if i < numCols {
			c[i].b = b
		}
	}
	if len(h.b) != 0 {
		return nil, nil, corrupt("%d bytes after the columns", len(h.b))
	}

	d.recs = slices.Grow(d.recs[:0], n)[:n]
	recs := d.recs
	flags := c[colFlags].take(n)
	protos := c[colProto].take(n)
	for _, i := range []int{colFlags, colProto} {
		if err := c[i].done(colNames[i]); err != nil {
			return nil, nil, err
		}
	}
	// How many values the flagged columns hold.
	var nOpen, nNSA, nNSP, nNDA, nNDP, nProc int
	for _, f := range flags {
		nOpen += int(f>>2) & 1
		nNSA += int(f>>3) & 1
		nNSP += int(f>>4) & 1
		nNDA += int(f>>5) & 1
		nNDP += int(f>>6) & 1
		nProc += int(f >> 7)
	}
	if err := d.decodeGroups(&c[colGroups], &c[colStart], base); err != nil {
		return nil, nil, err
	}

	dst := c[colDstDict].ipDict(d.addrs[0], n)
	ns := c[colNsrcDict].ipDict(d.addrs[1], n)
	nd := c[colNdstDict].ipDict(d.addrs[2], n)
	d.addrs[0], d.addrs[1], d.addrs[2] = dst, ns, nd
	np := c[colDportDict].uvarint()
	if np > uint64(n) {
		return nil, nil, corrupt("%d destination ports for %d flows", np, n)
	}
	d.ports = d.ports[:0]
	for range np {
		d.ports = append(d.ports, c[colDportDict].u16())
	}
	strs, ifaces := c[colIfaceDict].strDict(append(d.strs[:0], ""), n)
	nIfaces := len(strs) - ifaces
	strs, comms := c[colCommDict].strDict(strs, n)
	nComms := len(strs) - comms
	d.strs = strs
	for _, i := range []int{colDstDict, colNsrcDict, colNdstDict, colDportDict, colIfaceDict, colCommDict} {
		if err := c[i].done(colNames[i]); err != nil {
			return nil, nil, err
		}
	}

	// The other columns, each decoded whole in a tight loop: faster than
	// reading twenty columns a row at a time.
	u := &d.u
	const any = -1 // not an index: any value
	for i, col := range []struct {
		c, n, size int // size: the dictionary's, which bounds an index
	}{
		{colDur, n - nOpen, any}, {colDstIdx, n, len(dst)}, {colDportIdx, n, len(d.ports)},
		{colNsrcIdx, nNSA, len(ns)}, {colNdstIdx, nNDA, len(nd)}, {colOP, n, any}, {colOB, n, any},
		{colRP, n, any}, {colRB, n, any}, {colIfaceIdx, n, nIfaces}, {colPID, nProc, any}, {colUID, nProc, any},
		{colCommIdx, nProc, nComms},
	} {
		u[i] = slices.Grow(u[i][:0], col.n)[:col.n]
		if !uvarints(c[col.c].b, u[i]) {
			return nil, nil, corrupt("%s column does not hold %d values", colNames[col.c], col.n)
		}
		if col.size != any {
			for _, v := range u[i] {
				if v >= uint64(col.size) {
					return nil, nil, corrupt("%s %d of %d", colNames[col.c], v, col.size)
				}
			}
		}
		c[col.c].b = nil
	}
	dur, dstI, dportI, nsI, ndI, op, ob, rp, rb, ifI, pid, uid, commI :=
		u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12]
	sport, nsport, ndport := c[colSport].take(2*n), c[colNsport].take(2*nNSP), c[colNdport].take(2*nNDP)
	for _, i := range []int{colSport, colNsport, colNdport} {
		if err := c[i].done(colNames[i]); err != nil {
			return nil, nil, err
		}
	}

	var iDur, iNSA, iNSP, iNDA, iNDP, iProc int
	for i := range recs {
		r := &recs[i]
		fg := flags[i]
		r.outcome, r.open, r.proto = fg&flOutcome, fg&flOpen != 0, protos[i]
		r.end = 0
		if !r.open {
			r.end = r.start + unzigzag(dur[iDur])
			iDur++
		}
		r.sport = binary.BigEndian.Uint16(sport[2*i:])
		r.dst, r.dport = dst[dstI[i]], d.ports[dportI[i]]
		r.nsrc, r.nsport, r.ndst, r.ndport = r.src, r.sport, r.dst, r.dport
		if fg&flNSA != 0 {
			r.nsrc = ns[nsI[iNSA]]
			iNSA++
		}
		if fg&flNSP != 0 {
			r.nsport = binary.BigEndian.Uint16(nsport[2*iNSP:])
			iNSP++
		}
		if fg&flNDA != 0 {
			r.ndst = nd[ndI[iNDA]]
			iNDA++
		}
		if fg&flNDP != 0 {
			r.ndport = binary.BigEndian.Uint16(ndport[2*iNDP:])
			iNDP++
		}
		r.op, r.ob, r.rp, r.rb = op[i], ob[i], rp[i], rb[i]
		r.iface = uint16(ifaces + int(ifI[i]))
		r.pid, r.uid, r.comm = 0, 0, 0
		if fg&flProc != 0 {
			r.pid = uint32(min(pid[iProc], math.MaxUint32))
			r.uid = uint32(min(uid[iProc], math.MaxUint32))
			r.comm = uint16(comms + int(commI[iProc]))
			iProc++
		}
	}
	return recs, strs, nil
}

// uvarints decodes exactly len(out) uvarints, the whole of b.
func uvarints(b []byte, out []uint64) bool {
	j := 0
	for i := range out {
		if j+binary.MaxVarintLen64 <= len(b) {
			// Enough bytes left for the longest: no check per byte.
			c := b[j]
			v := uint64(c & 0x7f)
			j++
			for s := uint(7); c >= 0x80; s += 7 {
				if s > 63 {
					return false
				}
				c = b[j]
				j++
				v |= uint64(c&0x7f) << s
			}
			out[i] = v
			continue
		}
		v, n := binary.Uvarint(b[j:])
		if n <= 0 {
			return false
		}
		out[i] = v
		j += n
	}
	return j == len(b)
}

// decodeGroups reads the runs of equal Src into the flows, with their start
// times.
func (d *decoder) decodeGroups(g, s *rd, base int64) error {
	recs := d.recs
	n := len(recs)
	ng := g.uvarint()
	if ng == 0 || ng > uint64(n) {
		return corrupt("%d runs of sources for %d flows", ng, n)
	}
	d.starts = slices.Grow(d.starts[:0], n)[:n]
	starts := d.starts
	if !uvarints(s.b, starts) {
		return corrupt("start column does not hold %d values", n)
	}
	var prev4 uint32
	var prevHi, prevLo uint64
	row := 0
	for range ng {
		var a ip
		switch fam := g.u8(); fam {
		case famNone:
		case fam4:
			prev4 += uint32(g.uvarint())
			a = ip{lo: 0xffff<<32 | uint64(prev4), fam: fam4}
		case fam6:
			if dh := g.uvarint(); dh == 0 {
				prevLo += g.uvarint()
			} else {
				prevHi += dh
				prevLo = g.u64()
			}
			a = ip{hi: prevHi, lo: prevLo, fam: fam6}
		default:
			return corrupt("source address family %d", fam)
		}
		cnt := g.uvarint()
		if g.bad || cnt == 0 || cnt > uint64(n-row) {
			return corrupt("source runs do not add up to %d flows", n)
		}
		prev := base
		for k := row; k < row+int(cnt); k++ {
			prev += int64(starts[k])
			recs[k].start = prev
			recs[k].src = a
		}
		row += int(cnt)
	}
	if row != n {
		return corrupt("source runs cover %d of %d flows", row, n)
	}
	return g.done("groups")
}
