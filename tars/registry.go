package tars

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// defaultRefresh is how long a resolved list is used before it is asked for
// again (refresh-endpoint-interval).
const defaultRefresh = time.Minute

// registry is a Client's one resolve cache of the active endpoints of each
// servant, found through its Resolver or the Tars registry at its Locator.
// A list older than refresh is still returned while one background call
// fetches a new one; if that fails, the last good list stays. Only a name
// never resolved waits.
type registry struct {
	Resolver
	err     error // a bad locator
	refresh time.Duration
	c       *Client

	ctx    context.Context // ends at close, cancelling background refreshes
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	cache map[string]*registryEntry
}

type registryEntry struct {
	eps        []Endpoint
	ts         []target // eps with their connection slots
	at         time.Time
	refreshing bool
}

// newRegistry returns c's cache; nil without a locator or Resolver.
func newRegistry(c *Client) *registry {
	o := c.opt
	if o.Locator == "" && o.Resolver == nil {
		return nil
	}
	r := &registry{Resolver: o.Resolver, refresh: cmp.Or(max(o.Refresh, 0), defaultRefresh), c: c}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if o.Resolver == nil {
		query, err := c.Proxy(o.Locator) // c.reg is not set yet: the locator must have endpoints
		r.Resolver = locator{query}
		if err != nil {
			r.err = fmt.Errorf("tars: registry locator %q: %w", o.Locator, err)
		}
	}
	return r
}

// resolve returns the cache entry of obj, filled.
func (r *registry) resolve(ctx context.Context, obj string) (registryEntry, error) {
	if r.err != nil {
		return registryEntry{}, r.err
	}
	r.mu.Lock()
	if e := r.cache[obj]; e != nil {
		if !e.refreshing && time.Since(e.at) >= r.refresh && r.ctx.Err() == nil {
			e.refreshing = true
			r.wg.Go(func() { r.update(obj, e) })
		}
		defer r.mu.Unlock()
		return *e, nil
	}
	r.mu.Unlock()

	fresh, err := r.fetch(ctx, obj)
	if err != nil {
		return registryEntry{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cache == nil {
		r.cache = make(map[string]*registryEntry)
	}
	if e := r.cache[obj]; e != nil { // another caller got there first
		return *e, nil
	}
	r.cache[obj] = &fresh
	return fresh, nil
}

// update fetches obj again for the cache entry e.
func (r *registry) update(obj string, e *registryEntry) {
	fresh, err := r.fetch(r.ctx, obj)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		*e = fresh
		return
	}
	e.refreshing, e.at = false, time.Now()
	if r.ctx.Err() == nil {
		r.c.logger().Warn("tars: registry refresh failed; keeping the last endpoints",
			"servant", obj, "endpoints", len(e.eps), "err", err)
	}
}

// fetch asks for the active endpoints of obj, without the cache.
func (r *registry) fetch(ctx context.Context, obj string) (registryEntry, error) {
	eps, err := r.Resolve(ctx, obj)
	if err == nil && len(eps) == 0 {
		err = errors.New("no active endpoints")
	}
	return registryEntry{eps: eps, ts: r.c.targets(eps), at: time.Now()}, err
}

// close stops background refreshes.
func (r *registry) close() {
	r.cancel()
	r.wg.Wait()
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
	case len(active) == 0:
		return nil, fmt.Errorf("registry %s: no active endpoint of %s", name, obj)
	}
	return active, nil
}

// readEndpointFs reads a vector<EndpointF> (framework.tars). A timeout of 0
// reads as DefaultTimeout, as an endpoint string without -t does.
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
			Timeout: cmp.Or(max(time.Duration(timeout)*time.Millisecond, 0), DefaultTimeout), Grid: int(grid),
			Qos: int(qos), Weight: int(weight), WeightType: int(weightType), AuthType: int(authType)})
	}
	return eps, nil
}
