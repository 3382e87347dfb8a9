package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// applyEvent applies a timed event. The fleet validator applied the same events in the
// same order, so decoding and resolving cannot fail here unless an admin change came
// between; then the event is skipped, as a rejected restart would leave the old flags.
func (s *Server) applyEvent(ev Event) {
	if ev.Workload != nil {
		w := s.cfg.Workload
		if errs := strictDecode(ev.Workload, &w); len(errs) == 0 && len(w.check()) == 0 {
			s.setWorkload(w)
		}
	}
	if ev.Settings != nil {
		st := s.user
		if errs := strictDecode(ev.Settings, &st); len(errs) == 0 {
			_ = s.setSettings(st) // Keeps the current flags on error.
		}
	}
}

// setWorkload switches to w; the next arrival is drawn afresh at the new rate (Poisson
// arrivals are memoryless) and timeouts are re-checked.
func (s *Server) setWorkload(w Workload) {
	s.cfg.Workload = w
	s.nextArrival = s.now + w.interarrival(s.rng, s.now)
	s.nextDeadline = s.now
}

// setSettings restarts the engine with new flags: capacity is recomputed and in-flight
// requests go back to the queue (their KV is recomputed), as clients retrying would do.
// Counters and histograms continue (Restart resets them).
func (s *Server) setSettings(user Settings) error {
	p, ferr := resolve(s.cfg.Engine, user, s.cfg.Model, s.cfg.GPU)
	if ferr != nil {
		return &FieldError{Field: ferr.field, Msg: ferr.msg}
	}
	s.requeueAll()
	s.p = p
	s.user = user
	s.cfg.Settings = p.s
	s.resetRatio()
	s.families = buildFamilies(s)
	return nil
}

// requeueAll sends every running request back to the queue, as clients
// retrying after a restart would; their KV is recomputed.
func (s *Server) requeueAll() {
	for len(s.running) > 0 {
		s.requeue(len(s.running) - 1)
	}
	s.used = 0
}

// Restart restarts the engine process with the same flags, as an operator
// or a crash would, outside any settings change: in-flight requests go back
// to the queue, counters and histograms start again from zero, and the
// process start time becomes the server's current simulated time.
func (s *Server) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requeueAll()
	s.started = s.now
	s.st = stats{intervalStart: s.now}
	s.resetRatio()
	s.h = newHists(s)
	s.families = buildFamilies(s)
}

// processStart is when the engine process last started.
func (s *Server) processStart() time.Time {
	return s.start.Add(time.Duration(s.started * 1e9))
}

// FieldError is a rejected value in a settings or workload change.
type FieldError struct {
	Field string `json:"field"` // JSON field name; empty when the body itself is malformed
	Msg   string `json:"error"`
}

// Error formats the error as field: message.
func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// maxBodyBytes caps admin request bodies.
const maxBodyBytes = 64 << 10

// decodeJSON decodes a JSON object into out (a partial update), one field at a time so
// that every error names its field; unknown fields are rejected.
func decodeJSON(data []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var fields map[string]json.RawMessage
	if err := dec.Decode(&fields); err != nil {
		return &FieldError{Msg: "body must be a JSON object: " + err.Error()}
	}
	if dec.More() {
		return &FieldError{Msg: "trailing data after the JSON object"}
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		one, err := json.Marshal(map[string]json.RawMessage{k: fields[k]})
		if err != nil {
			return &FieldError{Field: k, Msg: err.Error()}
		}
		fd := json.NewDecoder(bytes.NewReader(one))
		fd.DisallowUnknownFields()
		if err := fd.Decode(out); err != nil {
			var te *json.UnmarshalTypeError
			switch {
			case errors.As(err, &te):
				return &FieldError{Field: k, Msg: fmt.Sprintf("cannot use %s as %s", te.Value, te.Type)}
			case strings.HasPrefix(err.Error(), "json: unknown field "):
				return &FieldError{Field: k, Msg: "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")}
			}
			return &FieldError{Field: k, Msg: err.Error()}
		}
	}
	return nil
}

