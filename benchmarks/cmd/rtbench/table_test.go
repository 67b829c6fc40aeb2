package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
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
