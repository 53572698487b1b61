package triage

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// LogStatus says whether the connection log was searched.
type LogStatus string

// Log statuses.
const (
	LogSearched LogStatus = "searched" // every attempt that could be was looked up
	LogNone     LogStatus = "none"     // no connection log was given
	LogSkipped  LogStatus = "skipped"  // the report masks our address and Options.Source was not given
	LogFailed   LogStatus = "failed"   // every query failed
)

// queryLimit bounds the connections one query returns. A query names the
// outside 4-tuple and a few minutes, so more than one or two answers mean
// port reuse; 32 leaves room for queries by address when the report has
// no source port.
const queryLimit = 32

// clientKey tells clients apart: an internal client by its address, a
// local process by its address and identity.
type clientKey struct {
	ip   netip.Addr
	pid  uint32
	uid  uint32
	comm string
}

type connID struct {
	start         int64
	client, outer netip.AddrPort
	dst           netip.AddrPort
	proto         uint8
}

// attributor collects the clients behind the attempts.
type attributor struct {
	log     Lookup
	skew    time.Duration
	clients map[clientKey]*Client
	seen    map[connID]bool
	stats   LookupStats
	errs    []error
}

// lookupSrc is the address to search for: the reported source, or
// Options.Source when the reporter masked it. ok is false when there is
// nothing to search for.
func lookupSrc(a *attempt, opts *Options) (netip.Addr, bool) {
	if !a.srcMasked {
		return a.src.Addr(), true
	}
	if opts.Source.IsValid() && opts.Source.Is4() == a.src.Addr().Is4() {
		return opts.Source, true
	}
	return netip.Addr{}, false
}

func (at *attributor) query(a *attempt, src netip.Addr, shift time.Duration) Query {
	q := Query{
		Src:     src,
		SrcPort: a.src.Port(),
		DstPort: a.dst.Port(),
		Proto:   uint8(a.proto),
		Since:   a.first.Add(-shift - at.skew),
		Until:   a.last.Add(-shift + at.skew),
		Limit:   queryLimit,
	}
	if !a.dstMasked {
		q.Dst = a.dst.Addr()
	}
	return q
}

// attribute looks every kept attempt up and fills the result's clients
// and log fields.
func (res *Result) attribute(ctx context.Context, rep *report, log Lookup, opts *Options) error {
	res.Lookup.Attempts = res.Attempts
	if log == nil {
		res.Log = LogNone
		res.LogNote = "No connection log: could not attribute the attempts to a client or process; classified from the report alone."
		return nil
	}
	at := &attributor{log: log, skew: opts.Skew, clients: map[clientKey]*Client{}, seen: map[connID]bool{}}
	masked := 0
	for i := range rep.attempts {
		a := &rep.attempts[i]
		src, ok := lookupSrc(a, opts)
		if !ok {
			masked++
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := at.lookup(ctx, a, src, rep.srcText(a.src.Addr())); err != nil {
			return err
		}
	}
	res.Lookup = at.stats
	res.Lookup.Attempts = res.Attempts
	res.Lookup.NotLookedUp = max(0, res.Attempts-at.stats.Queried)
	res.Clients = at.list()
	switch {
	case at.stats.Queried == 0 && masked > 0:
		res.Log = LogSkipped
		res.LogNote = "The report masks our address (x.x.x.x), so the log was not searched: attribution needs our address the report is about (--source)."
		return nil
	case at.stats.Queried > 0 && at.stats.Errors == at.stats.Queried:
		res.Log = LogFailed
		res.LogNote = fmt.Sprintf("Every one of %d queries to the connection log failed (first error: %s); could not attribute.", at.stats.Queried, safe(at.errs[0].Error()))
		return nil
	}
	res.Log = LogSearched
	res.LogNote = at.note(res.Attempts, masked, rep.truncated, opts.MaxLookups)
	if at.stats.Matched == 0 && at.stats.Queried > 0 {
		if err := res.suggestShift(ctx, at, rep, opts); err != nil {
			return err
		}
	}
	return nil
}

// lookup queries the log for one attempt and records the clients found.
func (at *attributor) lookup(ctx context.Context, a *attempt, src netip.Addr, reported string) error {
	at.stats.Queried++
	conns, err := at.log.Conns(ctx, at.query(a, src, 0))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		at.stats.Errors++
		if len(at.errs) < 3 {
			at.errs = append(at.errs, err)
		}
		return nil
	}
	if len(conns) >= queryLimit {
		at.stats.Truncated++
	}
	matched := map[clientKey]bool{}
	for i := range conns {
		c := &conns[i]
		k := keyOf(c)
		matched[k] = true
		at.add(k, c)
	}
	switch {
	case len(matched) == 0:
		at.stats.Unmatched++
	case len(matched) > 1:
		at.stats.Ambiguous++
		fallthrough
	default:
		at.stats.Matched++
	}
	for k := range matched {
		cl := at.clients[k]
		cl.Matched++
		if !slices.Contains(cl.Sources, reported) && len(cl.Sources) < maxListed {
			cl.Sources = append(cl.Sources, reported)
		}
	}
	return nil
}

