package flowlog

// A block's filter is a Bloom filter over the destination side of its
// flows: Dst and NATDst addresses and ports. (The source side needs none:
// blocks are sorted by Src, so each block's row in the index carries its
// Src range, and the NATSrc range beside it.) A query for a destination
// address or port skips the blocks whose filter says "no"; the filter only
// errs towards "maybe", and every flow of a block read is checked exactly.
//
// Sizing: 10 bits per distinct key and 7 probes give a false-positive rate
// of 0.8 % (Bloom's formula (1-e^(-kn/m))^k), so a query for one address
// over 100 000 blocks that do not hold it reads about 800 of them. On the
// benchmark mix the filters take 0.8 byte a flow, the price of not reading
// the other 99 %.
//
// Layout: a version byte (1), the probe count, then the bit array, bit i in
// byte i/8 at bit i%8, a multiple of 64 bits long. The hash is fixed
// (splitmix64's finaliser), not seeded: the filters are on disk. Someone
// who picks addresses to collide only makes their own queries read more
// blocks.
const (
	bloomVersion    = 1
	bloomBitsPerKey = 10
	bloomProbes     = 7
)

// Tags keep an address, a port and a family apart in the hash.
const (
	tagAddr = 0x9e3779b97f4a7c15
	tagPort = 0xc2b2ae3d27d4eb4f
)

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func addrHash(a ip) uint64     { return mix64(mix64(a.hi^tagAddr^uint64(a.fam)<<56) ^ a.lo) }
func portHash(p uint16) uint64 { return mix64(uint64(p) ^ tagPort) }

// buildBloom makes a filter holding the hashes in keys.
func buildBloom(keys []uint64, dst []byte) []byte {
	words := (len(keys)*bloomBitsPerKey + 63) / 64
	if words == 0 {
		words = 1
	}
	dst = append(dst[:0], bloomVersion, bloomProbes)
	dst = append(dst, make([]byte, words*8)...)
	bits := dst[2:]
	m := uint64(words * 64)
	for _, h := range keys {
		h1, h2 := h, h>>32|1
		for i := uint64(0); i < bloomProbes; i++ {
			pos := (h1 + i*h2) % m
			bits[pos/8] |= 1 << (pos % 8)
		}
	}
	return dst
}

// bloomMayHave reports whether the filter may hold h. A filter it cannot
// read says "maybe": a damaged filter costs time, never results.
func bloomMayHave(f []byte, h uint64) bool {
	if len(f) < 10 || f[0] != bloomVersion || (len(f)-2)%8 != 0 || f[1] == 0 || f[1] > 32 {
		return true
	}
	bits := f[2:]
	m := uint64(len(bits) * 8)
	h1, h2 := h, h>>32|1
	for i := uint64(0); i < uint64(f[1]); i++ {
		pos := (h1 + i*h2) % m
		if bits[pos/8]&(1<<(pos%8)) == 0 {
			return false
		}
	}
	return true
}
