package nft

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Beyond bans and the throttle, the table can hold:
//
//   - blocklist feeds: a pair of interval sets per feed (feed_NAME_4/6),
//     dropped in the prerouting chain right after the bans, reloaded whole
//     in one transaction (LoadFeed), so the set is never seen empty;
//   - per-source limits (CSF's PORTFLOOD and CONNLIMIT) and, with
//     Config.LogGroup, an NFLOG rule for new connection attempts, in an
//     input chain at priority -5: after conntrack (-200), which they need
//     for "new" and connection counts, and before the host's own filter
//     chains (0), so what they log or drop does not depend on those.

// PortFlood limits one source's new connections to a port: over Hits in
// Seconds, the rest are dropped until the rate falls.
type PortFlood struct {
	Port    uint16
	UDP     bool
	Hits    uint32
	Seconds uint32
}

// ConnLimit limits one source's concurrent connections to a TCP port.
type ConnLimit struct {
	Port  uint16
	Limit uint32
}

const (
	inputChain      = "input"
	inputPriority   = -5
	feedPrefix      = "feed_"
	commentFeed     = "scanwarden: drop packets from blocklist feed "
	commentFlood    = "scanwarden: portflood: per-source new connections to port "
	commentConn     = "scanwarden: connlimit: per-source concurrent connections to port "
	commentLog      = "scanwarden: log new connection attempts to this host for the detector"
	nftConnlimitInv = 1         // NFT_CONNLIMIT_F_INV: match when the count is over the limit
	floodSetTimeout = time.Hour // a limit's state outlives any sensible period; the kernel drops idle entries after it
)

// setMap holds the sets beside banned4/banned6, by name.
type setMap map[string]*nftables.Set

func (m setMap) id(name string) uint32 {
	if s, ok := m[name]; ok {
		return s.ID
	}
	return 0
}

// sorted returns the sets in a stable order (batches are deterministic).
func (m setMap) sorted() []*nftables.Set {
	out := make([]*nftables.Set, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *nftables.Set) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// extraSets returns every set the configuration calls for beside the ban sets.
func (e *Enforcer) extraSets() setMap {
	m := setMap{}
	for _, s := range e.throttleSets() {
		m[s.Name] = s
	}
	for _, s := range e.outboundSets() {
		m[s.Name] = s
	}
	for _, name := range e.cfg.Feeds {
		for _, f := range feedFamilies(name) {
			m[f.set] = &nftables.Set{Table: e.table, Name: f.set, KeyType: f.key, Interval: true}
		}
	}
	for _, pf := range e.cfg.PortFlood {
		for _, f := range limitFamilies(floodSetName(pf)) {
			m[f.set] = &nftables.Set{Table: e.table, Name: f.set, KeyType: f.key, Dynamic: true, HasTimeout: true, Timeout: floodSetTimeout}
		}
	}
	for _, cl := range e.cfg.ConnLimit {
		for _, f := range limitFamilies(connSetName(cl)) {
			m[f.set] = &nftables.Set{Table: e.table, Name: f.set, KeyType: f.key, Dynamic: true}
		}
	}
	return m
}

// addrFamily is one IP family's offsets and set for a per-source rule.
type addrFamily struct {
	nfproto byte
	saddr   uint32
	addrLen uint32
	key     nftables.SetDatatype
	set     string
}

func feedFamilies(name string) [2]addrFamily { return limitFamilies(feedPrefix + name) }

func limitFamilies(base string) [2]addrFamily {
	return [2]addrFamily{
		{nfproto: unix.NFPROTO_IPV4, saddr: ipv4SaddrOffset, addrLen: 4, key: nftables.TypeIPAddr, set: base + "_4"},
		{nfproto: unix.NFPROTO_IPV6, saddr: ipv6SaddrOffset, addrLen: 16, key: nftables.TypeIP6Addr, set: base + "_6"},
	}
}

func floodSetName(pf PortFlood) string {
	proto := "tcp"
	if pf.UDP {
		proto = "udp"
	}
	return fmt.Sprintf("flood_%s%d", proto, pf.Port)
}

func connSetName(cl ConnLimit) string { return fmt.Sprintf("conn_tcp%d", cl.Port) }

// family matches packets of one IP family and loads their source address.
func (f addrFamily) source() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.nfproto}},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: f.saddr, Len: f.addrLen},
	}
}

