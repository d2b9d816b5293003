package main

import (
	"bufio"
	"cmp"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/tarsws/websocketserver/tars"
)

// /metrics serves the counters in the Prometheus text exposition format
// 0.0.4. It is open like /Index/stats: it shows counts, never room names or
// message text, and the push token does not apply. Limit who may scrape it
// with the HTTP adapter's allow list or a proxy in front of it.

const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// metrics serves /metrics: the hub's counters and, with an App, its
// adapters and Tars calls, and the cluster's peers.
type metrics struct {
	hub *Hub
	app *tars.App // nil: the hub's counters only
	cl  *Cluster  // nil: no peers
}

func newMetrics(hub *Hub, app *tars.App, cl *Cluster) http.Handler { return &metrics{hub, app, cl} }

// registerProperties reports the hub's counters to the property service:
// connections and rooms as gauges, the rest as sums per interval.
func registerProperties(app *tars.App, hub *Hub) {
	app.Property("ws.connections", tars.Gauge, func() int64 { return int64(hub.Counts().Connections) })
	app.Property("ws.rooms", tars.Gauge, func() int64 { return int64(len(hub.Counts().Rooms)) })
	app.Property("ws.messagesIn", tars.Sum, func() int64 { return int64(hub.Counts().MessagesIn) })
	app.Property("ws.messagesOut", tars.Sum, func() int64 { return int64(hub.Counts().MessagesOut) })
	app.Property("ws.dropped", tars.Sum, func() int64 { return int64(hub.Counts().Dropped) })
}

func (m *metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "metrics: method "+r.Method+" not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", metricsContentType)
	if r.Method == http.MethodHead {
		return
	}
	writeMetrics(w, m.gather())
}

// gather reads every counter now.
func (m *metrics) gather() []*metricFamily {
	var fams []*metricFamily
	family := func(name, typ, help string) *metricFamily {
		f := &metricFamily{name: name, typ: typ, help: help}
		fams = append(fams, f)
		return f
	}
	st := m.hub.Counts()
	family("websocketserver_connections", "gauge", "WebSocket connections open now.").
		add(itoa(st.Connections))
	family("websocketserver_rooms", "gauge", "Rooms with at least one member.").
		add(itoa(len(st.Rooms)))
	family("websocketserver_messages_in_total", "counter", "Messages pushed: sendByRoom, broadcast, HTTP triggers and PushObj.").
		add(utoa(st.MessagesIn))
	family("websocketserver_messages_out_total", "counter", "Text frames written to WebSocket connections.").
		add(utoa(st.MessagesOut))
	family("websocketserver_dropped_total", "counter", "Connections dropped by the server, by reason (slow: outgoing queue full, close code 4000).").
		add(utoa(st.Dropped), "reason", "slow")
	frames, bytes := m.hub.queueDepth()
	family("websocketserver_queued_frames", "gauge", "Frames waiting in the outgoing queues of all connections.").
		add(strconv.FormatInt(frames, 10))
	family("websocketserver_queued_bytes", "gauge", "Bytes waiting in the outgoing queues of all connections.").
		add(strconv.FormatInt(bytes, 10))

	if m.cl != nil {
		m.gatherCluster(family, m.cl.View())
	}
	if a := m.app; a != nil {
		calls := family("websocketserver_tars_calls_total", "counter", "Tars calls finished, by side (served or made), servant, function and return code.")
		for _, c := range a.Calls() {
			calls.add(utoa(c.N), "side", c.Side, "servant", c.Servant, "func", c.Func, "code", strconv.Itoa(int(c.Ret)))
		}
		conns := family("websocketserver_adapter_connections", "gauge", "Connections open on each adapter.")
		refused := family("websocketserver_adapter_refused_total", "counter", "Connections refused at accept, by adapter and reason (allow: not in the allow list; maxconns: adapter full).")
		for _, ad := range a.Adapters() {
			conns.add(itoa(ad.Conns), "adapter", ad.Name)
			refused.add(utoa(ad.Denied), "adapter", ad.Name, "reason", "allow")
			refused.add(utoa(ad.Refused), "adapter", ad.Name, "reason", "maxconns")
		}
		family("websocketserver_tars_bad_frames_total", "counter", "Tars connections closed for a malformed frame or packet.").
			add(utoa(a.BadFrames()))
		family("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, in seconds.").
			add(strconv.FormatFloat(float64(a.Started().UnixMilli())/1000, 'f', -1, 64))
	}
	return fams
}

