package processor_test

import "testing"

// BenchmarkEvalObject is one goroutine's cost of a processor per event:
// decoding the data, running the VM, encoding the map's result. "object" is
// an object of about 150 bytes with a nested object, an array, strings and
// numbers; "rtbench" is the event and the programs of rtbench's processors
// phase, which measures the processors' end-to-end cost.
func BenchmarkEvalObject(b *testing.B) {
	const (
		object = `{"id":"01J9Z8Q6X4T2M5N7P3R1S0V8W2","n":1234,"temp":21.5,"unit":"C",` +
			`"site":{"name":"north","rack":7},"tags":["a","b"],"ok":true,"note":"hello, world"}`
		objectMap  = `{"id": data.id, "f": data.temp * 1.8 + 32, "site": data.site.name, "n": data.n}`
		rtbench    = `{"seq":123456,"t":1764326400123456789,"pad":"0123456789abcdefghijklmnopqrstuvwxyz0123456789"}`
		rtbenchMap = `{"seq": data.seq, "t": data.t, "kind": "rtbench", "pad_len": len(data.pad), "parity": data.seq % 2}`
	)
	cases := []struct{ name, filter, mapping, data string }{
		{"object/filter", "data.n % 2 == 0", "", object},
		{"object/map", "", objectMap, object},
		{"object/filter+map", "data.n % 2 == 0", objectMap, object},
		{"rtbench/filter+map", "data.seq >= 0", rtbenchMap, rtbench},
	}
	for _, c := range cases {
		p := mustCompile(b, c.filter, c.mapping)
		e := ev(c.data)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(e.Data)))
			for b.Loop() {
				if _, keep, err := p.Eval(e); err != nil || !keep {
					b.Fatal(keep, err)
				}
			}
		})
	}
}
