package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/table.golden")

// fill sets every field reachable from v to a value of its own (numbers
// counting up, strings naming their field), so that one Report exercises
// every row and target of the table.
func fill(v reflect.Value, name string, n *int) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), name, n)
	case reflect.Struct:
		if v.Type().PkgPath() == "time" {
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), v.Type().Field(i).Name, n)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), name, n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, name, n)
		fill(e, name, n)
		v.SetMapIndex(k, e)
	case reflect.Int, reflect.Int32, reflect.Int64:
		*n++
		v.SetInt(int64(*n * 37))
	case reflect.Uint64:
		*n++
		v.SetUint(uint64(*n * 37))
	case reflect.Float64:
		*n++
		v.SetFloat(float64(*n) * 13.25)
	case reflect.String:
		*n++
		v.SetString(fmt.Sprintf("%s%d", name, *n))
	case reflect.Bool:
		*n++
		v.SetBool(*n%2 == 0)
	}
}

// TestTableGolden renders a report in which every figure is set and
// compares it with testdata/table.golden (go test -update rewrites it): the
// table's rows, formats and verdicts are pinned.
func TestTableGolden(t *testing.T) {
	rep := &Report{}
	n := 0
	fill(reflect.ValueOf(rep).Elem(), "Report", &n)
	rep.Swarm.Runs[1].Error = ""
	// The first attack is the single POSTs at max rate, which the bare
	// server judges.
	rep.Vegeta.Attacks[0].Route, rep.Vegeta.Attacks[0].Mode, rep.Vegeta.Attacks[0].Rate = "single", "max", 0
	// Only tracing at 100% reports its cost without a target; the other
	// comparisons' cost rows carry their verdicts.
	for _, c := range rep.comparisons() {
		c.res.NoTarget = c.res == rep.TracingFull
	}
	var out bytes.Buffer
	printTable(&out, rep)
	path := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("the table differs from %s:\n%s", path, out.String())
	}
}

// TestTableOfAFixedReport renders a partial run's report and checks its
// rows and verdicts cell by cell, and that rep.Targets are the rows' checks.
func TestTableOfAFixedReport(t *testing.T) {
	rep := &Report{
		Baseline:   &BaselineResult{EventsPerSec: 300_000},
		Batch:      &BatchResult{BatchSize: 100, EventsPerSec: 240_000, Ratio: 0.8},
		E2E:        &E2EResult{EventsPerSec: 45_000, Sent: 900, Received: 900},
		CrashMarks: &CrashMarksResult{OnPerSec: 950, OffPerSec: 1000, Cost: 1000.0/950 - 1, Target: targetCrashMarksCost},
	}
	rows := map[string][]string{}
	for _, l := range rep.lines() {
		rows[l.label] = l.cells()
	}
	for _, want := range [][]string{
		{"raw producer (Sarama, acks=all)", "300,000", "events/s", "-", "-", "ceiling", "-"},
		{"batch ingest (100/POST)", "240,000", "events/s", "300,000", "80.0%", ">= 70%", "PASS +10.0 pts"},
		{"end-to-end POST->SSE", "45,000", "events/s", "-", "-", ">= 50,000", "MISS -5,000 events/s (-10%)"},
		{"  sent / received", "900 / 900", "events", "", "", "", ""},
		{"router drain, crash guard", "950", "records/s", "1,000", "95.0%", "", ""},
		{"crash marks cost (OFF/ON - 1)", "+5.3%", "", "", "", "<= 5%", "MISS +0.3 pts"},
	} {
		if got := rows[want[0]]; !slices.Equal(got, want) {
			t.Errorf("row %q:\n got %q\nwant %q", want[0], got, want)
		}
	}
	rep.evaluate()
	var names []string
	for _, tr := range rep.Targets {
		names = append(names, tr.Name)
	}
	if want := []string{"batch ingest / raw producer", "end-to-end", "crash marks cost"}; !slices.Equal(names, want) {
		t.Errorf("targets %q, want %q", names, want)
	}
	// Without the raw producer the batch row still shows its target, but
	// nothing judges it.
	rep.Baseline = nil
	rep.evaluate()
	if len(rep.Targets) != 2 || rows["batch ingest (100/POST)"][5] != ">= 70%" {
		t.Errorf("targets without a baseline: %+v", rep.Targets)
	}
	for _, l := range rep.lines() {
		if strings.HasPrefix(l.label, "batch ingest") && l.cells()[6] != "-" {
			t.Errorf("batch row without a baseline: %q", l.cells())
		}
	}
}

// tableHas checks that rep's table has each of wants.
func tableHas(t *testing.T, rep *Report, wants ...string) {
	t.Helper()
	var out strings.Builder
	printTable(&out, rep)
	for _, want := range wants {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