// UpdateSettings applies a JSON partial settings change (the body of POST /admin/settings),
// as restarting the engine with those flags would.
func (s *Server) UpdateSettings(body []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.user
	if err := decodeJSON(body, &st); err != nil {
		return err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return &FieldError{Msg: "body must be a JSON object: " + err.Error()}
	}
	allowed := engineFlags[s.cfg.Engine]
	for k := range fields {
		if !slices.Contains(allowed, k) {
			return &FieldError{Field: k, Msg: fmt.Sprintf("not a %s setting (valid: %s)", s.cfg.Engine, strings.Join(allowed, ", "))}
		}
	}
	if errs := st.check(s.cfg.Engine, s.cfg.Model, s.cfg.GPU); len(errs) > 0 {
		return &FieldError{Field: errs[0].field, Msg: errs[0].msg}
	}
	return s.setSettings(st)
}

// ReadSetting returns the engine's current value of one of its settings,
// named as in POST /admin/settings and resolved with the engine's defaults,
// written as the flag's value on a command line: integers without decimals,
// floats in shortest form, booleans true or false, and "auto" for a dtype
// left at the model's. ok is false when name is not a setting of the engine.
func (s *Server) ReadSetting(name string) (value string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(engineFlags[s.cfg.Engine], name) {
		return "", false
	}
	v := reflect.ValueOf(s.cfg.Settings)
	for i := range v.NumField() {
		tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
		if tag != name {
			continue
		}
		f := v.Field(i)
		if f.Kind() == reflect.Pointer {
			f = f.Elem()
		}
		switch f.Kind() {
		case reflect.Int:
			return strconv.FormatInt(f.Int(), 10), true
		case reflect.Float64:
			return strconv.FormatFloat(f.Float(), 'f', -1, 64), true
		case reflect.Bool:
			return strconv.FormatBool(f.Bool()), true
		case reflect.String:
			if f.String() == "" {
				return "auto", true
			}
			return f.String(), true
		}
	}
	return "", false
}

// UpdateWorkload applies a JSON partial workload change (the body of POST /admin/workload).
func (s *Server) UpdateWorkload(body []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.cfg.Workload
	if err := decodeJSON(body, &w); err != nil {
		return err
	}
	if errs := w.check(); len(errs) > 0 {
		return &FieldError{Field: errs[0].field, Msg: errs[0].msg}
	}
	s.setWorkload(w)
	return nil
}

// State is a server's configuration and simulated state at one instant.
type State struct {
	Name     string    `json:"name"`
	Engine   Engine    `json:"engine"`
	Listen   string    `json:"listen"`
	Time     time.Time `json:"time"`     // simulated time of the snapshot
	Started  time.Time `json:"started"`  // simulated time the engine process last started
	Settings Settings  `json:"settings"` // with engine defaults resolved
	Workload Workload  `json:"workload"`
	Model    string    `json:"model"`

	KVCapacityTokens int `json:"kv_capacity_tokens"`  // from memory: blocks x block_size, or pool tokens
	KVBlocks         int `json:"kv_blocks,omitempty"` // vLLM num_gpu_blocks
	MaxRunning       int `json:"max_running"`         // max_num_seqs, max_running_requests or max_concurrent_requests

	Running  int      `json:"running"`
	Waiting  int      `json:"waiting"`
	KVUsage  float64  `json:"kv_usage"` // used share of KV; TGI: reserved share of max_batch_total_tokens
	Counters Counters `json:"counters"`

	// Histograms as the engine records them (seconds; prompt lengths in tokens); empty when
	// the engine has none: TTFT and ITL (vLLM, SGLang), E2E (TGI: tgi_request_duration),
	// Queue (every engine's queue-time histogram), Prefill (vLLM), PromptLen, MeanTPT (TGI).
	TTFT    HistogramSnapshot `json:"-"`
	ITL     HistogramSnapshot `json:"-"`
	E2E     HistogramSnapshot `json:"-"`
	Queue   HistogramSnapshot `json:"-"`
	Prefill HistogramSnapshot `json:"-"`
	// Inference is the time from first scheduling to the last token (vLLM,
	// TGI), which with E2E and Queue gives the time spent outside the engine.
	Inference HistogramSnapshot `json:"-"`
	PromptLen HistogramSnapshot `json:"-"`
	MeanTPT   HistogramSnapshot `json:"-"`
}

