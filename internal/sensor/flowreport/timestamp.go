package flowreport

import (
	"fmt"
	"time"
)

// stamp is a timestamp read from a line, before a Location is applied.
type stamp struct {
	year, month, day     int
	hour, min, sec, nsec int
	offset               int // seconds east of UTC, when zoned
	zoned                bool
	noYear               bool // syslog: the year must be inferred
	epoch                bool // Unix seconds in year/sec fields below
	unix                 int64
}

// findTime returns the first timestamp in b and where it lies. found is
// false when b holds none; err is set when something shaped like a
// timestamp holds impossible values ("2013-13-45 25:00:00"). A ten-digit
// number is taken for epoch seconds only when no other timestamp is on the
// line, since ticket and case numbers look the same.
func (ps *Parser) findTime(b []byte) (t time.Time, start, end int, found bool, err error) {
	var epoch stamp
	epochAt, epochEnd := -1, 0
	for i := 0; i < len(b); i++ {
		if i > 0 && !isTimeBoundary(b[i-1]) {
			continue
		}
		if !isDigit(b[i]) && !isLetter(b[i]) {
			continue
		}
		st, n, ok, err := scanStamp(b[i:])
		if err != nil {
			return time.Time{}, 0, 0, false, err
		}
		if !ok {
			continue
		}
		if st.epoch {
			if epochAt < 0 {
				epoch, epochAt, epochEnd = st, i, i+n
			}
			i += n - 1
			continue
		}
		t, err := ps.resolve(st)
		return t, i, i + n, err == nil, err
	}
	if epochAt >= 0 {
		t, err := ps.resolve(epoch)
		return t, epochAt, epochEnd, err == nil, err
	}
	return time.Time{}, 0, 0, false, nil
}

// parseTimeField reads a table cell that must be a timestamp and nothing
// else.
func (ps *Parser) parseTimeField(b []byte) (time.Time, error) {
	st, n, ok, err := scanStamp(b)
	if err != nil {
		return time.Time{}, err
	}
	if !ok || len(trimSpace(b[n:])) != 0 {
		return time.Time{}, fmt.Errorf("bad time %s", quoteShort(b))
	}
	return ps.resolve(st)
}

func isTimeBoundary(c byte) bool {
	switch c {
	case ' ', '\t', '"', '\'', '[', '(', '{', '<', ',', ';', '=', '|', '>':
		return true
	}
	return false
}

// resolve turns a stamp into an instant.
func (ps *Parser) resolve(st stamp) (time.Time, error) {
	if st.epoch {
		return time.Unix(st.unix, int64(st.nsec)).UTC(), nil
	}
	loc := ps.location()
	if st.noYear {
		st.year = ps.inferYear(st, loc)
	}
	if err := st.check(); err != nil {
		return time.Time{}, err
	}
	if st.zoned {
		t := time.Date(st.year, time.Month(st.month), st.day, st.hour, st.min, st.sec, st.nsec, time.UTC)
		return t.Add(-time.Duration(st.offset) * time.Second), nil
	}
	return time.Date(st.year, time.Month(st.month), st.day, st.hour, st.min, st.sec, st.nsec, loc), nil
}

// inferYear picks the year of a syslog stamp the way syslog readers do: the
// current one, or the one before when the current one would put the line
// more than a day after now (a December line read in January). The day of
// slack absorbs clock and zone differences between reporter and reader.
// February 29 goes back to the last leap year.
func (ps *Parser) inferYear(st stamp, loc *time.Location) int {
	now := ps.now()
	y := leapYearFor(st.month, st.day, now.In(loc).Year())
	t := time.Date(y, time.Month(st.month), st.day, st.hour, st.min, st.sec, st.nsec, loc)
	if t.After(now.Add(24 * time.Hour)) {
		y = leapYearFor(st.month, st.day, y-1)
	}
	return y
}

// leapYearFor returns y, or for February 29 the last leap year up to y.
func leapYearFor(month, day, y int) int {
	if month == 2 && day == 29 {
		for !isLeap(y) {
			y--
		}
	}
	return y
}

