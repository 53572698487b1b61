package lists

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// FeedSpec is one feed line of CSF's csf.blocklists, NAME|INTERVAL|MAX|URL.
type FeedSpec struct {
	Name     string // as CSF has it: up to 25 capital letters, digits, _ (an iptables chain name)
	Interval time.Duration
	Max      int // entries kept; 0: all
	URL      string
	Line     int // in the file
}

// Feed returns the spec as a Feed; the name is kept as it is (scanwarden's
// configuration wants it in lower case).
func (s FeedSpec) Feed() Feed {
	return Feed{Name: s.Name, URL: s.URL, Interval: s.Interval, Max: s.Max}
}

// csfMinInterval is CSF's floor: lfd raises a shorter INTERVAL to an hour
// (csf.blocklists: "must be a minimum of 3600 seconds").
const csfMinInterval = time.Hour

// ParseCSFBlocklists reads csf.blocklists. Commented-out lines (CSF ships
// every feed commented out) and blank lines are skipped. Each bad line is
// an error naming its line, and the good lines are still returned. An
// INTERVAL below 3600 seconds is raised to an hour, as lfd does.
func ParseCSFBlocklists(r io.Reader) ([]FeedSpec, []error) {
	var specs []FeedSpec
	var errs []error
	lr := newLineReader(r)
	seen := map[string]int{}
	for n := 1; ; n++ {
		b, long, rerr := lr.next()
		if line := strings.TrimSpace(string(b)); line != "" && line[0] != '#' {
			s, err := parseCSFLine(line, long)
			if err == nil && seen[s.Name] != 0 {
				err = fmt.Errorf("%s is already defined on line %d", s.Name, seen[s.Name])
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("csf.blocklists:%d: %w", n, err))
			} else {
				s.Line = n
				seen[s.Name] = n
				specs = append(specs, s)
			}
		}
		if rerr != nil {
			if rerr != io.EOF {
				errs = append(errs, fmt.Errorf("csf.blocklists:%d: %w", n, rerr))
			}
			return specs, errs
		}
	}
}

// quoted quotes s for an error message, clipped so that a hostile line
// cannot make the message long.
func quoted(s string) string { return strconv.Quote(clip(s, 48)) }

func parseCSFLine(line string, long bool) (FeedSpec, error) {
	if long {
		return FeedSpec{}, fmt.Errorf("a line longer than %d bytes", MaxLineLen)
	}
	f := strings.SplitN(line, "|", 4)
	if len(f) != 4 {
		return FeedSpec{}, fmt.Errorf("%s is not NAME|INTERVAL|MAX|URL", quoted(line))
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	name, interval, maxEntries, u := f[0], f[1], f[2], f[3]
	if name == "" || len(name) > 25 || strings.Trim(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
		return FeedSpec{}, fmt.Errorf("name %s: use up to 25 letters, digits and _", quoted(name))
	}
	secs, err := strconv.ParseInt(interval, 10, 64)
	if err != nil || secs < 1 || secs > 365*86400 {
		return FeedSpec{}, fmt.Errorf("%s: interval %s is not a number of seconds (3600 or more)", name, quoted(interval))
	}
	m, err := strconv.Atoi(maxEntries)
	if err != nil || m < 0 {
		return FeedSpec{}, fmt.Errorf("%s: max %s is not a number (0 keeps all entries)", name, quoted(maxEntries))
	}
	pu, err := url.Parse(u)
	if err != nil || !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") || pu.Host == "" {
		return FeedSpec{}, fmt.Errorf("%s: %s is not an http(s) URL", name, quoted(u))
	}
	return FeedSpec{
		Name:     name,
		Interval: max(time.Duration(secs)*time.Second, csfMinInterval),
		Max:      m,
		URL:      u,
	}, nil
}