func keyOf(c *Conn) clientKey {
	k := clientKey{ip: c.Client.Addr().Unmap()}
	if c.PID != 0 {
		k.pid, k.uid, k.comm = c.PID, c.UID, c.Comm
	}
	return k
}

// add counts a logged connection for its client, once however many
// attempts' windows it falls in.
func (at *attributor) add(k clientKey, c *Conn) {
	cl := at.clients[k]
	if cl == nil {
		cl = &Client{IP: k.ip.String(), Outcomes: map[string]int{}, Sources: []string{}}
		if c.Outside.IsValid() && c.Outside.Addr().Unmap() != k.ip {
			cl.NAT = true
			cl.Outside = c.Outside.Addr().Unmap().String()
		}
		if k.pid != 0 {
			cl.Process = &Process{PID: k.pid, UID: k.uid, Comm: safe(k.comm)}
		}
		at.clients[k] = cl
	}
	id := connID{start: c.Start.UnixNano(), client: c.Client, outer: c.Outside, dst: c.Dst, proto: c.Proto}
	if at.seen[id] {
		return
	}
	at.seen[id] = true
	cl.Attempts++
	cl.Packets += c.OrigPackets
	cl.ReplyPackets += c.ReplyPackets
	outcome := c.Outcome
	switch outcome {
	case "established", "refused", "unanswered":
	default:
		outcome = "unknown" // the log's own words are not copied into tickets
	}
	cl.Outcomes[outcome]++
	start, end := c.Start.UTC(), c.End.UTC()
	if end.Before(start) {
		end = start
	}
	if cl.First.IsZero() || start.Before(cl.First) {
		cl.First = start
	}
	if end.After(cl.Last) {
		cl.Last = end
	}
}

// list returns the clients, those matching the most attempts first.
func (at *attributor) list() []Client {
	out := make([]Client, 0, len(at.clients))
	for _, c := range at.clients {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b Client) int {
		if c := cmp.Compare(b.Matched, a.Matched); c != 0 {
			return c
		}
		if c := cmp.Compare(a.IP, b.IP); c != 0 {
			return c
		}
		return cmp.Compare(a.pid(), b.pid())
	})
	return out
}

func (c *Client) pid() uint32 {
	if c.Process == nil {
		return 0
	}
	return c.Process.PID
}

// note says in words what the search found.
func (at *attributor) note(attempts, masked int, truncated bool, limit int) string {
	s := at.stats
	var b []byte
	b = fmt.Appendf(b, "Searched the connection log for %s", plural(s.Queried, "attempt"))
	if truncated {
		b = fmt.Appendf(b, " (the first %d of %d: the lookup limit)", limit, attempts)
	}
	b = fmt.Appendf(b, ", each at its reported time ±%v: %d matched, %d did not.", at.skew, s.Matched, s.Unmatched)
	if s.Matched == 0 && s.Queried > 0 {
		b = append(b, " Nothing matched: check the report's time zone (--tz) and the reporter's clock (--offset), or widen --skew; also that the log covers that time."...)
	}
	if masked > 0 {
		b = fmt.Appendf(b, " %s with a masked source not searched (needs --source).", plural(masked, "attempt"))
	}
	if s.Ambiguous > 0 {
		b = fmt.Appendf(b, " %s matched more than one client (port reuse): treat those with care.", plural(s.Ambiguous, "attempt"))
	}
	if s.Truncated > 0 {
		b = fmt.Appendf(b, " %s returned the most connections a query may (%d); more may exist.", plural(s.Truncated, "query"), queryLimit)
	}
	if s.Errors > 0 {
		b = fmt.Appendf(b, " %s failed (first error: %s).", plural(s.Errors, "query"), safe(at.errs[0].Error()))
	}
	return string(b)
}

