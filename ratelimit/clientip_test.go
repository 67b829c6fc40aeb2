package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// resolve runs ResolveClientIP on a request with the given peer and
// X-Forwarded-For headers and returns what ClientIP saw.
func resolve(trusted []netip.Prefix, remoteAddr string, xff ...string) string {
	var got string
	h := ResolveClientIP(trusted)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = ClientIP(r.Context())
	}))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = remoteAddr
	for _, v := range xff {
		r.Header.Add("X-Forwarded-For", v)
	}
	h.ServeHTTP(httptest.NewRecorder(), r)
	return got
}

var proxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}

func TestResolveClientIP(t *testing.T) {
	cases := []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies: peer", nil, "203.0.113.7:1234", []string{"1.2.3.4"}, "203.0.113.7"},
		{"untrusted peer: header ignored", proxies, "203.0.113.7:1234", []string{"1.2.3.4"}, "203.0.113.7"},
		{"trusted peer: header's client", proxies, "10.0.0.1:1234", []string{"1.2.3.4"}, "1.2.3.4"},
		{"rightmost untrusted entry", proxies, "10.0.0.1:1234", []string{"6.6.6.6, 1.2.3.4, 10.0.0.2"}, "1.2.3.4"},
		{"headers merged in order", proxies, "10.0.0.1:1234", []string{"6.6.6.6", "1.2.3.4"}, "1.2.3.4"},
		{"trusted peer, no header: peer", proxies, "10.0.0.1:1234", nil, "10.0.0.1"},
		{"trusted peer, garbage: peer", proxies, "10.0.0.1:1234", []string{"garbage"}, "10.0.0.1"},
		{"garbage right of client: peer", proxies, "10.0.0.1:1234", []string{"1.2.3.4, garbage"}, "10.0.0.1"},
		{"only proxies in chain: peer", proxies, "10.0.0.1:1234", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.1"},
		{"v4-mapped alias of a proxy is a proxy", proxies, "10.0.0.1:1234", []string{"1.2.3.4, ::ffff:10.0.0.9"}, "1.2.3.4"},
		{"v4-mapped peer folds", nil, "[::ffff:203.0.113.7]:1", nil, "203.0.113.7"},
		{"IPv6 peer", nil, "[2001:db8::1]:443", nil, "2001:db8::1"},
		{"IPv6 proxy and client", proxies, "[fd00::1]:443", []string{"2001:db8::5"}, "2001:db8::5"},
		{"peer without port", proxies, "10.0.0.1", []string{"1.2.3.4"}, "1.2.3.4"},
		{"peer that is no IP", proxies, "@unix", []string{"1.2.3.4"}, "@unix"},
		{"empty peer", nil, "", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolve(tc.trusted, tc.peer, tc.xff...); got != tc.want {
				t.Errorf("client IP = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClientIPWithoutMiddleware(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Forwarded-For", "1.2.3.4")
	if got := ClientIP(r.Context()); got != "" {
		t.Errorf("ClientIP = %q, want \"\"", got)
	}
	// The IP limit then keys on the peer, never on the header.
	if got := requestIP(r); got != "192.0.2.1" {
		t.Errorf("requestIP = %q, want the peer 192.0.2.1", got)
	}
}

func TestResolveClientIPRejectsInvalidPrefix(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for a zero prefix")
		}
	}()
	ResolveClientIP([]netip.Prefix{{}})
}

func TestIPBucket(t *testing.T) {
	cases := []struct{ ip, want string }{
		{"203.0.113.7", "203.0.113.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::ffff", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::ffff:1.2.3.4", "::ffff:1.2.3.4"},
		{"@unix", "@unix"},
		{"", ""},
	}
	for _, tc := range cases {
		if got := ipBucket(tc.ip); got != tc.want {
			t.Errorf("ipBucket(%q) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}

func TestParseTrustedProxies(t *testing.T) {
	cases := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{" , ", nil, false},
		{"10.0.0.0/8", []string{"10.0.0.0/8"}, false},
		{"10.1.2.3/8, 192.168.1.1 ,::1", []string{"10.0.0.0/8", "192.168.1.1/32", "::1/128"}, false},
		{"::ffff:10.0.0.1", []string{"10.0.0.1/32"}, false},
		{"10.0.0.0/33", nil, true},
		{"proxy.internal", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTrustedProxies(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if !slices.Equal(s, tc.want) {
				t.Errorf("got %v, want %v", s, tc.want)
			}
		})
	}
}

// FuzzResolveClientIP feeds arbitrary peers and X-Forwarded-For values.
// Besides not panicking, the answer must never let a client choose its IP:
// an untrusted peer is always the client, and any other answer is an entry
// of the header that is not a trusted proxy.
func FuzzResolveClientIP(f *testing.F) {
	seeds := []struct {
		peer, xff string
		trust     bool
	}{
		{"203.0.113.7:1234", "1.2.3.4", false},
		{"10.0.0.1:1234", "6.6.6.6, 1.2.3.4, 10.0.0.2", true},
		{"10.0.0.1:1234", "1.2.3.4, garbage", true},
		{"[::ffff:10.0.0.1]:1", "::ffff:10.0.0.9", true},
		{"[fd00::1%eth0]:443", "2001:db8::5%zone", true},
		{"10.0.0.1", ",,, ,", true},
		{"", "", false},
		{"@", "[::1]:80", true},
	}
	for _, s := range seeds {
		f.Add(s.peer, s.xff, s.trust)
	}
	f.Fuzz(func(t *testing.T, peer, xff string, trust bool) {
		var trusted []netip.Prefix
		if trust {
			trusted = proxies
		}
		got := resolve(trusted, peer, xff)
		_ = ipBucket(got)

		peerIP := peerIP(peer)
		pa, err := netip.ParseAddr(peerIP)
		peerTrusted := err == nil && trusted != nil && slices.ContainsFunc(trusted, func(p netip.Prefix) bool {
			return p.Contains(pa.WithZone(""))
		})
		if !peerTrusted {
			if err == nil && got != pa.String() {
				t.Fatalf("untrusted peer %q with X-Forwarded-For %q: client %q, want the peer", peer, xff, got)
			}
			return
		}
		if got == peerIP {
			return
		}
		ga, err := netip.ParseAddr(got)
		if err != nil {
			t.Fatalf("client %q is neither the peer %q nor an IP", got, peer)
		}
		if slices.ContainsFunc(trusted, func(p netip.Prefix) bool { return p.Contains(ga) }) {
			t.Fatalf("client %q is a trusted proxy", got)
		}
		found := false
		for _, e := range strings.Split(xff, ",") {
			if a, err := netip.ParseAddr(strings.TrimSpace(e)); err == nil && a.Unmap().WithZone("") == ga {
				found = true
			}
		}
		if !found {
			t.Fatalf("client %q is not in X-Forwarded-For %q", got, xff)
		}
	})
}
