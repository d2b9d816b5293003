package interop

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/TarsCloud/TarsGo/tars/protocol/res/basef"
)

// TestGatewayCallsTarsGo: a browser calls a TarsGo servant found through the
// registry, with a struct list in its arguments, and gets the struct back; a
// function not in call-allow never reaches it; the servant, knowing the
// caller's connection from the context, pushes to that browser alone.
func TestGatewayCallsTarsGo(t *testing.T) {
	peers := startPeers(t, PeersOptions{RegisterSelf: true}, peerQuery, peerOrder)
	p := startProduct(t, ProductOptions{Locator: peers.Proxy(peerQuery),
		Extra: "      call-allow=" + peerOrder + ":getOrder\n"})
	c, other := dialWS(t, p.HTTP), dialWS(t, p.HTTP)
	c.send("format|json")
	var reply struct{ ID string }
	json.Unmarshal([]byte(c.next()), &reply)

	c.send(`call|{"id":"s","servant":"` + peerOrder + `","func":"secret"}`)
	if got := c.next(); !strings.Contains(got, `"kind":"error","id":"s","code":2`) {
		t.Fatalf("call to secret answered %s; want refused with code 2", got)
	}
	c.send(`call|{"id":7,"servant":"` + peerOrder + `","func":"getOrder","args":{"id":"o1","items":[{"sku":"a","qty":2},{"sku":"b","qty":3}]}}`)
	var ans struct {
		Kind, Error string
		ID          int
		Ret         *int
		Result      struct {
			Caller string
			Order  struct {
				ID    string
				Items []struct {
					Sku string
					Qty int
				}
				Total int
			}
		}
	}
	got := c.next()
	if err := json.Unmarshal([]byte(got), &ans); err != nil || ans.Kind != "result" || ans.ID != 7 || ans.Ret == nil || *ans.Ret != 0 {
		t.Fatalf("getOrder answered %s (%v); want a result with id 7 and ret 0", got, err)
	}
	if o := ans.Result.Order; o.ID != "o1" || len(o.Items) != 2 || o.Items[1].Sku != "b" || o.Total != 5 || ans.Result.Caller != reply.ID {
		t.Fatalf("getOrder result %s; want order o1 of 2 items, total 5, caller %s", got, reply.ID)
	}
	peers.waitFn(t, 0, "order", "getOrder", nil)
	peers.mu.Lock()
	for _, l := range peers.lines {
		if strings.Contains(l, `"fn":"secret"`) {
			t.Errorf("the servant saw a call to secret, which call-allow does not list: %s", l)
		}
	}
	peers.mu.Unlock()

	var delivered int32
	if ret, err := pushProxy(p, basef.TARSVERSION).PushToConn(ans.Result.Caller, "your order shipped", &delivered); err != nil || ret != 0 || delivered != 1 {
		t.Fatalf("pushToConn = %d, %v, delivered %d; want 0, nil, 1", ret, err, delivered)
	}
	if got := c.next(); !strings.Contains(got, `"text":"your order shipped"`) {
		t.Fatalf("the caller got %s", got)
	}
	other.send("ping")
	other.expect("pong")
}
