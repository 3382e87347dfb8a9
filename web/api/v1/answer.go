package v1

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/optiinfra/perfagent/internal/gziphttp"
)

// answer is an encoded envelope with its status code, and its gzip
// encoding once a client has asked for it.
type answer struct {
	status int
	body   []byte

	gzOnce sync.Once
	gz     []byte
}

// minGzipBytes is the size under which answers are sent as they are:
// compressing them saves less than it costs.
const minGzipBytes = 1024

func newAnswer(data any, apiErr *apiError) *answer {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if apiErr != nil {
		_ = enc.Encode(response{Status: "error", ErrorType: apiErr.typ, Error: apiErr.err.Error()})
		return &answer{status: apiErr.status, body: buf.Bytes()}
	}
	if err := enc.Encode(response{Status: "success", Data: data}); err != nil {
		buf.Reset()
		_ = enc.Encode(response{Status: "error", ErrorType: ErrInternal, Error: "encoding the answer: " + err.Error()})
		return &answer{status: http.StatusInternalServerError, body: buf.Bytes()}
	}
	return &answer{status: http.StatusOK, body: buf.Bytes()}
}

// serve writes the answer, gzipped when the client accepts it. A client
// that goes away while it is written is not an error of the agent's, and
// is not logged.
func (ans *answer) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	body := ans.body
	if len(body) >= minGzipBytes {
		h.Add("Vary", "Accept-Encoding")
		if gziphttp.Accepts(r) {
			ans.gzOnce.Do(func() {
				var buf bytes.Buffer
				gz, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
				_, _ = gz.Write(ans.body)
				_ = gz.Close()
				ans.gz = buf.Bytes()
			})
			body = ans.gz
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(ans.status)
	_, _ = w.Write(body)
}

// Bounds of the answer cache: past either, answers are built per request
// until the next cycle. The answers of the usual requests (the default
// pages, the whole lists, one instance's bottlenecks) fit many times over.
const (
	maxCachedAnswers = 4096
	maxCachedBytes   = 64 << 20
)

// answerCache keeps the answers of the read endpoints for one generation
// of the agent's state (Options.Generation): each is built and encoded
// by the first request that asks for it, and served from memory to the
// others until the generation changes.
type answerCache struct {
	mtx     sync.Mutex
	gen     uint64
	answers map[string]*cachedAnswer
	bytes   int
}

type cachedAnswer struct {
	once sync.Once
	ans  *answer
}

// get returns the answer of key in generation gen, building it with
// build if no request has yet. Requests that ask for it while it is
// being built wait for it rather than build it again.
func (c *answerCache) get(gen uint64, key string, build func() *answer) *answer {
	c.mtx.Lock()
	if c.answers == nil || c.gen != gen {
		c.gen, c.answers, c.bytes = gen, map[string]*cachedAnswer{}, 0
	}
	ca, ok := c.answers[key]
	if !ok {
		if len(c.answers) >= maxCachedAnswers || c.bytes >= maxCachedBytes {
			c.mtx.Unlock()
			return build()
		}
		ca = &cachedAnswer{}
		c.answers[key] = ca
	}
	c.mtx.Unlock()
	ca.once.Do(func() {
		ca.ans = build()
		c.mtx.Lock()
		if c.gen == gen {
			c.bytes += len(ca.ans.body)
		}
		c.mtx.Unlock()
	})
	return ca.ans
}

// cacheKey names what a request to a cached route asks for: its path and
// the values of the query parameters the route reads, so that parameters
// it ignores do not make answers of their own.
func cacheKey(r *http.Request, params []param) string {
	var b strings.Builder
	b.WriteString(r.URL.Path)
	q := r.URL.Query()
	for _, p := range params {
		for _, v := range q[p.name] {
			b.WriteByte('\x00')
			b.WriteString(url.QueryEscape(p.name))
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(v))
		}
	}
	return b.String()
}