// Counters are a server's cumulative counts since the engine process last started.
type Counters struct {
	Arrived          float64 `json:"arrived"`
	Finished         float64 `json:"finished"`
	Stop             float64 `json:"stop"`
	Length           float64 `json:"length"`
	Aborted          float64 `json:"aborted"`
	Rejected         float64 `json:"rejected"`
	Preemptions      float64 `json:"preemptions"`
	Retractions      float64 `json:"retractions"`
	PromptTokens     float64 `json:"prompt_tokens"`
	GenerationTokens float64 `json:"generation_tokens"`
	PrefixQueries    float64 `json:"prefix_queries"`
	PrefixHits       float64 `json:"prefix_hits"`
	// SpecDraftTokens and SpecAccepted are vLLM's speculative-decoding
	// draft and accepted tokens (0 with speculative decoding off).
	SpecDraftTokens float64 `json:"spec_draft_tokens,omitempty"`
	SpecAccepted    float64 `json:"spec_accepted,omitempty"`
}

// HistogramSnapshot is a copy of a histogram.
type HistogramSnapshot struct {
	Bounds []float64
	Counts []uint64 // per bucket (not cumulative), the last one is +Inf
	Sum    float64
	Count  uint64
}

func (h *histogram) snapshot() HistogramSnapshot {
	if h == nil {
		return HistogramSnapshot{}
	}
	return HistogramSnapshot{Bounds: h.bounds, Counts: append([]uint64(nil), h.counts...), Sum: h.sum, Count: h.count}
}

// Sub returns the observations made between old and h.
func (h HistogramSnapshot) Sub(old HistogramSnapshot) HistogramSnapshot {
	d := HistogramSnapshot{Bounds: h.Bounds, Counts: append([]uint64(nil), h.Counts...), Sum: h.Sum - old.Sum, Count: h.Count - old.Count}
	for i := range old.Counts {
		if i < len(d.Counts) {
			d.Counts[i] -= old.Counts[i]
		}
	}
	return d
}

// Quantile estimates the q-quantile as histogram_quantile does.
func (h HistogramSnapshot) Quantile(q float64) float64 {
	if len(h.Bounds) == 0 {
		return 0
	}
	return quantileOf(h.Bounds, h.Counts, q)
}

// Mean is Sum/Count, or 0 without observations.
func (h HistogramSnapshot) Mean() float64 {
	if h.Count == 0 {
		return 0
	}
	return h.Sum / float64(h.Count)
}

// State returns the server's current state.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{
		Name:             s.cfg.Name,
		Engine:           s.cfg.Engine,
		Listen:           s.cfg.Listen,
		Time:             s.start.Add(time.Duration(s.now * 1e9)),
		Started:          s.processStart(),
		Settings:         s.cfg.Settings,
		Workload:         s.cfg.Workload,
		Model:            s.cfg.Model.Name,
		KVCapacityTokens: s.p.kvTokens,
		MaxRunning:       s.p.maxSeqs,
		Running:          len(s.running),
		Waiting:          s.waiting.len(),
		KVUsage:          s.kvUsage(),
		Counters: Counters{
			Arrived: s.st.arrived, Finished: s.st.finished, Stop: s.st.stop, Length: s.st.length,
			Aborted: s.st.abort, Rejected: s.st.failOverloaded + s.st.failValidation,
			Preemptions: s.st.preemptions, Retractions: s.st.retracted,
			PromptTokens: s.st.promptTokens, GenerationTokens: s.st.genTokens,
			PrefixQueries: s.st.prefixQueries, PrefixHits: s.st.prefixHits,
			SpecDraftTokens: s.st.specDraftTokens, SpecAccepted: s.st.specAccepted,
		},
		TTFT:      s.h.ttft.snapshot(),
		ITL:       s.h.itl.snapshot(),
		E2E:       s.h.e2e.snapshot(),
		Queue:     s.h.queue.snapshot(),
		Prefill:   s.h.prefill.snapshot(),
		Inference: s.h.inference.snapshot(),
		PromptLen: s.h.promptLen.snapshot(),
		MeanTPT:   s.h.tgiMeanTPT.snapshot(),
	}
	if s.cfg.Engine == EngineVLLM {
		st.KVBlocks = s.p.kvUnits
	}
	switch s.cfg.Engine {
	case EngineSGLang:
		st.Queue = s.h.sgQueue.snapshot()
	case EngineTGI:
		st.Queue = s.h.tgiQueue.snapshot()
		st.E2E = s.h.tgiDuration.snapshot()
		st.Inference = s.h.tgiInference.snapshot()
		st.PromptLen = s.h.tgiInput.snapshot()
	}
	return st
}

// kvUsage is the used share of the KV cache (TGI: of max_batch_total_tokens reserved).
func (s *Server) kvUsage() float64 {
	return float64(s.used) / float64(s.p.kvUnits)
}
