package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// The summary table is data: each phase's section (sections.go) turns its
// result into lines, a line that carries a target judges it with a check,
// and one printer writes every line. rep.Targets are the checks of the
// lines, in order, so a target and its row cannot disagree.

// goal is how one kind of target reads: which way a figure passes, its
// unit, the scale it is shown at, and the formats of its bound (the target
// column) and of its margin. An empty bound or margin format writes a count
// with thousands separators.
type goal struct {
	op     string  // ">=", "<=" or "<": how the figure passes
	unit   string  // the TargetResult's unit
	scale  float64 // figure and bound are shown ×scale (100: a ratio in %)
	bound  string  // format of bound×scale in the target column
	margin string  // format of (figure − bound)×scale
	suffix string  // after a count margin
	pct    bool    // a count margin adds how far off it is, in %
}

// The kinds of target the run checks.
var (
	ratioAtLeast      = goal{op: ">=", unit: "%", scale: 100, bound: "%.0f%%", margin: "%+.1f pts"}
	costAtMost        = goal{op: "<=", unit: "%", scale: 100, bound: "%.0f%%", margin: "%+.1f pts"}
	eventsAtLeast     = goal{op: ">=", unit: "events/s", scale: 1, suffix: " events/s", pct: true}
	secondsAtMost     = goal{op: "<=", unit: "s", scale: 1, bound: "%.0f s", margin: "%+.2f s"}
	resumeUnder       = goal{op: "<", unit: "s", scale: 1, bound: "%.0f s", margin: "%+.2f s"}
	p99RatioAtMost    = goal{op: "<=", unit: "x", scale: 1, bound: "x%.0f", margin: "%+.2f"}
	connsAtLeast      = goal{op: ">=", unit: "connections", scale: 1}
	kibAtMost         = goal{op: "<=", unit: "KiB", scale: 1, bound: "%.0f KiB", margin: "%+.1f KiB"}
	deliveriesAtLeast = goal{op: ">=", unit: "deliveries/s", scale: 1, suffix: "/s", pct: true}
)

// cell is the target column for bound.
func (g goal) cell(bound float64) string {
	if g.bound == "" {
		return g.op + " " + fmtInt(int64(bound))
	}
	return g.op + " " + fmt.Sprintf(g.bound, bound*g.scale)
}

// marginOf is how far value is from bound, before any note.
func (g goal) marginOf(value, bound float64) string {
	if g.margin != "" {
		return fmt.Sprintf(g.margin, (value-bound)*g.scale)
	}
	s := signedInt(int64(value-bound)) + g.suffix
	if g.pct {
		s += fmt.Sprintf(" (%+.0f%%)", (value/bound-1)*100)
	}
	return s
}

// passes says whether value is on the right side of bound.
func (g goal) passes(value, bound float64) bool {
	switch g.op {
	case ">=":
		return value >= bound
	case "<=":
		return value <= bound
	}
	return value < bound
}

// check is one target judged on a row: its name, goal, figure and bound
// (unscaled), notes its margin carries, and conditions that must hold as
// well. A check that is off shows its bound but is not judged: the run
// lacks a figure it needs.
type check struct {
	name         string
	goal         goal
	value, bound float64
	notes        []string
	musts        []must
	off          bool
}

// must is a condition a target also needs; but is what the margin says when
// it does not hold.
type must struct {
	ok  bool
	but string
}

// result is the check as the report keeps it.
func (c *check) result() TargetResult {
	g := c.goal
	pass := g.passes(c.value, c.bound)
	margin := g.marginOf(c.value, c.bound) + strings.Join(c.notes, "")
	for _, m := range c.musts {
		if !m.ok {
			pass = false
			margin += m.but
		}
	}
	return TargetResult{Name: c.name, Value: c.value * g.scale, Target: c.bound * g.scale, Unit: g.unit, Pass: pass, Margin: margin}
}

