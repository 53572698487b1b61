package nft

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Names of the objects in our table.
const (
	set4Name         = "banned4"
	set6Name         = "banned6"
	preroutingChain  = "prerouting"
	forwardChain     = "forward"
	commentDropSrc   = "scanwarden: drop packets from banned sources"
	commentDropDst   = "scanwarden: drop forwarded packets to banned addresses"
	ipv4SaddrOffset  = 12 // in the IPv4 header
	ipv4DaddrOffset  = 16
	ipv6SaddrOffset  = 8 // in the IPv6 header
	ipv6DaddrOffset  = 24
	expectedSetCount = 2
)

// family describes one of the two sets.
type family struct {
	set        *nftables.Set
	nfproto    byte
	saddr      uint32
	daddr      uint32
	addrLength uint32
}

func (e *Enforcer) families() [2]family {
	return [2]family{
		{
			set:     e.newSet(set4Name, nftables.TypeIPAddr),
			nfproto: unix.NFPROTO_IPV4, saddr: ipv4SaddrOffset, daddr: ipv4DaddrOffset, addrLength: 4,
		},
		{
			set:     e.newSet(set6Name, nftables.TypeIP6Addr),
			nfproto: unix.NFPROTO_IPV6, saddr: ipv6SaddrOffset, daddr: ipv6DaddrOffset, addrLength: 16,
		},
	}
}

func (e *Enforcer) newSet(name string, key nftables.SetDatatype) *nftables.Set {
	return &nftables.Set{Table: e.table, Name: name, KeyType: key, Interval: true, HasTimeout: true}
}

// chains returns the chains the configuration calls for: the bans', the
// input and throttle chains, then the outbound ones (outbound.go). A repair
// deletes hooked chains before the chains they jump to (sortBaseFirst), and
// addChains adds every chain before any rule.
func (e *Enforcer) chains() []*nftables.Chain {
	out := append(e.baseChains(), e.inputChains()...)
	out = append(out, e.throttleChains()...)
	return append(out, e.outboundChains()...)
}

// baseChains returns the hooked chains.
func (e *Enforcer) baseChains() []*nftables.Chain {
	accept := nftables.ChainPolicyAccept
	out := []*nftables.Chain{{
		Name: preroutingChain, Table: e.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &accept,
	}}
	if e.cfg.Forward {
		out = append(out, &nftables.Chain{
			Name: forwardChain, Table: e.table, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept,
		})
	}
	return out
}

// rules returns the rules chain must hold. sets carry the IDs AddSet gave
// them when they are created in the same batch.
func (e *Enforcer) rules(chain *nftables.Chain, fams [2]family, sets setMap) []*nftables.Rule {
	switch {
	case isOutboundChain(chain.Name):
		return e.outboundRules(chain, sets)
	case chain.Hooknum == nil:
		return e.throttleRules(chain, sets)
	case chain.Name == outputChain:
		return e.resetRules(chain, sets)
	case chain.Name == inputChain:
		return e.inputRules(chain, sets)
	}
	out := banRules(chain, fams)
	if chain.Name == preroutingChain {
		out = append(out, e.feedRules(chain, sets)...)
		out = append(out, e.throttleJumps(chain, sets)...)
	}
	return out
}

func banRules(chain *nftables.Chain, fams [2]family) []*nftables.Rule {
	var out []*nftables.Rule
	for _, f := range fams {
		offset, comment := f.saddr, commentDropSrc
		if chain.Name == forwardChain {
			offset, comment = f.daddr, commentDropDst
		}
		out = append(out, &nftables.Rule{
			Table: chain.Table,
			Chain: chain,
			Exprs: []expr.Any{
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.nfproto}},
				&expr.Payload{
					OperationType: expr.PayloadLoad, DestRegister: 1,
					Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: f.addrLength,
				},
				&expr.Lookup{SourceRegister: 1, SetName: f.set.Name, SetID: f.set.ID},
				&expr.Counter{},
				&expr.Verdict{Kind: expr.VerdictDrop},
			},
			UserData: userdata.AppendString(nil, userdata.TypeComment, comment),
		})
	}
	return out
}

// create queues the whole table for a fresh start.
func (e *Enforcer) create(c *nftables.Conn) {
	c.AddTable(e.table)
	fams := e.families()
	for _, f := range fams {
		c.AddSet(f.set, nil) // cannot fail for a set without elements
	}
	extra := e.extraSets()
	for _, s := range extra.sorted() {
		c.AddSet(s, nil)
	}
	e.addChains(c, fams, extra)
}

// addChains adds every chain before any rule, since the prerouting chain's
// rules jump to the throttle's chains.
func (e *Enforcer) addChains(c *nftables.Conn, fams [2]family, extra setMap) {
	chains := e.chains()
	for _, ch := range chains {
		c.AddChain(ch)
	}
	for _, ch := range chains {
		for _, r := range e.rules(ch, fams, extra) {
			c.AddRule(r)
		}
	}
}

