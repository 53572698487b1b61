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

// pair hashes a flow's two endpoints and protocol, whichever way it goes
// (k and k.flip() hash alike), and returns k's side: 0 when the initiator's
// end sorts first, 1 otherwise, so that the attempts both ways on a pair of
// endpoints are told apart. A flow from an endpoint to itself (a LAND
// attack) is its own flip, on side 0.
func (s *hashSeed) pair(k *flowKey) (h uint64, side uint8) {
	a0, a1, b0, b1 := k.src.word(0), k.src.word(1), k.dst.word(0), k.dst.word(1)
	pa, pb := k.sport, k.dport
	if a1 > b1 || a1 == b1 && (a0 > b0 || a0 == b0 && pa > pb) { // word 1, which holds IPv4, first
		a0, a1, b0, b1, pa, pb = b0, b1, a0, a1, pb, pa
		side = 1
	}
	h = mum(a0^s[0], a1^s[1])
	h = mum(h^b0^s[2], b1^s[3])
	w := uint64(pa) | uint64(pb)<<16 | uint64(k.proto)<<32
	return mum(h^s[1], w^s[2]), side
}
