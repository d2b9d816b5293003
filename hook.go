package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tarsws/websocketserver/tars"
)

// Hooks (tars/Hook.tars): the servant named by hook decides whether a browser's subscribe,
// sendByRoom or broadcast may take effect, and may replace a message's text. It is called on the
// connection's reader, in order, within hook-timeout and with no hub lock held, so a hung hook
// holds up that connection only. Any failure refuses (hook-fail=closed) or lets through (open).
// HTTP triggers and PushObj come from backends: no hook.
const (
	hookAllow   int32 = 0
	hookRefuse  int32 = 1
	hookReplace int32 = 2 // onPublish: deliver the replacement instead

	maxHookReason = 200    // bytes of a refusal's reason shown to the browser
	demoWord      = "spam" // the word the demo's HelloObj, as a hook, refuses in messages
)

// runHook asks the hook about cmd if it decides on it: the text to deliver, or why cmd is refused.
func (c *conn) runHook(s *Settings, cmd command) (string, error) {
	if s.Hook == "" || cmd.Name != cmdSubscribe && cmd.Name != cmdSendByRoom && cmd.Name != cmdBroadcast {
		return cmd.Text, nil
	}
	fn, key, last := "onPublish", "text", cmd.Text
	if cmd.Name == cmdSubscribe {
		fn, key, last = "onSubscribe", "token", cmd.Token
	}
	var ret int32
	var reason, repl string
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), s.HookTimeout)
	defer cancel()
	p, err := c.hub.gw.proxy(s.Hook)
	if err == nil {
		err = p.Invoke(ctx, fn,
			func(r *tars.Results) {
				r.PutString(1, "connId", c.id)
				r.PutString(2, "name", c.displayName())
				r.PutString(3, "room", cmd.Room)
				r.PutString(4, key, last)
			},
			func(a *tars.Args) (err error) {
				if ret, err = a.Int32(0, ""); err == nil {
					reason, err = a.String(5, "reason")
				}
				if err == nil && fn == "onPublish" {
					repl, err = a.String(6, "replacement")
				}
				return err
			})
	}
	switch {
	case err == nil && ret == hookAllow:
		return cmd.Text, nil
	case err == nil && ret == hookRefuse:
		if len(reason) > maxHookReason {
			reason = strings.ToValidUTF8(reason[:maxHookReason], "") + "..."
		}
		return "", errors.New(cmp.Or(reason, "refused"))
	case err == nil && ret == hookReplace && cmd.Name != cmdSubscribe:
		if err = checkMessage(&repl, s); err == nil {
			return repl, nil
		}
		err = fmt.Errorf("replacement: %w", err)
	case err == nil:
		err = fmt.Errorf("returned %d", ret)
	}
	c.hub.log.Warn("hook failed", "servant", s.Hook, "cmd", cmd.Name, "id", c.id, "hook-fail", s.HookFail, "err", err)
	if s.HookFail == "open" {
		return cmd.Text, nil
	}
	if callCode(err) == tars.InvokeTimeout {
		return "", fmt.Errorf("refused: the hook did not answer within %v", time.Since(start).Round(10*time.Millisecond))
	}
	return "", errors.New("refused: the hook failed")
}
