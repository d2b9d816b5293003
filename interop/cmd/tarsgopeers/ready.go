package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/TarsCloud/TarsGo/tars"
	"github.com/TarsCloud/TarsGo/tars/model"
	"github.com/TarsCloud/TarsGo/tars/protocol/res/requestf"
	"github.com/TarsCloud/TarsGo/tars/util/endpoint"
)

// pinger is a bare client proxy: only tars_ping.
type pinger struct{ s model.Servant }

func (p *pinger) SetServant(s model.Servant) { p.s = s }

func (p *pinger) ping() error {
	var rsp requestf.ResponsePacket
	return p.s.TarsInvoke(context.Background(), 0, "tars_ping", nil, nil, nil, &rsp)
}

// announceReady waits until every adapter answers tars_ping through
// TarsGo's own client, then prints the ready line. It gives up (and exits)
// after 10 s: a peer that cannot serve must not leave a test waiting.
func announceReady(addrs map[string]endpoint.Endpoint) {
	comm := tars.NewCommunicator()
	deadline := time.Now().Add(10 * time.Second)
	listening := map[string]string{}
	for obj, ep := range addrs {
		p := new(pinger)
		comm.StringToProxy(fmt.Sprintf("%s@tcp -h %s -p %d -t 1000", obj, ep.Host, ep.Port), p)
		p.s.TarsSetTimeout(500)
		for {
			err := p.ping()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "tarsgopeers: %s on %s:%d never answered tars_ping: %v\n", obj, ep.Host, ep.Port, err)
				os.Exit(1)
			}
			time.Sleep(20 * time.Millisecond)
		}
		listening[obj] = fmt.Sprintf("%s:%d", ep.Host, ep.Port)
	}
	emit("ready", "", map[string]any{"adapters": listening, "pid": os.Getpid()})
}
