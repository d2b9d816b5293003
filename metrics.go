package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/tarsws/websocketserver/tars"
)

func registerProperties(app *tars.App, hub *Hub) {
	app.Property("ws.connections", tars.Gauge, func() int64 { return int64(hub.Counts().Connections) })
	app.Property("ws.rooms", tars.Gauge, func() int64 { return int64(len(hub.Counts().Rooms)) })
	app.Property("ws.messagesIn", tars.Sum, func() int64 { return int64(hub.Counts().MessagesIn) })
	app.Property("ws.messagesOut", tars.Sum, func() int64 { return int64(hub.Counts().MessagesOut) })
	app.Property("ws.dropped", tars.Sum, func() int64 { return int64(hub.Counts().Dropped) })
}

// newMetrics serves /metrics in the Prometheus text format 0.0.4: the hub's counters, app's adapters
// and Tars calls, cl's peers (app, cl nil: none). It is open like /Index/stats: it shows counts,
// never room names or message text; the adapter's allow list limits who scrapes.
func newMetrics(hub *Hub, app *tars.App, cl *Cluster) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "metrics: method "+r.Method+" not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if r.Method == http.MethodHead {
			return
		}
		var fams []*metricFamily
		family := func(name, typ, help string) *metricFamily {
			fams = append(fams, &metricFamily{name: name, typ: typ, help: help})
			return fams[len(fams)-1]
		}
		st := hub.Counts()
		frames, bytes := hub.queueDepth()
		family("websocketserver_connections", "gauge", "WebSocket connections open now.").add(st.Connections)
		family("websocketserver_rooms", "gauge", "Rooms with at least one member.").add(len(st.Rooms))
		family("websocketserver_messages_in_total", "counter", "Messages pushed: sendByRoom, broadcast, HTTP triggers and PushObj.").add(st.MessagesIn)
		family("websocketserver_messages_out_total", "counter", "Text frames written to WebSocket connections.").add(st.MessagesOut)
		family("websocketserver_dropped_total", "counter", "Connections dropped by the server, by reason (slow: outgoing queue full, close code 4000).").
			add(st.Dropped, "reason", "slow")
		family("websocketserver_queued_frames", "gauge", "Frames waiting in the outgoing queues of all connections.").add(frames)
		family("websocketserver_queued_bytes", "gauge", "Bytes waiting in the outgoing queues of all connections.").add(bytes)
		if cl != nil {
			peers := cl.View().Peers
			for _, pm := range peerMetrics {
				f := family("websocketserver_cluster_peer_"+pm.name, pm.typ, pm.help)
				for _, p := range peers {
					f.add(pm.value(p), "peer", p.Addr)
				}
			}
		}
		if app != nil {
			calls := family("websocketserver_tars_calls_total", "counter", "Tars calls finished, by side (served or made), servant, function and return code.")
			for _, c := range app.Calls() {
				calls.add(c.N, "side", c.Side, "servant", c.Servant, "func", c.Func, "code", strconv.Itoa(int(c.Ret)))
			}
			conns := family("websocketserver_adapter_connections", "gauge", "Connections open on each adapter.")
			refused := family("websocketserver_adapter_refused_total", "counter", "Connections refused at accept, by adapter and reason (allow: not in the allow list; maxconns: adapter full).")
			for _, ad := range app.Adapters() {
				conns.add(ad.Conns, "adapter", ad.Name)
				refused.add(ad.Denied, "adapter", ad.Name, "reason", "allow")
				refused.add(ad.Refused, "adapter", ad.Name, "reason", "maxconns")
			}
			family("websocketserver_tars_bad_frames_total", "counter", "Tars connections closed for a malformed frame or packet.").add(app.BadFrames())
			family("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, in seconds.").
				add(strconv.FormatFloat(float64(app.Started().UnixMilli())/1000, 'f', -1, 64))
		}
		writeMetrics(w, fams)
	})
}

// peerMetrics are the families websocketserver_cluster_peer_NAME, with each peer's value.
var peerMetrics = []struct {
	name, typ, help string
	value           func(peerView) any
}{
	{"up", "gauge", "1 if the last batch sent to the peer node arrived, else 0.", func(p peerView) any { return boolInt(p.State == "up") }},
	{"queued", "gauge", "Messages waiting to be sent to the peer node.", func(p peerView) any { return p.Queued }},
	{"sent_total", "counter", "Messages the peer node acknowledged.", func(p peerView) any { return p.Sent }},
	{"dropped_total", "counter", "Oldest messages dropped from the peer's full queue (too many messages or bytes).", func(p peerView) any { return p.Dropped }},
	{"filtered_total", "counter", "Room messages not sent to the peer node: it has no member in the room.", func(p peerView) any { return p.Filtered }},
	{"interest_rooms", "gauge", "Rooms the peer node has members in; -1: not known, it gets every message.", func(p peerView) any { return p.Interest }},
	{"lost_total", "counter", "Messages in calls to the peer that failed after they may have arrived; not resent.", func(p peerView) any { return p.Lost }},
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// metricFamily is one metric name with its samples: `{a="x",b="y"} value` or ` value`.
type metricFamily struct {
	name, typ, help string
	samples         []string
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

// add adds a sample: an integer, or a string as written; labels are name, value pairs.
func (f *metricFamily) add(value any, labels ...string) {
	var ls []string
	for i := 0; i+1 < len(labels); i += 2 {
		ls = append(ls, labels[i]+`="`+labelEscaper.Replace(labels[i+1])+`"`)
	}
	s := " " + fmt.Sprint(value)
	if ls != nil {
		s = "{" + strings.Join(ls, ",") + "}" + s
	}
	f.samples = append(f.samples, s)
}

// writeMetrics writes the families by name and their samples by labels, so the output is stable.
// No label set is a prefix of another, so sorting the samples sorts them by labels.
func writeMetrics(w io.Writer, fams []*metricFamily) error {
	bw := bufio.NewWriter(w)
	slices.SortFunc(fams, func(x, y *metricFamily) int { return strings.Compare(x.name, y.name) })
	for _, f := range fams {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", f.name, helpEscaper.Replace(f.help), f.name, f.typ)
		slices.Sort(f.samples)
		for _, s := range f.samples {
			fmt.Fprintf(bw, "%s%s\n", f.name, s)
		}
	}
	return bw.Flush()
}