// feedRules drop what the feeds list, in the prerouting chain.
func (e *Enforcer) feedRules(chain *nftables.Chain, sets setMap) []*nftables.Rule {
	var out []*nftables.Rule
	for _, name := range e.cfg.Feeds {
		for _, f := range feedFamilies(name) {
			out = append(out, &nftables.Rule{Table: chain.Table, Chain: chain,
				Exprs: append(f.source(),
					&expr.Lookup{SourceRegister: 1, SetName: f.set, SetID: sets.id(f.set)},
					&expr.Counter{},
					&expr.Verdict{Kind: expr.VerdictDrop}),
				UserData: userdata.AppendString(nil, userdata.TypeComment, commentFeed+name)})
		}
	}
	return out
}

// inputChains returns the input chain when anything needs it.
func (e *Enforcer) inputChains() []*nftables.Chain {
	if e.cfg.LogGroup == 0 && len(e.cfg.PortFlood) == 0 && len(e.cfg.ConnLimit) == 0 {
		return nil
	}
	accept := nftables.ChainPolicyAccept
	prio := nftables.ChainPriority(inputPriority)
	return []*nftables.Chain{{Name: inputChain, Table: e.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: &prio, Policy: &accept}}
}

// ctNew matches the first packet of a connection conntrack has not seen.
func ctNew() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryNative(expr.CtStateBitNEW), Xor: binaryNative(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryNative(0)},
	}
}

// binaryNative encodes a conntrack state mask as nft compares it: in host
// byte order.
func binaryNative(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// l4port matches a transport protocol and destination port.
func l4port(udp bool, port uint16) []expr.Any {
	proto := byte(unix.IPPROTO_TCP)
	if udp {
		proto = unix.IPPROTO_UDP
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(port >> 8), byte(port)}},
	}
}

// inputRules: the NFLOG rule, then portflood and connlimit.
func (e *Enforcer) inputRules(chain *nftables.Chain, sets setMap) []*nftables.Rule {
	var out []*nftables.Rule
	if e.cfg.LogGroup != 0 {
		// New TCP attempts (SYN without ACK), stealth probes (no SYN, ACK or
		// RST) and new UDP flows, to this host: what the detector needs.
		const fin, syn, rst, ack = 0x01, 0x02, 0x04, 0x10
		for _, m := range []struct{ mask, want byte }{{fin | syn | rst | ack, syn}, {syn | rst | ack, 0}} {
			x := []expr.Any{
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
				&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: tcpFlagsOffset, Len: 1},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{m.mask}, Xor: []byte{0}},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{m.want}},
				&expr.Log{Key: 1 << unix.NFTA_LOG_GROUP, Group: e.cfg.LogGroup},
			}
			out = append(out, &nftables.Rule{Table: chain.Table, Chain: chain, Exprs: x,
				UserData: userdata.AppendString(nil, userdata.TypeComment, commentLog)})
		}
		udp := append([]expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		}, ctNew()...)
		udp = append(udp, &expr.Log{Key: 1 << unix.NFTA_LOG_GROUP, Group: e.cfg.LogGroup})
		out = append(out, &nftables.Rule{Table: chain.Table, Chain: chain, Exprs: udp,
			UserData: userdata.AppendString(nil, userdata.TypeComment, commentLog)})
	}
	for _, pf := range e.cfg.PortFlood {
		for _, f := range limitFamilies(floodSetName(pf)) {
			x := append(l4port(pf.UDP, pf.Port), ctNew()...)
			x = append(x, f.source()...)
			x = append(x,
				&expr.Dynset{SrcRegKey: 1, SetName: f.set, SetID: sets.id(f.set), Operation: unix.NFT_DYNSET_OP_UPDATE,
					Exprs: []expr.Any{floodLimit(pf)}},
				&expr.Counter{},
				&expr.Verdict{Kind: expr.VerdictDrop})
			out = append(out, &nftables.Rule{Table: chain.Table, Chain: chain, Exprs: x,
				UserData: userdata.AppendString(nil, userdata.TypeComment, fmt.Sprintf("%s%d", commentFlood, pf.Port))})
		}
	}
	for _, cl := range e.cfg.ConnLimit {
		for _, f := range limitFamilies(connSetName(cl)) {
			x := append(l4port(false, cl.Port), ctNew()...)
			x = append(x, f.source()...)
			x = append(x,
				&expr.Dynset{SrcRegKey: 1, SetName: f.set, SetID: sets.id(f.set), Operation: unix.NFT_DYNSET_OP_ADD,
					Exprs: []expr.Any{&expr.Connlimit{Count: cl.Limit, Flags: nftConnlimitInv}}},
				&expr.Counter{},
				&expr.Verdict{Kind: expr.VerdictDrop})
			out = append(out, &nftables.Rule{Table: chain.Table, Chain: chain, Exprs: x,
				UserData: userdata.AppendString(nil, userdata.TypeComment, fmt.Sprintf("%s%d", commentConn, cl.Port))})
		}
	}
	return out
}