// The clock search when nothing matched: it asks for each sampled
// attempt's outside 4-tuple over ±shiftMax, the span of the world's time
// zones (UTC-12 to UTC+14), and looks for one clock difference that fits
// every sample.
const (
	shiftMax = 14 * time.Hour
	// shiftSamples is how many attempts a difference must fit; three keep
	// a chance reuse of one 4-tuple from passing as a clock difference.
	shiftSamples = 3
	// shiftLimit bounds the connections one search query returns: a
	// 4-tuple is rarely reused more than a few times a day.
	shiftLimit = 256
	// zoneStep: time zones are whole quarter hours from UTC (Nepal +5:45,
	// Chatham Islands +12:45).
	zoneStep = 15 * time.Minute
)

// suggestShift looks for a clock difference that makes the report match
// the log, and says so in Hint. It never applies it: that is the user's
// decision, on evidence.
func (res *Result) suggestShift(ctx context.Context, at *attributor, rep *report, opts *Options) error {
	var samples []*attempt
	for i := range rep.attempts {
		a := &rep.attempts[i]
		if _, ok := lookupSrc(a, opts); ok && a.src.Port() != 0 && len(samples) < shiftSamples {
			samples = append(samples, a)
		}
	}
	if len(samples) == 0 {
		return nil
	}
	starts := make([][]time.Time, len(samples))
	for i, a := range samples {
		src, _ := lookupSrc(a, opts)
		q := at.query(a, src, 0)
		q.Since, q.Until, q.Limit = q.Since.Add(-shiftMax), q.Until.Add(shiftMax), shiftLimit
		conns, err := at.log.Conns(ctx, q)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil || len(conns) == 0 {
			return nil
		}
		for _, c := range conns {
			starts[i] = append(starts[i], c.Start)
		}
	}
	d, ok := fitShift(samples, starts, at.skew)
	if !ok {
		return nil
	}
	total := opts.Offset + d
	why := "the reporter's clock is probably wrong by that much"
	if r := d.Round(zoneStep); (d-r).Abs() <= at.skew && r != 0 {
		why = fmt.Sprintf("the report's times are probably in another zone than %s (%v from it)", zoneName(opts.Location), r)
	}
	res.SuggestedOffset = total.String()
	res.Hint = fmt.Sprintf("The log matches %s when the report's clock is taken to be %v ahead of ours (offset %v in all): %s. Check, then rerun with --offset %v, or with --tz set to the reporter's zone.",
		plural(len(samples), "sampled attempt"), d, total, why, total)
	return nil
}

// fitShift finds the smallest clock difference d such that every sample,
// moved back by d, starts within skew of a logged connection.
func fitShift(samples []*attempt, starts [][]time.Time, skew time.Duration) (time.Duration, bool) {
	var cands []time.Duration
	for _, s := range starts[0] {
		cands = append(cands, samples[0].first.Sub(s))
	}
	slices.SortFunc(cands, func(a, b time.Duration) int { return cmp.Compare(a.Abs(), b.Abs()) })
	for _, d := range cands {
		fits := true
		for i := 1; i < len(samples) && fits; i++ {
			fits = slices.ContainsFunc(starts[i], func(s time.Time) bool {
				return samples[i].first.Add(-d).Sub(s).Abs() <= skew
			})
		}
		if fits && d != 0 {
			return d, true
		}
	}
	return 0, false
}
