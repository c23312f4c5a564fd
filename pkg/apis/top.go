package apis

// The answer of GET /apis/flick.dev/v1/top (flick top).

// TopRow is one function or revision now: its instances and load, and its requests and p99
// latency over the report's window.
type TopRow struct {
	Namespace   string  `json:"namespace"`
	Kind        string  `json:"kind"`
	Name        string  `json:"name"`
	Revision    string  `json:"revision,omitempty"`
	Instances   int     `json:"instances"`
	Desired     int     `json:"desired"`
	InFlight    int     `json:"inFlight"`
	Queued      int     `json:"queued"`
	RPS         float64 `json:"rps"`
	Concurrency float64 `json:"concurrency"`
	Panic       bool    `json:"panic"`
	Requests    uint64  `json:"requests"`
	P99Seconds  float64 `json:"p99Seconds"`
}

// TopReport is every function and revision's load, over the last WindowSeconds.
type TopReport struct {
	WindowSeconds float64  `json:"windowSeconds"`
	Items         []TopRow `json:"items"`
}
