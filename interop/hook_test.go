package interop

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestHookTarsGo: a hook servant written with TarsGo, found through the
// registry, refuses a subscribe with a reason the browser sees and rewrites a
// message before the room gets it; it is told who asked.
func TestHookTarsGo(t *testing.T) {
	peers := startPeers(t, PeersOptions{RegisterSelf: true}, peerQuery, peerHook)
	p := startProduct(t, ProductOptions{Locator: peers.Proxy(peerQuery), Extra: "      hook=" + peerHook + "\n"})
	c, other := dialWS(t, p.HTTP), dialWS(t, p.HTTP)
	c.send("format|json")
	var reply struct{ ID string }
	json.Unmarshal([]byte(c.next()), &reply)
	c.send("format|text")
	c.expect("Format text success!")

	c.send("subscribe|vip")
	c.expect("Error: subscribe: room vip is for members only")
	c.subscribe("room1")
	other.subscribe("room1")
	c.send(`sendByRoom|{"roomNum":"room1","message":"darn it"}`)
	c.expect("d**n it")
	c.expect("SendByRoom success!")
	other.expect("d**n it")
	c.send(`sendByRoom|{"roomNum":"room1","message":"fine"}`)
	other.expect("fine")

	e, _ := peers.waitFn(t, 0, "hook", "onSubscribe", func(e event) bool { return e.str("room") == "vip" })
	if e.str("connId") != reply.ID {
		t.Fatalf("the hook was told connId %q; want %q", e.str("connId"), reply.ID)
	}
	peers.waitFn(t, 0, "hook", "onPublish", func(e event) bool { return strings.Contains(e.str("text"), "darn") })
}