func (st stamp) check() error {
	switch {
	case st.year < 1970 || st.year > 9999:
		return fmt.Errorf("bad date: year %d", st.year)
	case st.month < 1 || st.month > 12:
		return fmt.Errorf("bad date: month %d", st.month)
	case st.day < 1 || st.day > daysIn(st.month, st.year):
		return fmt.Errorf("bad date: day %d of month %d", st.day, st.month)
	case st.hour > 23 || st.min > 59 || st.sec > 60: // 60: a leap second
		return fmt.Errorf("bad time of day %02d:%02d:%02d", st.hour, st.min, st.sec)
	}
	return nil
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(month, year int) int {
	switch month {
	case 2:
		if isLeap(year) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// scanStamp reads a timestamp at the start of b. ok is false when b does
// not start with one.
func scanStamp(b []byte) (st stamp, n int, ok bool, err error) {
	if len(b) == 0 {
		return st, 0, false, nil
	}
	if isDigit(b[0]) {
		return scanNumericStamp(b)
	}
	return scanNamedStamp(b)
}

// scanNumericStamp reads ISO dates, DD.MM.YYYY dates and epoch seconds.
func scanNumericStamp(b []byte) (st stamp, n int, ok bool, err error) {
	d := digitsAt(b, 0)
	switch {
	case d == 4 && len(b) > 4 && (b[4] == '-' || b[4] == '/'):
		return scanISO(b)
	case (d == 1 || d == 2) && len(b) > d && b[d] == '.':
		return scanDotted(b, d)
	case d == 10:
		return scanEpoch(b)
	}
	return st, 0, false, nil
}

// scanISO reads "YYYY-MM-DD[T ]HH:MM[:SS[.frac]][zone]", with "/" allowed
// in the date and "-" or "_" between date and time.
func scanISO(b []byte) (st stamp, n int, ok bool, err error) {
	sep := b[4]
	st.year = atoi(b[:4])
	i := 5
	var good bool
	if st.month, i, good = numAt(b, i, 1, 2); !good || i >= len(b) || b[i] != sep {
		return st, 0, false, nil
	}
	if st.day, i, good = numAt(b, i+1, 1, 2); !good || i >= len(b) {
		return st, 0, false, nil
	}
	switch b[i] {
	case 'T', 't', '-', '_':
		i++
	case ' ':
		for i < len(b) && b[i] == ' ' {
			i++
		}
	default:
		return st, 0, false, nil
	}
	if i, good = st.scanClock(b, i); !good {
		return st, 0, false, nil
	}
	i = st.scanZone(b, i)
	return st, i, true, st.check()
}

// scanDotted reads "DD.MM.YYYY HH:MM:SS", the usual form in German and
// Russian reports; it is never month-first.
func scanDotted(b []byte, d int) (st stamp, n int, ok bool, err error) {
	st.day = atoi(b[:d])
	i := d + 1
	var good bool
	if st.month, i, good = numAt(b, i, 1, 2); !good || i >= len(b) || b[i] != '.' {
		return st, 0, false, nil
	}
	if st.year, i, good = numAt(b, i+1, 4, 4); !good || i >= len(b) || b[i] != ' ' {
		return st, 0, false, nil
	}
	for i < len(b) && b[i] == ' ' {
		i++
	}
	if i, good = st.scanClock(b, i); !good {
		return st, 0, false, nil
	}
	i = st.scanZone(b, i)
	return st, i, true, st.check()
}

// scanEpoch reads ten digits of Unix seconds (2001-09-09 to 2286) and an
// optional fraction.
func scanEpoch(b []byte) (st stamp, n int, ok bool, err error) {
	st.epoch = true
	for _, c := range b[:10] {
		st.unix = st.unix*10 + int64(c-'0')
	}
	i := 10
	if i+1 < len(b) && b[i] == '.' && isDigit(b[i+1]) {
		st.nsec, i = fraction(b, i+1)
	}
	if i < len(b) && (isDigit(b[i]) || isLetter(b[i]) || b[i] == ':' || b[i] == '.' || b[i] == '-' || b[i] == '/') {
		return st, 0, false, nil
	}
	return st, i, true, nil
}

// scanNamedStamp reads stamps that start with a day or month name: syslog
// "Nov 21 05:51:48", ctime "Sat Dec 12 11:06:49 2020", date(1) "Sat Dec 12
// 11:06:49 UTC 2020", Cisco "Jun 18 2013 15:53:34" and RFC 2822 "Sat, 12
// Dec 2020 11:06:49 +0000".
func scanNamedStamp(b []byte) (st stamp, n int, ok bool, err error) {
	i := 0
	if w := wordAt(b, 0); weekday(w) {
		i = len(w)
		if i < len(b) && b[i] == ',' {
			i++
		}
		j := skipSpaces(b, i)
		if j == i || j >= len(b) {
			return st, 0, false, nil
		}
		i = j
		if isDigit(b[i]) {
			return scanRFC2822(b, i)
		}
	}
	m := monthNumber(wordAt(b, i))
	if m == 0 {
		return st, 0, false, nil
	}
	st.month = m
	i += 3
	j := skipSpaces(b, i)
	if j == i {
		return st, 0, false, nil
	}
	var good bool
	if st.day, i, good = numAt(b, j, 1, 2); !good || i >= len(b) || b[i] != ' ' {
		return st, 0, false, nil
	}
	i = skipSpaces(b, i)
	if y, k, good := numAt(b, i, 4, 4); good && k < len(b) && b[k] == ' ' { // Cisco: year before time
		st.year = y
		i = skipSpaces(b, k)
	} else {
		st.noYear = true
	}
	if i, good = st.scanClock(b, i); !good {
		return st, 0, false, nil
	}
	i = st.scanZone(b, i)
	if st.noYear {
		j := skipSpaces(b, i)
		if y, k, good := numAt(b, j, 4, 4); good && j > i && (k == len(b) || !isDigit(b[k]) && b[k] != ':' && b[k] != '.') {
			st.year, st.noYear, i = y, false, k
			if !st.zoned {
				i = st.scanZone(b, i)
			}
		}
	}
	return st, i, true, st.checkNoYear()
}

// scanRFC2822 reads "12 Dec 2020 11:06:49 +0000" after the weekday.
func scanRFC2822(b []byte, i int) (st stamp, n int, ok bool, err error) {
	var good bool
	if st.day, i, good = numAt(b, i, 1, 2); !good || i >= len(b) || b[i] != ' ' {
		return st, 0, false, nil
	}
	i = skipSpaces(b, i)
	if st.month = monthNumber(wordAt(b, i)); st.month == 0 {
		return st, 0, false, nil
	}
	i = skipSpaces(b, i+3)
	if st.year, i, good = numAt(b, i, 4, 4); !good || i >= len(b) || b[i] != ' ' {
		return st, 0, false, nil
	}
	if i, good = st.scanClock(b, skipSpaces(b, i)); !good {
		return st, 0, false, nil
	}
	i = st.scanZone(b, i)
	return st, i, true, st.check()
}

// checkNoYear checks a stamp whose year is still to be inferred; February
// 29 is allowed because the inferred year will be a leap year.
func (st stamp) checkNoYear() error {
	if !st.noYear {
		return st.check()
	}
	st.year = 2000
	return st.check()
}

// scanClock reads "HH:MM[:SS[.frac]]" at b[i:].
func (st *stamp) scanClock(b []byte, i int) (int, bool) {
	var good bool
	if st.hour, i, good = numAt(b, i, 1, 2); !good || i >= len(b) || b[i] != ':' {
		return i, false
	}
	if st.min, i, good = numAt(b, i+1, 2, 2); !good {
		return i, false
	}
	if i < len(b) && b[i] == ':' {
		if st.sec, i, good = numAt(b, i+1, 2, 2); !good {
			return i, false
		}
		if i+1 < len(b) && (b[i] == '.' || b[i] == ',') && isDigit(b[i+1]) {
			st.nsec, i = fraction(b, i+1)
		}
	}
	if i < len(b) && isDigit(b[i]) {
		return i, false
	}
	if i < len(b) && b[i] == ':' && (i+1 < len(b) && b[i+1] != ' ') { // "15:53:34: %ASA-..." is Cisco's
		return i, false
	}
	return i, true
}

// fraction reads the digits of a fractional second at b[i:] as
// nanoseconds; digits past the ninth are dropped.
func fraction(b []byte, i int) (nsec, end int) {
	scale := 100_000_000
	for ; i < len(b) && isDigit(b[i]); i++ {
		nsec += int(b[i]-'0') * scale
		scale /= 10
	}
	return nsec, i
}

// numAt reads a number of min to max digits at b[i:]; more digits than max
// is not a match.
func numAt(b []byte, i, min, max int) (v, end int, ok bool) {
	d := digitsAt(b, i)
	if d < min || d > max {
		return 0, i, false
	}
	return atoi(b[i : i+d]), i + d, true
}

func digitsAt(b []byte, i int) int {
	n := 0
	for i+n < len(b) && isDigit(b[i+n]) {
		n++
	}
	return n
}

func atoi(b []byte) int {
	v := 0
	for _, c := range b {
		v = v*10 + int(c-'0')
	}
	return v
}

func skipSpaces(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

// wordAt returns the run of ASCII letters at b[i:].
func wordAt(b []byte, i int) []byte {
	j := i
	for j < len(b) && isLetter(b[j]) {
		j++
	}
	return b[i:j]
}

func monthNumber(w []byte) int {
	if len(w) != 3 {
		return 0
	}
	switch string([]byte{w[0] | 0x20, w[1] | 0x20, w[2] | 0x20}) {
	case "jan":
		return 1
	case "feb":
		return 2
	case "mar":
		return 3
	case "apr":
		return 4
	case "may":
		return 5
	case "jun":
		return 6
	case "jul":
		return 7
	case "aug":
		return 8
	case "sep":
		return 9
	case "oct":
		return 10
	case "nov":
		return 11
	case "dec":
		return 12
	}
	return 0
}

func weekday(w []byte) bool {
	if len(w) != 3 {
		return false
	}
	switch string([]byte{w[0] | 0x20, w[1] | 0x20, w[2] | 0x20}) {
	case "mon", "tue", "wed", "thu", "fri", "sat", "sun":
		return true
	}
	return false
}