// floodLimit is "over Hits in Seconds": a token bucket that holds Hits and
// refills at Hits per Seconds, in the finest unit nft's integer rates allow.
func floodLimit(pf PortFlood) *expr.Limit {
	perHour := (uint64(pf.Hits)*3600 + uint64(pf.Seconds) - 1) / uint64(pf.Seconds)
	return &expr.Limit{Type: expr.LimitTypePkts, Rate: max(perHour, 1), Unit: expr.LimitTimeHour, Burst: pf.Hits, Over: true}
}

// LoadFeed replaces a feed's sets with prefixes, in one transaction: the
// old elements go and the new ones come in the same commit, so there is no
// moment with an empty set. Prefixes must not overlap (lists.ParseFeed
// merges them).
func (e *Enforcer) LoadFeed(ctx context.Context, name string, prefixes []netip.Prefix) error {
	if !slices.Contains(e.cfg.Feeds, name) {
		return fmt.Errorf("feed %q is not configured in this table", name)
	}
	var by [2][]netip.Prefix
	size := 0
	for _, p := range prefixes {
		p = p.Masked()
		if p.Addr().Is4() {
			by[0] = append(by[0], p)
		} else {
			by[1] = append(by[1], p)
		}
		size += 2 * elementBytes(p.Addr(), "")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.conn(ctx, size)
	if err != nil {
		return err
	}
	for i, f := range feedFamilies(name) {
		set := &nftables.Set{Table: e.table, Name: f.set, KeyType: f.key, Interval: true}
		c.FlushSet(set)
		var batch []nftables.SetElement
		bytes := 0
		for _, p := range by[i] {
			sp := spanOf(p)
			batch = append(batch, nftables.SetElement{Key: sp.start.AsSlice()})
			if sp.end.IsValid() {
				batch = append(batch, nftables.SetElement{Key: sp.end.AsSlice(), IntervalEnd: true})
			}
			if bytes += 2 * elementBytes(p.Addr(), ""); bytes >= maxMessageBytes {
				if err := c.SetAddElements(set, batch); err != nil {
					return fmt.Errorf("feed %s: %w", name, err)
				}
				batch, bytes = nil, 0
			}
		}
		if len(batch) > 0 {
			if err := c.SetAddElements(set, batch); err != nil {
				return fmt.Errorf("feed %s: %w", name, err)
			}
		}
	}
	if err := c.Flush(); err != nil {
		return e.wrap(fmt.Sprintf("loading feed %s (%d prefixes) into", name, len(prefixes)), err)
	}
	return nil
}
