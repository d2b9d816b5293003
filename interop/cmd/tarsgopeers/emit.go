package main

import (
	"encoding/json"
	"os"
	"sync"
	"time"
)

var stdout struct {
	sync.Mutex
	enc *json.Encoder
}

// emit prints one event as a JSON line: peer and fn name the recorder and
// the call, t is the arrival time in Unix milliseconds.
func emit(peer, fn string, fields map[string]any) {
	ev := map[string]any{"peer": peer, "fn": fn, "t": time.Now().UnixMilli()}
	for k, v := range fields {
		ev[k] = v
	}
	stdout.Lock()
	defer stdout.Unlock()
	if stdout.enc == nil {
		stdout.enc = json.NewEncoder(os.Stdout)
	}
	// A failed write to stdout has nowhere to be reported.
	_ = stdout.enc.Encode(ev)
}
