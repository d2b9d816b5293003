package tars

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// QueryObj is the registry's servant (QueryF in framework.tars).
const QueryObj = "tars.tarsregistry.QueryObj"

// DefaultRefresh is how long a Registry uses a list before asking again
// (refresh-endpoint-interval).
const DefaultRefresh = time.Minute

// Registry is a Resolver that asks the Tars registry (QueryF
// findObjectById4Any) for a servant's active endpoints. Answers are cached
// per name: a list older than Refresh is still returned at once while one
// background call fetches a new one, and when that call fails the last
// good list stays in use. Only a name never resolved waits for the
// registry. Set the fields before the first Resolve; it is safe for
// concurrent use.
type Registry struct {
	// Locator is the registry's proxy string with endpoints, as in
	// /tars/application/client<locator>.
	Locator string
	Refresh time.Duration // 0: DefaultRefresh
	Client  *Client       // makes the queries; nil: a client of its own, closed by Close
	Logger  *slog.Logger  // nil: slog.Default()

	once   sync.Once
	proxy  *ObjProxy
	err    error // from parsing Locator
	own    *Client
	ctx    context.Context // ends at Close, cancelling background refreshes
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	cache map[string]*registryEntry
}

type registryEntry struct {
	eps        []Endpoint
	at         time.Time
	refreshing bool
}

func (r *Registry) init() {
	r.once.Do(func() {
		r.ctx, r.cancel = context.WithCancel(context.Background())
		c := r.Client
		if c == nil {
			r.own = NewClient(ClientOptions{Logger: r.Logger})
			c = r.own
		}
		p, err := ParseProxy(r.Locator)
		if err == nil && len(p.Endpoints) == 0 {
			err = errors.New("the locator needs endpoints (NAME@tcp -h HOST -p PORT)")
		}
		if err != nil {
			r.err = fmt.Errorf("tars: registry locator %q: %w", r.Locator, err)
			return
		}
		r.proxy, r.err = c.Proxy(r.Locator)
	})
}

func (r *Registry) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

func (r *Registry) refresh() time.Duration {
	if r.Refresh > 0 {
		return r.Refresh
	}
	return DefaultRefresh
}

// Resolve returns the active endpoints of obj.
func (r *Registry) Resolve(ctx context.Context, obj string) ([]Endpoint, error) {
	r.init()
	if r.err != nil {
		return nil, r.err
	}
	r.mu.Lock()
	if e := r.cache[obj]; e != nil {
		if !e.refreshing && time.Since(e.at) >= r.refresh() && r.ctx.Err() == nil {
			e.refreshing = true
			r.wg.Go(func() { r.update(obj, e) })
		}
		eps := e.eps
		r.mu.Unlock()
		return eps, nil
	}
	r.mu.Unlock()

	eps, err := r.Find(ctx, obj)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cache == nil {
		r.cache = make(map[string]*registryEntry)
	}
	if e := r.cache[obj]; e != nil { // another caller got there first
		return e.eps, nil
	}
	r.cache[obj] = &registryEntry{eps: eps, at: time.Now()}
	return eps, nil
}

// update fetches obj again for the cache entry e.
func (r *Registry) update(obj string, e *registryEntry) {
	eps, err := r.Find(r.ctx, obj)
	r.mu.Lock()
	defer r.mu.Unlock()
	e.refreshing, e.at = false, time.Now()
	if err != nil {
		if r.ctx.Err() == nil {
			r.logger().Warn("tars: registry refresh failed; keeping the last endpoints", "servant", obj, "endpoints", len(e.eps), "err", err)
		}
		return
	}
	e.eps = eps
}

