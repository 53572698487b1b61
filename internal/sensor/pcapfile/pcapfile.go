// Package pcapfile reads pcap and pcapng capture files (gopacket/pcapgo,
// pure Go) and decodes every frame into a Probe with package probe's
// decoder. It handles every link type tcpdump writes on Linux, including
// pcapng files whose interfaces have different link types.
//
// It knows nothing of detection.
package pcapfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sensor"
)

// Magic numbers at the start of capture files.
var (
	magicPcap   = [][4]byte{{0xa1, 0xb2, 0xc3, 0xd4}, {0xd4, 0xc3, 0xb2, 0xa1}, {0xa1, 0xb2, 0x3c, 0x4d}, {0x4d, 0x3c, 0xb2, 0xa1}}
	magicPcapNG = [4]byte{0x0a, 0x0d, 0x0d, 0x0a}
)

// Sniff reports whether head (the first bytes of a file) starts a pcap or
// pcapng capture.
func Sniff(head []byte) bool {
	if len(head) < 4 {
		return false
	}
	h := [4]byte(head[:4])
	if h == magicPcapNG {
		return true
	}
	for _, m := range magicPcap {
		if h == m {
			return true
		}
	}
	return false
}

type packetReader interface {
	ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// Reader is a sensor.Source over one capture.
type Reader struct {
	name   string
	src    packetReader
	link   probe.LinkType
	mixed  bool // pcapng: link type per packet
	closer io.Closer
	stats  sensor.Stats
	done   bool
}

// New reads a capture from r, which must start with a pcap or pcapng header.
// If r is an io.Closer, Close closes it.
func New(r io.Reader, name string) (*Reader, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 1<<16)
	}
	head, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("%s: reading capture header: %w", name, err)
	}
	rd := &Reader{name: name}
	if c, ok := r.(io.Closer); ok {
		rd.closer = c
	}
	if [4]byte(head) == magicPcapNG {
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true, SkipUnknownVersion: true})
		if err != nil {
			return nil, fmt.Errorf("%s: not a readable pcapng capture: %w", name, err)
		}
		rd.src, rd.mixed = ng, true
		rd.link = probe.LinkType(ng.LinkType())
	} else {
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: not a readable pcap capture: %w", name, err)
		}
		rd.src = pr
		rd.link = probe.LinkType(pr.LinkType())
		if !rd.link.Supported() {
			return nil, fmt.Errorf("%s: link type %d (%v) is not supported; capture with tcpdump on an Ethernet, cooked (-i any), raw-IP or NFLOG interface", name, rd.link, layers.LinkType(rd.link))
		}
	}
	return rd, nil
}

// LinkType is the capture's (first interface's) link type.
func (r *Reader) LinkType() probe.LinkType { return r.link }

// Next implements sensor.Source. Frames that are not IP (ARP, LLDP) are
// counted as ignored; malformed frames are counted and skipped. A capture cut
// off in the middle of a packet (a tcpdump killed hard) ends the stream with
// a note, not an error: everything before the cut is good.
func (r *Reader) Next(p *probe.Probe) error {
	for !r.done {
		data, ci, err := r.src.ZeroCopyReadPacketData()
		switch {
		case err == io.EOF:
			r.done = true
			return io.EOF
		case errors.Is(err, io.ErrUnexpectedEOF):
			r.done = true
			r.stats.Problem("%s: capture ends in the middle of packet %d", r.name, r.stats.Read.Load()+1)
			return io.EOF
		case err != nil:
			r.done = true
			return fmt.Errorf("%s: packet %d: %w", r.name, r.stats.Read.Load()+1, err)
		}
		n := r.stats.Read.Add(1)
		link := r.link
		if r.mixed && len(ci.AncillaryData) > 0 {
			if lt, ok := ci.AncillaryData[0].(layers.LinkType); ok {
				link = probe.LinkType(lt)
			}
		}
		p.Time = ci.Timestamp
		p.Direction = probe.DirUnknown
		p.Outcome = probe.OutcomeUnknown
		p.Bait = probe.BaitNone
		p.Sensor = probe.SensorPcap
		p.Iface = ""
		err = probe.Decode(link, data, p)
		switch {
		case err == nil:
		case errors.Is(err, probe.ErrNotIP):
			r.stats.Ignored.Add(1)
			continue
		case errors.Is(err, probe.ErrTruncated) && usable(p):
			// Cut short by the snap length after the fields that matter.
		default:
			r.stats.Problem("%s: packet %d: %v", r.name, n, err)
			continue
		}
		r.stats.Probes.Add(1)
		return nil
	}
	return io.EOF
}

// usable reports whether a truncated packet still tells who contacted whom.
func usable(p *probe.Probe) bool {
	if !p.Src.Addr().IsValid() {
		return false
	}
	switch p.Proto {
	case probe.TCP:
		return p.Known&probe.KnownPorts != 0 && (p.Known&probe.KnownFlags != 0 || p.Frag == probe.FragFirst)
	case probe.UDP:
		return p.Known&probe.KnownPorts != 0
	}
	return p.Frag == probe.FragLater || p.Inner.Valid
}

// Stats implements sensor.Source.
func (r *Reader) Stats() *sensor.Stats { return &r.stats }

// Name implements sensor.Source.
func (r *Reader) Name() string { return r.name }

// Close implements sensor.Source.
func (r *Reader) Close() error {
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}
