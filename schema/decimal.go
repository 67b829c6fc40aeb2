package schema

import (
	"math/big"
	"strconv"
)

// decimal is a JSON number literal read exactly, without allocating: the
// fast evaluator compares numbers with it, as the library does with
// math/big at a microsecond a number. Its value is ±0.D × 10^point, where D
// is the literal's significant digits (int and frac parts read as one run,
// from first to last nonzero digit).
type decimal struct {
	neg       bool
	int, frac []byte // the literal's digits before and after its '.'
	first     int    // index of the first significant digit in int+frac
	last      int    // index just after the last one; first == last: zero
	point     int    // where the point falls relative to D's first digit
}

// parseDecimal reads a valid JSON number literal.
func parseDecimal(lit []byte) decimal {
	var d decimal
	i := 0
	if i < len(lit) && lit[i] == '-' {
		d.neg, i = true, 1
	}
	start := i
	for i < len(lit) && lit[i] >= '0' && lit[i] <= '9' {
		i++
	}
	d.int = lit[start:i]
	if i < len(lit) && lit[i] == '.' {
		i++
		start = i
		for i < len(lit) && lit[i] >= '0' && lit[i] <= '9' {
			i++
		}
		d.frac = lit[start:i]
	}
	exp := 0
	if i < len(lit) && (lit[i] == 'e' || lit[i] == 'E') {
		exp = parseExponent(lit[i+1:])
	}
	n := len(d.int) + len(d.frac)
	for d.first < n && d.digit(d.first) == '0' {
		d.first++
	}
	d.last = n
	for d.last > d.first && d.digit(d.last-1) == '0' {
		d.last--
	}
	if d.first == d.last {
		return decimal{} // zero, whatever its sign
	}
	d.point = len(d.int) - d.first + exp
	return d
}

// parseExponent reads an exponent's optional sign and digits, saturating
// far beyond what the limits let through.
func parseExponent(p []byte) int {
	neg := len(p) > 0 && p[0] == '-'
	if len(p) > 0 && (p[0] == '-' || p[0] == '+') {
		p = p[1:]
	}
	e := 0
	for _, c := range p {
		if e < 1<<40 {
			e = e*10 + int(c-'0')
		}
	}
	if neg {
		return -e
	}
	return e
}

// digit is the k-th digit of int+frac.
func (d decimal) digit(k int) byte {
	if k < len(d.int) {
		return d.int[k]
	}
	return d.frac[k-len(d.int)]
}

func (d decimal) zero() bool { return d.first == d.last }

// isInt reports whether d is a whole number (1.0 and 1e2 are).
func (d decimal) isInt() bool { return d.zero() || d.point >= d.last-d.first }

// cmp compares a and b: -1, 0 or +1.
func (a decimal) cmp(b decimal) int {
	switch {
	case a.zero() && b.zero():
		return 0
	case a.zero():
		return b.sign(-1)
	case b.zero():
		return a.sign(1)
	case a.neg != b.neg:
		return a.sign(1)
	}
	m := a.cmpAbs(b)
	if a.neg {
		return -m
	}
	return m
}

// sign is s, or -s for a negative d.
func (d decimal) sign(s int) int {
	if d.neg {
		return -s
	}
	return s
}

// cmpAbs compares the magnitudes of two nonzero decimals.
func (a decimal) cmpAbs(b decimal) int {
	if a.point != b.point {
		if a.point > b.point {
			return 1
		}
		return -1
	}
	i, j := a.first, b.first
	for ; i < a.last && j < b.last; i, j = i+1, j+1 {
		if x, y := a.digit(i), b.digit(j); x != y {
			if x > y {
				return 1
			}
			return -1
		}
	}
	switch {
	case i < a.last:
		return 1
	case j < b.last:
		return -1
	}
	return 0
}

// appendKey appends d in one canonical form, equal for equal numbers
// (1, 1.0 and 10e-1 alike): the key of enum, const and uniqueItems.
func (d decimal) appendKey(b []byte) []byte {
	if d.zero() {
		return append(b, '0')
	}
	if d.neg {
		b = append(b, '-')
	}
	for k := d.first; k < d.last; k++ {
		b = append(b, d.digit(k))
	}
	b = append(b, 'p')
	return strconv.AppendInt(b, int64(d.point), 10)
}

// rat is d as a big.Rat (multipleOf only).
func (d decimal) rat() *big.Rat {
	if d.zero() {
		return new(big.Rat)
	}
	digits := make([]byte, 0, d.last-d.first)
	for k := d.first; k < d.last; k++ {
		digits = append(digits, d.digit(k))
	}
	n, _ := new(big.Int).SetString(string(digits), 10)
	if d.neg {
		n.Neg(n)
	}
	// value = 0.D × 10^point = D × 10^(point - len(D))
	e := d.point - len(digits)
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(max(e, -e))), nil)
	if e >= 0 {
		return new(big.Rat).SetInt(n.Mul(n, p))
	}
	return new(big.Rat).SetFrac(n, p)
}

// ratDecimal is a schema's bound (minimum, ...) as a decimal: the compiler
// keeps them as big.Rat, made from decimal literals, so the denominator
// is 2^a·5^b and the decimal expansion ends.
func ratDecimal(r *big.Rat) decimal {
	places := 0
	one := big.NewInt(1)
	for den := new(big.Int).Set(r.Denom()); den.Cmp(one) > 0 && places < 1<<12; places++ {
		q, m := new(big.Int), new(big.Int)
		if q.QuoRem(den, big.NewInt(10), m); m.Sign() == 0 {
			den = q
		} else if q.QuoRem(den, big.NewInt(2), m); m.Sign() == 0 {
			den = q
		} else {
			den.Quo(den, big.NewInt(5))
		}
	}
	return parseDecimal([]byte(r.FloatString(places)))
}
