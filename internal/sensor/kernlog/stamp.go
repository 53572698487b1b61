package kernlog

import (
	"errors"
	"time"
)

// Timestamps. Every format a kernel firewall line reaches a file in puts its
// stamp at the start of the line, so that is the only place looked at: a
// stamp-like word inside the message (the "[ 123.456]" rsyslog keeps from
// the kernel, a date in the admin's log prefix) is never taken for the time.
//
//	2026-11-21T05:51:48.123456+00:00 host kernel: ...  rsyslog RFC 3339, dmesg --time-format iso (",")
//	2026-11-21T05:51:48+0000 host kernel: ...          journalctl -o short-iso, short-iso-precise
//	Nov 21 05:51:48 host kernel: [ 123.456] ...        traditional syslog, journalctl -o short
//	Nov 21 05:51:48.123456 host kernel: ...            journalctl -o short-precise
//	Sat 2026-11-21 05:51:48 UTC host kernel: ...       journalctl -o short-full
//	1795241094.407065 host kernel: ...                 journalctl -o short-unix
//	[  123.456789] ...                                 dmesg, journalctl -o short-monotonic (boot-relative)
//	[Sat Nov 21 05:51:48 2026] ...                     dmesg -T
//	<4>[  123.456789] ...                              dmesg -r, /proc/kmsg
//	6,1234,5678901234,-;...                            /dev/kmsg (microseconds since boot)

var errNoStamp = errors.New("no timestamp at the start of the line")

var monthNames = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

var dayNames = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// maxRelative bounds boot-relative stamps: 10^9 seconds is 31 years of
// uptime, and keeps the conversion to nanoseconds far from overflow.
const maxRelative = 1e9 * time.Second

// stamp reads the timestamp that opens b (the bytes before the fields).
func (ps *Parser) stamp(b []byte) (time.Time, error) {
	b = skipPriority(b)
	if len(b) == 0 {
		return time.Time{}, errNoStamp
	}
	var (
		t  time.Time
		ok bool
	)
	switch c := b[0]; {
	case c == '[':
		if t, ok = ps.dmesgStamp(b); !ok {
			t, ok = ps.ctimeStamp(b)
		}
	case isDigit(c):
		if t, ok = ps.isoStamp(b); !ok {
			if t, ok = ps.kmsgStamp(b); !ok {
				t, ok = unixStamp(b)
			}
		}
	case c >= 'A' && c <= 'Z':
		if t, ok = ps.syslogStamp(b); !ok {
			t, ok = ps.fullStamp(b)
		}
	}
	if !ok {
		return time.Time{}, errNoStamp
	}
	return t, nil
}

