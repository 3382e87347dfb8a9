package simulator

// queue is a FIFO of requests with cheap removal at the front and re-insertion there
// (preempted requests go back first).
type queue struct {
	buf  []*request
	head int
}

func (q *queue) len() int { return len(q.buf) - q.head }

func (q *queue) front() *request { return q.buf[q.head] }

func (q *queue) pushBack(r *request) { q.buf = append(q.buf, r) }

func (q *queue) pushFront(r *request) {
	if q.head > 0 {
		q.head--
		q.buf[q.head] = r
		return
	}
	q.buf = append(q.buf, nil)
	copy(q.buf[1:], q.buf)
	q.buf[0] = r
}

func (q *queue) popFront() *request {
	r := q.buf[q.head]
	q.buf[q.head] = nil
	q.head++
	if q.head > 1024 && q.head > len(q.buf)/2 {
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf = q.buf[:n]
		q.head = 0
	}
	return r
}

// filter keeps the requests for which keep returns true, in order.
func (q *queue) filter(keep func(*request) bool) {
	out := q.buf[:0]
	for _, r := range q.buf[q.head:] {
		if keep(r) {
			out = append(out, r)
		}
	}
	clear(q.buf[len(out):])
	q.buf = out
	q.head = 0
}
