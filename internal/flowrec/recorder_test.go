package flowrec

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/conntrack"
	"github.com/scanwarden/scanwarden/internal/flowlog"
)

type sliceSink struct {
	flows []flowlog.Flow
	fail  bool
}

func (s *sliceSink) Append(f *flowlog.Flow) error {
	if s.fail {
		return errors.New("disk full")
	}
	s.flows = append(s.flows, *f)
	return nil
}

var (
	t0       = time.Date(2026, 6, 18, 15, 53, 34, 0, time.UTC)
	client   = netip.MustParseAddrPort("10.0.0.23:52218")
	remote   = netip.MustParseAddrPort("198.51.100.103:6881")
	outside  = netip.MustParseAddrPort("203.0.113.9:61000")
	tcpProto = uint8(6)
)

// masq is the event of client's connection to remote, masqueraded as
// outside.
func masq(typ conntrack.EventType, id uint32, status uint32) conntrack.Event {
	return conntrack.Event{
		Type:   typ,
		ID:     id,
		Orig:   conntrack.Tuple{Proto: tcpProto, Src: client, Dst: remote},
		Reply:  conntrack.Tuple{Proto: tcpProto, Src: remote, Dst: outside},
		Status: status,
	}
}

func TestDestroyWithKernelStamps(t *testing.T) {
	sink := &sliceSink{}
	r := New(sink, Options{
		Iface:   func(a netip.Addr) string { return map[netip.Addr]string{client.Addr(): "lan0"}[a] },
		IsLocal: func(netip.Addr) bool { return false },
		Process: func(*flowlog.Flow) (uint32, uint32, string, bool) {
			t.Error("Process asked for a forwarded flow")
			return 0, 0, "", false
		},
	})
	e := masq(conntrack.EventDestroy, 7, conntrack.StatusConfirmed|conntrack.StatusSrcNAT)
	e.HaveCounters = true
	e.OrigCounters = conntrack.Counters{Packets: 3, Bytes: 180}
	e.Start, e.Stop, e.Time = t0, t0.Add(129*time.Second), t0.Add(130*time.Second)
	e.TCPState = conntrack.TCPSynSent
	r.Handle(&e)
	if len(sink.flows) != 1 {
		t.Fatalf("%d flows", len(sink.flows))
	}
	want := flowlog.Flow{
		Start: t0, End: t0.Add(129 * time.Second), Proto: 6,
		Src: client, Dst: remote, NATSrc: outside, NATDst: remote,
		Outcome: flowlog.OutcomeUnanswered, OrigPackets: 3, OrigBytes: 180, Iface: "lan0",
	}
	if got := sink.flows[0]; got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if s := r.Stats(); s.Written != 1 || s.NoStart != 0 || s.Events != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		proto  uint8
		status uint32
		reply  uint64
		want   flowlog.Outcome
	}{
		{"tcp assured", 6, conntrack.StatusSeenReply | conntrack.StatusAssured, 5, flowlog.OutcomeEstablished},
		{"tcp answered by RST", 6, conntrack.StatusSeenReply, 1, flowlog.OutcomeRefused},
		{"tcp no answer", 6, 0, 0, flowlog.OutcomeUnanswered},
		{"udp answered", 17, conntrack.StatusSeenReply, 1, flowlog.OutcomeEstablished},
		{"udp no answer", 17, 0, 0, flowlog.OutcomeUnanswered},
		{"counters only", 6, 0, 1, flowlog.OutcomeRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := masq(conntrack.EventDestroy, 1, tc.status)
			e.Orig.Proto, e.Reply.Proto = tc.proto, tc.proto
			e.HaveCounters = true
			e.ReplyCounters.Packets = tc.reply
			if got := outcome(&e); got != tc.want {
				t.Errorf("outcome %v, want %v", got, tc.want)
			}
		})
	}
}

// TestTrackedStarts: without kernel stamps, the start comes from the NEW
// event; a connection older than the recorder gets its end as start.
func TestTrackedStarts(t *testing.T) {
	sink := &sliceSink{}
	r := New(sink, Options{TrackStarts: true, MaxOpen: 2})
	n := masq(conntrack.EventNew, 1, 0)
	n.Time = t0
	r.Handle(&n)
	d := masq(conntrack.EventDestroy, 1, conntrack.StatusSeenReply|conntrack.StatusAssured)
	d.Time = t0.Add(time.Minute)
	r.Handle(&d)
	old := masq(conntrack.EventDestroy, 2, 0)
	old.Time = t0.Add(2 * time.Minute)
	r.Handle(&old)
	if len(sink.flows) != 2 {
		t.Fatalf("%d flows", len(sink.flows))
	}
	if f := sink.flows[0]; !f.Start.Equal(t0) || !f.End.Equal(t0.Add(time.Minute)) || f.Outcome != flowlog.OutcomeEstablished {
		t.Errorf("tracked: %+v", f)
	}
	if f := sink.flows[1]; !f.Start.Equal(f.End) {
		t.Errorf("unknown start: %+v", f)
	}
	// Bounded: three NEWs into room for two.
	for id := uint32(10); id < 13; id++ {
		e := masq(conntrack.EventNew, id, 0)
		r.Handle(&e)
	}
	if s := r.Stats(); s.Remembered != 2 || s.Evicted != 1 || s.NoStart != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestLocalProcessAndSinkFailure(t *testing.T) {
	sink := &sliceSink{}
	local := netip.MustParseAddr("10.0.0.23")
	r := New(sink, Options{
		IsLocal: func(a netip.Addr) bool { return a == local },
		Process: func(f *flowlog.Flow) (uint32, uint32, string, bool) {
			return 4242, 65534, "python3", f.Dst == remote
		},
	})
	e := masq(conntrack.EventDestroy, 3, 0)
	e.Time = t0
	r.Handle(&e)
	if f := sink.flows[0]; f.PID != 4242 || f.UID != 65534 || f.Comm != "python3" {
		t.Errorf("process: %+v", f)
	}
	sink.fail = true
	r.Handle(&e)
	if s := r.Stats(); s.Failed != 1 || s.Written != 1 {
		t.Errorf("stats %+v", s)
	}
}
