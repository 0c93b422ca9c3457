package ami

import "context"

// pushEvent queues msg for OnEvent without blocking, because the read loop
// that calls it must keep routing action responses. A full queue drops the
// event. The first drop of a burst is logged, and so is the end of the
// burst, with the count of dropped events.
func (c *Client) pushEvent(msg Message) {
	c.stats.eventsReceived.Add(1)
	if c.cfg.OnEvent == nil {
		return
	}

	select {
	case c.events <- msg:
		if c.dropping.CompareAndSwap(true, false) {
			c.log.Warn("AMI event queue accepts events again", "events_dropped_total", c.stats.eventsDropped.Load())
		}
	default:
		c.stats.eventsDropped.Add(1)
		if c.dropping.CompareAndSwap(false, true) {
			c.log.Warn("AMI event queue full, dropping events until the handler catches up",
				"event", msg.Event(), "queue_size", cap(c.events))
		}
	}
}

// dispatchEvents calls OnEvent for each queued event, in order, until ctx
// ends. Events still queued then are not delivered.
func (c *Client) dispatchEvents(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-c.events:
			c.cfg.OnEvent(msg)
		}
	}
}
