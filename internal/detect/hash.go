package detect

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
)

// hashSeed keys the 64-bit hashes the detector's tables are indexed by. It
// is random per detector, so an attacker who picks addresses and ports
// cannot aim collisions at it.
type hashSeed [4]uint64

func newHashSeed() hashSeed {
	return hashSeed{rand.Uint64() | 1, rand.Uint64() | 1, rand.Uint64() | 1, rand.Uint64() | 1}
}

// mum is wyhash's mixing step: the 128-bit product of two words, folded.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func (s *hashSeed) addr(k *addrKey) uint64 {
	a := binary.LittleEndian.Uint64(k[0:8])
	b := binary.LittleEndian.Uint64(k[8:16])
	return mum(a^s[0], b^s[1])
}

func (s *hashSeed) flow(k *flowKey) uint64 {
	h := mum(binary.LittleEndian.Uint64(k.src[0:8])^s[0], binary.LittleEndian.Uint64(k.src[8:16])^s[1])
	h = mum(h^binary.LittleEndian.Uint64(k.dst[0:8])^s[2], binary.LittleEndian.Uint64(k.dst[8:16])^s[3])
	w := uint64(k.sport) | uint64(k.dport)<<16 | uint64(k.proto)<<32
	return mum(h^s[1], w^s[2])
}
