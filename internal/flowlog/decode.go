package flowlog

import (
	"encoding/binary"
	"math"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

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
