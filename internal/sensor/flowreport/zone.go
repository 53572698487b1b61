package flowreport

// scanZone reads an optional zone after a time: "Z", "+02:00", "+0200",
// "-03", "UTC", "GMT+2", "CEST". Unknown words are not zones, so the
// protocol word in "08:25:34 TCP" is left alone. It returns the index after
// the zone, or i when there is none.
func (st *stamp) scanZone(b []byte, i int) int {
	if i < len(b) && (b[i] == 'Z' || b[i] == 'z') && (i+1 == len(b) || !isLetter(b[i+1]) && !isDigit(b[i+1])) {
		st.zoned, st.offset = true, 0
		return i + 1
	}
	j := i
	if j < len(b) && b[j] == '"' {
		j++ // "2013-06-18 15:53:34" UTC
	}
	j = skipSpaces(b, j)
	if j < len(b) && (b[j] == '+' || b[j] == '-') {
		if off, k, ok := numericOffset(b, j); ok {
			st.zoned, st.offset = true, off
			return k
		}
		return i
	}
	w := wordAt(b, j)
	if len(w) == 0 || len(w) > 5 || j+len(w) < len(b) && isDigit(b[j+len(w)]) {
		return i
	}
	off, ok := zoneOffset(w)
	if !ok {
		return i
	}
	st.zoned, st.offset = true, off
	k := j + len(w)
	if (off == 0) && k < len(b) && (b[k] == '+' || b[k] == '-') { // UTC+2, GMT-0300
		if o, k2, ok := numericOffset(b, k); ok {
			st.offset = o
			return k2
		}
	}
	return k
}

// numericOffset reads "+hh", "+hhmm" or "+hh:mm" at b[i:]; a single hour
// digit is allowed after a zone name ("UTC+2").
func numericOffset(b []byte, i int) (off, n int, ok bool) {
	sign := 1
	if b[i] == '-' {
		sign = -1
	}
	i++
	d := digitsAt(b, i)
	var h, m int
	switch d {
	case 1, 2:
		h = atoi(b[i : i+d])
		i += d
		if i+2 < len(b) && b[i] == ':' && digitsAt(b, i+1) == 2 {
			m = atoi(b[i+1 : i+3])
			i += 3
		}
	case 4:
		h, m = atoi(b[i:i+2]), atoi(b[i+2:i+4])
		i += 4
	default:
		return 0, 0, false
	}
	if h > 14 || m > 59 || i < len(b) && (isLetter(b[i]) || b[i] == '.' || b[i] == ':') {
		return 0, 0, false
	}
	return sign * (h*3600 + m*60), i, true
}

// zoneOffset knows the zone abbreviations reporters write. Ambiguous ones
// follow RFC 822 where it defines them (CST is US Central, not China) and
// the most common use otherwise (BST is British Summer Time, not
// Bangladesh; IST is India, not Ireland or Israel).
func zoneOffset(w []byte) (int, bool) {
	var up [5]byte
	if len(w) > len(up) {
		return 0, false
	}
	for i, c := range w {
		up[i] = c &^ 0x20
	}
	const h = 3600
	switch string(up[:len(w)]) {
	case "UTC", "GMT", "UT", "WET", "Z":
		return 0, true
	case "WEST", "BST", "CET", "MET":
		return 1 * h, true
	case "CEST", "MEST", "EET", "SAST":
		return 2 * h, true
	case "EEST", "MSK", "TRT":
		return 3 * h, true
	case "IST":
		return 5*h + 30*60, true
	case "WIB", "ICT":
		return 7 * h, true
	case "HKT", "SGT", "AWST", "PHT":
		return 8 * h, true
	case "JST", "KST":
		return 9 * h, true
	case "ACST":
		return 9*h + 30*60, true
	case "AEST", "ACDT":
		return 10 * h, true
	case "AEDT":
		return 11 * h, true
	case "NZST":
		return 12 * h, true
	case "NZDT":
		return 13 * h, true
	case "BRST":
		return -2 * h, true
	case "BRT", "ART", "ADT":
		return -3 * h, true
	case "AST", "EDT":
		return -4 * h, true
	case "EST", "CDT":
		return -5 * h, true
	case "CST", "MDT":
		return -6 * h, true
	case "MST", "PDT":
		return -7 * h, true
	case "PST", "AKDT":
		return -8 * h, true
	case "AKST":
		return -9 * h, true
	case "HST":
		return -10 * h, true
	}
	return 0, false
}