// skipPriority drops a syslog "<PRI>" (and an RFC 5424 version "1 ").
func skipPriority(b []byte) []byte {
	if len(b) < 3 || b[0] != '<' {
		return b
	}
	i := 1
	for i < len(b) && i <= 4 && isDigit(b[i]) {
		i++
	}
	if i == 1 || i >= len(b) || b[i] != '>' {
		return b
	}
	b = b[i+1:]
	if len(b) > 2 && b[0] == '1' && b[1] == ' ' && isDigit(b[2]) {
		b = b[2:]
	}
	return b
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// digits reads exactly n decimal digits at b[i:].
func digits(b []byte, i, n int) (int, bool) {
	if i+n > len(b) {
		return 0, false
	}
	v := 0
	for _, c := range b[i : i+n] {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// fraction reads a '.' or ',' and 1 to 9 digits at b[i:] as nanoseconds; it
// returns the index after it. Without a separator it reads nothing.
func fraction(b []byte, i int) (ns, next int, ok bool) {
	if i >= len(b) || b[i] != '.' && b[i] != ',' {
		return 0, i, true
	}
	i++
	start := i
	for i < len(b) && isDigit(b[i]) {
		if i-start == 9 {
			return 0, 0, false
		}
		ns = ns*10 + int(b[i]-'0')
		i++
	}
	if i == start {
		return 0, 0, false
	}
	for k := i - start; k < 9; k++ {
		ns *= 10
	}
	return ns, i, true
}

// clock reads "hh:mm:ss" at b[i:].
func clock(b []byte, i int) (h, m, s int, ok bool) {
	if i+8 > len(b) || b[i+2] != ':' || b[i+5] != ':' {
		return 0, 0, 0, false
	}
	h, ok1 := digits(b, i, 2)
	m, ok2 := digits(b, i+3, 2)
	s, ok3 := digits(b, i+6, 2)
	// 60 is a leap second; time.Date carries it into the next minute.
	return h, m, s, ok1 && ok2 && ok3 && h < 24 && m < 60 && s <= 60
}

// minYear is the earliest year a stamp may name. Earlier ones are not log
// times (and year 1 would make the zero time.Time, which means "unset").
const minYear = 1970

// date reads "YYYY-MM-DD" at b[i:] and checks the day exists.
func date(b []byte, i int) (y, mo, d int, ok bool) {
	if i+10 > len(b) || b[i+4] != '-' || b[i+7] != '-' {
		return 0, 0, 0, false
	}
	y, ok1 := digits(b, i, 4)
	mo, ok2 := digits(b, i+5, 2)
	d, ok3 := digits(b, i+8, 2)
	if !ok1 || !ok2 || !ok3 || y < minYear || mo < 1 || mo > 12 || d < 1 || d > daysIn(time.Month(mo), y) {
		return 0, 0, 0, false
	}
	return y, mo, d, true
}

var monthDays = [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

func daysIn(m time.Month, year int) int {
	if m == time.February && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		return 29
	}
	return monthDays[m]
}

// name3 matches a three-letter name at b[i:] against names and returns its
// index.
func name3(b []byte, i int, names []string) (int, bool) {
	if i+3 > len(b) {
		return 0, false
	}
	w := b[i : i+3]
	for k, n := range names {
		if string(w) == n {
			return k, true
		}
	}
	return 0, false
}

// endOfStamp reports whether a stamp may end at b[i]: the end of the prefix
// or a space before the rest of the line.
func endOfStamp(b []byte, i int) bool { return i == len(b) || b[i] == ' ' }

// isoStamp reads "YYYY-MM-DD[T ]hh:mm:ss[.frac][Z|±hh:mm|±hhmm|±hh]".
func (ps *Parser) isoStamp(b []byte) (time.Time, bool) {
	y, mo, d, ok := date(b, 0)
	if !ok || len(b) < 11 || b[10] != 'T' && b[10] != ' ' {
		return time.Time{}, false
	}
	h, mi, s, ok := clock(b, 11)
	if !ok {
		return time.Time{}, false
	}
	ns, i, ok := fraction(b, 19)
	if !ok {
		return time.Time{}, false
	}
	if endOfStamp(b, i) {
		return time.Date(y, time.Month(mo), d, h, mi, s, ns, ps.location()), true
	}
	off, i, ok := zoneOffset(b, i)
	if !ok || !endOfStamp(b, i) {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, s, ns, time.UTC).Add(-off), true
}

// zoneOffset reads "Z", "±hh:mm", "±hhmm" or "±hh" at b[i:]. The time is
// returned in UTC shifted by the offset, rather than in a time.FixedZone,
// which would allocate a Location per line.
func zoneOffset(b []byte, i int) (time.Duration, int, bool) {
	if i < len(b) && b[i] == 'Z' {
		return 0, i + 1, true
	}
	if i >= len(b) || b[i] != '+' && b[i] != '-' {
		return 0, 0, false
	}
	sign := time.Duration(1)
	if b[i] == '-' {
		sign = -1
	}
	hh, ok := digits(b, i+1, 2)
	if !ok || hh > 23 {
		return 0, 0, false
	}
	i += 3
	mm := 0
	if i < len(b) && b[i] == ':' {
		if mm, ok = digits(b, i+1, 2); !ok {
			return 0, 0, false
		}
		i += 3
	} else if m, ok := digits(b, i, 2); ok {
		mm, i = m, i+2
	}
	if mm > 59 {
		return 0, 0, false
	}
	return sign * (time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute), i, true
}

// syslogStamp reads the RFC 3164 "Mmm dd hh:mm:ss[.frac]" stamp, which has
// no year and no zone.
func (ps *Parser) syslogStamp(b []byte) (time.Time, bool) {
	mon, ok := name3(b, 0, monthNames[:])
	if !ok || len(b) < 5 || b[3] != ' ' {
		return time.Time{}, false
	}
	day, i, ok := paddedDay(b, 4)
	if !ok || i >= len(b) || b[i] != ' ' {
		return time.Time{}, false
	}
	h, mi, s, ok := clock(b, i+1)
	if !ok {
		return time.Time{}, false
	}
	ns, i, ok := fraction(b, i+9)
	if !ok || !endOfStamp(b, i) {
		return time.Time{}, false
	}
	return ps.inferYear(time.Month(mon+1), day, h, mi, s, ns)
}

// paddedDay reads a day of month written " 1", "01", "1" or "21".
func paddedDay(b []byte, i int) (day, next int, ok bool) {
	if i < len(b) && b[i] == ' ' {
		i++
	}
	start := i
	for i < len(b) && isDigit(b[i]) && i-start < 2 {
		day = day*10 + int(b[i]-'0')
		i++
	}
	if i == start || day < 1 || day > 31 {
		return 0, 0, false
	}
	return day, i, true
}

// inferYear gives a yearless stamp the year that puts it at or before the
// parser's clock: the current year, unless that lands more than a day in the
// future (a December line read in January), then the year before. The day of
// grace covers clocks and zones that disagree a little. A Feb 29 goes back
// to the last year that had one.
func (ps *Parser) inferYear(mon time.Month, day, h, mi, s, ns int) (time.Time, bool) {
	loc := ps.location()
	now := ps.now().In(loc)
	limit := now.Add(24 * time.Hour)
	for y := now.Year(); y > now.Year()-9; y-- {
		if day > daysIn(mon, y) {
			continue
		}
		t := time.Date(y, mon, day, h, mi, s, ns, loc)
		if !t.After(limit) {
			return t, true
		}
	}
	return time.Time{}, false // day 31 of a 30-day month
}

// fullStamp reads journalctl's short-full "Www YYYY-MM-DD hh:mm:ss ZONE".
func (ps *Parser) fullStamp(b []byte) (time.Time, bool) {
	if _, ok := name3(b, 0, dayNames[:]); !ok || len(b) < 4 || b[3] != ' ' {
		return time.Time{}, false
	}
	y, mo, d, ok := date(b, 4)
	if !ok || len(b) < 15 || b[14] != ' ' {
		return time.Time{}, false
	}
	h, mi, s, ok := clock(b, 15)
	if !ok {
		return time.Time{}, false
	}
	ns, i, ok := fraction(b, 23)
	if !ok || i >= len(b) || b[i] != ' ' {
		return time.Time{}, false
	}
	i++
	if off, j, ok := zoneOffset(b, i); ok && endOfStamp(b, j) {
		return time.Date(y, time.Month(mo), d, h, mi, s, ns, time.UTC).Add(-off), true
	}
	j := i
	for j < len(b) && j-i < 6 && b[j] >= 'A' && b[j] <= 'Z' {
		j++
	}
	if j == i || !endOfStamp(b, j) {
		return time.Time{}, false
	}
	return ps.inZone(b[i:j], y, time.Month(mo), d, h, mi, s, ns), true
}

// inZone builds a wall-clock time whose zone is named by an abbreviation.
// Abbreviations are ambiguous world-wide ("IST", "CST"), so only UTC and GMT
// are read by name; any other is taken to be the parser's Location, and its
// name picks the right side of a daylight-saving fold (the hour that happens
// twice in autumn). A stamp from another zone is then off by the difference:
// set Location to the zone of the host that wrote the log.
func (ps *Parser) inZone(abbr []byte, y int, mo time.Month, d, h, mi, s, ns int) time.Time {
	switch string(abbr) {
	case "UTC", "GMT", "UT", "Z":
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	}
	t := time.Date(y, mo, d, h, mi, s, ns, ps.location())
	if name, _ := t.Zone(); name == string(abbr) {
		return t
	}
	for _, shift := range [2]time.Duration{-time.Hour, time.Hour} {
		u := t.Add(shift)
		if name, _ := u.Zone(); name == string(abbr) && u.Hour() == h && u.Minute() == mi {
			return u
		}
	}
	return t
}

// dmesgStamp reads "[  seconds.micros]", seconds since boot.
func (ps *Parser) dmesgStamp(b []byte) (time.Time, bool) {
	i := 1
	for i < len(b) && b[i] == ' ' && i < 16 {
		i++
	}
	start := i
	var sec int64
	for i < len(b) && isDigit(b[i]) {
		if i-start == 9 {
			return time.Time{}, false
		}
		sec = sec*10 + int64(b[i]-'0')
		i++
	}
	if i == start || i >= len(b) || b[i] != '.' {
		return time.Time{}, false
	}
	ns, i, ok := fraction(b, i)
	if !ok || i >= len(b) || b[i] != ']' || !endOfStamp(b, i+1) {
		return time.Time{}, false
	}
	return ps.sinceBoot(time.Duration(sec)*time.Second + time.Duration(ns)), true
}

// ctimeStamp reads dmesg -T's "[Www Mmm d hh:mm:ss YYYY]" in local time.
func (ps *Parser) ctimeStamp(b []byte) (time.Time, bool) {
	if _, ok := name3(b, 1, dayNames[:]); !ok || len(b) < 6 || b[4] != ' ' {
		return time.Time{}, false
	}
	mon, ok := name3(b, 5, monthNames[:])
	if !ok || len(b) < 10 || b[8] != ' ' {
		return time.Time{}, false
	}
	day, i, ok := paddedDay(b, 9)
	if !ok || i >= len(b) || b[i] != ' ' {
		return time.Time{}, false
	}
	h, mi, s, ok := clock(b, i+1)
	if !ok || i+9 >= len(b) || b[i+9] != ' ' {
		return time.Time{}, false
	}
	y, ok := digits(b, i+10, 4)
	if !ok || y < minYear || i+14 >= len(b) || b[i+14] != ']' || !endOfStamp(b, i+15) ||
		day > daysIn(time.Month(mon+1), y) {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mon+1), day, h, mi, s, 0, ps.location()), true
}

// kmsgStamp reads a /dev/kmsg record header "prio,seq,usec,flags[,...];".
func (ps *Parser) kmsgStamp(b []byte) (time.Time, bool) {
	i := 0
	var usec int64
	for field := 0; field < 3; field++ {
		start := i
		var v int64
		for i < len(b) && isDigit(b[i]) {
			if i-start == 20 {
				return time.Time{}, false
			}
			if field == 2 {
				v = v*10 + int64(b[i]-'0')
				if v > int64(maxRelative/time.Microsecond) {
					return time.Time{}, false
				}
			}
			i++
		}
		if i == start || i >= len(b) || b[i] != ',' {
			return time.Time{}, false
		}
		i++
		usec = v
	}
	// Flags ('-', 'c', '+') and optional ",caller=T123" fields, no spaces.
	for ; i < len(b) && b[i] != ';'; i++ {
		if b[i] == ' ' {
			return time.Time{}, false
		}
	}
	if i >= len(b) {
		return time.Time{}, false
	}
	return ps.sinceBoot(time.Duration(usec) * time.Microsecond), true
}

// unixStamp reads journalctl short-unix "seconds.micros": 9 to 11 digits of
// seconds (2001 to 5138) so that an ordinary number is not taken for a time.
func unixStamp(b []byte) (time.Time, bool) {
	i := 0
	var sec int64
	for i < len(b) && isDigit(b[i]) && i < 12 {
		sec = sec*10 + int64(b[i]-'0')
		i++
	}
	if i < 9 || i > 11 || i >= len(b) || b[i] != '.' {
		return time.Time{}, false
	}
	ns, i, ok := fraction(b, i)
	if !ok || !endOfStamp(b, i) {
		return time.Time{}, false
	}
	return time.Unix(sec, int64(ns)), true
}

// sinceBoot turns a boot-relative offset into wall time.
func (ps *Parser) sinceBoot(d time.Duration) time.Time {
	if ps.Boot.IsZero() {
		if !ps.relative.Load() {
			ps.relative.Store(true)
		}
		return time.Unix(0, 0).Add(d)
	}
	return ps.Boot.Add(d)
}

func (ps *Parser) location() *time.Location {
	if ps.Location != nil {
		return ps.Location
	}
	return time.Local
}

func (ps *Parser) now() time.Time {
	if ps.Now != nil {
		return ps.Now()
	}
	return time.Now()
}
