package detect

import (
	"github.com/scanwarden/scanwarden/internal/probe"
)

// tool is a scanner the packets can name.
type tool uint8

const (
	toolNmap tool = iota
	toolMasscan
	toolZmap
	toolHping
	nTools
)

var toolNames = [nTools]string{"nmap", "masscan", "zmap", "hping3"}

// Fingerprints, each checked against captures made with the tools in
// network namespaces (scripts/make-captures.sh) and against their sources:
//
//   - masscan: IP ID = (destination address ^ destination port ^ sequence
//     number) & 0xffff (masscan's templ-pkt.c), TTL 255, window 1024. The
//     IP ID rule alone is a 1-in-65536 coincidence per packet.
//   - zmap: IP ID 54321 on every probe (zmap's probe modules), TTL 255.
//   - nmap raw probes (-sS/-sF/-sN/-sX/-sA/-sW/-sM): window 1024, 2048, 3072
//     or 4096, no DF, SYNs carry exactly one option (MSS 1460), the others
//     none; TTL drawn from 37..59 at the sender.
//   - hping3: window 512 and no options by default, no DF.
//
// A kernel's own SYN (connect(), nmap -sT) carries MSS plus SACK-permitted,
// timestamps or window scale: that is a "stack" SYN, not a tool's.
func fingerprint(p *probe.Probe) (t tool, ok bool) {
	if p.Known&probe.KnownIPID == 0 || p.Known&probe.KnownWindow == 0 {
		return 0, false
	}
	if p.Dst.Addr().Is4() && p.Known&probe.KnownSeq != 0 {
		d := p.Dst.Addr().As4()
		ip := uint32(d[0])<<24 | uint32(d[1])<<16 | uint32(d[2])<<8 | uint32(d[3])
		if uint16(ip^uint32(p.Dst.Port())^p.Seq) == p.IPID && p.TTL > 200 {
			return toolMasscan, true
		}
	}
	if p.IPID == 54321 && p.Proto == probe.TCP {
		return toolZmap, true
	}
	noOpts := p.Known&probe.KnownOptions != 0 && p.Opts.Len == 0
	switch p.Window {
	case 1024, 2048, 3072, 4096:
		if p.Known&probe.KnownOptions == 0 {
			return 0, false
		}
		if p.Flags&probe.SYN != 0 {
			if p.Opts.Len == 4 && p.Opts.Bits == probe.OptMSS && p.Opts.MSS == 1460 {
				return toolNmap, true
			}
			return 0, false
		}
		if noOpts {
			return toolNmap, true
		}
	case 512:
		if noOpts {
			return toolHping, true
		}
	}
	return 0, false
}

// stackSYN reports whether a SYN carries the option set of a real TCP stack
// (as connect() sends), as opposed to a raw scanner's crafted SYN. Only
// meaningful when the options are known.
func stackSYN(p *probe.Probe) bool {
	return p.Opts.Bits&probe.OptMSS != 0 &&
		p.Opts.Bits&(probe.OptSACKPerm|probe.OptTimestamp|probe.OptWScale) != 0
}