// Find asks the registry for the active endpoints of obj, without the
// cache. A non-zero return code or an empty list is an error.
func (r *Registry) Find(ctx context.Context, obj string) ([]Endpoint, error) {
	r.init()
	if r.err != nil {
		return nil, r.err
	}
	var ret int32
	var active []Endpoint
	err := r.proxy.Invoke(ctx, "findObjectById4Any",
		func(in *Results) { in.PutString(1, "id", obj) },
		func(out *Args) error {
			var err error
			if ret, err = out.Int32(0, ""); err != nil {
				return err
			}
			return out.Value(2, "activeEp", func(d *Decoder, tag uint8) error {
				active, err = ReadEndpointFs(d, tag, true)
				return err
			})
		})
	switch {
	case err != nil:
		return nil, fmt.Errorf("registry %s: findObjectById4Any(%s): %w", r.proxy.Name(), obj, err)
	case ret != 0:
		return nil, fmt.Errorf("registry %s: findObjectById4Any(%s) returned %d: unknown servant", r.proxy.Name(), obj, ret)
	case len(active) == 0:
		return nil, fmt.Errorf("registry %s: no active endpoint of %s", r.proxy.Name(), obj)
	}
	return active, nil
}

// Close stops background refreshes and closes the Registry's own client.
func (r *Registry) Close() error {
	r.init()
	r.cancel()
	r.wg.Wait()
	if r.own != nil {
		return r.own.Close()
	}
	return nil
}

// EndpointF.istcp values.
const (
	endpointUDP = 0
	endpointTCP = 1
	endpointSSL = 2
)

// AppendEndpointFs appends eps as a vector<EndpointF> (framework.tars).
func AppendEndpointFs(b []byte, tag uint8, eps []Endpoint) []byte {
	b = AppendListHead(b, tag, len(eps))
	for _, e := range eps {
		istcp := endpointTCP
		switch e.Proto {
		case "udp":
			istcp = endpointUDP
		case "ssl":
			istcp = endpointSSL
		}
		b = AppendStructBegin(b, 0)
		b = AppendString(b, 0, e.Host)
		b = AppendInt(b, 1, int64(e.Port))
		b = AppendInt(b, 2, e.Timeout.Milliseconds())
		b = AppendInt(b, 3, int64(istcp))
		b = AppendInt(b, 4, int64(e.Grid))
		b = AppendInt(b, 8, int64(e.Qos))
		b = AppendInt(b, 11, int64(e.Weight))
		b = AppendInt(b, 12, int64(e.WeightType))
		b = AppendInt(b, 13, int64(e.AuthType))
		b = AppendStructEnd(b)
	}
	return b
}

// ReadEndpointFs reads a vector<EndpointF>. A timeout of 0 reads as
// DefaultTimeout, as an endpoint string without -t does.
func ReadEndpointFs(d *Decoder, tag uint8, required bool) ([]Endpoint, error) {
	n, ok, err := d.ReadListLen(tag, required)
	if !ok {
		return nil, err
	}
	eps := make([]Endpoint, 0, min(n, preSize))
	for i := range n {
		var host string
		var port, timeout, istcp, grid, qos, weight, weightType, authType int32
		if _, err := d.ReadStructBegin(0, true); err != nil {
			return nil, err
		}
		if err := d.ReadString(&host, 0, true); err != nil {
			return nil, err
		}
		for _, f := range []struct {
			v   *int32
			tag uint8
			req bool
		}{{&port, 1, true}, {&timeout, 2, true}, {&istcp, 3, true}, {&grid, 4, true},
			{&qos, 8, false}, {&weight, 11, false}, {&weightType, 12, false}, {&authType, 13, false}} {
			if err := d.ReadInt32(f.v, f.tag, f.req); err != nil {
				return nil, err
			}
		}
		if err := d.ReadStructEnd(); err != nil {
			return nil, err
		}
		e := Endpoint{Host: host, Port: int(port), Timeout: time.Duration(timeout) * time.Millisecond,
			Grid: int(grid), Qos: int(qos), Weight: int(weight), WeightType: int(weightType), AuthType: int(authType)}
		switch istcp {
		case endpointUDP:
			e.Proto = "udp"
		case endpointTCP:
			e.Proto = "tcp"
		case endpointSSL:
			e.Proto = "ssl"
		default:
			return nil, fmt.Errorf("tars: EndpointF %d (%s:%d): istcp %d (want 0 udp, 1 tcp or 2 ssl)", i, host, port, istcp)
		}
		if host == "" || port <= 0 || port > 65535 {
			return nil, fmt.Errorf("tars: EndpointF %d: bad address %q port %d", i, host, port)
		}
		if e.Timeout <= 0 {
			e.Timeout = DefaultTimeout
		}
		eps = append(eps, e)
	}
	return eps, nil
}