// inspect compares the table the kernel holds with what it should be. It
// returns nil when they match, or a function that queues the repair.
func (e *Enforcer) inspect(c *nftables.Conn) (func(*nftables.Conn), error) {
	sets, err := c.GetSets(e.table)
	if err != nil {
		return nil, e.wrap("listing sets of", err)
	}
	allChains, err := c.ListChainsOfTableFamily(e.table.Family)
	if err != nil {
		return nil, e.wrap("listing chains of", err)
	}
	var have []*nftables.Chain
	for _, ch := range allChains {
		if ch.Table != nil && ch.Table.Name == e.table.Name {
			have = append(have, ch)
		}
	}

	fams := e.families()
	extra := e.extraSets()
	setOK := map[string]bool{}
	for _, s := range sets {
		for _, f := range fams {
			if s.Name == f.set.Name && setMatches(s, f.set) {
				setOK[s.Name] = true
			}
		}
		if t, ok := extra[s.Name]; ok && extraSetMatches(s, t) {
			setOK[s.Name] = true
		}
	}
	chainsOK, err := e.chainsMatch(c, have, fams, extra)
	if err != nil {
		return nil, err
	}
	want := expectedSetCount + len(extra)
	if chainsOK && len(sets) == want && len(setOK) == want {
		return nil, nil
	}

	return func(c *nftables.Conn) {
		// Deleting a chain deletes its rules, which releases the sets.
		// Chains that jump go before the chains they jump to.
		sortBaseFirst(have)
		for _, ch := range have {
			c.FlushChain(ch)
		}
		for _, ch := range have {
			c.DelChain(ch)
		}
		for _, s := range sets {
			if !setOK[s.Name] {
				c.DelSet(s)
			}
		}
		for _, f := range fams {
			if !setOK[f.set.Name] {
				c.AddSet(f.set, nil)
			}
		}
		for _, t := range extra.sorted() {
			if !setOK[t.Name] {
				c.AddSet(t, nil)
			}
		}
		e.addChains(c, fams, extra)
	}, nil
}

// tableFlags returns the table's flags. google/nftables v0.3.0 decodes
// NFTA_TABLE_FLAGS in host byte order; netlink sends it big-endian.
func tableFlags(t *nftables.Table) uint32 {
	return binary.BigEndian.Uint32(binary.NativeEndian.AppendUint32(nil, t.Flags))
}

func setMatches(got, want *nftables.Set) bool {
	return got.KeyType.GetNFTMagic() == want.KeyType.GetNFTMagic() &&
		got.KeyType.Bytes == want.KeyType.Bytes &&
		got.Interval && got.HasTimeout && got.Timeout == 0 &&
		!got.IsMap && !got.Constant && !got.Anonymous && !got.Concatenation
}

// chainsMatch reports whether the table holds exactly the expected chains
// with exactly the expected rules.
func (e *Enforcer) chainsMatch(c *nftables.Conn, have []*nftables.Chain, fams [2]family, extra setMap) (bool, error) {
	want := e.chains()
	if len(have) != len(want) {
		return false, nil
	}
	for _, w := range want {
		var got *nftables.Chain
		for _, h := range have {
			if h.Name == w.Name {
				got = h
			}
		}
		if got == nil || !chainMatches(got, w) {
			return false, nil
		}
		rs, err := c.GetRules(e.table, got)
		if err != nil {
			return false, e.wrap(fmt.Sprintf("listing rules of chain %q in", got.Name), err)
		}
		if !rulesMatch(rs, e.rules(w, fams, extra)) {
			return false, nil
		}
	}
	return true, nil
}

func chainMatches(got, want *nftables.Chain) bool {
	if want.Hooknum == nil { // a regular chain
		return got.Hooknum == nil
	}
	return got.Type == want.Type &&
		got.Hooknum != nil && *got.Hooknum == *want.Hooknum &&
		got.Priority != nil && *got.Priority == *want.Priority &&
		got.Policy != nil && *got.Policy == *want.Policy &&
		got.Device == ""
}

func rulesMatch(got, want []*nftables.Rule) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		wx := decodable(want[i].Exprs)
		if !bytes.Equal(got[i].UserData, want[i].UserData) || len(got[i].Exprs) != len(wx) {
			return false
		}
		for j := range wx {
			g, err1 := marshalNormal(got[i].Exprs[j])
			w, err2 := marshalNormal(wx[j])
			if err1 != nil || err2 != nil || !bytes.Equal(g, w) {
				return false
			}
		}
	}
	return true
}

// marshalNormal encodes an expression without the parts that vary between
// equal rules: counter values and set IDs (a batch-local handle).
func marshalNormal(x expr.Any) ([]byte, error) {
	switch v := x.(type) {
	case *expr.Counter:
		x = &expr.Counter{}
	case *expr.Lookup:
		l := *v
		l.SetID = 0
		x = &l
	case *expr.Dynset:
		d := *v
		d.SetID = 0
		x = &d
	}
	return expr.Marshal(byte(nftables.TableFamilyINet), x)
}

func ruleCounter(r *nftables.Rule) (*expr.Counter, bool) {
	for _, x := range r.Exprs {
		if n, ok := x.(*expr.Counter); ok {
			return n, true
		}
	}
	return nil, false
}

// decodable drops the expressions google/nftables (v0.3.0) writes but does
// not decode when it reads rules back: the socket expression. Without this a
// table holding the throttle would never look right and would be rebuilt at
// every start.
func decodable(xs []expr.Any) []expr.Any {
	out := xs[:0:0]
	for _, x := range xs {
		if _, ok := x.(*expr.Socket); !ok {
			out = append(out, x)
		}
	}
	return out
}
