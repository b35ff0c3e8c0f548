package localcloud

// Records returns a copy of every outcome record the functions have written
// so far (repeats included), oldest first. Each carries the time the local
// cloud read it (At) and the task that decided it (TaskID), which is what the
// benchmarks need to measure outcome latency.
func (c *Cloud) Records() []Record {
	c.mu.Lock()
	out := append([]Record(nil), c.arrivals...)
	c.mu.Unlock()
	return out
}

// PIDs returns the process ids of a function's live instances (none for an
// unknown function), for reading their memory use from /proc.
func (c *Cloud) PIDs(function string) []int {
	f := c.fns[function]
	if f == nil {
		return nil
	}
	var pids []int
	for _, in := range f.Instances() {
		if in.Alive && in.PID > 0 {
			pids = append(pids, in.PID)
		}
	}
	return pids
}
