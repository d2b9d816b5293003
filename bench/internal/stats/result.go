package stats

import "fmt"

// Result is what one load generator run measured. The generator prints it
// as JSON; the harness reads it back. Durations are in microseconds and
// memory in bytes, so the JSON needs no units.
type Result struct {
	Scenario string `json:"scenario"`
	Mode     string `json:"mode"`
	Conns    int    `json:"conns"` // connections held open (not counting churn)
	Rooms    int    `json:"rooms"`

	Seconds    float64 `json:"seconds"`    // length of the measured phase
	Pushes     int64   `json:"pushes"`     // pushes the server accepted
	PushErrors int64   `json:"pushErrors"` // pushes refused or failed
	PushRate   float64 `json:"pushRate"`   // pushes per second achieved

	Expected  int64   `json:"expected"`  // deliveries owed: room members per push
	Delivered int64   `json:"delivered"` // stamped messages received
	Lost      int64   `json:"lost"`      // Expected - Delivered, never negative
	Unknown   int64   `json:"unknown"`   // frames that were not ours or not expected
	Replies   int64   `json:"replies"`   // in-band command replies received
	Errors    int64   `json:"errors"`    // "Error: ..." frames received
	Dropped   int64   `json:"dropped"`   // connections the server closed during the run
	PerSecond float64 `json:"perSecond"` // delivered messages per second

	P50 float64 `json:"p50us"`
	P99 float64 `json:"p99us"`
	Max float64 `json:"maxus"`

	Cycles      int64 `json:"cycles"`      // churn: connect+subscribe+close done
	CycleErrors int64 `json:"cycleErrors"` // churn: cycles that failed

	ServerCPU float64 `json:"serverCPUus"` // utime+stime over the measured phase
	CPUPerMsg float64 `json:"cpuPerMsgus"` // per delivered message (per cycle in churn)
	GenCPU    float64 `json:"genCPUus"`    // the generator's own CPU over the same phase

	RSSBefore  int64   `json:"rssBefore"` // before any connection was opened
	RSSAfter   int64   `json:"rssAfter"`  // with every connection open
	RSSPerConn float64 `json:"rssPerConn"`

	Goroutines float64 `json:"goroutinesPerConn,omitempty"` // only if the server exposes them

	Notes string `json:"notes,omitempty"` // first error, close codes of dropped connections
}

// Failed says what went wrong for a run that must count as a failure: lost
// messages, dropped connections or failed pushes. "" means none.
func (r *Result) Failed() string {
	switch {
	case r.Lost > 0:
		return fmt.Sprintf("%d of %d messages lost", r.Lost, r.Expected)
	case r.Dropped > 0:
		return fmt.Sprintf("%d connections dropped by the server", r.Dropped)
	case r.PushErrors > 0:
		return fmt.Sprintf("%d pushes failed", r.PushErrors)
	case r.CycleErrors > 0:
		return fmt.Sprintf("%d connect cycles failed", r.CycleErrors)
	case r.Errors > 0:
		return fmt.Sprintf("%d error replies", r.Errors)
	}
	return ""
}