// line is one row: a phase or, indented, one of its figures. A line with a
// check takes its target and verdict from it.
type line struct {
	label, figure, unit string
	base, ratio         string // the baseline it is compared with, and the ratio
	target, verdict     string // the verdict's place may hold a note
	check               *check
}

// head is a phase's first row when no target judges it.
func head(label, figure, unit, target string) line {
	return line{label: label, figure: figure, unit: unit, base: "-", ratio: "-", target: target, verdict: "-"}
}

// fig is a row of one figure.
func fig(label, figure, unit string) line {
	return line{label: label, figure: figure, unit: unit}
}

// note adds a note in the verdict's place.
func (l line) note(s string) line {
	l.verdict = s
	return l
}

// judged is l with its target and verdict from c.
func (l line) judged(c *check) line {
	l.check = c
	return l
}

// cells are the line's seven cells.
func (l line) cells() []string {
	if c := l.check; c != nil {
		l.target, l.verdict = c.goal.cell(c.bound), "-"
		if !c.off {
			r := c.result()
			l.verdict = "MISS " + r.Margin
			if r.Pass {
				l.verdict = "PASS " + r.Margin
			}
		}
	}
	return []string{l.label, l.figure, l.unit, l.base, l.ratio, l.target, l.verdict}
}

// lines are the table's rows for rep, every section's in order.
func (rep *Report) lines() []line {
	var ls []line
	for _, section := range sections {
		ls = append(ls, section(rep)...)
	}
	return ls
}

// evaluate fills rep.Targets from the checks of the table's rows.
func (rep *Report) evaluate() {
	rep.Targets = nil
	for _, l := range rep.lines() {
		if l.check != nil && !l.check.off {
			rep.Targets = append(rep.Targets, l.check.result())
		}
	}
}

// printTable writes the summary table: one row per figure, with the
// baseline it is compared with, the ratio, the target and the verdict; then
// the CPU each phase used, and why the run failed, if it did.
func printTable(w io.Writer, rep *Report) {
	rep.evaluate()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	rows := append([]line{
		{label: "phase", figure: "figure", unit: "unit", base: "baseline", ratio: "ratio", target: "target", verdict: "verdict"},
		{label: "-----", figure: "------", unit: "----", base: "--------", ratio: "-----", target: "------", verdict: "-------"},
	}, rep.lines()...)
	for _, l := range rows {
		fmt.Fprint(tw, strings.Join(l.cells(), "\t"), "\t\n")
	}
	tw.Flush()
	if len(rep.CPU) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "CPU, average cores used per phase:")
		for _, c := range rep.CPU {
			fmt.Fprintf(w, "  %-11s %s\n", c.Phase, c.Usage)
		}
	}
	if rep.Fatal != "" {
		fmt.Fprintf(w, "\nrun failed: %s\n", rep.Fatal)
	}
}

// count writes a figure as a whole number with thousands separators.
func count(v float64) string { return fmtInt(int64(v)) }

// counts writes whole numbers as "a / b / c".
func counts(ns ...int64) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmtInt(n)
	}
	return strings.Join(s, " / ")
}

// mss writes milliseconds as "a / b / c".
func mss(ms ...float64) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = fmtMs(m)
	}
	return strings.Join(s, " / ")
}

// percent writes a ratio in %, and signedPercent with its sign.
func percent(r float64) string       { return fmt.Sprintf("%.1f%%", r*100) }
func signedPercent(r float64) string { return fmt.Sprintf("%+.1f%%", r*100) }

// fmtInt writes n with thousands separators.
func fmtInt(n int64) string {
	if n < 0 {
		return "-" + fmtInt(-n)
	}
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func signedInt(n int64) string {
	if n >= 0 {
		return "+" + fmtInt(n)
	}
	return fmtInt(n)
}

// fmtMs writes a millisecond figure with a precision that suits it.
func fmtMs(ms float64) string {
	switch {
	case ms == 0:
		return "-"
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.2f s", ms/1000)
	}
}
