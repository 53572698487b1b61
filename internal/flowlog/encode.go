package flowlog

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"

	"github.com/klauspost/compress/zstd"
)

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
