package processor

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
