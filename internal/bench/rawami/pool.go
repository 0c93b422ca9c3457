package rawami

import (
	"errors"
	"sync"
	"time"
)

// Pool is a set of logged-in connections. Asterisk serves each AMI session
// on a thread of its own, so actions spread over a pool can be processed
// in parallel, while the actions of one session are processed in order.
type Pool []*Conn

// DialPool opens n connections with the arguments of Dial.
func DialPool(n int, addr, user, secret, events string, timeout time.Duration) (Pool, error) {
	p := make(Pool, 0, n)
	for range n {
		c, err := Dial(addr, user, secret, events, timeout)
		if err != nil {
			p.Close()
			return nil, err
		}
		p = append(p, c)
	}
	return p, nil
}

// Send spreads the actions over the connections in turn, writes each
// connection's share in one write, and returns the responses in the order
// of actions once all have arrived.
func (p Pool) Send(timeout time.Duration, actions ...Action) ([]Message, error) {
	if len(p) == 1 {
		return p[0].Send(timeout, actions...)
	}
	shares := make([][]int, len(p))
	for i := range actions {
		shares[i%len(p)] = append(shares[i%len(p)], i)
	}

	out := make([]Message, len(actions))
	errs := make([]error, len(p))
	var wg sync.WaitGroup
	for k, share := range shares {
		if len(share) == 0 {
			continue
		}
		wg.Go(func() {
			batch := make([]Action, len(share))
			for j, i := range share {
				batch[j] = actions[i]
			}
			resp, err := p[k].Send(timeout, batch...)
			if err != nil {
				errs[k] = err
				return
			}
			for j, i := range share {
				out[i] = resp[j]
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Close closes every connection.
func (p Pool) Close() {
	for _, c := range p {
		c.Close()
	}
}
