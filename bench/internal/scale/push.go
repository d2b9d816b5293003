package scale

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PushConfig is the push phase: small-room pushes at Rate per second
// (round-robin over the rooms, each through a node picked at random, so
// most enter away from their room's members), and one push to BigRoom
// every BigEvery (through each node in turn), for Duration.
type PushConfig struct {
	Layout
	Nodes    []string // http://HOST:PORT of each node
	Rate     float64
	BigEvery time.Duration
	Duration time.Duration
	Workers  int // pushes in flight; when all are busy the phase waits
}

// PushResult is what the push phase did.
type PushResult struct {
	Pushed   []Pushed // the pushes the nodes accepted
	PerNode  []int    // of which through each node
	Errors   int
	FirstErr string
	Seconds  float64
}

// Push runs the push phase over HTTP (GET /Index/pushByRoom).
func Push(ctx context.Context, cfg PushConfig) *PushResult {
	res := &PushResult{PerNode: make([]int, len(cfg.Nodes))}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: cfg.Workers, MaxConnsPerHost: cfg.Workers}}
	defer client.CloseIdleConnections()
	type job struct{ seq, room, node int }
	jobs := make(chan job)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range max(1, cfg.Workers) {
		wg.Go(func() {
			for j := range jobs {
				err := push(client, cfg.Nodes[j.node], RoomName(j.room), message(j.seq, j.room < 0, time.Now()))
				mu.Lock()
				if err != nil {
					if res.Errors++; res.FirstErr == "" {
						res.FirstErr = err.Error()
					}
				} else {
					res.Pushed = append(res.Pushed, Pushed{Seq: int32(j.seq), Room: int32(j.room)})
					res.PerNode[j.node]++
				}
				mu.Unlock()
			}
		})
	}
	var seq atomic.Int64
	start := time.Now()
	// pace hands out a job every interval until Duration has passed.
	pace := func(interval time.Duration, next func(k int) job) {
		for k := 0; ; k++ {
			due := time.Duration(k) * interval
			if due >= cfg.Duration || time.Since(start) >= cfg.Duration || ctx.Err() != nil {
				return
			}
			if d := due - time.Since(start); d > 0 {
				time.Sleep(d)
			}
			j := next(k)
			j.seq = int(seq.Add(1))
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
	}
	var pacers sync.WaitGroup
	rng := rand.New(rand.NewPCG(1, 2))
	if cfg.Rate > 0 {
		pacers.Go(func() {
			pace(time.Duration(float64(time.Second)/cfg.Rate), func(k int) job {
				return job{room: k % cfg.Rooms, node: rng.IntN(len(cfg.Nodes))}
			})
		})
	}
	if cfg.BigEvery > 0 {
		pacers.Go(func() {
			pace(cfg.BigEvery, func(k int) job { return job{room: -1, node: k % len(cfg.Nodes)} })
		})
	}
	pacers.Wait()
	close(jobs)
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	return res
}

func push(c *http.Client, node, room, msg string) error {
	resp, err := c.Get(node + "/Index/pushByRoom?roomNum=" + url.QueryEscape(room) + "&message=" + url.QueryEscape(msg))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err == nil && (resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "pushBy room success") {
		err = fmt.Errorf("%s: HTTP %s: %q", node, resp.Status, body)
	}
	return err
}
