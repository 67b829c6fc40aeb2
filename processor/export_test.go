package processor

import "time"

// The fuzz targets (package processor_test) compare the fast decoding and
// encoding with encoding/json's through these.
var (
	DecodeData = decodeData
	DecodeFast = decodeFast
	DecodeStd  = decodeStd
	Marshal    = marshal
	MarshalStd = marshalStd
	SameValue  = sameValue
)

// MaxFastDepth is maxFastDepth, MaxFastEncodeDepth maxFastEncodeDepth.
const (
	MaxFastDepth       = maxFastDepth
	MaxFastEncodeDepth = maxFastEncodeDepth
)

// AppendJSON is appendJSON of a whole value.
func AppendJSON(v any) ([]byte, bool) { return appendJSON(nil, v, 0) }

// WithTimeBudget is p with a wall-time budget of d: the tests of the other
// budgets use a long one, so that a busy machine's slowness does not hit
// the wall-time budget first.
func (p *Program) WithTimeBudget(d time.Duration) *Program {
	q := *p
	q.timeBudget = d
	return &q
}
