package nft

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Throttle bounds, in the kernel, what a scanner learns before its ban.
//
// Why: the detector decides after four or five failed first contacts, but a
// ban is a user-space decision a few milliseconds later, and nmap -T4 on a
// LAN sends hundreds of probes in that time. So the kernel limits each
// source, by itself and at once, to Rate new TCP connection attempts a
// second (after a burst of Burst) to local ports where no socket listens,
// and the same for stealth probes (TCP without SYN, ACK or RST: FIN, NULL,
// Xmas). Whether a socket listens is asked of the kernel's own socket
// tables (nft's socket expression), so connections to real services are
// never limited, however many; a client that fails on more than Burst
// closed ports within a second is a scanner by any measure. Packets over
// the limit are dropped, which to the scanner looks like a filtered port.
// The sensor sees them all (AF_PACKET comes before netfilter), so detection
// is unchanged; the limit only stops the answers.
//
// ACK, Window and Maimon probes are limited on the way out instead: see
// resetRules.
//
// Rules, in the prerouting chain after the ban rules, per family:
//
//	meta nfproto ipv4 meta l4proto tcp tcp flags & (fin|syn|rst|ack) == syn fib daddr type local jump closed4
//	meta nfproto ipv4 meta l4proto tcp tcp flags & (syn|rst|ack) == 0 fib daddr type local update @throttle4 { ip saddr limit rate over R/second burst B packets } counter drop
//
//	chain closed4 {
//	    socket transparent 0 return   # a socket takes it (transparent or not):
//	    socket transparent 1 return   # a real service
//	    update @throttle4 { ip saddr limit rate over R/second burst B packets } counter drop
//	}
//
// UDP is not limited: looking up a socket for every datagram would cost a
// busy DNS or QUIC server a lookup per packet, and UDP scans are slow anyway
// (the kernel rate-limits port unreachables).
type Throttle struct {
	Rate  uint32 // attempts a second per source; 0 turns the throttle off
	Burst uint32
}

// Names of the throttle's objects.
const (
	throttle4Set     = "throttle4"
	throttle6Set     = "throttle6"
	closed4Chain     = "closed4"
	closed6Chain     = "closed6"
	outputChain      = "output"
	commentResets    = "scanwarden: limit resets answering ACK probes, per destination, until the ban"
	throttleTimeout  = 10 * time.Second // a source idle this long starts with a full burst again
	throttleSetSize  = 65536            // sources limited at once; past it, new sources pass
	commentThrottle  = "scanwarden: limit attempts at closed ports per source until the ban"
	commentClosedJmp = "scanwarden: new connection attempt to this host: is a socket there?"
	commentStealth   = "scanwarden: limit stealth probes (no SYN, ACK or RST) per source"
	commentOpen      = "scanwarden: a socket takes it: not limited"
	tcpFlagsOffset   = 13 // in the TCP header
	rtnLocal         = 2  // RTN_LOCAL: fib daddr type local
)

func (e *Enforcer) throttleOn() bool { return e.cfg.Throttle.Rate > 0 }

// throttleSets returns the dynamic sets holding each source's limit state.
func (e *Enforcer) throttleSets() []*nftables.Set {
	if !e.throttleOn() {
		return nil
	}
	mk := func(name string, key nftables.SetDatatype) *nftables.Set {
		return &nftables.Set{Table: e.table, Name: name, KeyType: key, Dynamic: true, HasTimeout: true, Timeout: throttleTimeout}
	}
	return []*nftables.Set{mk(throttle4Set, nftables.TypeIPAddr), mk(throttle6Set, nftables.TypeIP6Addr)}
}

// extraSetMatches compares a set the kernel holds with one we want, on
// what we set: key type, interval, dynamic and timeout.
func extraSetMatches(got, want *nftables.Set) bool {
	return got.KeyType.GetNFTMagic() == want.KeyType.GetNFTMagic() &&
		got.KeyType.Bytes == want.KeyType.Bytes &&
		got.Dynamic == want.Dynamic && got.HasTimeout == want.HasTimeout && got.Timeout == want.Timeout &&
		got.Interval == want.Interval && !got.IsMap && !got.Constant && !got.Anonymous && !got.Concatenation
}

// throttleChains returns the output base chain and the regular chains the
// prerouting rules jump to.
func (e *Enforcer) throttleChains() []*nftables.Chain {
	if !e.throttleOn() {
		return nil
	}
	accept := nftables.ChainPolicyAccept
	return []*nftables.Chain{
		{Name: outputChain, Table: e.table, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityRaw, Policy: &accept},
		{Name: closed4Chain, Table: e.table}, {Name: closed6Chain, Table: e.table},
	}
}

