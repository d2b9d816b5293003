package tars

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"
)

// resolved is a servant's active endpoints in the Client's one resolve cache. A list older than
// ClientOptions.Refresh is still used while one background call fetches a new one; if that fails,
// the last good list stays. Only a name never resolved waits.
type resolved struct {
	eps        []Endpoint
	ts         []target // eps with their connection slots
	at         time.Time
	refreshing bool
}

// Resolve returns the active endpoints of obj from the registry or Resolver, through the cache.
func (c *Client) Resolve(ctx context.Context, obj string) ([]Endpoint, error) {
	e, err := c.resolve(ctx, obj)
	return e.eps, err
}

func (c *Client) resolve(ctx context.Context, obj string) (resolved, error) {
	if c.resolver == nil || c.resolveErr != nil {
		return resolved{}, cmp.Or(c.resolveErr, fmt.Errorf("tars: no locator or resolver to find %s", obj))
	}
	c.mu.Lock()
	e, ok := c.cache[obj]
	if ok && !e.refreshing && time.Since(e.at) >= cmp.Or(max(c.opt.Refresh, 0), time.Minute) && !c.closed.Load() {
		e.refreshing = true
		c.cache[obj] = e
		c.refreshes.Go(func() { c.fetch(c.ctx, obj, true) })
	}
	c.mu.Unlock()
	if ok {
		return e, nil
	}
	return c.fetch(ctx, obj, false)
}

// fetch asks for the active endpoints of obj and caches them. If a refresh fails, the cached list stays.
func (c *Client) fetch(ctx context.Context, obj string, refresh bool) (resolved, error) {
	eps, err := c.resolver.Resolve(ctx, obj)
	if err == nil && len(eps) == 0 {
		err = errors.New("no active endpoints")
	}
	fresh := resolved{eps: eps, ts: c.targets(eps), at: time.Now()}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil { // if another caller stored a list meanwhile, either is fresh
		c.cache[obj] = fresh
	} else if old := c.cache[obj]; refresh {
		old.refreshing, old.at = false, fresh.at
		c.cache[obj] = old
		if !c.closed.Load() {
			c.logger().Warn("tars: registry refresh failed; keeping the last endpoints",
				"servant", obj, "endpoints", len(old.eps), "err", err)
		}
	}
	return fresh, err
}

// locator asks the Tars registry's QueryObj (QueryF.findObjectById4Any).
type locator struct{ query *ObjProxy }

func (l locator) Resolve(ctx context.Context, obj string) ([]Endpoint, error) {
	var ret int32
	var active []Endpoint
	err := l.query.Invoke(ctx, "findObjectById4Any", func(in *Results) { in.PutString(1, "id", obj) },
		func(out *Args) (err error) {
			if ret, err = out.Int32(0, ""); err != nil {
				return err
			}
			return out.Value(2, "activeEp", func(d *Decoder, tag uint8) error {
				active, err = readEndpointFs(d, tag)
				return err
			})
		})
	switch name := l.query.Name(); {
	case err != nil:
		return nil, fmt.Errorf("registry %s: findObjectById4Any(%s): %w", name, obj, err)
	case ret != 0:
		return nil, fmt.Errorf("registry %s: findObjectById4Any(%s) returned %d: unknown servant", name, obj, ret)
	}
	return active, nil
}

// readEndpointFs reads a vector<EndpointF> (framework.tars). A timeout of 0
// reads as defaultTimeout, as an endpoint string without -t does.
func readEndpointFs(d *Decoder, tag uint8) ([]Endpoint, error) {
	n, _, err := d.ReadListLen(tag, true)
	if err != nil {
		return nil, err
	}
	eps := make([]Endpoint, 0, min(n, preSize))
	for i := range n {
		var host string
		var port, timeout, istcp, grid, qos, weight, weightType, authType int32
		if _, err := d.ReadStructBegin(0, true); err != nil {
			return nil, err
		}
		err := cmp.Or(
			d.ReadString(&host, 0, true), d.ReadInt32(&port, 1, true), d.ReadInt32(&timeout, 2, true),
			d.ReadInt32(&istcp, 3, true), d.ReadInt32(&grid, 4, true), d.ReadInt32(&qos, 8, false),
			d.ReadInt32(&weight, 11, false), d.ReadInt32(&weightType, 12, false),
			d.ReadInt32(&authType, 13, false), d.ReadStructEnd(),
		)
		switch {
		case err != nil:
			return nil, err
		case istcp < 0 || int(istcp) >= len(endpointProtos):
			return nil, fmt.Errorf("tars: EndpointF %d (%s:%d): istcp %d (want 0 udp, 1 tcp or 2 ssl)", i, host, port, istcp)
		case host == "" || port <= 0 || port > 65535:
			return nil, fmt.Errorf("tars: EndpointF %d: bad address %q port %d", i, host, port)
		}
		eps = append(eps, Endpoint{Proto: endpointProtos[istcp], Host: host, Port: int(port),
			Timeout: cmp.Or(max(time.Duration(timeout)*time.Millisecond, 0), defaultTimeout), Grid: int(grid),
			Qos: int(qos), Weight: int(weight), WeightType: int(weightType), AuthType: int(authType)})
	}
	return eps, nil
}
