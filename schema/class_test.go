package schema

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// TestClassRunMatchesRegexp compares the class-run matcher with regexp on
// the shapes it takes, over random strings from an alphabet that straddles
// the classes, and checks that other shapes are left to regexp.
func TestClassRunMatchesRegexp(t *testing.T) {
	taken := []string{`^[a-z0-9-]+$`, `^[A-Z]{3}$`, `^\d*$`, `^[^a-c]{2,4}$`, `^[a-zé-ü]+$`, `^\w{1,3}$`, `^[\p{Greek}x]+$`, `^[a-z]{0,}$`, `^\s+$`}
	left := []string{`[a-z]+`, `^[a-z]+`, `^(?i)[a-z]+$`, `^a+$`, `^[a-z]+|x$`, `^([a-z])+$`, `^[a]$`, `^.+$`, `(?m)^[a-z]+$`}
	alphabet := []rune("abcxyzABCZ019-_ éüΩ\n\t\u00a0\ufffd")
	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range taken {
		c := newClassRun(s)
		if c == nil {
			t.Errorf("%s: not taken", s)
			continue
		}
		re := regexp.MustCompile(s)
		for range 3000 {
			var b strings.Builder
			for range r.IntN(7) {
				b.WriteRune(alphabet[r.IntN(len(alphabet))])
			}
			in := b.String()
			if got, want := c.match([]byte(in)), re.MatchString(in); got != want {
				t.Errorf("%s on %q: %v, regexp %v", s, in, got, want)
			}
		}
		for _, in := range []string{"", "\xff", "a\xffb"} {
			if got, want := c.match([]byte(in)), re.MatchString(in); got != want {
				t.Errorf("%s on %q: %v, regexp %v", s, in, got, want)
			}
		}
	}
	for _, s := range left {
		if newClassRun(s) != nil {
			t.Errorf("%s: taken, but not a run of one class over the whole string", s)
		}
	}
}