// resetRules limit the resets this host sends without ACK: RFC 9293's
// answer to a segment that carries an ACK but belongs to no connection,
// which is how ACK, Window and Maimon scans learn anything. Checking every
// incoming ACK for a socket would cost each data packet a lookup; the
// resets are few, so they are what is limited, per destination (the
// prober), in the same buckets as its attempts at closed ports. A reset
// with ACK (a refused SYN, an application's abort) is not touched here.
func (e *Enforcer) resetRules(chain *nftables.Chain, sets setMap) []*nftables.Rule {
	const rst, ack = 0x04, 0x10
	var out []*nftables.Rule
	for _, f := range throttleFamilies {
		setID := sets.id(f.set)
		out = append(out, &nftables.Rule{Table: chain.Table, Chain: chain, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.nfproto}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: tcpFlagsOffset, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{rst | ack}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{rst}},
			&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: f.daddr, Len: f.addrLen},
			&expr.Dynset{SrcRegKey: 1, SetName: f.set, SetID: setID, Operation: unix.NFT_DYNSET_OP_UPDATE,
				Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(e.cfg.Throttle.Rate), Unit: expr.LimitTimeSecond,
					Burst: e.cfg.Throttle.Burst, Over: true}}},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}, UserData: userdata.AppendString(nil, userdata.TypeComment, commentResets)})
	}
	return out
}

// throttleFamily is what differs between the IPv4 and IPv6 rules.
type throttleFamily struct {
	nfproto  byte
	saddr    uint32
	daddr    uint32
	addrLen  uint32
	set      string
	chain    string
	setIndex int
}

var throttleFamilies = [2]throttleFamily{
	{nfproto: unix.NFPROTO_IPV4, saddr: ipv4SaddrOffset, daddr: ipv4DaddrOffset, addrLen: 4, set: throttle4Set, chain: closed4Chain, setIndex: 0},
	{nfproto: unix.NFPROTO_IPV6, saddr: ipv6SaddrOffset, daddr: ipv6DaddrOffset, addrLen: 16, set: throttle6Set, chain: closed6Chain, setIndex: 1},
}

// tcpToLocal matches a TCP segment of family f, to this host, whose flags
// masked with mask equal want.
func tcpToLocal(f throttleFamily, mask, want byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.nfproto}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: tcpFlagsOffset, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{mask}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{want}},
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, rtnLocal)},
	}
}

// limitAndDrop updates the source's limit state and drops when over it.
func (e *Enforcer) limitAndDrop(f throttleFamily, sets setMap) []expr.Any {
	setID := sets.id(f.set)
	return []expr.Any{
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: f.saddr, Len: f.addrLen},
		&expr.Dynset{SrcRegKey: 1, SetName: f.set, SetID: setID, Operation: unix.NFT_DYNSET_OP_UPDATE,
			Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(e.cfg.Throttle.Rate), Unit: expr.LimitTimeSecond,
				Burst: e.cfg.Throttle.Burst, Over: true}}},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// throttleJumps are the prerouting chain's throttle rules.
func (e *Enforcer) throttleJumps(chain *nftables.Chain, sets setMap) []*nftables.Rule {
	if !e.throttleOn() {
		return nil
	}
	const fin, syn, rst, ack = 0x01, 0x02, 0x04, 0x10
	var out []*nftables.Rule
	for _, f := range throttleFamilies {
		out = append(out, &nftables.Rule{Table: chain.Table, Chain: chain,
			Exprs:    append(tcpToLocal(f, fin|syn|rst|ack, syn), &expr.Verdict{Kind: expr.VerdictJump, Chain: f.chain}),
			UserData: userdata.AppendString(nil, userdata.TypeComment, commentClosedJmp)})
	}
	for _, f := range throttleFamilies {
		out = append(out, &nftables.Rule{Table: chain.Table, Chain: chain,
			Exprs:    append(tcpToLocal(f, syn|rst|ack, 0), e.limitAndDrop(f, sets)...),
			UserData: userdata.AppendString(nil, userdata.TypeComment, commentStealth)})
	}
	return out
}

// throttleRules are the rules of one closedN chain.
func (e *Enforcer) throttleRules(chain *nftables.Chain, sets setMap) []*nftables.Rule {
	i := slices.IndexFunc(throttleFamilies[:], func(f throttleFamily) bool { return f.chain == chain.Name })
	if i < 0 {
		return nil
	}
	f := throttleFamilies[i]
	var out []*nftables.Rule
	for _, transparent := range []byte{0, 1} {
		out = append(out, &nftables.Rule{Table: chain.Table, Chain: chain, Exprs: []expr.Any{
			&expr.Socket{Key: expr.SocketKeyTransparent, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{transparent}},
			&expr.Verdict{Kind: expr.VerdictReturn},
		}, UserData: userdata.AppendString(nil, userdata.TypeComment, commentOpen)})
	}
	out = append(out, &nftables.Rule{Table: chain.Table, Chain: chain, Exprs: e.limitAndDrop(f, sets),
		UserData: userdata.AppendString(nil, userdata.TypeComment, commentThrottle)})
	return out
}

// sortBaseFirst orders chains so that hooked chains come before regular
// ones: a batch must delete the chains that jump before those jumped to.
func sortBaseFirst(cs []*nftables.Chain) {
	slices.SortStableFunc(cs, func(a, b *nftables.Chain) int {
		ab, bb := a.Hooknum != nil, b.Hooknum != nil
		switch {
		case ab && !bb:
			return -1
		case !ab && bb:
			return 1
		}
		return 0
	})
}
