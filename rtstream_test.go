package rtstream_test

import (
	"errors"
	"testing"

	"github.com/rtstream/rtstream"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []rtstream.Cursor{{}, {Partition: 11, Offset: 1523, Index: 99}, {Partition: 0, Offset: 1 << 40, Index: 0}} {
		got, err := rtstream.ParseCursor(c.String())
		if err != nil || got != c {
			t.Errorf("ParseCursor(%q) = %v, %v; want %v", c.String(), got, err, c)
		}
	}
}

func TestParseCursorRejects(t *testing.T) {
	for _, s := range []string{"", "1", "1-2", "1-2-3-4", "a-b-c", "-1-2-3", "1--2-3", "1-2-x", "99999999999-1-1", "1-2-3\n"} {
		if _, err := rtstream.ParseCursor(s); !errors.Is(err, rtstream.ErrInvalid) {
			t.Errorf("ParseCursor(%q) error = %v; want ErrInvalid", s, err)
		}
	}
}

func TestValidStreamID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"a", true},
		{"sensors.eu-1_b", true},
		{"01J8ZZZ", true},
		{"", false},
		{"-x", false},
		{".x", false},
		{"bad id", false},
		{"x/y", false},
		{"a\n", false},
		{string(make([]byte, 65)), false},
		{"a123456789012345678901234567890123456789012345678901234567890123", true},
		{"a1234567890123456789012345678901234567890123456789012345678901234", false},
	}
	for _, tt := range tests {
		if got := rtstream.ValidStreamID(tt.id); got != tt.want {
			t.Errorf("ValidStreamID(%q) = %v; want %v", tt.id, got, tt.want)
		}
	}
}

func TestSameDefinition(t *testing.T) {
	a := rtstream.Stream{ID: "a", Name: "n"}
	b := rtstream.Stream{ID: "a", Name: "n", Processor: &rtstream.Processor{Filter: "x"}}
	if !a.SameDefinition(a) || a.SameDefinition(b) || b.SameDefinition(a) || !b.SameDefinition(b) {
		t.Error("SameDefinition disagrees with itself")
	}
	if a.SameDefinition(rtstream.Stream{ID: "a", Name: "m"}) {
		t.Error("different names are the same definition")
	}
}

// FuzzParseCursor: a cursor either parses and prints back to a string that
// parses to the same cursor, or is refused with ErrInvalid — never a panic.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"0-0-0", "7-2-0", "11-123456789-999", "", "-", "1-2", "1-2-3-4", "-1-0-0", "a-b-c", "0-9223372036854775808-0", " 1-2-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := rtstream.ParseCursor(s)
		if err != nil {
			if !errors.Is(err, rtstream.ErrInvalid) {
				t.Fatalf("ParseCursor(%q): %v, not ErrInvalid", s, err)
			}
			return
		}
		again, err := rtstream.ParseCursor(c.String())
		if err != nil || again != c {
			t.Fatalf("ParseCursor(%q) = %+v; its String %q parses to %+v, %v", s, c, c.String(), again, err)
		}
	})
}
