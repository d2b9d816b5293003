package tars

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// serverConn is one accepted connection: a reader, a goroutine per call in flight, one writer.
type serverConn struct {
	s      *Server
	opt    ListenOptions
	nc     net.Conn
	ctx    context.Context // ends when the connection is aborted
	cancel context.CancelFunc
	w      *frameWriter

	calls    sync.WaitGroup
	draining atomic.Bool
	tup      atomic.Bool // the client speaks TUP: pushes take its layout
}

// drain tells the client to reconnect and stops the reader; calls in flight are still answered.
func (c *serverConn) drain() {
	if c.draining.Swap(true) {
		return
	}
	push := (&ResponsePacket{Version: VersionTars, ResultDesc: reconnectDesc}).AppendFrame
	if c.tup.Load() { // TUP clients read every packet as a RequestPacket
		push = (&RequestPacket{Version: VersionTUP, Buffer: AppendTUP(nil, nil),
			Status: map[string]string{StatusResultCode: "0", StatusResultDesc: reconnectDesc}}).AppendFrame
	}
	go c.w.send(push) // a courtesy: Shutdown never waits for a slow peer
	c.nc.SetReadDeadline(time.Now())
}

// abort closes the connection, then ends ctx: no reply of a call in flight goes out.
func (c *serverConn) abort() {
	c.nc.Close()
	c.cancel()
}

func (c *serverConn) serve() {
	if !c.read() {
		c.cancel() // the peer is gone or broke the protocol: nobody reads the replies
	}
	c.calls.Wait()
	c.w.close() // flushes the last replies and closes the connection
	c.cancel()
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	c.s.connsDone.Done()
}

// read dispatches requests until the connection ends: gracefully for Shutdown or the idle timeout.
func (c *serverConn) read() (graceful bool) {
	s, peer := c.s, c.nc.RemoteAddr().String()
	log := s.logger()
	br := bufio.NewReaderSize(c.nc, 16<<10)
	fr := FrameReader{R: br, Max: s.MaxPacket}
	slots := make(chan struct{}, maxInflight)
	bad := func(what string, err error) bool {
		s.badFrames.Add(1)
		log.Warn("tars: closing connection after "+what, "peer", peer, "err", err)
		c.abort()
		return false
	}
	for {
		for c.w.pending.Load() >= maxPending {
			select {
			case <-c.w.freed: // also when a failed write drops what is queued
			case <-c.ctx.Done():
				return false
			}
		}
		if c.opt.IdleTimeout > 0 { // the connection is idle when no frame comes and no call is in flight
			c.nc.SetReadDeadline(time.Now().Add(c.opt.IdleTimeout))
		}
		if c.draining.Load() {
			return true
		}
		_, err := br.Peek(1)
		if errors.Is(err, os.ErrDeadlineExceeded) && !c.draining.Load() {
			if len(slots) > 0 { // calls in flight
				continue
			}
			log.Debug("tars: closing idle connection", "peer", peer, "idle_timeout", c.opt.IdleTimeout)
			return true
		}
		var body []byte
		if err == nil {
			body, err = fr.Next()
		}
		switch {
		case errors.As(err, new(*FrameError)):
			return bad("a bad frame", err)
		case errors.Is(err, os.ErrDeadlineExceeded) && c.draining.Load():
			return true
		case err != nil:
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				log.Debug("tars: connection read failed", "peer", peer, "err", err)
			}
			return false
		}
		received := time.Now()
		req := new(RequestPacket)
		err = req.Decode(body)
		if len(body) > 64<<10 {
			fr.buf = nil // the request keeps a large frame; no idle connection holds one
		} else {
			req.Buffer = bytes.Clone(req.Buffer) // body is reused by the next read
		}
		switch {
		case err != nil && req.RequestID == 0:
			return bad("an undecodable request", err)
		case err != nil:
			// Its ids decoded and the stream is in step: the caller learns why; the connection goes on.
			s.badFrames.Add(1)
			log.Debug("tars: undecodable request refused", "peer", peer, "err", err)
			if req.PacketType != PacketOneway {
				c.reply(req, ServerDecodeErr, err.Error(), nil)
			}
			continue
		case req.Version == VersionTUP:
			c.tup.Store(true)
		}
		s.calls.Add(1)
		select {
		case slots <- struct{}{}:
		case <-c.ctx.Done():
			return false
		}
		size := len(body)
		c.w.pending.Add(int64(size)) // while the request is served
		c.calls.Add(1)
		go func() {
			c.dispatch(req, received)
			c.w.release(size)
			<-slots
			c.calls.Done()
		}()
	}
}

// Frames being sent are pooled, as pointers so that Put does not allocate.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func freeFrame(f *[]byte) {
	if cap(*f) <= 64<<10 {
		bufPool.Put(f)
	}
}

// frameWriter is a connection's one writer: whole frames in the order queued, flushed when none is left.
type frameWriter struct {
	nc      net.Conn
	timeout time.Duration // for each write to make progress; 0: none
	q       chan *[]byte
	quit    chan struct{} // closed by close: write what is queued, then stop
	dead    chan struct{} // closed when run returns
	once    sync.Once
	pending atomic.Int64  // bytes of frames not yet written, and those held
	freed   chan struct{} // signalled when pending falls
}

func startWriter(nc net.Conn, timeout time.Duration) *frameWriter {
	w := &frameWriter{nc: nc, timeout: timeout, q: make(chan *[]byte, 256), quit: make(chan struct{}),
		dead: make(chan struct{}), freed: make(chan struct{}, 1)}
	go w.run()
	return w
}

func (w *frameWriter) release(n int) {
	w.pending.Add(-int64(n))
	select {
	case w.freed <- struct{}{}:
	default:
	}
}

// send queues the frame appendFrame writes; false if the writer has stopped.
func (w *frameWriter) send(appendFrame func([]byte) []byte) bool {
	f := bufPool.Get().(*[]byte)
	*f = appendFrame((*f)[:0])
	w.pending.Add(int64(len(*f)))
	select {
	case w.q <- f:
		return true
	case <-w.dead:
		w.release(len(*f))
		freeFrame(f)
		return false
	}
}

// close makes run write what is queued and close the connection, and waits for that.
func (w *frameWriter) close() {
	w.once.Do(func() { close(w.quit) })
	<-w.dead
}

func (w *frameWriter) run() {
	defer close(w.dead)
	defer w.nc.Close()
	bw := bufio.NewWriterSize(w, 32<<10)
	var err error
	write := func(f *[]byte) {
		if err == nil {
			_, err = bw.Write(*f)
		}
		w.release(len(*f))
		freeFrame(f)
	}
	for quit := false; !quit; {
		select {
		case f := <-w.q:
			write(f)
		case <-w.quit:
			quit = true
		}
		for len(w.q) > 0 { // the only reader: one flush takes all that is queued
			write(<-w.q)
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			w.nc.Close() // the reader sees it and stops
		}
	}
}

// Write gives each write of at most 64 KiB the timeout: a large frame fails if the peer stops reading, not if slow.
func (w *frameWriter) Write(p []byte) (n int, err error) {
	for n < len(p) && err == nil {
		if w.timeout > 0 {
			w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
		}
		var m int
		m, err = w.nc.Write(p[n:min(len(p), n+64<<10)])
		n += m
	}
	return n, err
}