// gatherCluster reports each peer node's queue and delivery counts.
func (m *metrics) gatherCluster(family func(name, typ, help string) *metricFamily, st clusterView) {
	up := family("websocketserver_cluster_peer_up", "gauge", "1 if the last batch sent to the peer node arrived, else 0.")
	queued := family("websocketserver_cluster_peer_queued", "gauge", "Messages waiting to be sent to the peer node.")
	sent := family("websocketserver_cluster_peer_sent_total", "counter", "Messages the peer node acknowledged.")
	dropped := family("websocketserver_cluster_peer_dropped_total", "counter", "Oldest messages dropped from the peer's full queue (too many messages or bytes).")
	filtered := family("websocketserver_cluster_peer_filtered_total", "counter", "Room messages not sent to the peer node: it has no member in the room.")
	interest := family("websocketserver_cluster_peer_interest_rooms", "gauge", "Rooms the peer node has members in; -1: not known, it gets every message.")
	lost := family("websocketserver_cluster_peer_lost_total", "counter", "Messages in calls to the peer that failed after they may have arrived; not resent.")
	for _, p := range st.Peers {
		isUp := "0"
		if p.State == "up" {
			isUp = "1"
		}
		up.add(isUp, "peer", p.Addr)
		queued.add(itoa(p.Queued), "peer", p.Addr)
		sent.add(utoa(p.Sent), "peer", p.Addr)
		dropped.add(utoa(p.Dropped), "peer", p.Addr)
		filtered.add(utoa(p.Filtered), "peer", p.Addr)
		interest.add(itoa(p.Interest), "peer", p.Addr)
		lost.add(utoa(p.Lost), "peer", p.Addr)
	}
}

func itoa(n int) string    { return strconv.Itoa(n) }
func utoa(n uint64) string { return strconv.FormatUint(n, 10) }

// metricFamily is one metric name with its samples.
type metricFamily struct {
	name, typ, help string
	samples         []metricSample
}

type metricSample struct {
	labels string // `{a="x",b="y"}` or "", escaped
	value  string
}

// add adds a sample; labels are name, value pairs.
func (f *metricFamily) add(value string, labels ...string) {
	var b strings.Builder
	for i := 0; i+1 < len(labels); i += 2 {
		if i == 0 {
			b.WriteByte('{')
		} else {
			b.WriteByte(',')
		}
		b.WriteString(labels[i])
		b.WriteString(`="`)
		b.WriteString(labelEscaper.Replace(labels[i+1]))
		b.WriteByte('"')
	}
	if b.Len() > 0 {
		b.WriteByte('}')
	}
	f.samples = append(f.samples, metricSample{b.String(), value})
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

// writeMetrics writes the families sorted by name, and each family's
// samples sorted by labels, so the output is stable.
func writeMetrics(w io.Writer, fams []*metricFamily) error {
	bw := bufio.NewWriter(w)
	slices.SortFunc(fams, func(x, y *metricFamily) int { return cmp.Compare(x.name, y.name) })
	for _, f := range fams {
		bw.WriteString("# HELP " + f.name + " " + helpEscaper.Replace(f.help) + "\n")
		bw.WriteString("# TYPE " + f.name + " " + f.typ + "\n")
		slices.SortFunc(f.samples, func(x, y metricSample) int { return cmp.Compare(x.labels, y.labels) })
		for _, s := range f.samples {
			bw.WriteString(f.name + s.labels + " " + s.value + "\n")
		}
	}
	return bw.Flush()
}
